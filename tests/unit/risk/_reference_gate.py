"""The risk gate as it was before the hot-path rewrite (commit 32f0e74), kept as a test oracle.

``test_risk_gate_reference.py`` runs this straightforward version and ``risk.gate.evaluate`` on the
same inputs and requires the same verdict: the same reasons (codes and messages, in order), the
same approved amount and price (value and exponent), the same decision id. Do not "fix" this file
along with the gate: its point is to be the independent, obvious reading of every check.
"""

from __future__ import annotations

import hashlib
from datetime import datetime
from decimal import ROUND_CEILING, ROUND_FLOOR, Context, Decimal

from core.clock import to_epoch_us
from core.events import Side
from core.orders import (
    _APPROVAL_TOKEN,
    ApprovedOrder,
    DenialReason,
    OrderDenied,
    OrderIntent,
    OrderType,
    TradingState,
)
from risk.config import RiskLimits
from risk.gate import Code, GateState
from risk.market import MarketView, sane_positive
from risk.portfolio import Exposure, PortfolioView


def decision_id(client_order_id: str, ts: datetime) -> str:
    digest = hashlib.sha256(f"{client_order_id}\x1f{to_epoch_us(ts)}".encode()).hexdigest()
    return f"rd-{digest[:24]}"


def evaluate(
    intent: OrderIntent,
    portfolio: PortfolioView,
    market: MarketView,
    limits: RiskLimits,
    state: GateState,
) -> ApprovedOrder | OrderDenied:
    """Approve ``intent`` (rounded to the venue's grid) or deny it with every failed check's reason.

    See the module docstring for an example and the rounding rule. Checks, in order: inputs
    (account, instrument, amount, price, equity, portfolio, market), trading state, allowed
    symbols, duplicate client id, max open orders, rate limit, market data age; then, on valid
    inputs only: lot size and amount step, min notional, max order notional, price band,
    reduce-only, position limit, gross exposure, leverage, net exposure, self-trade.
    """
    now = state.clock.now()
    reasons: list[DenialReason] = []
    usable = _check_inputs(intent, portfolio, market, reasons)
    _check_trading_state(intent, state.trading_state, reasons)
    _check_account_limits(intent, portfolio, market, limits=limits, state=state, now=now, reasons=reasons)
    if not usable:
        # Early return: every check below values the order, which needs a valid amount, price,
        # equity, portfolio and reference price for this very instrument.
        return OrderDenied(intent, tuple(reasons), decision_id(intent.client_order_id, now), now)

    buy = intent.side is Side.BUY
    rules = market.rules
    amount = _floor_to(intent.amount, rules.amount_step)
    price: Decimal | None = None
    if intent.order_type is OrderType.LIMIT and intent.limit_price is not None:
        raw = intent.limit_price
        price = _floor_to(raw, rules.price_tick) if buy else _ceil_to(raw, rules.price_tick)
        if price <= 0:
            _deny(reasons, Code.INVALID_PRICE, f"limit price {raw} rounds to {price} at tick {rules.price_tick}")
    _check_venue_rules(intent, market, amount=amount, price=price, limits=limits, reasons=reasons)
    _check_exposure(intent, portfolio, market, amount=amount, limits=limits, reasons=reasons)
    _check_self_trade(intent, portfolio, market, price=price, limits=limits, reasons=reasons)
    if reasons:
        return OrderDenied(intent, tuple(reasons), decision_id(intent.client_order_id, now), now)
    state.rate_limiter.try_take()  # availability was checked above; the clock has not moved since
    return ApprovedOrder(intent, amount, price, decision_id(intent.client_order_id, now), now, token=_APPROVAL_TOKEN)


def _deny(reasons: list[DenialReason], code: Code, message: str) -> None:
    reasons.append(DenialReason(code.value, message))


def _check_inputs(
    intent: OrderIntent, portfolio: PortfolioView, market: MarketView, reasons: list[DenialReason]
) -> bool:
    """Record every unusable input; True when the order can be valued."""
    before = len(reasons)
    if intent.side is not Side.BUY and intent.side is not Side.SELL:
        _deny(reasons, Code.INVALID_ORDER, f"side {intent.side!r} is not buy or sell")
    if intent.order_type is not OrderType.MARKET and intent.order_type is not OrderType.LIMIT:
        _deny(reasons, Code.INVALID_ORDER, f"order type {intent.order_type!r} is not market or limit")
    if not intent.client_order_id:
        _deny(reasons, Code.INVALID_ORDER, "client_order_id is empty")
    if intent.account != portfolio.account:
        _deny(
            reasons,
            Code.ACCOUNT_MISMATCH,
            f"order for account {intent.account!r} checked against portfolio of {portfolio.account!r}",
        )
    if intent.exchange != market.exchange or intent.symbol != market.symbol:
        _deny(reasons, Code.MARKET_MISMATCH, f"order for {intent.key} checked against market {market.key}")
    if not sane_positive(intent.amount):
        _deny(reasons, Code.INVALID_AMOUNT, f"amount {intent.amount} must be a finite number in (0, 1e18]")
    if intent.order_type is OrderType.LIMIT and not sane_positive(intent.limit_price):
        _deny(
            reasons,
            Code.INVALID_PRICE,
            f"limit price {intent.limit_price} must be a finite number in (0, 1e18]",
        )
    if intent.order_type is OrderType.MARKET and intent.limit_price is not None:
        _deny(reasons, Code.INVALID_PRICE, f"a market order carries no limit price, got {intent.limit_price}")
    if not sane_positive(portfolio.equity):
        _deny(reasons, Code.INVALID_EQUITY, f"equity {portfolio.equity} must be a finite number > 0")
    if portfolio.problem is not None:
        _deny(reasons, Code.INVALID_PORTFOLIO, portfolio.problem)
    market_problem = market.problem()
    if market_problem is not None:
        _deny(reasons, Code.INVALID_MARKET, market_problem)
    return len(reasons) == before


def _check_trading_state(intent: OrderIntent, trading: TradingState, reasons: list[DenialReason]) -> None:
    if trading is TradingState.HALTED:
        _deny(reasons, Code.TRADING_HALTED, "trading is HALTED: no new orders until a person resets it")
    elif trading is TradingState.REDUCING and not intent.reduce_only:
        _deny(
            reasons,
            Code.TRADING_REDUCING,
            "trading is REDUCING: only reduce-only orders that shrink a position are accepted",
        )


def _check_account_limits(
    intent: OrderIntent,
    portfolio: PortfolioView,
    market: MarketView,
    *,
    limits: RiskLimits,
    state: GateState,
    now: datetime,
    reasons: list[DenialReason],
) -> None:
    """Checks that need no arithmetic on the order's values."""
    allowed = limits.allowed_symbols
    if allowed is not None and intent.key not in allowed and intent.symbol not in allowed:
        _deny(reasons, Code.SYMBOL_NOT_ALLOWED, f"{intent.key} is not in allowed_symbols")
    if portfolio.has_order(intent.client_order_id):
        _deny(
            reasons,
            Code.DUPLICATE_CLIENT_ORDER_ID,
            f"client order id {intent.client_order_id} is already an open order",
        )
    open_count = len(portfolio.open_orders)
    if open_count >= limits.max_open_orders:
        _deny(
            reasons,
            Code.MAX_OPEN_ORDERS_EXCEEDED,
            f"{open_count} open orders; max_open_orders {limits.max_open_orders} allows no more",
        )
    if not state.rate_limiter.can_take():
        _deny(
            reasons,
            Code.RATE_LIMIT_EXCEEDED,
            f"order rate above {limits.max_orders_per_second}/s (burst {limits.order_burst})",
        )
    age = market.age(now)
    if age > limits.max_market_data_age or -age > limits.max_market_data_age:
        _deny(
            reasons,
            Code.MARKET_DATA_STALE,
            f"market data for {market.key} is {age.total_seconds():.3f}s old; "
            f"max_market_data_age is {limits.max_market_data_age.total_seconds():.3f}s",
        )


def _check_venue_rules(
    intent: OrderIntent,
    market: MarketView,
    *,
    amount: Decimal,
    price: Decimal | None,
    limits: RiskLimits,
    reasons: list[DenialReason],
) -> None:
    rules = market.rules
    if amount <= 0 or amount < rules.min_amount:
        _deny(
            reasons,
            Code.AMOUNT_BELOW_MINIMUM,
            f"amount {intent.amount} rounds down to {amount} at step {rules.amount_step}; "
            f"the venue minimum is {rules.min_amount} and it must be > 0",
        )
    if rules.max_amount is not None and amount > rules.max_amount:
        _deny(reasons, Code.AMOUNT_ABOVE_MAXIMUM, f"amount {amount} is above the venue maximum {rules.max_amount}")
    fill_price = price if price is not None else _market_fill_price(intent.side, market)
    notional = amount * fill_price
    if notional < rules.min_notional:
        _deny(
            reasons,
            Code.BELOW_MIN_NOTIONAL,
            f"notional {notional} is below the venue minimum {rules.min_notional}",
        )
    if limits.max_order_notional is not None and notional > limits.max_order_notional:
        _deny(
            reasons,
            Code.ORDER_NOTIONAL_EXCEEDED,
            f"order notional {notional} is above max_order_notional {limits.max_order_notional}",
        )
    if limits.price_band_pct is not None:
        reference = market.reference_price
        band = limits.price_band_pct * reference
        if abs(fill_price - reference) > band:
            what = "limit price" if price is not None else "best opposite price"
            _deny(
                reasons,
                Code.PRICE_BAND_EXCEEDED,
                f"{what} {fill_price} is more than {limits.price_band_pct * 100}% from the reference "
                f"price {reference} (allowed {reference - band} to {reference + band})",
            )


def _market_fill_price(side: Side, market: MarketView) -> Decimal:
    """Where a market order is expected to fill: the best opposite price if known, else the reference."""
    best = market.best_ask if side is Side.BUY else market.best_bid
    return best if best is not None else market.reference_price


def _shrinks(before: Decimal, after: Decimal) -> bool:
    """True when ``after`` is ``before`` moved toward zero without crossing it."""
    return (before > 0 and 0 <= after < before) or (before < 0 and before < after <= 0)


def _check_exposure(
    intent: OrderIntent,
    portfolio: PortfolioView,
    market: MarketView,
    *,
    amount: Decimal,
    limits: RiskLimits,
    reasons: list[DenialReason],
) -> None:
    """Reduce-only, position, gross, net and leverage limits on the worst case after this order.

    A limit already breached (equity fell, prices moved) still lets through orders that shrink the
    exposure it measures: denying those would trap the account in its breach.
    """
    key = intent.key
    buy = intent.side is Side.BUY
    exp = portfolio.exposure(key)
    ref = market.reference_price
    equity = portfolio.equity
    if intent.reduce_only:
        _check_reduce_only(intent, exp, amount, reasons)

    before = exp.long_worst if buy else exp.short_worst
    after = before + amount if buy else before - amount
    if limits.max_position_pct is not None:
        cap = limits.max_position_pct * equity
        value = abs(after) * ref
        if value > cap and not _shrinks(before, after):
            _deny(
                reasons,
                Code.POSITION_LIMIT_EXCEEDED,
                f"{key} position would reach {after} worth {value}, above max_position_pct "
                f"{limits.max_position_pct * 100}% of equity {equity} = {cap}",
            )

    other_gross = portfolio.gross_exposure - exp.gross_at(exp.mark)
    gross_before = other_gross + exp.gross_at(ref)
    long_after = exp.long_worst + amount if buy else exp.long_worst
    short_after = exp.short_worst if buy else exp.short_worst - amount
    gross_after = other_gross + max(abs(long_after), abs(short_after)) * ref
    grows = gross_after > gross_before
    if grows and limits.max_gross_exposure is not None and gross_after > limits.max_gross_exposure:
        _deny(
            reasons,
            Code.GROSS_EXPOSURE_EXCEEDED,
            f"gross exposure would reach {gross_after}, above max_gross_exposure {limits.max_gross_exposure}",
        )
    if grows and limits.max_leverage is not None and gross_after > limits.max_leverage * equity:
        _deny(
            reasons,
            Code.LEVERAGE_EXCEEDED,
            f"gross exposure {gross_after} on equity {equity} is leverage {gross_after / equity:.4f}, "
            f"above max_leverage {limits.max_leverage}",
        )
    if limits.max_net_exposure is not None:
        other_long = portfolio.net_long - exp.long_worst * exp.mark
        other_short = portfolio.net_short - exp.short_worst * exp.mark
        net_before = max(abs(other_long + exp.long_worst * ref), abs(other_short + exp.short_worst * ref))
        net_after = max(abs(other_long + long_after * ref), abs(other_short + short_after * ref))
        if net_after > limits.max_net_exposure and net_after > net_before:
            _deny(
                reasons,
                Code.NET_EXPOSURE_EXCEEDED,
                f"net exposure would reach {net_after}, above max_net_exposure {limits.max_net_exposure}",
            )


def _check_reduce_only(intent: OrderIntent, exp: Exposure, amount: Decimal, reasons: list[DenialReason]) -> None:
    """A reduce-only order, with the reduce-only orders already resting, must not outgrow the position."""
    position = exp.position
    if intent.side is Side.SELL:
        pending, room = exp.reducing_sells, position
    else:
        pending, room = exp.reducing_buys, -position
    if room <= 0 or pending + amount > room:
        _deny(
            reasons,
            Code.REDUCE_ONLY_NOT_REDUCING,
            f"reduce-only {intent.side.value} {amount} of {intent.key} would not shrink position {position} "
            f"({pending} already resting in reduce-only orders)",
        )


def _check_self_trade(
    intent: OrderIntent,
    portfolio: PortfolioView,
    market: MarketView,
    *,
    price: Decimal | None,
    limits: RiskLimits,
    reasons: list[DenialReason],
) -> None:
    """Deny an order that could fill against one of our own resting limit orders.

    A market order is taken to reach as far as the price band allows (everywhere, without a band).
    """
    orders = portfolio.orders_for(intent.key)
    if not orders:
        return
    buy = intent.side is Side.BUY
    reach = price
    if reach is None and limits.price_band_pct is not None:
        shift = limits.price_band_pct * market.reference_price
        reach = market.reference_price + shift if buy else market.reference_price - shift
    for order in orders:
        if order.order_type is not OrderType.LIMIT or order.side is intent.side or order.remaining <= 0:
            continue
        if reach is None or (reach >= order.price if buy else reach <= order.price):
            _deny(
                reasons,
                Code.SELF_TRADE,
                f"{intent.side.value} reaching {reach if reach is not None else 'any price'} would cross our "
                f"own resting {order.side.value} {order.client_order_id} at {order.price}",
            )
            return


# Wide enough for every sane value (|x| and step within 1e-18..1e18 need at most 37 digits), so
# grid arithmetic is exact and the result can carry the step's exponent ("0.01000", not "0.01").
_GRID = Context(prec=80)


def _floor_to(value: Decimal, step: Decimal) -> Decimal:
    """Largest multiple of ``step`` not above ``value``, written with the step's exponent."""
    units = _GRID.divide(value, step).to_integral_value(rounding=ROUND_FLOOR, context=_GRID)
    result = _GRID.multiply(units, step)
    # A step that is not a power of ten can make the quotient inexact; never end above value.
    if result > value:
        result = _GRID.subtract(result, step)
    return _GRID.quantize(result, step)


def _ceil_to(value: Decimal, step: Decimal) -> Decimal:
    """Smallest multiple of ``step`` not below ``value``, written with the step's exponent."""
    units = _GRID.divide(value, step).to_integral_value(rounding=ROUND_CEILING, context=_GRID)
    result = _GRID.multiply(units, step)
    if result < value:
        result = _GRID.add(result, step)
    return _GRID.quantize(result, step)
