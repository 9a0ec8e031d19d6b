"""What the gate knows about the market for one instrument: reference price, venue rules, data age.

Numbers are not validated at construction: a NaN or negative reference price, or a broken rule, is
data the gate denies with a reason (``problem()`` names it). Timestamps must be aware UTC; a naive
time is a programming error and raises.

>>> from datetime import timedelta
>>> from decimal import Decimal
>>> from core.clock import parse_utc
>>> rules = InstrumentRules(price_tick=Decimal("0.01"), amount_step=Decimal("0.00001"),
...                         min_amount=Decimal("0.00001"), min_notional=Decimal("5"))
>>> m = MarketView("binance", "BTC/USDT", Decimal("61837.63"), rules, parse_utc("2024-08-08T23:54:15Z"))
>>> m.key, m.age(parse_utc("2024-08-08T23:54:17Z"))
('binance:BTC/USDT', datetime.timedelta(seconds=2))
>>> m.problem() is None
True
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from decimal import ROUND_CEILING, ROUND_FLOOR, Context, Decimal

from core.clock import require_utc
from core.symbols import instrument_key

#: Values with a larger magnitude (or a smaller non-zero one) are refused as absurd: they cannot be
#: a real price or amount, and refusing them keeps every product well inside Decimal's range.
MAX_MAGNITUDE = Decimal("1e18")
MIN_MAGNITUDE = Decimal("1e-18")
#: No venue quotes a tick or step finer than this; the gate's grid arithmetic relies on it.
MAX_DECIMAL_PLACES = 18


def sane_positive(value: object) -> bool:
    """True for a finite Decimal in [1e-18, 1e18]; False for anything else (never raises).

    >>> sane_positive(Decimal("0.5")), sane_positive(Decimal("NaN")), sane_positive(Decimal(-1))
    (True, False, False)
    """
    return isinstance(value, Decimal) and value.is_finite() and MIN_MAGNITUDE <= value <= MAX_MAGNITUDE


def sane_number(value: object) -> bool:
    """True for a finite Decimal of magnitude at most 1e18 (zero and negatives allowed).

    >>> sane_number(Decimal("-3")), sane_number(Decimal("Infinity")), sane_number(3.0)
    (True, False, False)
    """
    return isinstance(value, Decimal) and value.is_finite() and abs(value) <= MAX_MAGNITUDE


@dataclass(frozen=True, slots=True)
class InstrumentRules:
    """A venue's trading rules for one instrument (ccxt ``market['precision']`` / ``['limits']``).

    ``price_tick`` and ``amount_step`` are the grid prices and amounts must sit on; ``min_amount``
    / ``max_amount`` the lot size limits; ``min_notional`` the smallest amount x price accepted.
    """

    price_tick: Decimal
    amount_step: Decimal
    min_amount: Decimal = Decimal(0)
    max_amount: Decimal | None = None
    min_notional: Decimal = Decimal(0)
    # Judged once at construction: the gate asks on every order.
    _problem: str | None = field(init=False, repr=False, compare=False, default=None)
    # True when the step is a power of ten written as one (``0.01``, not ``0.010`` or ``0.5``):
    # rounding to it is then a single quantize (see risk.gate).
    _tick_is_unit: bool = field(init=False, repr=False, compare=False, default=False)
    _step_is_unit: bool = field(init=False, repr=False, compare=False, default=False)

    def __post_init__(self) -> None:
        problem = self._find_problem()
        object.__setattr__(self, "_problem", problem)
        sound = problem is None
        object.__setattr__(self, "_tick_is_unit", sound and self.price_tick.as_tuple().digits == (1,))
        object.__setattr__(self, "_step_is_unit", sound and self.amount_step.as_tuple().digits == (1,))

    # Snapshots carry the constructor's values only; what is derived from them is derived again on
    # restore, so a snapshot taken before a derived field existed (a list that also holds the old
    # derived values after these) restores complete.
    def __getstate__(self) -> tuple[object, ...]:
        return (self.price_tick, self.amount_step, self.min_amount, self.max_amount, self.min_notional)

    def __setstate__(self, state: Sequence[object]) -> None:
        for name, value in zip(_RULES_FIELDS, state, strict=False):
            object.__setattr__(self, name, value)
        self.__post_init__()

    def problem(self) -> str | None:
        """Why these rules cannot be used, or None when they are sound.

        >>> InstrumentRules(Decimal("0.01"), Decimal("0")).problem()
        'amount_step 0 must be a finite number > 0'
        """
        return self._problem

    @property
    def unit_amount_step(self) -> Decimal | None:
        """The amount step when it is one power of ten (rounding to it is one quantize), else None."""
        return self.amount_step if self._step_is_unit else None

    @property
    def unit_price_tick(self) -> Decimal | None:
        """The price tick when it is one power of ten, else None."""
        return self.price_tick if self._tick_is_unit else None

    def floor_amount(self, amount: Decimal) -> Decimal:
        """``amount`` rounded down to the amount step, written with the step's exponent (sound
        rules and a sane amount only).

        >>> InstrumentRules(Decimal("0.01"), Decimal("0.001")).floor_amount(Decimal("0.0129"))
        Decimal('0.012')
        """
        if self._step_is_unit:
            return FLOOR_GRID.quantize(amount, self.amount_step)
        return floor_to(amount, self.amount_step)

    def floor_price(self, price: Decimal) -> Decimal:
        """``price`` rounded down to the tick (a buy's limit: never pay more than asked).

        >>> InstrumentRules(Decimal("0.5"), Decimal("0.001")).floor_price(Decimal("100.7"))
        Decimal('100.5')
        """
        if self._tick_is_unit:
            return FLOOR_GRID.quantize(price, self.price_tick)
        return floor_to(price, self.price_tick)

    def ceil_price(self, price: Decimal) -> Decimal:
        """``price`` rounded up to the tick (a sell's limit: never sell for less than asked).

        >>> InstrumentRules(Decimal("0.01"), Decimal("0.001")).ceil_price(Decimal("100.001"))
        Decimal('100.01')
        """
        if self._tick_is_unit:
            return CEILING_GRID.quantize(price, self.price_tick)
        return ceil_to(price, self.price_tick)

    def _find_problem(self) -> str | None:
        for name in ("price_tick", "amount_step"):
            step = getattr(self, name)
            if not sane_positive(step):
                return f"{name} {step} must be a finite number > 0"
            if step.as_tuple().exponent < -MAX_DECIMAL_PLACES:
                return f"{name} {step} has more than {MAX_DECIMAL_PLACES} decimal places"
        for name in ("min_amount", "min_notional"):
            value = getattr(self, name)
            if not sane_number(value) or value < 0:
                return f"{name} {value} must be a finite number >= 0"
        if self.max_amount is not None and (not sane_positive(self.max_amount) or self.max_amount < self.min_amount):
            return f"max_amount {self.max_amount} must be a finite number >= min_amount {self.min_amount}"
        return None


@dataclass(frozen=True, slots=True)
class MarketView:
    """The market for one instrument as the gate sees it at one moment.

    ``reference_price`` is the mark the gate values positions and checks the price band against
    (mid or last trade); ``best_bid`` / ``best_ask`` are optional and, when given, a market order's
    likely fill price is checked against the band too. ``ts_event`` is the exchange time of the
    newest market data behind the reference price.
    """

    exchange: str
    symbol: str
    reference_price: Decimal
    rules: InstrumentRules
    ts_event: datetime
    best_bid: Decimal | None = None
    best_ask: Decimal | None = None
    _problem: str | None = field(init=False, repr=False, compare=False, default=None)
    _key: str = field(init=False, repr=False, compare=False, default="")

    def __post_init__(self) -> None:
        require_utc(self.ts_event, "MarketView.ts_event")
        object.__setattr__(self, "_key", instrument_key(self.exchange, self.symbol))
        object.__setattr__(self, "_problem", self._find_problem())

    # As for InstrumentRules: constructor values only, derived values derived again on restore.
    def __getstate__(self) -> tuple[object, ...]:
        return tuple(getattr(self, name) for name in _VIEW_FIELDS)

    def __setstate__(self, state: Sequence[object]) -> None:
        for name, value in zip(_VIEW_FIELDS, state, strict=False):
            object.__setattr__(self, name, value)
        self.__post_init__()

    @property
    def key(self) -> str:
        return self._key

    def age(self, now: datetime) -> timedelta:
        """How old the market data is at ``now`` (negative if it is stamped in the future)."""
        return now - self.ts_event

    def problem(self) -> str | None:
        """Why the gate cannot price an order against this view, or None when it can."""
        return self._problem

    def _find_problem(self) -> str | None:
        if not sane_positive(self.reference_price):
            return f"reference price {self.reference_price} of {self.key} must be a finite number > 0"
        for name in ("best_bid", "best_ask"):
            value = getattr(self, name)
            if value is not None and not sane_positive(value):
                return f"{name} {value} of {self.key} must be a finite number > 0"
        return self.rules.problem()


_RULES_FIELDS = ("price_tick", "amount_step", "min_amount", "max_amount", "min_notional")
_VIEW_FIELDS = ("exchange", "symbol", "reference_price", "rules", "ts_event", "best_bid", "best_ask")

# Wide enough for every sane value (|x| and step within 1e-18..1e18 need at most 37 digits), so
# grid arithmetic is exact and the result can carry the step's exponent ("0.01000", not "0.01").
_GRID = Context(prec=80)
# For a step that is one power of ten, quantizing with these is the whole rounding: the same
# result, in the same exponent, as floor_to / ceil_to, in one C call.
FLOOR_GRID = Context(prec=80, rounding=ROUND_FLOOR)
CEILING_GRID = Context(prec=80, rounding=ROUND_CEILING)


def floor_to(value: Decimal, step: Decimal) -> Decimal:
    """Largest multiple of ``step`` not above ``value``, written with the step's exponent.

    >>> floor_to(Decimal("7.9"), Decimal("2.5"))
    Decimal('7.5')
    """
    units = _GRID.divide(value, step).to_integral_value(rounding=ROUND_FLOOR, context=_GRID)
    result = _GRID.multiply(units, step)
    # A step that is not a power of ten can make the quotient inexact; never end above value.
    if result > value:
        result = _GRID.subtract(result, step)
    return _GRID.quantize(result, step)


def ceil_to(value: Decimal, step: Decimal) -> Decimal:
    """Smallest multiple of ``step`` not below ``value``, written with the step's exponent.

    >>> ceil_to(Decimal("7.6"), Decimal("2.5"))
    Decimal('10.0')
    """
    units = _GRID.divide(value, step).to_integral_value(rounding=ROUND_CEILING, context=_GRID)
    result = _GRID.multiply(units, step)
    if result < value:
        result = _GRID.add(result, step)
    return _GRID.quantize(result, step)
