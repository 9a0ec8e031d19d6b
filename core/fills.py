"""Execution vocabulary: order statuses, order lifecycle events, fills, and their ``fills.v1`` records.

An order moves through :class:`OrderStatus` values driven by :class:`OrderEventKind` events (the
transition table lives in ``execution.orders``). The order manager publishes one
:class:`OrderEvent` per transition and one :class:`Fill` per execution; both are plain frozen
records with Decimal amounts and aware-UTC times, and both turn into JSON-ready dicts for
``fills.v1`` and PostgreSQL (decimals as strings, times as integer microseconds, like the
market-data wire).

>>> from decimal import Decimal
>>> from core.clock import parse_utc
>>> fill = Fill("binance", "paper-1-1", "b4-1", "acct", "BTC/USDT", Side.BUY, Decimal("61837.64"),
...             Decimal("0.01"), Decimal("0.6183764"), "USDT", Liquidity.TAKER,
...             parse_utc("2024-08-08T23:54:15Z"))
>>> fill.notional, fill.key
(Decimal('618.3764'), 'binance:BTC/USDT')
>>> fill_from_record(fill_record(fill)) == fill
True
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import Any

from core.clock import from_epoch_us, require_utc, to_epoch_us
from core.events import Side
from core.money import to_decimal
from core.symbols import instrument_key

TOPIC = "fills.v1"
RECORD_VERSION = 1


class OrderStatus(enum.StrEnum):
    """Where an order stands, as far as Bot4 knows.

    ``SUBMITTED`` means "sent, result unknown": the venue may or may not have it, so it is resolved
    by looking the order up by its client id, never by sending it again.
    """

    PENDING_SUBMIT = "pending_submit"
    SUBMITTED = "submitted"
    ACCEPTED = "accepted"
    PARTIALLY_FILLED = "partially_filled"
    FILLED = "filled"
    PENDING_CANCEL = "pending_cancel"
    CANCELED = "canceled"
    REJECTED = "rejected"
    EXPIRED = "expired"

    @property
    def is_terminal(self) -> bool:
        """True when no further fill or status change is expected (late reports aside).

        >>> OrderStatus.FILLED.is_terminal, OrderStatus.PENDING_CANCEL.is_terminal
        (True, False)
        """
        return self in _TERMINAL

    @property
    def is_open(self) -> bool:
        """True while the order may still fill (working at the venue or maybe there).

        >>> OrderStatus.SUBMITTED.is_open, OrderStatus.CANCELED.is_open
        (True, False)
        """
        return self not in _TERMINAL


_TERMINAL = frozenset({OrderStatus.FILLED, OrderStatus.CANCELED, OrderStatus.REJECTED, OrderStatus.EXPIRED})


class OrderEventKind(enum.StrEnum):
    """What happened to an order: the inputs of the order state machine (past tense, from the venue
    or from us)."""

    SUBMIT = "submit"  # we sent it
    ACCEPT = "accept"  # the venue acknowledged it
    REJECT = "reject"  # the venue (or reconciliation) refused it
    PARTIAL_FILL = "partial_fill"  # some of it executed
    FILL = "fill"  # the last of it executed
    CANCEL_REQUEST = "cancel_request"  # we asked to cancel it
    CANCEL = "cancel"  # the venue canceled it
    CANCEL_REJECT = "cancel_reject"  # the venue refused our cancel
    EXPIRE = "expire"  # the venue dropped the rest (IOC remainder, no liquidity, time in force)


class Liquidity(enum.StrEnum):
    """Whether a fill added liquidity (resting order, maker fee) or took it (taker fee)."""

    MAKER = "maker"
    TAKER = "taker"


@dataclass(frozen=True, slots=True)
class Fill:
    """One execution of one order. ``fill_id`` is unique per exchange (the venue's trade id), so a
    fill delivered twice (stream and reconciliation) is applied once. ``fee`` is in ``fee_currency``.
    """

    exchange: str
    fill_id: str
    client_order_id: str
    account: str
    symbol: str
    side: Side
    price: Decimal
    amount: Decimal
    fee: Decimal
    fee_currency: str
    liquidity: Liquidity
    ts_event: datetime

    def __post_init__(self) -> None:
        require_utc(self.ts_event, "Fill.ts_event")

    @property
    def key(self) -> str:
        return instrument_key(self.exchange, self.symbol)

    @property
    def notional(self) -> Decimal:
        return self.price * self.amount


@dataclass(frozen=True, slots=True)
class OrderEvent:
    """One transition of one order: ``kind`` happened and the order went from ``previous`` to ``status``.

    ``filled`` and ``remaining`` are the order's totals after the event; ``reason`` says why for a
    reject, cancel reject or expiry (a stable code such as ``insufficient_balance``). ``seq`` numbers
    the order's events from 1 (with the client order id, the key of an ``order_events`` row).
    """

    exchange: str
    account: str
    client_order_id: str
    symbol: str
    kind: OrderEventKind
    status: OrderStatus
    filled: Decimal
    remaining: Decimal
    ts_event: datetime
    venue_order_id: str | None = None
    reason: str = ""
    previous: OrderStatus | None = None
    seq: int = 0

    def __post_init__(self) -> None:
        require_utc(self.ts_event, "OrderEvent.ts_event")

    @property
    def key(self) -> str:
        """Kafka key: execution is keyed by account."""
        return self.account


def fill_record(fill: Fill) -> dict[str, Any]:
    """The ``fills.v1`` message of a fill (JSON-ready)."""
    return {
        "v": RECORD_VERSION,
        "type": "fill",
        "exchange": fill.exchange,
        "fill_id": fill.fill_id,
        "client_order_id": fill.client_order_id,
        "account": fill.account,
        "symbol": fill.symbol,
        "side": fill.side.value,
        "price": str(fill.price),
        "amount": str(fill.amount),
        "fee": str(fill.fee),
        "fee_currency": fill.fee_currency,
        "liquidity": fill.liquidity.value,
        "ts_event": to_epoch_us(fill.ts_event),
    }


def fill_from_record(rec: dict[str, Any]) -> Fill:
    """Rebuild a :class:`Fill` from its ``fills.v1`` message; ``KeyError``/``ValueError`` if malformed."""
    if rec.get("v") != RECORD_VERSION or rec.get("type") != "fill":
        raise ValueError(f"not a fills.v1 fill record: v={rec.get('v')!r} type={rec.get('type')!r}")
    return Fill(
        str(rec["exchange"]),
        str(rec["fill_id"]),
        str(rec["client_order_id"]),
        str(rec["account"]),
        str(rec["symbol"]),
        Side(rec["side"]),
        to_decimal(rec["price"], name="price"),
        to_decimal(rec["amount"], name="amount"),
        to_decimal(rec["fee"], name="fee"),
        str(rec["fee_currency"]),
        Liquidity(rec["liquidity"]),
        from_epoch_us(int(rec["ts_event"])),
    )


def order_event_record(event: OrderEvent) -> dict[str, Any]:
    """The ``fills.v1`` message of an order event (JSON-ready).

    >>> from core.clock import parse_utc
    >>> ev = OrderEvent("binance", "acct", "b4-1", "BTC/USDT", OrderEventKind.ACCEPT, OrderStatus.ACCEPTED,
    ...                 Decimal(0), Decimal("0.01"), parse_utc("2024-08-08T23:54:15Z"), "paper-1",
    ...                 previous=OrderStatus.SUBMITTED, seq=2)
    >>> order_event_from_record(order_event_record(ev)) == ev
    True
    """
    return {
        "v": RECORD_VERSION,
        "type": "order",
        "exchange": event.exchange,
        "account": event.account,
        "client_order_id": event.client_order_id,
        "symbol": event.symbol,
        "kind": event.kind.value,
        "status": event.status.value,
        "filled": str(event.filled),
        "remaining": str(event.remaining),
        "ts_event": to_epoch_us(event.ts_event),
        "venue_order_id": event.venue_order_id,
        "reason": event.reason,
        "previous": None if event.previous is None else event.previous.value,
        "seq": event.seq,
    }


def order_event_from_record(rec: dict[str, Any]) -> OrderEvent:
    """Rebuild an :class:`OrderEvent` from its ``fills.v1`` message."""
    if rec.get("v") != RECORD_VERSION or rec.get("type") != "order":
        raise ValueError(f"not a fills.v1 order record: v={rec.get('v')!r} type={rec.get('type')!r}")
    venue_id = rec.get("venue_order_id")
    previous = rec.get("previous")
    return OrderEvent(
        str(rec["exchange"]),
        str(rec["account"]),
        str(rec["client_order_id"]),
        str(rec["symbol"]),
        OrderEventKind(rec["kind"]),
        OrderStatus(rec["status"]),
        to_decimal(rec["filled"], name="filled"),
        to_decimal(rec["remaining"], name="remaining"),
        from_epoch_us(int(rec["ts_event"])),
        None if venue_id is None else str(venue_id),
        str(rec.get("reason", "")),
        None if previous is None else OrderStatus(previous),
        int(rec.get("seq", 0)),
    )
