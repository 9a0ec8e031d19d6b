"""Binance raw websocket captures: one message a line, ``<local receive ns> <raw JSON>``.

The capture (hftbacktest's recorder) subscribes to combined streams, so a message is
``{"stream": "btcusdt@trade", "data": {...}}``; the REST depth snapshot it fetched to seed the
book is written as a bare ``{"lastUpdateId": ..., "bids": ..., "asks": ...}`` line.

Mapping (``spot`` = ``binance``, ``usdm`` = ``binanceusdm``, ccxt's ids):

- ``@trade`` -> :class:`Trade`: id ``t``, price ``p``, amount ``q``, ``ts_event`` = trade time
  ``T``. ``m`` (buyer is maker) means the aggressor sold. Futures trades whose ``X`` is not
  ``MARKET`` (insurance fund, ADL) are skipped: Binance leaves them out of its own aggregated tape.
- ``@aggTrade`` (futures) -> :class:`Trade` with the aggregate id ``a`` (not a trade id).
- ``@depth`` / ``@depth@100ms`` diffs -> :class:`BookDelta` with ``sequence = u`` and
  ``ts_event = E``. Spot: ``first_sequence = U``. Futures chain on ``pu`` (the previous message's
  ``u``) and their ``U`` jumps, so ``first_sequence = pu + 1``: the delta then applies to a book
  whose last update id is ``first_sequence - 1``, which is the contract of :class:`BookDelta`.
- ``@bookTicker`` -> :class:`Quote` with ``sequence = u``. Spot book tickers carry no exchange time,
  so their ``ts_event`` is the receive time (in these captures the recorder's clock runs ~1.27 s
  behind Binance's ``E``, so a spot quote sorts ~1.27 s early against trades and deltas).
  Futures book tickers have ``E``.
- the snapshot line -> :class:`BookSnapshot` with ``sequence = lastUpdateId``; ``ts_event`` is its
  ``E`` (futures) or the receive time (spot has none). It has no symbol, so it takes the explicit
  ``symbol``, else the file name's (``btcusdt_20240808.gz``), else the last stream's.
- any other stream (``markPrice``, ``kline_1m``, ``depth20``...) is counted as skipped by name.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from datetime import datetime
from decimal import Decimal, InvalidOperation
from functools import partial
from pathlib import Path
from typing import Any

import orjson

from core.clock import from_epoch_ms, from_epoch_ns, from_epoch_us
from core.errors import QuarantineRecord
from core.events import BookDelta, BookSnapshot, Level, MarketEvent, Quote, Side, Trade
from flows.replay._common import (
    FileUnreadable,
    Reason,
    ReplayStats,
    binance_unified_symbol,
    dec_text,
    int_field,
    open_binary,
)

_Handler = Callable[[dict[str, Any], datetime], MarketEvent | None]
_NAME_SYMBOL = re.compile(r"^([a-z0-9]+)_", re.IGNORECASE)
_SELL, _BUY = Side.SELL, Side.BUY
_D = Decimal


def _levels(raw: object, name: str) -> tuple[Level, ...]:
    """Book levels ``[["price", "amount"], ...]`` as exact Decimals.

    Depth messages are most of a capture's numbers, so this is inlined rather than calling
    :func:`dec_text` twice a level; on any doubt it falls back to it for the precise refusal.
    """
    if type(raw) is not list:
        raise QuarantineRecord(Reason.WRONG_TYPE, f"{name} must be a list of [price, amount], got {raw!r:.80}")
    out = []
    try:
        for p, q in raw:
            if type(p) is not str or type(q) is not str:
                break
            price, amount = _D(p), _D(q)
            if not (price.is_finite() and amount.is_finite()):
                break
            out.append((price, amount))
        else:
            return tuple(out)
    except (InvalidOperation, ValueError, TypeError):
        pass
    for level in raw:  # slow path: find the bad level and say what is wrong with it
        if type(level) is not list or len(level) != 2:
            raise QuarantineRecord(Reason.WRONG_TYPE, f"{name} level must be [price, amount], got {level!r:.80}")
        dec_text(level[0], f"{name} price")
        dec_text(level[1], f"{name} amount")
    # Unreachable while the two paths agree; refusing keeps a parser disagreement from stopping a replay.
    raise QuarantineRecord(Reason.WRONG_TYPE, f"{name} has a level that is not [price, amount]: {raw!r:.200}")


def _aggressor(m: object) -> Side:
    if m is True:
        return _SELL
    if m is False:
        return _BUY
    raise QuarantineRecord(Reason.BAD_SIDE, f"field 'm' (buyer is maker) must be true or false, got {m!r}")


class BinanceWsReader:
    """Reads one capture file; :meth:`parse` is the per-line parser (raises ``QuarantineRecord``)."""

    def __init__(
        self,
        path: Path,
        *,
        market: str,
        exchange: str | None = None,
        symbol: str | None = None,
        stats: ReplayStats | None = None,
    ) -> None:
        if market not in ("spot", "usdm"):
            raise ValueError(f"market {market!r} of {path.name!r} is not 'spot' or 'usdm'")
        self.path = path
        self.linear = market == "usdm"
        self.exchange = exchange or ("binanceusdm" if self.linear else "binance")
        self.stats = stats if stats is not None else ReplayStats()
        self._symbol_override = symbol
        self._symbols: dict[str, str] = {}
        self._handlers: dict[str, _Handler] = {}
        self._snapshot_symbol = symbol or self._symbol_from_name(path)
        self._last_symbol: str | None = None

    def _symbol_from_name(self, path: Path) -> str | None:
        m = _NAME_SYMBOL.match(path.name)
        if m is None:
            return None
        try:
            return binance_unified_symbol(m.group(1), linear=self.linear)
        except QuarantineRecord:
            return None

    def records(self) -> Iterator[bytes]:
        with open_binary(self.path) as fh:
            try:
                for line in fh:
                    if line.isspace():
                        self.stats.skipped["blank_line"] += 1
                        continue
                    yield line
            except (EOFError, OSError) as exc:
                raise FileUnreadable(
                    QuarantineRecord(Reason.TRUNCATED_FILE, f"{self.path}: cannot read further: {exc}")
                ) from exc

    def raw(self, record: bytes) -> bytes:
        return record.rstrip(b"\r\n")

    def parse(self, record: bytes) -> MarketEvent | None:
        """One capture line to an event, ``None`` for a skipped stream, or ``QuarantineRecord``."""
        space = record.find(b" ")
        if space <= 0:
            raise QuarantineRecord(Reason.MALFORMED_LINE, f"line must be '<receive ns> <json>', got {record[:80]!r}")
        try:
            recv_ns = int(record[:space])
            ts_recv = from_epoch_ns(recv_ns)
        except (ValueError, OverflowError):
            raise QuarantineRecord(
                Reason.BAD_TIMESTAMP, f"receive time {record[:space][:40]!r} is not integer nanoseconds"
            ) from None
        return self.parse_message(record[space + 1 :], ts_recv)

    def parse_message(self, payload: bytes, ts_recv: datetime) -> MarketEvent | None:
        """One raw Binance websocket message received at ``ts_recv``."""
        try:
            msg = orjson.loads(payload)
        except orjson.JSONDecodeError as exc:
            raise QuarantineRecord(Reason.MALFORMED_JSON, f"message is not valid JSON: {exc}") from None
        if type(msg) is not dict:
            raise QuarantineRecord(Reason.UNKNOWN_MESSAGE, f"message must be a JSON object, got {msg!r:.80}")
        try:
            stream = msg.get("stream")
            if stream is None:
                if "lastUpdateId" in msg:
                    return self._snapshot(msg, ts_recv)
                raise QuarantineRecord(
                    Reason.UNKNOWN_MESSAGE,
                    f"message has neither 'stream' nor 'lastUpdateId': keys {sorted(msg)[:8]}",
                )
            handler = self._handlers.get(stream)
            if handler is None:
                handler = self._handler_for(stream)
            data = msg["data"]
            if type(data) is not dict:
                raise QuarantineRecord(Reason.WRONG_TYPE, f"{stream} 'data' must be an object, got {data!r:.80}")
            return handler(data, ts_recv)
        except KeyError as exc:
            raise QuarantineRecord(
                Reason.MISSING_FIELD, f"field {exc} is missing in {msg.get('stream', 'snapshot')} message"
            ) from None
        except (TypeError, ValueError, OverflowError) as exc:
            raise QuarantineRecord(
                Reason.WRONG_TYPE, f"{msg.get('stream', 'snapshot')} message has a bad value: {exc}"
            ) from None

    def _handler_for(self, stream: object) -> _Handler:
        if type(stream) is not str or "@" not in stream:
            raise QuarantineRecord(Reason.UNKNOWN_MESSAGE, f"stream {stream!r} is not like 'btcusdt@trade'")
        kind = stream.partition("@")[2]
        base = kind.partition("@")[0]
        handler: _Handler
        if base == "trade":
            handler = self._trade
        elif base == "aggTrade":
            handler = self._agg_trade
        elif base == "depth":
            handler = self._depth
        elif base == "bookTicker":
            handler = self._book_ticker
        else:
            handler = partial(self._skip, base)
        self._handlers[stream] = handler
        return handler

    def _symbol(self, data: dict[str, Any]) -> str:
        if self._symbol_override is not None:
            return self._symbol_override
        raw = data["s"]
        symbol = self._symbols.get(raw)
        if symbol is None:
            if type(raw) is not str:
                raise QuarantineRecord(Reason.WRONG_TYPE, f"field 's' must be a symbol string, got {raw!r}")
            symbol = binance_unified_symbol(raw, linear=self.linear)
            self._symbols[raw] = symbol
        self._last_symbol = symbol
        return symbol

    def _skip(self, kind: str, data: dict[str, Any], ts_recv: datetime) -> None:
        self.stats.skipped[kind] += 1

    def _trade(self, d: dict[str, Any], ts_recv: datetime) -> Trade | None:
        if self.linear:
            kind = d.get("X", "MARKET")
            if kind != "MARKET":
                self.stats.skipped[f"trade:{kind}"] += 1
                return None
        return Trade(
            self.exchange,
            self._symbol(d),
            str(int_field(d["t"], "trade id 't'")),
            dec_text(d["p"], "price 'p'"),
            dec_text(d["q"], "amount 'q'"),
            _aggressor(d["m"]),
            from_epoch_ms(int_field(d["T"], "trade time 'T'")),
            ts_recv,
        )

    def _agg_trade(self, d: dict[str, Any], ts_recv: datetime) -> Trade:
        return Trade(
            self.exchange,
            self._symbol(d),
            str(int_field(d["a"], "aggregate id 'a'")),
            dec_text(d["p"], "price 'p'"),
            dec_text(d["q"], "amount 'q'"),
            _aggressor(d["m"]),
            from_epoch_ms(int_field(d["T"], "trade time 'T'")),
            ts_recv,
        )

    def _depth(self, d: dict[str, Any], ts_recv: datetime) -> BookDelta:
        last = int_field(d["u"], "final update id 'u'")
        if self.linear and "pu" in d:
            first = int_field(d["pu"], "previous update id 'pu'") + 1
        else:
            first = int_field(d["U"], "first update id 'U'")
        return BookDelta(
            self.exchange,
            self._symbol(d),
            first,
            last,
            _levels(d["b"], "bids 'b'"),
            _levels(d["a"], "asks 'a'"),
            from_epoch_ms(int_field(d["E"], "event time 'E'")),
            ts_recv,
        )

    def _book_ticker(self, d: dict[str, Any], ts_recv: datetime) -> Quote:
        exchange_time = d.get("E")
        return Quote(
            self.exchange,
            self._symbol(d),
            dec_text(d["b"], "bid price 'b'"),
            dec_text(d["B"], "bid amount 'B'"),
            dec_text(d["a"], "ask price 'a'"),
            dec_text(d["A"], "ask amount 'A'"),
            ts_recv if exchange_time is None else from_epoch_ms(int_field(exchange_time, "event time 'E'")),
            ts_recv,
            int_field(d["u"], "update id 'u'"),
        )

    def _snapshot(self, d: dict[str, Any], ts_recv: datetime) -> BookSnapshot:
        symbol = self._snapshot_symbol or self._last_symbol
        if symbol is None:
            raise QuarantineRecord(
                Reason.UNKNOWN_SYMBOL,
                f"depth snapshot in {self.path.name!r} names no symbol and none is known yet; pass symbol=",
            )
        exchange_time = d.get("E")
        bids = sorted(_levels(d["bids"], "bids"), key=_price, reverse=True)
        asks = sorted(_levels(d["asks"], "asks"), key=_price)
        return BookSnapshot(
            self.exchange,
            symbol,
            int_field(d["lastUpdateId"], "lastUpdateId"),
            tuple(bids),
            tuple(asks),
            ts_recv if exchange_time is None else from_epoch_ms(int_field(exchange_time, "event time 'E'")),
            ts_recv,
        )


class CryptofeedBinanceReader(BinanceWsReader):
    """cryptofeed's websocket recording of a Binance session (``exchange-fixtures/cryptofeed``).

    Lines are ``<receive time, decimal seconds>: <raw JSON>``; lines starting with the socket URL
    (``wss://... <-> t`` opened, ``wss://... <- t: {...}`` sent by us) carry no market data and are
    counted as skipped. The messages are Binance's own, parsed as in :class:`BinanceWsReader`.
    """

    def parse(self, record: bytes) -> MarketEvent | None:
        if record.startswith(b"wss://"):
            self.stats.skipped["sent" if b" <- " in record else "connection"] += 1
            return None
        colon = record.find(b": ")
        if colon <= 0:
            raise QuarantineRecord(Reason.MALFORMED_LINE, f"line must be '<receive s>: <json>', got {record[:80]!r}")
        text = record[:colon].decode("ascii", "replace")
        try:
            ts_recv = from_epoch_us(int(Decimal(text).scaleb(6)))  # exact: no float in between
        except (InvalidOperation, ValueError, OverflowError):
            raise QuarantineRecord(Reason.BAD_TIMESTAMP, f"receive time {text[:40]!r} is not decimal seconds") from None
        return self.parse_message(record[colon + 2 :], ts_recv)


def sniff_cryptofeed_market(first_line: bytes) -> str | None:
    """``spot`` or ``usdm`` from the socket URL on a cryptofeed recording's first line, else None."""
    if first_line.startswith(b"wss://stream.binance.com"):
        return "spot"
    if first_line.startswith(b"wss://fstream.binance.com"):
        return "usdm"
    return None


def _price(level: Level) -> Decimal:
    return level[0]


def sniff_market(lines: list[bytes]) -> str | None:
    """``spot`` or ``usdm`` from the first capture lines, by fields only one market sends.

    Futures depth has ``pu``, futures trades ``X``, futures book tickers and snapshots ``E``; spot
    trades have ``M`` and spot book tickers and snapshots have no ``E``.
    """
    for line in lines:
        _, _, payload = line.partition(b" ")
        try:
            msg = orjson.loads(payload)
        except orjson.JSONDecodeError:
            continue
        if not isinstance(msg, dict):
            continue
        data = msg.get("data", msg)
        if not isinstance(data, dict):
            continue
        if "lastUpdateId" in data or "bookTicker" in str(msg.get("stream", "")):
            return "usdm" if "E" in data else "spot"
        if "pu" in data or "X" in data:
            return "usdm"
        if "M" in data or ("U" in data and "e" in data):
            return "spot"
    return None
