"""JSON files that are one big array of flat arrays: ccxt/freqtrade trades and OHLCV candles.

freqtrade writes ``[[ms, "id", null, "sell", 0.00141342, 23.0, 0.03250866], ...]`` and
``[[ms, o, h, l, c, v], ...]`` on a single line, so "one record a line" does not apply: the
scanner below reads the file in chunks and cuts out one inner array at a time, so memory stays
bounded by the chunk size and a broken record is refused on its own. Numbers are parsed with
``parse_float=Decimal``: the digits in the file are the value, no float in between.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from datetime import timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

from core.clock import from_epoch_ms
from core.errors import QuarantineRecord
from core.events import Candle, Side, Trade
from core.symbols import timeframe_seconds
from flows.replay._common import FileUnreadable, Reason, ReplayStats, dec_json, int_field, open_binary

CHUNK_BYTES = 1 << 16
#: A record longer than this is not a flat trade or candle row: the file is refused from there on.
MAX_RECORD_BYTES = 1 << 20
# One flat inner array: anything but brackets and quotes, or a complete JSON string.
_INNER = re.compile(rb'\[(?:[^\[\]"]|"(?:[^"\\]|\\.)*")*\]')
_SEPARATOR = re.compile(rb"[\s,]*")
_SIDES = {"buy": Side.BUY, "sell": Side.SELL, None: None}


def _refuse_constant(name: str) -> Any:
    raise ValueError(f"{name} is not a number")


def load_record(raw: bytes) -> list[Any]:
    """One inner array, numbers as Decimal/int; NaN and Infinity are refused."""
    try:
        value = json.loads(raw, parse_float=Decimal, parse_constant=_refuse_constant)
    except ValueError as exc:  # JSONDecodeError is a ValueError, and so is a refused constant
        raise QuarantineRecord(Reason.MALFORMED_JSON, f"record is not a valid JSON array: {exc}") from None
    if type(value) is not list:
        raise QuarantineRecord(Reason.WRONG_TYPE, f"record must be a JSON array, got {value!r:.80}")
    return value


def iter_array_records(path: Path) -> Iterator[bytes]:
    """The inner arrays of ``[[...], [...], ...]`` as bytes, reading ``CHUNK_BYTES`` at a time.

    Raises :class:`FileUnreadable` where the container is broken (no opening bracket, a record
    cut short by the end of the file, data after the closing bracket): nothing after that point
    can be trusted to be a record.
    """
    with open_binary(path) as fh:
        buf = b""
        pos = 0
        eof = False
        state = "before"  # -> "inside" after the opening '[' -> "after" the closing ']'

        def fill() -> bool:
            nonlocal buf, pos, eof
            try:
                chunk = fh.read(CHUNK_BYTES)
            except (EOFError, OSError) as exc:
                raise FileUnreadable(
                    QuarantineRecord(Reason.TRUNCATED_FILE, f"{path}: cannot read further: {exc}"), buf[pos:]
                ) from exc
            eof = not chunk
            buf = buf[pos:] + chunk
            pos = 0
            return not eof

        while True:
            skipped = _SEPARATOR.match(buf, pos)
            pos = skipped.end() if skipped else pos
            if pos >= len(buf):
                if eof or not fill():
                    break
                continue
            if state == "after":
                raise FileUnreadable(
                    QuarantineRecord(Reason.MALFORMED_JSON, f"{path.name} has data after the closing ']'"),
                    buf[pos : pos + 80],
                )
            head = buf[pos : pos + 1]
            if state == "before":
                if head != b"[":
                    raise FileUnreadable(
                        QuarantineRecord(Reason.MALFORMED_JSON, f"{path.name} does not start with a JSON array"),
                        buf[pos : pos + 80],
                    )
                state = "inside"
                pos += 1
                continue
            if head == b"]":
                state = "after"
                pos += 1
                continue
            match = _INNER.match(buf, pos)
            if match is None:
                if len(buf) - pos > MAX_RECORD_BYTES or eof or not fill():
                    raise FileUnreadable(
                        QuarantineRecord(
                            Reason.TRUNCATED_FILE,
                            f"{path.name}: record at byte offset {pos} of the buffer is not a complete flat "
                            "array (file cut short, or nested data)",
                        ),
                        buf[pos : pos + 200],
                    )
                continue
            pos = match.end()
            yield match.group()
        if state == "inside":
            raise FileUnreadable(
                QuarantineRecord(Reason.TRUNCATED_FILE, f"{path.name}: the outer array is never closed")
            )


class CcxtTradesJsonReader:
    """freqtrade's trade file: ccxt columns ``[timestamp, id, type, side, price, amount, cost]``.

    No receive time is recorded, so ``ts_recv = ts_event``; ``cost`` is derived (price x amount)
    and not carried.
    """

    def __init__(self, path: Path, *, exchange: str, symbol: str, stats: ReplayStats | None) -> None:
        self.path, self.exchange, self.symbol = path, exchange, symbol
        self.stats = stats if stats is not None else ReplayStats()

    def records(self) -> Iterator[bytes]:
        return iter_array_records(self.path)

    def raw(self, record: bytes) -> bytes:
        return record

    def parse(self, record: bytes) -> Trade:
        row = load_record(record)
        if len(row) < 6:
            raise QuarantineRecord(
                Reason.WRONG_COLUMN_COUNT, f"trade row has {len(row)} fields, expected 7 (ccxt trade columns)"
            )
        return parse_ccxt_trade(
            self.exchange, self.symbol, row[0], row[1], side=row[3], price=row[4], amount=row[5], number=dec_json
        )


def parse_ccxt_trade(
    exchange: str,
    symbol: str,
    timestamp: object,
    trade_id: object,
    *,
    side: object,
    price: object,
    amount: object,
    number: Any,
) -> Trade:
    """A ccxt trade row to :class:`Trade`; ``number`` converts the price and amount cells."""
    if side not in _SIDES:
        raise QuarantineRecord(Reason.BAD_SIDE, f"side {side!r} is not 'buy', 'sell' or null")
    if type(trade_id) is int:
        trade_id = str(trade_id)
    if type(trade_id) is not str or not trade_id:
        raise QuarantineRecord(Reason.WRONG_TYPE, f"trade id must be a non-empty string, got {trade_id!r}")
    ts = from_epoch_ms(int_field(timestamp, "timestamp (ms)"))
    return Trade(exchange, symbol, trade_id, number(price, "price"), number(amount, "amount"), _SIDES[side], ts, ts)


class OhlcvJsonReader:
    """``[[ms, open, high, low, close, volume], ...]``; ms is the open time, ``ts_recv`` the close time."""

    def __init__(self, path: Path, *, exchange: str, symbol: str, timeframe: str, stats: ReplayStats | None) -> None:
        self.path, self.exchange, self.symbol, self.timeframe = path, exchange, symbol, timeframe
        self.stats = stats if stats is not None else ReplayStats()
        self._span = timedelta(seconds=timeframe_seconds(timeframe))

    def records(self) -> Iterator[bytes]:
        return iter_array_records(self.path)

    def raw(self, record: bytes) -> bytes:
        return record

    def parse(self, record: bytes) -> Candle:
        row = load_record(record)
        if len(row) < 6:
            raise QuarantineRecord(
                Reason.WRONG_COLUMN_COUNT, f"candle row has {len(row)} fields, expected [ms, o, h, l, c, v]"
            )
        ts = from_epoch_ms(int_field(row[0], "open time (ms)"))
        return Candle(
            self.exchange,
            self.symbol,
            self.timeframe,
            dec_json(row[1], "open"),
            dec_json(row[2], "high"),
            dec_json(row[3], "low"),
            dec_json(row[4], "close"),
            dec_json(row[5], "volume"),
            ts,
            ts + self._span,
        )


def sniff_json(path: Path) -> str | None:
    """``ccxt-trades-json`` or ``ohlcv-json`` from the shape of the first records, or None."""
    try:
        for number, record in enumerate(iter_array_records(path)):
            if number >= 5:
                return None
            try:
                row = load_record(record)
            except QuarantineRecord:
                continue  # a bad first record should not hide the format of the rest
            if len(row) >= 7 and isinstance(row[1], str | int) and row[3] in ("buy", "sell", None):
                return "ccxt-trades-json"
            if len(row) == 6 and all(isinstance(v, int | Decimal) for v in row):
                return "ohlcv-json"
            return None
    except FileUnreadable:
        return None
    return None
