"""Versioned wire format of market-data events on Kafka: compact JSON, one event per message.

Layout (version 1)::

    {"type": "trade", "v": 1, "exchange": "binance", "symbol": "BTC/USDT", "id": "3735683259",
     "price": "61837.63", "amount": "0.02", "side": "sell",
     "ts_event": 1723161255342000, "ts_recv": 1723161255400000}

Prices and amounts travel as decimal strings (exact), times as integer microseconds since the Unix
epoch, UTC. Book levels are ``[["price", "amount"], ...]``. A reader refuses an unknown ``type``
or a ``v`` it does not know with :class:`~core.errors.WireFormatError`; value checks (finite,
positive, known symbol) are the quality contracts' job, not the decoder's.

>>> from decimal import Decimal
>>> from core.clock import from_epoch_ms
>>> from core.events import Side, Trade
>>> t = Trade("binance", "BTC/USDT", "1", Decimal("61837.63"), Decimal("0.02"), Side.BUY,
...           from_epoch_ms(1723161255342), from_epoch_ms(1723161255342))
>>> decode(encode(t)) == t
True
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from decimal import Decimal, InvalidOperation
from typing import Any

import orjson

from core.clock import from_epoch_us, to_epoch_us
from core.errors import WireFormatError
from core.events import BookDelta, BookSnapshot, Candle, Level, MarketEvent, Quote, Side, Trade

WIRE_VERSION = 1


def _levels_out(levels: tuple[Level, ...]) -> list[list[str]]:
    return [[str(p), str(a)] for p, a in levels]


def encode(event: MarketEvent) -> bytes:
    """Serialize one event to its v1 bytes."""
    if isinstance(event, Trade):
        return orjson.dumps(
            {
                "type": "trade",
                "v": WIRE_VERSION,
                "exchange": event.exchange,
                "symbol": event.symbol,
                "id": event.trade_id,
                "price": str(event.price),
                "amount": str(event.amount),
                "side": event.side.value if event.side is not None else None,
                "ts_event": to_epoch_us(event.ts_event),
                "ts_recv": to_epoch_us(event.ts_recv),
            }
        )
    if isinstance(event, BookSnapshot | BookDelta):
        body: dict[str, Any] = {
            "type": "book_snapshot" if isinstance(event, BookSnapshot) else "book_delta",
            "v": WIRE_VERSION,
            "exchange": event.exchange,
            "symbol": event.symbol,
            "seq": event.sequence,
            "bids": _levels_out(event.bids),
            "asks": _levels_out(event.asks),
            "ts_event": to_epoch_us(event.ts_event),
            "ts_recv": to_epoch_us(event.ts_recv),
        }
        if isinstance(event, BookDelta):
            body["first_seq"] = event.first_sequence
        return orjson.dumps(body)
    if isinstance(event, Quote):
        return orjson.dumps(
            {
                "type": "quote",
                "v": WIRE_VERSION,
                "exchange": event.exchange,
                "symbol": event.symbol,
                "seq": event.sequence,
                "bid": str(event.bid_price),
                "bid_amount": str(event.bid_amount),
                "ask": str(event.ask_price),
                "ask_amount": str(event.ask_amount),
                "ts_event": to_epoch_us(event.ts_event),
                "ts_recv": to_epoch_us(event.ts_recv),
            }
        )
    if isinstance(event, Candle):
        return orjson.dumps(
            {
                "type": "candle",
                "v": WIRE_VERSION,
                "exchange": event.exchange,
                "symbol": event.symbol,
                "timeframe": event.timeframe,
                "open": str(event.open),
                "high": str(event.high),
                "low": str(event.low),
                "close": str(event.close),
                "volume": str(event.volume),
                "closed": event.closed,
                "ts_event": to_epoch_us(event.ts_event),
                "ts_recv": to_epoch_us(event.ts_recv),
            }
        )
    raise TypeError(f"cannot encode {type(event).__name__}: not a market event")


class _Reader:
    """Typed field access over a decoded JSON object; every failure names the field."""

    __slots__ = ("obj",)

    def __init__(self, obj: dict[str, Any]) -> None:
        self.obj = obj

    def _get(self, name: str) -> Any:
        try:
            return self.obj[name]
        except KeyError:
            raise WireFormatError("missing_field", f"field {name!r} is missing") from None

    def str_(self, name: str) -> str:
        value = self._get(name)
        if not isinstance(value, str) or not value:
            raise WireFormatError("wrong_type", f"field {name!r} must be a non-empty string, got {value!r}")
        return value

    def dec(self, name: str) -> Decimal:
        return _decimal(self._get(name), name)

    def ts(self, name: str) -> datetime:
        value = self._get(name)
        if not isinstance(value, int) or isinstance(value, bool):
            raise WireFormatError("wrong_type", f"field {name!r} must be integer microseconds, got {value!r}")
        try:
            return from_epoch_us(value)
        except OverflowError:
            raise WireFormatError("wrong_type", f"field {name!r}={value} is out of range") from None

    def opt_int(self, name: str) -> int | None:
        value = self.obj.get(name)
        if value is None:
            return None
        if not isinstance(value, int) or isinstance(value, bool):
            raise WireFormatError("wrong_type", f"field {name!r} must be an integer or null, got {value!r}")
        return value

    def levels(self, name: str) -> tuple[Level, ...]:
        value = self._get(name)
        if not isinstance(value, list):
            raise WireFormatError("wrong_type", f"field {name!r} must be a list of [price, amount]")
        out = []
        for level in value:
            if not isinstance(level, list) or len(level) != 2:
                raise WireFormatError(
                    "wrong_type", f"field {name!r} has a level that is not [price, amount]: {level!r}"
                )
            out.append((_decimal(level[0], name), _decimal(level[1], name)))
        return tuple(out)


def _decimal(value: Any, name: str) -> Decimal:
    if not isinstance(value, str):
        raise WireFormatError("wrong_type", f"field {name!r} must be a decimal string, got {value!r}")
    try:
        return Decimal(value)
    except InvalidOperation:
        raise WireFormatError("wrong_type", f"field {name!r}={value!r} is not a decimal number") from None


_SIDES: dict[object, Side | None] = {"buy": Side.BUY, "sell": Side.SELL, None: None}


def _trade(obj: dict[str, Any]) -> Trade:
    # Fast path for the common, well-formed record (the hot path of every flow); anything odd
    # falls through to the checked path, which names exactly what is wrong.
    try:
        exchange, symbol, trade_id = obj["exchange"], obj["symbol"], obj["id"]
        price, amount, ts_event, ts_recv = obj["price"], obj["amount"], obj["ts_event"], obj["ts_recv"]
        side = _SIDES[obj.get("side")]
        if (
            type(exchange) is str
            and exchange
            and type(symbol) is str
            and symbol
            and type(trade_id) is str
            and trade_id
            and type(price) is str
            and type(amount) is str
            and type(ts_event) is int
            and type(ts_recv) is int
        ):
            return Trade(
                exchange,
                symbol,
                trade_id,
                Decimal(price),
                Decimal(amount),
                side,
                from_epoch_us(ts_event),
                from_epoch_us(ts_recv),
            )
    except (KeyError, TypeError, InvalidOperation, OverflowError):
        pass
    return _trade_checked(_Reader(obj))


def _trade_checked(r: _Reader) -> Trade:
    side_raw = r.obj.get("side")
    if side_raw is None:
        side = None
    elif side_raw in ("buy", "sell"):
        side = Side(side_raw)
    else:
        raise WireFormatError("wrong_type", f"field 'side' must be 'buy', 'sell' or null, got {side_raw!r}")
    trade_id = r._get("id")
    if isinstance(trade_id, int) and not isinstance(trade_id, bool):
        trade_id = str(trade_id)
    if not isinstance(trade_id, str) or not trade_id:
        raise WireFormatError("wrong_type", f"field 'id' must be a non-empty string, got {trade_id!r}")
    return Trade(
        r.str_("exchange"),
        r.str_("symbol"),
        trade_id,
        r.dec("price"),
        r.dec("amount"),
        side,
        r.ts("ts_event"),
        r.ts("ts_recv"),
    )


def _snapshot(r: _Reader) -> BookSnapshot:
    return BookSnapshot(
        r.str_("exchange"),
        r.str_("symbol"),
        r.opt_int("seq"),
        r.levels("bids"),
        r.levels("asks"),
        r.ts("ts_event"),
        r.ts("ts_recv"),
    )


def _delta(r: _Reader) -> BookDelta:
    return BookDelta(
        r.str_("exchange"),
        r.str_("symbol"),
        r.opt_int("first_seq"),
        r.opt_int("seq"),
        r.levels("bids"),
        r.levels("asks"),
        r.ts("ts_event"),
        r.ts("ts_recv"),
    )


def _quote(r: _Reader) -> Quote:
    return Quote(
        r.str_("exchange"),
        r.str_("symbol"),
        r.dec("bid"),
        r.dec("bid_amount"),
        r.dec("ask"),
        r.dec("ask_amount"),
        r.ts("ts_event"),
        r.ts("ts_recv"),
        r.opt_int("seq"),
    )


def _candle(r: _Reader) -> Candle:
    closed = r.obj.get("closed", True)
    if not isinstance(closed, bool):
        raise WireFormatError("wrong_type", f"field 'closed' must be a boolean, got {closed!r}")
    return Candle(
        r.str_("exchange"),
        r.str_("symbol"),
        r.str_("timeframe"),
        r.dec("open"),
        r.dec("high"),
        r.dec("low"),
        r.dec("close"),
        r.dec("volume"),
        r.ts("ts_event"),
        r.ts("ts_recv"),
        closed,
    )


_DECODERS: dict[str, Callable[[_Reader], MarketEvent]] = {
    "book_snapshot": _snapshot,
    "book_delta": _delta,
    "quote": _quote,
    "candle": _candle,
}


def decode(data: bytes) -> MarketEvent:
    """Parse v1 bytes into an event, or raise :class:`WireFormatError` with a reason code."""
    try:
        obj = orjson.loads(data)
    except orjson.JSONDecodeError as exc:
        raise WireFormatError("malformed_json", f"not valid JSON: {exc}") from None
    if not isinstance(obj, dict):
        raise WireFormatError("malformed_json", f"expected a JSON object, got {type(obj).__name__}")
    kind = obj.get("type")
    if kind == "trade" and obj.get("v") == WIRE_VERSION:
        return _trade(obj)
    decoder = _DECODERS.get(kind) if isinstance(kind, str) else None
    if decoder is None and kind != "trade":
        raise WireFormatError("unknown_type", f"event type {kind!r} is not one of {sorted([*_DECODERS, 'trade'])}")
    version = obj.get("v")
    if version != WIRE_VERSION:
        raise WireFormatError("unsupported_version", f"wire version {version!r} is not {WIRE_VERSION}")
    assert decoder is not None
    return decoder(_Reader(obj))


TOPIC_OF_TYPE = {
    Trade: "md.trades.v1",
    BookSnapshot: "md.book.v1",
    BookDelta: "md.book.v1",
    Quote: "md.book.v1",
    Candle: "md.candles.v1",
}


def topic_for(event: MarketEvent) -> str:
    """The Kafka topic an event belongs on."""
    return TOPIC_OF_TYPE[type(event)]
