"""Small builders for the risk tests: a valid order, market and portfolio unless told otherwise."""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal

from core.clock import ManualClock, parse_utc
from core.events import Side
from core.orders import OrderIntent, OrderType, TradingState
from risk.config import RiskLimits
from risk.gate import GateState
from risk.market import InstrumentRules, MarketView
from risk.portfolio import OpenOrder, PortfolioView, Position

T0 = parse_utc("2024-08-08T23:54:15Z")
ACCOUNT = "acct-1"
RULES = InstrumentRules(
    price_tick=Decimal("0.01"),
    amount_step=Decimal("0.00001"),
    min_amount=Decimal("0.00001"),
    min_notional=Decimal("5"),
)


def d(value: str | int) -> Decimal:
    return Decimal(value)


def market(
    price: str = "60000",
    *,
    symbol: str = "BTC/USDT",
    exchange: str = "binance",
    ts: datetime = T0,
    rules: InstrumentRules = RULES,
    bid: str | None = None,
    ask: str | None = None,
) -> MarketView:
    return MarketView(
        exchange,
        symbol,
        d(price),
        rules,
        ts,
        best_bid=None if bid is None else d(bid),
        best_ask=None if ask is None else d(ask),
    )


def intent(
    amount: str | Decimal = "0.01",
    *,
    side: Side = Side.BUY,
    price: str | Decimal | None = None,
    reduce_only: bool = False,
    symbol: str = "BTC/USDT",
    exchange: str = "binance",
    account: str = ACCOUNT,
    coid: str = "b4-test-order",
) -> OrderIntent:
    order_type = OrderType.MARKET if price is None else OrderType.LIMIT
    return OrderIntent(
        account=account,
        strategy="trend",
        exchange=exchange,
        symbol=symbol,
        side=side,
        order_type=order_type,
        amount=d(amount) if isinstance(amount, str) else amount,
        limit_price=d(price) if isinstance(price, str) else price,
        reduce_only=reduce_only,
        client_order_id=coid,
        ts_event=T0,
    )


def position(amount: str, mark: str = "60000", *, symbol: str = "BTC/USDT") -> Position:
    return Position("binance", symbol, d(amount), d(mark))


def resting(
    side: Side,
    price: str,
    remaining: str,
    *,
    coid: str = "b4-resting",
    reduce_only: bool = False,
    symbol: str = "BTC/USDT",
    order_type: OrderType = OrderType.LIMIT,
) -> OpenOrder:
    return OpenOrder(coid, "binance", symbol, side, order_type, d(price), d(remaining), reduce_only)


def portfolio(
    equity: str = "100000",
    positions: tuple[Position, ...] = (),
    orders: tuple[OpenOrder, ...] = (),
    *,
    account: str = ACCOUNT,
) -> PortfolioView:
    return PortfolioView(account, d(equity), positions, orders)


def gate_state(
    limits: RiskLimits | None = None,
    *,
    clock: ManualClock | None = None,
    trading_state: TradingState = TradingState.ACTIVE,
) -> GateState:
    return GateState.start(limits or RiskLimits(), clock or ManualClock(T0), trading_state)
