"""The account as the gate reads it: equity, positions, open orders, and their worst-case exposure.

A :class:`PortfolioView` is immutable and is rebuilt by the portfolio operator whenever a fill,
an order update or a mark changes; it aggregates once so the gate's per-order work stays small.

Exposure is counted in the worst case: every open order on the side that grows a position is
assumed to fill. ``long_worst = position + open buys`` and ``short_worst = position - open sells``
(in base units); an instrument's gross exposure is ``max(|long_worst|, |short_worst|) x mark``.
Approving orders one at a time against that worst case keeps the limits true even if every resting
order fills.

>>> from decimal import Decimal
>>> from core.events import Side
>>> from core.orders import OrderType
>>> view = PortfolioView(
...     "acct", Decimal("10000"),
...     positions=[Position("binance", "BTC/USDT", Decimal("0.002"), Decimal("60000"))],
...     open_orders=[OpenOrder("b4-1", "binance", "BTC/USDT", Side.BUY, OrderType.LIMIT,
...                            Decimal("59000"), Decimal("0.001"))],
... )
>>> view.gross_exposure, view.net_exposure
(Decimal('180.000'), Decimal('180.000'))
>>> view.exposure("binance:BTC/USDT").long_worst
Decimal('0.003')
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from decimal import Decimal
from types import MappingProxyType
from typing import NamedTuple

from core.events import Side
from core.orders import OrderType
from core.symbols import instrument_key
from risk.market import MAX_MAGNITUDE, MIN_MAGNITUDE, sane_positive

_ZERO = Decimal(0)


@dataclass(frozen=True, slots=True)
class Position:
    """A position in one instrument: ``amount`` is signed (> 0 long, < 0 short) in base units."""

    exchange: str
    symbol: str
    amount: Decimal
    mark_price: Decimal

    @property
    def key(self) -> str:
        return instrument_key(self.exchange, self.symbol)


@dataclass(frozen=True, slots=True)
class OpenOrder:
    """One of the account's orders resting at (or in flight to) the venue.

    ``price`` is the limit price, or for a market order the reference price when it was sent;
    ``remaining`` is the unfilled amount.
    """

    client_order_id: str
    exchange: str
    symbol: str
    side: Side
    order_type: OrderType
    price: Decimal
    remaining: Decimal
    reduce_only: bool = False

    @property
    def key(self) -> str:
        return instrument_key(self.exchange, self.symbol)


@dataclass(frozen=True, slots=True)
class Exposure:
    """One instrument's position and open orders, in base units, and the mark they are valued at."""

    position: Decimal
    open_buys: Decimal
    open_sells: Decimal
    reducing_buys: Decimal
    reducing_sells: Decimal
    mark: Decimal
    #: The position if every open buy fills.
    long_worst: Decimal = field(init=False, compare=False)
    #: The position if every open sell fills.
    short_worst: Decimal = field(init=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "long_worst", self.position + self.open_buys)
        object.__setattr__(self, "short_worst", self.position - self.open_sells)

    def gross_at(self, price: Decimal) -> Decimal:
        """Worst-case absolute value of this instrument at ``price``."""
        return max(abs(self.long_worst), abs(self.short_worst)) * price


FLAT = Exposure(_ZERO, _ZERO, _ZERO, _ZERO, _ZERO, _ZERO)


class InstrumentBook(NamedTuple):
    """What the gate reads about one instrument of a portfolio, derived once per view and key.

    The ``other_*`` sums are the portfolio's totals less this instrument's share (at its mark), so
    the gate adds the instrument back at the order's reference price. ``lowest_sell`` /
    ``highest_buy`` are the extreme prices of our resting limit orders with something left to
    fill (None when there are none): an order can self-trade only if it reaches past them. A named
    tuple: immutable, and cheap to build for a view that is read only once.
    """

    exposure: Exposure
    #: ``max(|long_worst|, |short_worst|)``: the instrument's gross exposure per unit of price.
    worst_abs: Decimal
    other_gross: Decimal
    other_long: Decimal
    other_short: Decimal
    orders: tuple[OpenOrder, ...]
    lowest_sell: Decimal | None
    highest_buy: Decimal | None


class PortfolioView:
    """Read-only view of one account; see the module docstring for how exposure is counted.

    Bad numbers (NaN, infinities, absurd magnitudes, negative remaining amounts) do not raise: they
    are reported by :attr:`problem`, and the gate denies every order while a problem stands.
    """

    __slots__ = (
        "_account",
        "_books",
        "_client_ids",
        "_equity",
        "_exposures",
        "_gross",
        "_net_long",
        "_net_short",
        "_open_orders",
        "_orders_by_key",
        "_positions",
        "_problem",
        "_sound",
    )

    def __init__(
        self,
        account: str,
        equity: Decimal,
        positions: Iterable[Position] = (),
        open_orders: Iterable[OpenOrder] = (),
    ) -> None:
        self._account = account
        self._equity = equity
        position_list = tuple(positions)
        self._positions: Mapping[str, Position] = MappingProxyType({p.key: p for p in position_list})
        duplicated = len(self._positions) != len(position_list)
        self._open_orders = tuple(open_orders)
        by_key: dict[str, list[OpenOrder]] = {}
        for order in self._open_orders:
            by_key.setdefault(order.key, []).append(order)
        self._orders_by_key: Mapping[str, tuple[OpenOrder, ...]] = MappingProxyType(
            {key: tuple(orders) for key, orders in by_key.items()}
        )
        self._client_ids = frozenset(o.client_order_id for o in self._open_orders)
        self._exposures: Mapping[str, Exposure] = MappingProxyType({})
        self._books: dict[str, InstrumentBook] = {}
        self._gross = self._net_long = self._net_short = _ZERO
        self._problem = "two positions for one instrument" if duplicated else self._find_problem()
        if self._problem is None:
            self._aggregate()
        self._sound = self._problem is None and sane_positive(equity)

    def _find_problem(self) -> str | None:
        # sane_number / sane_positive inlined: they run for every number of every view.
        top, bottom = MAX_MAGNITUDE, MIN_MAGNITUDE
        for p in self._positions.values():
            amount, mark = p.amount, p.mark_price
            if not (isinstance(amount, Decimal) and amount.is_finite() and abs(amount) <= top):
                return f"position {p.key} amount {amount} is not a finite number"
            if not (isinstance(mark, Decimal) and mark.is_finite() and bottom <= mark <= top):
                return f"position {p.key} mark price {mark} must be a finite number > 0"
        for o in self._open_orders:
            remaining, price = o.remaining, o.price
            if not (isinstance(remaining, Decimal) and remaining.is_finite() and 0 <= remaining <= top):
                return f"open order {o.client_order_id} remaining {remaining} must be a finite number >= 0"
            if not (isinstance(price, Decimal) and price.is_finite() and bottom <= price <= top):
                return f"open order {o.client_order_id} price {price} must be a finite number > 0"
        return None

    def _aggregate(self) -> None:
        # One pass per instrument and one over the instruments, adding in the order the
        # straightforward ``sum(..., _ZERO)`` per quantity would (so totals and their exponents are
        # the same); the trading flow builds a view for every signal.
        exposures: dict[str, Exposure] = {}
        positions, by_key = self._positions, self._orders_by_key
        for key in positions.keys() | by_key.keys():
            position = positions.get(key)
            orders = by_key.get(key, ())
            buys = sells = r_buys = r_sells = _ZERO
            for o in orders:
                if o.side is Side.BUY:
                    buys = buys + o.remaining
                    if o.reduce_only:
                        r_buys = r_buys + o.remaining
                elif o.side is Side.SELL:
                    sells = sells + o.remaining
                    if o.reduce_only:
                        r_sells = r_sells + o.remaining
            # An instrument with orders but no position is valued at its highest order price.
            mark = position.mark_price if position is not None else max(o.price for o in orders)
            amount = position.amount if position is not None else _ZERO
            exposures[key] = Exposure(amount, buys, sells, r_buys, r_sells, mark)
        self._exposures = MappingProxyType(exposures)
        gross = net_long = net_short = _ZERO
        for e in exposures.values():
            gross = gross + e.gross_at(e.mark)
            net_long = net_long + e.long_worst * e.mark
            net_short = net_short + e.short_worst * e.mark
        self._gross, self._net_long, self._net_short = gross, net_long, net_short

    @property
    def account(self) -> str:
        return self._account

    @property
    def equity(self) -> Decimal:
        """Mark-to-market account value in quote currency."""
        return self._equity

    @property
    def sound(self) -> bool:
        """True when the gate can value orders against this view: no :attr:`problem` and equity a
        finite number in [1e-18, 1e18] (judged once, read per order)."""
        return self._sound

    @property
    def positions(self) -> Mapping[str, Position]:
        """Positions by ``exchange:SYMBOL`` key (read-only)."""
        return self._positions

    @property
    def open_orders(self) -> tuple[OpenOrder, ...]:
        return self._open_orders

    @property
    def problem(self) -> str | None:
        """Why positions or open orders cannot be valued, or None."""
        return self._problem

    @property
    def gross_exposure(self) -> Decimal:
        """Sum over instruments of worst-case absolute value, at each instrument's mark."""
        return self._gross

    @property
    def net_long(self) -> Decimal:
        """Signed sum of values if every open buy fills."""
        return self._net_long

    @property
    def net_short(self) -> Decimal:
        """Signed sum of values if every open sell fills."""
        return self._net_short

    @property
    def net_exposure(self) -> Decimal:
        """Worst-case absolute net value: ``max(|net_long|, |net_short|)``."""
        return max(abs(self._net_long), abs(self._net_short))

    def exposure(self, key: str) -> Exposure:
        """The instrument's exposure, or :data:`FLAT` when the account has nothing in it."""
        return self._exposures.get(key, FLAT)

    def book(self, key: str) -> InstrumentBook:
        """The instrument's :class:`InstrumentBook`, derived on first use and kept (the view is
        immutable, so every later order in the same instrument reads it for free).

        >>> view = PortfolioView("acct", Decimal("10000"),
        ...     positions=[Position("binance", "BTC/USDT", Decimal("0.002"), Decimal("60000"))])
        >>> book = view.book("binance:BTC/USDT")
        >>> book.worst_abs, book.other_gross, book.lowest_sell
        (Decimal('0.002'), Decimal('0.000'), None)
        """
        found = self._books.get(key)
        if found is None:
            found = self._books[key] = self._derive_book(key)
        return found

    def _derive_book(self, key: str) -> InstrumentBook:
        # The same expressions (and order of operations) the gate used per order, so results and
        # their Decimal exponents (which show in denial messages) are unchanged.
        exp = self.exposure(key)
        orders = self.orders_for(key)
        lowest_sell: Decimal | None = None
        highest_buy: Decimal | None = None
        # A view with a problem has unusable numbers (the gate denies before reading its book).
        if self._problem is None:
            for o in orders:
                if o.order_type is not OrderType.LIMIT or o.remaining <= 0:
                    continue
                if o.side is Side.SELL and (lowest_sell is None or o.price < lowest_sell):
                    lowest_sell = o.price
                elif o.side is Side.BUY and (highest_buy is None or o.price > highest_buy):
                    highest_buy = o.price
        return InstrumentBook(
            exp,
            max(abs(exp.long_worst), abs(exp.short_worst)),
            self._gross - exp.gross_at(exp.mark),
            self._net_long - exp.long_worst * exp.mark,
            self._net_short - exp.short_worst * exp.mark,
            orders,
            lowest_sell,
            highest_buy,
        )

    def orders_for(self, key: str) -> tuple[OpenOrder, ...]:
        """Open orders in one instrument."""
        return self._orders_by_key.get(key, ())

    def has_order(self, client_order_id: str) -> bool:
        """True when an open order already uses ``client_order_id``."""
        return client_order_id in self._client_ids
