"""The order gate: every order intent is approved or denied here, with every reason.

``evaluate`` is pure and synchronous apart from the order-rate bucket in :class:`GateState`
(it takes a token only when it approves) and the values it derives once per portfolio view, market
view and limits and keeps there (a cache: the verdict is the same without it). It never raises for
a business rejection: bad inputs (NaN, negative, absurd values, unknown instruments) are denials
with a reason code.

Venue precision, decided: the amount is rounded *down* to the amount step and a limit price to the
tick on the passive side (a buy down, a sell up), so the approved order never trades more or at a
worse price than asked. Every later check runs on the rounded values, so what is checked is exactly
what is sent; if rounding leaves less than the venue's minimum amount (or zero) the order is denied
(``amount_below_minimum``) rather than rounded up.

>>> from datetime import timedelta
>>> from decimal import Decimal
>>> from core.clock import ManualClock, parse_utc
>>> from core.events import Side
>>> from core.orders import OrderIntent, OrderType
>>> from risk.config import RiskLimits
>>> from risk.market import InstrumentRules, MarketView
>>> from risk.portfolio import PortfolioView
>>> clock = ManualClock(parse_utc("2024-08-08T23:54:15Z"))
>>> limits = RiskLimits()
>>> state = GateState.start(limits, clock)
>>> market = MarketView("binance", "BTC/USDT", Decimal("60000"),
...                     InstrumentRules(Decimal("0.01"), Decimal("0.00001")), clock.now())
>>> portfolio = PortfolioView("acct", Decimal("100000"))
>>> def intent(amount):
...     return OrderIntent("acct", "trend", "binance", "BTC/USDT", Side.BUY, OrderType.MARKET,
...                        Decimal(amount), None, False, "b4-1", clock.now())
>>> evaluate(intent("0.0300009"), portfolio, market, limits, state).amount
Decimal('0.03000')
>>> evaluate(intent("0.04"), portfolio, market, limits, state).codes
('position_limit_exceeded',)
"""

from __future__ import annotations

import enum
import hashlib
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal
from typing import Any

from core.clock import EPOCH, Clock
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
from risk.market import CEILING_GRID, FLOOR_GRID, MAX_MAGNITUDE, MIN_MAGNITUDE, MarketView, sane_positive
from risk.portfolio import Exposure, OpenOrder, PortfolioView
from risk.throttle import TokenBucket


class Code(enum.StrEnum):
    """Stable reason codes of denials (the ``code`` of a :class:`~core.orders.DenialReason`)."""

    TRADING_HALTED = "trading_halted"
    TRADING_REDUCING = "trading_reducing"
    REDUCE_ONLY_NOT_REDUCING = "reduce_only_not_reducing"
    ACCOUNT_MISMATCH = "account_mismatch"
    MARKET_MISMATCH = "market_mismatch"
    INVALID_ORDER = "invalid_order"
    INVALID_AMOUNT = "invalid_amount"
    INVALID_PRICE = "invalid_price"
    INVALID_EQUITY = "invalid_equity"
    INVALID_PORTFOLIO = "invalid_portfolio"
    INVALID_MARKET = "invalid_market"
    SYMBOL_NOT_ALLOWED = "symbol_not_allowed"
    DUPLICATE_CLIENT_ORDER_ID = "duplicate_client_order_id"
    MAX_OPEN_ORDERS_EXCEEDED = "max_open_orders_exceeded"
    RATE_LIMIT_EXCEEDED = "rate_limit_exceeded"
    MARKET_DATA_STALE = "market_data_stale"
    AMOUNT_BELOW_MINIMUM = "amount_below_minimum"
    AMOUNT_ABOVE_MAXIMUM = "amount_above_maximum"
    BELOW_MIN_NOTIONAL = "below_min_notional"
    ORDER_NOTIONAL_EXCEEDED = "order_notional_exceeded"
    PRICE_BAND_EXCEEDED = "price_band_exceeded"
    POSITION_LIMIT_EXCEEDED = "position_limit_exceeded"
    GROSS_EXPOSURE_EXCEEDED = "gross_exposure_exceeded"
    NET_EXPOSURE_EXCEEDED = "net_exposure_exceeded"
    LEVERAGE_EXCEEDED = "leverage_exceeded"
    SELF_TRADE = "self_trade"


@dataclass(slots=True)
class GateState:
    """One account's gate state: the clock, the order-rate bucket and the current trading state.

    ``trading_state`` is written by whoever owns the account's
    :class:`~risk.breakers.RiskStateMachine` (``risk.engine.RiskEngine`` keeps them in step).
    """

    clock: Clock
    rate_limiter: TokenBucket
    trading_state: TradingState = TradingState.ACTIVE
    #: Per instrument key, the values the gate derived from the last (portfolio, market, limits)
    #: it saw for that key; rebuilt whenever the portfolio view or the limits are a different
    #: object, or the market view carries a different price, best bid or ask, or rules object
    #: (``_Derived.serves``). A cache, so it is left out of snapshots.
    derived: dict[str, _Derived] = field(default_factory=dict, repr=False, compare=False)

    @classmethod
    def start(cls, limits: RiskLimits, clock: Clock, trading_state: TradingState = TradingState.ACTIVE) -> GateState:
        """A fresh state with a full token bucket sized from ``limits``."""
        bucket = TokenBucket(limits.max_orders_per_second, limits.order_burst, clock)
        return cls(clock, bucket, trading_state)

    # The layout of Python's default pickling of a slotted object, less the cache: snapshots taken
    # before the cache existed load unchanged.
    def __getstate__(self) -> tuple[None, dict[str, object]]:
        return None, {"clock": self.clock, "rate_limiter": self.rate_limiter, "trading_state": self.trading_state}

    def __setstate__(self, state: tuple[None, dict[str, Any]]) -> None:
        slots = state[1]
        self.clock = slots["clock"]
        self.rate_limiter = slots["rate_limiter"]
        self.trading_state = slots["trading_state"]
        self.derived = {}


class _Derived:
    """Everything about one instrument that does not depend on the order itself: read from the
    portfolio's :class:`~risk.portfolio.InstrumentBook`, the market view and the limits, with the
    very expressions the checks used to evaluate per order (so values and exponents are equal)."""

    __slots__ = (
        "abs_long",
        "abs_short",
        "band",
        "best_ask",
        "best_bid",
        "book",
        "buy_fill",
        "equity",
        "gross_before",
        "leverage_cap",
        "limits",
        "long_term_abs",
        "market",
        "net_before",
        "portfolio",
        "position",
        "reach_buy",
        "reach_sell",
        "reference",
        "rules",
        "sell_fill",
        "short_term_abs",
        "unit_amount_step",
        "unit_price_tick",
    )

    def __init__(self, portfolio: PortfolioView, market: MarketView, limits: RiskLimits, key: str) -> None:
        self.portfolio = portfolio
        self.market = market
        self.limits = limits
        # The only market values read below: a new MarketView carrying these very objects (the
        # trading flow builds one per signal from the same stored price and rules) derives the same.
        self.rules = market.rules
        self.reference = market.reference_price
        self.best_bid = market.best_bid
        self.best_ask = market.best_ask
        self.unit_amount_step = market.rules.unit_amount_step
        self.unit_price_tick = market.rules.unit_price_tick
        book = self.book = portfolio.book(key)
        exp = book.exposure
        ref = market.reference_price
        equity = self.equity = portfolio.equity
        pct = limits.max_position_pct
        #: (max_position_pct, the cap in money), None when the limit is off.
        self.position: tuple[Decimal, Decimal] | None = None if pct is None else (pct, pct * equity)
        self.leverage_cap = None if limits.max_leverage is None else limits.max_leverage * equity
        self.abs_long = abs(exp.long_worst)
        self.abs_short = abs(exp.short_worst)
        self.gross_before = book.other_gross + book.worst_abs * ref
        self.long_term_abs = abs(book.other_long + exp.long_worst * ref)
        self.short_term_abs = abs(book.other_short + exp.short_worst * ref)
        self.net_before = max(self.long_term_abs, self.short_term_abs)
        # Where a market order is expected to fill: the best opposite price if known.
        self.buy_fill = market.best_ask if market.best_ask is not None else ref
        self.sell_fill = market.best_bid if market.best_bid is not None else ref
        band_pct = limits.price_band_pct
        #: (price_band_pct, the band's half-width in money), None when the limit is off.
        self.band: tuple[Decimal, Decimal] | None = None if band_pct is None else (band_pct, band_pct * ref)
        # A market order reaches as far as the price band allows (everywhere, without a band).
        self.reach_buy = None if self.band is None else ref + self.band[1]
        self.reach_sell = None if self.band is None else ref - self.band[1]

    def serves(self, market: MarketView) -> bool:
        """True when ``market`` carries the very objects these values were derived from (identity,
        not equality: ``60000`` and ``60000.0`` are equal but show differently in messages)."""
        return (
            market.reference_price is self.reference
            and market.rules is self.rules
            and market.best_bid is self.best_bid
            and market.best_ask is self.best_ask
        )


def decision_id(client_order_id: str, ts: datetime) -> str:
    """Deterministic id of one gate decision: the same order judged at the same time, the same id.

    >>> from core.clock import parse_utc
    >>> decision_id("b4-1", parse_utc("2024-01-01T00:00:00Z"))
    'rd-91922677f360a4bc32593d1d'
    """
    # core.clock.to_epoch_us, inlined: this runs for every order.
    delta = ts - EPOCH
    micros = (delta.days * 86_400 + delta.seconds) * 1_000_000 + delta.microseconds
    return "rd-" + _sha256(f"{client_order_id}\x1f{micros}".encode()).digest()[:12].hex()


_sha256 = hashlib.sha256


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

    This is the hot path of every order (issue 5: 200k evaluations/s), so each check is an inline
    comparison and a denial's message is built only when the check fails; what each check means
    is unchanged (``tests/unit/risk/test_risk_gate_reference.py`` compares every outcome with the
    straightforward implementation).
    """
    now = state.clock.now()
    reasons: list[DenialReason] = []
    side = intent.side
    buy = side is Side.BUY
    order_type = intent.order_type
    limit_price = intent.limit_price
    amount_in = intent.amount

    # -- Inputs. The fast test is exactly "_check_inputs would record nothing"; on any doubt the
    # full check runs and records every unusable input.
    usable = (
        (buy or side is Side.SELL)
        and (
            (
                order_type is OrderType.LIMIT
                # sane_positive(limit_price), inlined
                and isinstance(limit_price, Decimal)
                and limit_price.is_finite()
                and MIN_MAGNITUDE <= limit_price <= MAX_MAGNITUDE
            )
            or (order_type is OrderType.MARKET and limit_price is None)
        )
        and bool(intent.client_order_id)
        and intent.account == portfolio.account
        and intent.exchange == market.exchange
        and intent.symbol == market.symbol
        # sane_positive(amount_in), inlined
        and isinstance(amount_in, Decimal)
        and amount_in.is_finite()
        and MIN_MAGNITUDE <= amount_in <= MAX_MAGNITUDE
        and portfolio.sound
        and market.problem() is None
    )
    if not usable:
        usable = _check_inputs(intent, portfolio, market, reasons)

    # -- Trading state.
    trading = state.trading_state
    if trading is not TradingState.ACTIVE:
        _check_trading_state(intent, trading, reasons)

    # -- Account limits that need no arithmetic on the order's values.
    key = market.key if usable else intent.key
    allowed = limits.allowed_symbols
    if allowed is not None and key not in allowed and intent.symbol not in allowed:
        _deny(reasons, Code.SYMBOL_NOT_ALLOWED, f"{key} is not in allowed_symbols")
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
    bucket = state.rate_limiter
    if bucket.available_at(now) < 1.0:
        _deny(
            reasons,
            Code.RATE_LIMIT_EXCEEDED,
            f"order rate above {limits.max_orders_per_second}/s (burst {limits.order_burst})",
        )
    age = now - market.ts_event
    max_age = limits.max_market_data_age
    if age > max_age or -age > max_age:
        _deny(
            reasons,
            Code.MARKET_DATA_STALE,
            f"market data for {market.key} is {age.total_seconds():.3f}s old; "
            f"max_market_data_age is {max_age.total_seconds():.3f}s",
        )
    if not usable:
        # Early return: every check below values the order, which needs a valid amount, price,
        # equity, portfolio and reference price for this very instrument.
        return OrderDenied(intent, tuple(reasons), decision_id(intent.client_order_id, now), now)

    # -- Venue precision: round to the grid, then check what will actually be sent.
    pre = state.derived.get(key)
    if pre is None or pre.portfolio is not portfolio or pre.limits is not limits:
        pre = state.derived[key] = _Derived(portfolio, market, limits, key)
    elif pre.market is not market:
        if pre.serves(market):
            pre.market = market  # the next order on this view skips the comparison
        else:
            pre = state.derived[key] = _Derived(portfolio, market, limits, key)
    rules = market.rules
    step = pre.unit_amount_step
    amount = rules.floor_amount(amount_in) if step is None else FLOOR_GRID.quantize(amount_in, step)
    price: Decimal | None = None
    if limit_price is not None:  # a usable order with a price is a limit order
        tick = pre.unit_price_tick
        if tick is None:
            price = rules.floor_price(limit_price) if buy else rules.ceil_price(limit_price)
        else:
            price = (FLOOR_GRID if buy else CEILING_GRID).quantize(limit_price, tick)
        if price <= 0:
            _deny(
                reasons,
                Code.INVALID_PRICE,
                f"limit price {limit_price!s} rounds to {price!s} at tick {rules.price_tick!s}",
            )

    # -- Venue rules and fat-finger limits.
    if amount <= 0 or amount < rules.min_amount:
        _deny(
            reasons,
            Code.AMOUNT_BELOW_MINIMUM,
            f"amount {amount_in!s} rounds down to {amount!s} at step {rules.amount_step!s}; "
            f"the venue minimum is {rules.min_amount!s} and it must be > 0",
        )
    max_amount = rules.max_amount
    if max_amount is not None and amount > max_amount:
        _deny(reasons, Code.AMOUNT_ABOVE_MAXIMUM, f"amount {amount!s} is above the venue maximum {max_amount!s}")
    reference = market.reference_price
    fill_price = price if price is not None else pre.buy_fill if buy else pre.sell_fill
    notional = amount * fill_price
    if notional < rules.min_notional:
        _deny(
            reasons,
            Code.BELOW_MIN_NOTIONAL,
            f"notional {notional!s} is below the venue minimum {rules.min_notional!s}",
        )
    max_notional = limits.max_order_notional
    if max_notional is not None and notional > max_notional:
        _deny(
            reasons,
            Code.ORDER_NOTIONAL_EXCEEDED,
            f"order notional {notional!s} is above max_order_notional {max_notional!s}",
        )
    band = pre.band
    if band is not None and abs(fill_price - reference) > band[1]:
        _deny_price_band(reasons, band, reference, fill_price, limit=price is not None)

    # -- Reduce-only, position, gross, leverage and net limits on the worst case after this order
    # (every resting order on the growing side fills; see risk.portfolio). A limit already
    # breached (equity fell, prices moved) still lets through orders that shrink the exposure it
    # measures: denying those would trap the account in its breach.
    book = pre.book
    exp = book.exposure
    if intent.reduce_only:
        _check_reduce_only(intent, exp, amount, reasons)
    if buy:
        before = exp.long_worst
        after = before + amount
        after_abs = abs(after)
        worst_after = max(after_abs, pre.abs_short)
    else:
        before = exp.short_worst
        after = before - amount
        after_abs = abs(after)
        worst_after = max(pre.abs_long, after_abs)
    position = pre.position
    if position is not None:
        value = after_abs * reference
        if value > position[1] and not _shrinks(before, after):
            _deny_position(reasons, f"{key} position would reach {after!s} worth {value!s}", position, pre.equity)
    max_gross = limits.max_gross_exposure
    leverage_cap = pre.leverage_cap
    if max_gross is not None or leverage_cap is not None:
        gross_after = book.other_gross + worst_after * reference
        over_gross = max_gross is not None and gross_after > max_gross
        over_leverage = leverage_cap is not None and gross_after > leverage_cap
        # A breached limit still lets through what does not grow gross exposure.
        if (over_gross or over_leverage) and gross_after > pre.gross_before:
            if over_gross:
                _deny(
                    reasons,
                    Code.GROSS_EXPOSURE_EXCEEDED,
                    f"gross exposure would reach {gross_after!s}, above max_gross_exposure {max_gross!s}",
                )
            if over_leverage:
                _deny_leverage(reasons, limits, gross_after, pre.equity)
    max_net = limits.max_net_exposure
    if max_net is not None:
        if buy:
            net_after = max(abs(book.other_long + after * reference), pre.short_term_abs)
        else:
            net_after = max(pre.long_term_abs, abs(book.other_short + after * reference))
        if net_after > max_net and net_after > pre.net_before:
            _deny(
                reasons,
                Code.NET_EXPOSURE_EXCEEDED,
                f"net exposure would reach {net_after!s}, above max_net_exposure {max_net!s}",
            )

    # -- Self-trade: only when one of our resting limit orders could be reached.
    if book.orders:
        reach = price if price is not None else pre.reach_buy if buy else pre.reach_sell
        edge = book.lowest_sell if buy else book.highest_buy
        if edge is not None and (reach is None or (reach >= edge if buy else reach <= edge)):
            _deny_self_trade(intent, book.orders, reach, reasons)

    if reasons:
        return OrderDenied(intent, tuple(reasons), decision_id(intent.client_order_id, now), now)
    bucket.try_take_at(now)  # availability was checked above, at this same instant
    # The token positionally: a keyword argument costs the dataclass __init__ a fifth more.
    return ApprovedOrder(intent, amount, price, decision_id(intent.client_order_id, now), now, _APPROVAL_TOKEN)


# Messages interpolate Decimals as ``{value!s}``: the same text as ``{value}`` (Decimal.__format__
# with an empty spec is str), but ``format`` costs about 7x more, and a denial formats several.
def _deny(reasons: list[DenialReason], code: Code, message: str) -> None:
    reasons.append(DenialReason(_CODE_TEXT[code], message))


# ``Code.X.value`` goes through enum's descriptor machinery; a denial may record several codes.
_CODE_TEXT: dict[Code, str] = {code: code.value for code in Code}


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
        _deny(reasons, Code.INVALID_AMOUNT, f"amount {intent.amount!s} must be a finite number in (0, 1e18]")
    if intent.order_type is OrderType.LIMIT and not sane_positive(intent.limit_price):
        _deny(
            reasons,
            Code.INVALID_PRICE,
            f"limit price {intent.limit_price!s} must be a finite number in (0, 1e18]",
        )
    if intent.order_type is OrderType.MARKET and intent.limit_price is not None:
        _deny(reasons, Code.INVALID_PRICE, f"a market order carries no limit price, got {intent.limit_price!s}")
    if not sane_positive(portfolio.equity):
        _deny(reasons, Code.INVALID_EQUITY, f"equity {portfolio.equity!s} must be a finite number > 0")
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


def _deny_price_band(
    reasons: list[DenialReason],
    pct_and_band: tuple[Decimal, Decimal],
    reference: Decimal,
    fill_price: Decimal,
    *,
    limit: bool,
) -> None:
    what = "limit price" if limit else "best opposite price"
    band_pct, band = pct_and_band
    _deny(
        reasons,
        Code.PRICE_BAND_EXCEEDED,
        f"{what} {fill_price!s} is more than {band_pct * 100!s}% from the reference "
        f"price {reference!s} (allowed {reference - band!s} to {reference + band!s})",
    )


def _deny_position(
    reasons: list[DenialReason], what: str, pct_and_cap: tuple[Decimal, Decimal], equity: Decimal
) -> None:
    pct, cap = pct_and_cap
    _deny(
        reasons,
        Code.POSITION_LIMIT_EXCEEDED,
        f"{what}, above max_position_pct {pct * 100!s}% of equity {equity!s} = {cap!s}",
    )


def _deny_leverage(reasons: list[DenialReason], limits: RiskLimits, gross_after: Decimal, equity: Decimal) -> None:
    _deny(
        reasons,
        Code.LEVERAGE_EXCEEDED,
        f"gross exposure {gross_after!s} on equity {equity!s} is leverage {gross_after / equity:.4f}, "
        f"above max_leverage {limits.max_leverage!s}",
    )


def _shrinks(before: Decimal, after: Decimal) -> bool:
    """True when ``after`` is ``before`` moved toward zero without crossing it."""
    return (before > 0 and 0 <= after < before) or (before < 0 and before < after <= 0)


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
            f"reduce-only {intent.side} {amount!s} of {intent.key} would not shrink position {position!s} "
            f"({pending!s} already resting in reduce-only orders)",
        )


def _deny_self_trade(
    intent: OrderIntent, orders: tuple[OpenOrder, ...], reach: Decimal | None, reasons: list[DenialReason]
) -> None:
    """Deny an order that could fill against one of our own resting limit orders, naming the first
    one in the portfolio's order that it reaches."""
    buy = intent.side is Side.BUY
    for order in orders:
        if order.order_type is not OrderType.LIMIT or order.side is intent.side or order.remaining <= 0:
            continue
        if reach is None or (reach >= order.price if buy else reach <= order.price):
            _deny(
                reasons,
                Code.SELF_TRADE,
                f"{intent.side} reaching {reach if reach is not None else 'any price'!s} would cross our "
                f"own resting {order.side} {order.client_order_id} at {order.price!s}",
            )
            return
