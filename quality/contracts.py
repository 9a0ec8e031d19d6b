"""Cheap per-event contracts, applied in the flows before anything is stored or used.

Two layers:

- :func:`check_event` is stateless: finite positive prices and amounts, consistent OHLC, sane
  book levels, aware UTC times, a known instrument.
- :class:`KeyContracts` is the per-instrument state (one per ``exchange:SYMBOL`` key, kept in a
  Bytewax stateful step): event time never goes backwards by more than a tolerance within one
  stream, and a trade id is never seen twice (within a bounded window).

A violation is returned as a :class:`Violation`, never raised: the caller sends the record to the
dead-letter topic with ``reason`` and keeps going.

>>> from decimal import Decimal
>>> from core.clock import from_epoch_ms
>>> from core.events import Side, Trade
>>> t = Trade("binance", "BTC/USDT", "1", Decimal("-1"), Decimal("0.5"), Side.BUY,
...           from_epoch_ms(0), from_epoch_ms(0))
>>> check_event(t, frozenset({"binance:BTC/USDT"}))
Violation(reason='price_not_positive', detail='trade price -1 must be > 0')
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field
from datetime import timedelta
from decimal import Decimal
from typing import Any

from core.events import BookDelta, BookSnapshot, Candle, Level, MarketEvent, Quote, Trade

_ZERO = Decimal(0)


@dataclass(frozen=True, slots=True)
class Violation:
    """Why a record was refused: a stable ``reason`` code and a human ``detail``."""

    reason: str
    detail: str


def _positive(value: Decimal, what: str) -> Violation | None:
    """``what`` is "<record> <field>"; the reason code names the field, e.g. ``price_not_positive``."""
    field_name = what.rsplit(maxsplit=1)[-1]
    if not value.is_finite():
        return Violation(f"{field_name}_not_finite", f"{what} {value} must be a finite number")
    if value <= _ZERO:
        return Violation(f"{field_name}_not_positive", f"{what} {value} must be > 0")
    return None


def _levels(levels: tuple[Level, ...], side: str) -> Violation | None:
    zero = _ZERO
    for price, amount in levels:
        if price.is_finite() and amount.is_finite() and price > zero and amount >= zero:
            continue  # the common case, without a message
        if not price.is_finite() or price <= _ZERO:
            return Violation("book_price_invalid", f"{side} level price {price} must be finite and > 0")
        if not amount.is_finite() or amount < _ZERO:
            return Violation("book_amount_invalid", f"{side} level amount {amount} must be finite and >= 0")
    return None


def check_event(event: MarketEvent, known_keys: frozenset[str]) -> Violation | None:
    """Stateless contract of one event; ``known_keys`` empty means any instrument is accepted."""
    if known_keys and event.key not in known_keys:
        return Violation("unknown_symbol", f"instrument {event.key!r} is not configured (known: {len(known_keys)})")
    if isinstance(event, Trade):
        price, amount = event.price, event.amount
        if price.is_finite() and amount.is_finite() and price > _ZERO and amount > _ZERO:
            return None  # the common case, checked without building any message
        return _positive(price, "trade price") or _positive(amount, "trade amount")
    if isinstance(event, Candle):
        o, h, low, c, v = event.open, event.high, event.low, event.close, event.volume
        if (
            o.is_finite()
            and h.is_finite()
            and low.is_finite()
            and c.is_finite()
            and v.is_finite()
            and o > _ZERO
            and h > _ZERO
            and low > _ZERO
            and c > _ZERO
            and v >= _ZERO
            and h >= o
            and h >= c
            and low <= o
            and low <= c
        ):
            return None  # the common case: the checks below, without building any message
        for name in ("open", "high", "low", "close"):
            bad = _positive(getattr(event, name), f"candle {name}")
            if bad:
                return Violation("candle_price_invalid", bad.detail)
        if not event.volume.is_finite() or event.volume < _ZERO:
            return Violation("candle_volume_invalid", f"candle volume {event.volume} must be finite and >= 0")
        if event.high < max(event.open, event.close) or event.low > min(event.open, event.close):
            return Violation(
                "candle_ohlc_inconsistent",
                f"high {event.high} / low {event.low} do not bound open {event.open} and close {event.close}",
            )
        return None
    if isinstance(event, Quote):
        bid, ask = event.bid_price, event.ask_price
        if (
            bid.is_finite()
            and ask.is_finite()
            and bid > _ZERO
            and ask > _ZERO
            and event.bid_amount >= _ZERO
            and event.ask_amount >= _ZERO
            and bid <= ask
        ):
            return None  # the common case, checked without building any message
        bad = _positive(event.bid_price, "quote bid") or _positive(event.ask_price, "quote ask")
        if bad:
            return Violation("quote_price_invalid", bad.detail)
        if event.bid_amount < _ZERO or event.ask_amount < _ZERO:
            return Violation("quote_amount_invalid", "quote amounts must be >= 0")
        if event.bid_price > event.ask_price:
            return Violation("crossed_quote", f"bid {event.bid_price} above ask {event.ask_price}")
        return None
    if isinstance(event, BookSnapshot | BookDelta):
        bad = _levels(event.bids, "bid") or _levels(event.asks, "ask")
        if bad:
            return bad
        if isinstance(event, BookSnapshot) and event.bids and event.asks and event.bids[0][0] >= event.asks[0][0]:
            return Violation("crossed_book", f"best bid {event.bids[0][0]} >= best ask {event.asks[0][0]}")
        return None
    raise TypeError(f"no contract for {type(event).__name__}")


_CANDLE_STREAMS: dict[str, str] = {}


def _candle_stream(timeframe: str) -> str:
    """The ordering stream of candles of ``timeframe`` (one string per timeframe, not one per event)."""
    stream = _CANDLE_STREAMS.get(timeframe)
    if stream is None:
        stream = _CANDLE_STREAMS[timeframe] = f"Candle:{timeframe}"
    return stream


@dataclass
class KeyContracts:
    """Per-instrument contract state: last event time per stream and recently seen trade ids.

    ``snapshot()`` returns plain data (pickle-safe); ``restore()`` rebuilds the same state.

    >>> from decimal import Decimal
    >>> from core.clock import from_epoch_ms
    >>> from core.events import Side, Trade
    >>> state = KeyContracts(max_backwards=timedelta(seconds=5), dedup_window=10)
    >>> t = Trade("binance", "BTC/USDT", "7", Decimal("1"), Decimal("1"), Side.BUY,
    ...           from_epoch_ms(10_000), from_epoch_ms(10_000))
    >>> state.check(t) is None, state.check(t).reason
    (True, 'duplicate_trade_id')
    """

    max_backwards: timedelta
    dedup_window: int
    _last_us: dict[str, Any] = field(default_factory=dict)
    _ids: set[str] = field(default_factory=set)
    _id_order: deque[str] = field(default_factory=deque)

    def check(self, event: MarketEvent) -> Violation | None:
        """Check ordering and duplicates, and remember the event if it passes."""
        if isinstance(event, Trade):
            # A re-delivered trade is also "late"; the duplicate is the more precise diagnosis.
            if event.trade_id in self._ids:
                return Violation("duplicate_trade_id", f"trade id {event.trade_id} already seen for {event.key}")
            stream = "Trade"
        elif isinstance(event, Candle):
            stream = _candle_stream(event.timeframe)
        else:
            stream = type(event).__name__
        last = self._last_us.get(stream)
        if last is not None and event.ts_event < last - self.max_backwards:
            return Violation(
                "out_of_order",
                f"{stream} ts_event {event.ts_event.isoformat()} is more than "
                f"{self.max_backwards.total_seconds()}s before the last {last.isoformat()}",
            )
        if isinstance(event, Trade):
            self._ids.add(event.trade_id)
            self._id_order.append(event.trade_id)
            if len(self._id_order) > self.dedup_window:
                self._ids.discard(self._id_order.popleft())
        if last is None or event.ts_event > last:
            self._last_us[stream] = event.ts_event
        return None

    def snapshot(self) -> dict[str, Any]:
        return {"last": dict(self._last_us), "ids": list(self._id_order)}

    def restore(self, state: dict[str, Any]) -> None:
        self._last_us = dict(state["last"])
        self._id_order = deque(state["ids"])
        self._ids = set(self._id_order)
