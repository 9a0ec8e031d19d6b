"""The venue interface every execution venue implements (paper, ccxt testnet, ccxt live), and the
capabilities each one declares as data.

A venue answers synchronously what it answers on the wire (``submit`` returns the ack or the
reject, ``cancel`` the cancel or its refusal) and queues everything that happens later (fills,
expiries, unsolicited cancels) for :meth:`Venue.poll`. A submit whose result is unknown (timeout,
dropped connection) raises :class:`SubmitOutcomeUnknown`: the caller resolves it with
:meth:`Venue.fetch_order` by client order id and never sends the order again.

>>> caps = VenueCapabilities("binance", fees=FeeSchedule(Decimal("0.001"), Decimal("0.001")),
...                          rules={"BTC/USDT": InstrumentRules(Decimal("0.01"), Decimal("0.00001"))})
>>> caps.supports(OrderType.LIMIT), caps.rules_for("BTC/USDT").price_tick
(True, Decimal('0.01'))
>>> split_symbol("BTC/USDT")
('BTC', 'USDT')
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal
from functools import lru_cache
from types import MappingProxyType
from typing import Any, Protocol

from core.errors import Bot4Error, ConfigError
from core.events import Side
from core.fills import Fill, OrderEventKind, OrderStatus
from core.orders import ApprovedOrder, OrderType
from risk.market import InstrumentRules

#: Reject reason for a client order id the venue already has (Binance -2010 "Duplicate order sent");
#: the order manager answers it by looking the order up, never by resending.
DUPLICATE_CLIENT_ORDER_ID = "duplicate_client_order_id"


@dataclass(frozen=True, slots=True)
class FeeSchedule:
    """Fee rates as fractions of notional (``0.001`` = 0.1 %); negative maker = rebate.

    >>> FeeSchedule(Decimal("0.001"), Decimal("0.001")).taker * Decimal("618.3764")
    Decimal('0.6183764')
    """

    maker: Decimal
    taker: Decimal

    def __post_init__(self) -> None:
        for name in ("maker", "taker"):
            value = getattr(self, name)
            if not isinstance(value, Decimal) or not value.is_finite() or abs(value) >= 1:
                raise ConfigError(f"FeeSchedule.{name} {value!r} must be a Decimal fraction in (-1, 1)")


@dataclass(frozen=True, slots=True)
class VenueCapabilities:
    """What one venue supports, declared as data (the ccxt adapter fills it from the market info).

    ``rules`` holds per-symbol precision and limits; ``client_id_max_length`` is the longest client
    order id the venue keeps (Binance 36, Kraken 18 digits as ``userref``, Coinbase 36).
    """

    exchange: str
    fees: FeeSchedule
    rules: Mapping[str, InstrumentRules]
    order_types: frozenset[OrderType] = frozenset({OrderType.MARKET, OrderType.LIMIT})
    reduce_only: bool = False
    client_id_max_length: int = 36
    fetch_order_by_client_id: bool = True
    sandbox: bool = False

    def __reduce__(self) -> tuple[Any, ...]:
        # A read-only mapping proxy does not pickle; recovery snapshots carry the paper venue,
        # so rebuild from a plain dict (``__post_init__`` wraps it again).
        return (
            VenueCapabilities,
            (
                self.exchange,
                self.fees,
                dict(self.rules),
                self.order_types,
                self.reduce_only,
                self.client_id_max_length,
                self.fetch_order_by_client_id,
                self.sandbox,
            ),
        )

    def __post_init__(self) -> None:
        object.__setattr__(self, "rules", MappingProxyType(dict(self.rules)))
        if self.client_id_max_length <= 0:
            raise ConfigError(f"client_id_max_length {self.client_id_max_length} must be > 0")
        for symbol, rules in self.rules.items():
            problem = rules.problem()
            if problem is not None:
                raise ConfigError(f"rules of {self.exchange}:{symbol} are unusable: {problem}")

    def supports(self, order_type: OrderType) -> bool:
        """True when the venue takes orders of ``order_type``."""
        return order_type in self.order_types

    def rules_for(self, symbol: str) -> InstrumentRules | None:
        """The symbol's precision and limits, or None when the venue does not list it."""
        return self.rules.get(symbol)


@dataclass(frozen=True, slots=True)
class VenueReport:
    """Something the venue told us about one order: ``kind`` with, for fills, the :class:`Fill`."""

    client_order_id: str
    kind: OrderEventKind
    ts_event: datetime
    venue_order_id: str | None = None
    reason: str = ""
    fill: Fill | None = None


@dataclass(frozen=True, slots=True)
class VenueOrder:
    """The venue's own record of an order (what ``fetch_order`` / ``fetch_open_orders`` return)."""

    client_order_id: str
    venue_order_id: str
    symbol: str
    side: Side
    order_type: OrderType
    amount: Decimal
    price: Decimal | None
    status: OrderStatus
    filled: Decimal
    fills: tuple[Fill, ...] = field(default=())

    @property
    def remaining(self) -> Decimal:
        """Amount not filled yet."""
        return self.amount - self.filled


class SubmitOutcomeUnknown(Bot4Error):
    """The submit request may or may not have reached the venue (timeout, dropped connection).

    Never resend: look the order up by client order id (reconciliation does) and go from there.
    """

    operator_action = (
        "None while the order manager reconciles on start; otherwise reconcile (OrderManager.reconcile) "
        "before any new order for this account: the order may be live at the venue."
    )


class Venue(Protocol):
    """A place orders are executed. Implementations: ``execution.paper.PaperVenue`` and the ccxt venue."""

    @property
    def capabilities(self) -> VenueCapabilities:
        """What this venue supports."""

    def submit(self, order: ApprovedOrder) -> VenueReport:
        """Send ``order``; return the ACCEPT or REJECT report, or raise :class:`SubmitOutcomeUnknown`."""

    def cancel(self, client_order_id: str) -> VenueReport:
        """Cancel by client id; return the CANCEL or CANCEL_REJECT report (cancels are idempotent)."""

    def fetch_order(self, client_order_id: str) -> VenueOrder | None:
        """The venue's record of the order with this client id, with its fills, or None if unknown."""

    def fetch_open_orders(self, symbol: str | None = None) -> Sequence[VenueOrder]:
        """Orders still working at the venue (all symbols when ``symbol`` is None)."""

    def poll(self) -> list[VenueReport]:
        """Reports produced since the last poll (fills, expiries, unsolicited cancels), in order."""

    def balances(self) -> Mapping[str, Decimal]:
        """Total balance per currency."""

    def positions(self) -> Mapping[str, Decimal]:
        """Signed position per symbol in base units (spot: the base currency holding)."""


@lru_cache(maxsize=4096)
def split_symbol(symbol: str) -> tuple[str, str]:
    """``BASE/QUOTE`` (ccxt unified, optionally ``:SETTLE``) to ``(base, quote)`` (cached: it runs
    several times per order)."""
    base, sep, rest = symbol.partition("/")
    quote = rest.partition(":")[0]
    if not sep or not base or not quote:
        raise ValueError(f"symbol {symbol!r} is not a unified 'BASE/QUOTE' symbol")
    return base, quote
