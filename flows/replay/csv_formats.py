"""CSV inputs: Tardis trades and quotes, Binance depth snapshot/update CSV, OHLCV candles.

Columns are found by the header's names, not their positions, so a reordered export still reads.
A row that does not parse is refused with its line's bytes; the reader goes on with the next.
"""

from __future__ import annotations

import csv
from collections.abc import Iterator, Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path

from core.clock import from_epoch_ms, from_epoch_us
from core.errors import QuarantineRecord
from core.events import BookDelta, BookSnapshot, Candle, Level, Quote, Side, Trade
from core.symbols import timeframe_seconds
from flows.replay._common import (
    FileUnreadable,
    Reason,
    ReplayStats,
    binance_unified_symbol,
    dec_text,
    open_binary,
)

TARDIS_TRADES_COLUMNS = ("exchange", "symbol", "timestamp", "local_timestamp", "id", "side", "price", "amount")
TARDIS_QUOTES_COLUMNS = (
    "exchange",
    "symbol",
    "timestamp",
    "local_timestamp",
    "ask_amount",
    "ask_price",
    "bid_price",
    "bid_amount",
)
BINANCE_DEPTH_COLUMNS = (
    "symbol",
    "timestamp",
    "first_update_id",
    "last_update_id",
    "side",
    "update_type",
    "price",
    "qty",
    "pu",
)
OHLCV_COLUMNS = ("timestamp", "open", "high", "low", "close", "volume")

#: Tardis exchange ids -> (ccxt id, linear contract?). Other Tardis venues need exchange= and symbol=.
TARDIS_EXCHANGES = {"binance": ("binance", False), "binance-futures": ("binanceusdm", True)}
_SIDES = {"buy": Side.BUY, "sell": Side.SELL, "unknown": None}


def split_row(line: bytes) -> list[str]:
    """Fields of one CSV line; the csv module only for lines with quotes (the common case is plain)."""
    text = line.decode("utf-8").rstrip("\r\n")
    if '"' in text:
        return next(csv.reader([text]))
    return text.split(",")


def header_index(path: Path, header: list[str], required: Sequence[str]) -> dict[str, int]:
    """Column positions by name; a missing column is a wrong file, named with what was expected."""
    index = {name.strip(): i for i, name in enumerate(header)}
    missing = [c for c in required if c not in index]
    if missing:
        raise ValueError(f"{path.name!r} lacks columns {missing}: header is {header}, expected {list(required)}")
    return index


def int_text(text: str, name: str) -> int:
    try:
        return int(text)
    except ValueError:
        raise QuarantineRecord(Reason.WRONG_TYPE, f"{name} {text!r} is not an integer") from None


class _CsvReader:
    """Header handling and line iteration shared by the CSV readers."""

    required: Sequence[str] = ()

    def __init__(self, path: Path, stats: ReplayStats | None) -> None:
        self.path = path
        self.stats = stats if stats is not None else ReplayStats()
        try:
            with open_binary(path) as fh:
                first = fh.readline()
            self.header = split_row(first)
        except (EOFError, OSError, UnicodeDecodeError) as exc:
            raise ValueError(f"{path.name!r}: cannot read its CSV header: {exc}") from exc
        self.col = header_index(path, self.header, self.required)
        self.width = len(self.header)

    def lines(self) -> Iterator[bytes]:
        with open_binary(self.path) as fh:
            fh.readline()
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

    def fields(self, line: bytes) -> list[str]:
        try:
            row = split_row(line)
        except (UnicodeDecodeError, csv.Error) as exc:
            raise QuarantineRecord(Reason.MALFORMED_LINE, f"row is not UTF-8 CSV: {exc}") from None
        if len(row) != self.width:
            raise QuarantineRecord(Reason.WRONG_COLUMN_COUNT, f"row has {len(row)} fields, the header has {self.width}")
        return row

    def raw(self, record: bytes) -> bytes:
        return record.rstrip(b"\r\n")


class _TardisReader(_CsvReader):
    def __init__(self, path: Path, *, exchange: str | None, symbol: str | None, stats: ReplayStats | None) -> None:
        super().__init__(path, stats)
        self._exchange = exchange
        self._symbol = symbol
        self._ids: dict[tuple[str, str], tuple[str, str]] = {}

    def records(self) -> Iterator[bytes]:
        return self.lines()

    def instrument(self, row: list[str]) -> tuple[str, str]:
        """(ccxt exchange, unified symbol) of a row, from the overrides or Tardis's own ids."""
        raw = (row[self.col["exchange"]], row[self.col["symbol"]])
        found = self._ids.get(raw)
        if found is None:
            venue = TARDIS_EXCHANGES.get(raw[0])
            if self._exchange is not None and self._symbol is not None:
                found = (self._exchange, self._symbol)
            elif venue is None:
                raise QuarantineRecord(
                    Reason.UNKNOWN_SYMBOL,
                    f"Tardis exchange {raw[0]!r} is not one of {sorted(TARDIS_EXCHANGES)}; pass exchange= and symbol=",
                )
            else:
                found = (
                    self._exchange or venue[0],
                    self._symbol or binance_unified_symbol(raw[1], linear=venue[1]),
                )
            self._ids[raw] = found
        return found

    def times(self, row: list[str]) -> tuple[datetime, datetime]:
        try:
            return (
                from_epoch_us(int(row[self.col["timestamp"]])),
                from_epoch_us(int(row[self.col["local_timestamp"]])),
            )
        except (ValueError, OverflowError):
            raise QuarantineRecord(
                Reason.BAD_TIMESTAMP,
                f"timestamp {row[self.col['timestamp']]!r} / local_timestamp "
                f"{row[self.col['local_timestamp']]!r} must be integer microseconds",
            ) from None


class TardisTradesReader(_TardisReader):
    """Tardis ``trades`` CSV: ``ts_event`` = ``timestamp`` (exchange), ``ts_recv`` = ``local_timestamp``."""

    required = TARDIS_TRADES_COLUMNS

    def parse(self, record: bytes) -> Trade:
        row = self.fields(record)
        exchange, symbol = self.instrument(row)
        ts_event, ts_recv = self.times(row)
        side_text = row[self.col["side"]]
        if side_text not in _SIDES:
            raise QuarantineRecord(Reason.BAD_SIDE, f"side {side_text!r} is not 'buy', 'sell' or 'unknown'")
        return Trade(
            exchange,
            symbol,
            row[self.col["id"]],
            dec_text(row[self.col["price"]], "price"),
            dec_text(row[self.col["amount"]], "amount"),
            _SIDES[side_text],
            ts_event,
            ts_recv,
        )


class TardisQuotesReader(_TardisReader):
    """Tardis ``quotes`` CSV (top of book); Tardis gives no update id, so ``sequence`` is None."""

    required = TARDIS_QUOTES_COLUMNS

    def parse(self, record: bytes) -> Quote:
        row = self.fields(record)
        exchange, symbol = self.instrument(row)
        ts_event, ts_recv = self.times(row)
        c = self.col
        return Quote(
            exchange,
            symbol,
            dec_text(row[c["bid_price"]], "bid_price"),
            dec_text(row[c["bid_amount"]], "bid_amount"),
            dec_text(row[c["ask_price"]], "ask_price"),
            dec_text(row[c["ask_amount"]], "ask_amount"),
            ts_event,
            ts_recv,
        )


class BinanceDepthCsvReader(_CsvReader):
    """Binance's historical depth CSV (one row per level; ``update_type`` ``snap`` or ``set``).

    Consecutive rows with the same (symbol, timestamp, first/last update id, update type) are one
    message, so a record is a group of lines and becomes one :class:`BookSnapshot` (``snap``) or
    :class:`BookDelta` (``set``). Files with a ``pu`` column come from USD-M futures (they chain on
    ``pu`` like the futures websocket, so ``first_sequence = pu + 1``), hence the default
    ``binanceusdm`` and ``BTC/USDT:USDT``; the nautilus copy in ``binance-spot-2021`` is such a
    file (0.1 price grid, 0.001 amounts). There is no receive time: ``ts_recv = ts_event``.
    """

    required = BINANCE_DEPTH_COLUMNS[:8]

    def __init__(self, path: Path, *, exchange: str | None, symbol: str | None, stats: ReplayStats | None) -> None:
        super().__init__(path, stats)
        self.linear = "pu" in self.col
        self.exchange = exchange or ("binanceusdm" if self.linear else "binance")
        self._symbol = symbol
        self._symbols: dict[str, str] = {}

    def _group_key(self, line: bytes) -> tuple[bytes, ...] | None:
        parts = line.split(b",")
        if len(parts) != self.width:
            return None
        c = self.col
        return tuple(parts[c[n]] for n in ("symbol", "timestamp", "first_update_id", "last_update_id", "update_type"))

    def records(self) -> Iterator[list[bytes]]:
        group: list[bytes] = []
        key: tuple[bytes, ...] | None = None
        for line in self.lines():
            line_key = self._group_key(line)
            if line_key is None:  # a broken row is refused on its own, not merged into a message
                if group:
                    yield group
                group, key = [], None
                yield [line]
                continue
            if group and line_key != key:
                yield group
                group = []
            key = line_key
            group.append(line)
        if group:
            yield group

    def raw(self, record: list[bytes]) -> bytes:  # type: ignore[override]
        return b"".join(record).rstrip(b"\r\n")

    def parse(self, record: list[bytes]) -> BookSnapshot | BookDelta:
        rows = [self.fields(line) for line in record]
        c = self.col
        first = rows[0]
        raw_symbol = first[c["symbol"]]
        symbol = self._symbol or self._symbols.get(raw_symbol)
        if symbol is None:
            symbol = self._symbols[raw_symbol] = binance_unified_symbol(raw_symbol, linear=self.linear)
        ts_event = from_epoch_ms(int_text(first[c["timestamp"]], "timestamp"))
        bids: list[Level] = []
        asks: list[Level] = []
        for row in rows:
            level = (dec_text(row[c["price"]], "price"), dec_text(row[c["qty"]], "qty"))
            side = row[c["side"]]
            if side == "b":
                bids.append(level)
            elif side == "a":
                asks.append(level)
            else:
                raise QuarantineRecord(Reason.BAD_SIDE, f"depth side {side!r} is not 'b' or 'a'")
        update_type = first[c["update_type"]]
        last_id = int_text(first[c["last_update_id"]], "last_update_id")
        if update_type == "snap":
            bids.sort(key=lambda lv: lv[0], reverse=True)
            asks.sort(key=lambda lv: lv[0])
            return BookSnapshot(self.exchange, symbol, last_id, tuple(bids), tuple(asks), ts_event, ts_event)
        if update_type == "set":
            prev = int_text(first[c["pu"]], "pu") if self.linear else -1
            first_id = prev + 1 if prev >= 0 else int_text(first[c["first_update_id"]], "first_update_id")
            return BookDelta(self.exchange, symbol, first_id, last_id, tuple(bids), tuple(asks), ts_event, ts_event)
        raise QuarantineRecord(Reason.UNKNOWN_UPDATE_TYPE, f"update_type {update_type!r} is not 'snap' or 'set'")


def _parse_csv_time(text: str) -> datetime:
    """ISO text (naive means UTC) or integer epoch milliseconds (ccxt's convention)."""
    if text.isdigit():
        return from_epoch_ms(int(text))
    value = datetime.fromisoformat(text)
    if value.tzinfo is None:
        return value.replace(tzinfo=UTC)
    return value.astimezone(UTC)


class OhlcvCsvReader(_CsvReader):
    """``timestamp,open,high,low,close,volume`` candles; the timestamp is the candle's open time.

    ``ts_recv`` is the close time (open + timeframe): a candle cannot be known before it closes,
    so a backtest that orders by receive time never sees a bar early.
    """

    required = OHLCV_COLUMNS

    def __init__(self, path: Path, *, exchange: str, symbol: str, timeframe: str, stats: ReplayStats | None) -> None:
        super().__init__(path, stats)
        self.exchange, self.symbol, self.timeframe = exchange, symbol, timeframe
        self._span = timedelta(seconds=timeframe_seconds(timeframe))

    def records(self) -> Iterator[bytes]:
        return self.lines()

    def parse(self, record: bytes) -> Candle:
        row = self.fields(record)
        c = self.col
        text = row[c["timestamp"]]
        try:
            ts_event = _parse_csv_time(text)
        except (ValueError, OverflowError):
            raise QuarantineRecord(
                Reason.BAD_TIMESTAMP, f"timestamp {text!r} is not ISO-8601 or epoch milliseconds"
            ) from None
        return Candle(
            self.exchange,
            self.symbol,
            self.timeframe,
            dec_text(row[c["open"]], "open"),
            dec_text(row[c["high"]], "high"),
            dec_text(row[c["low"]], "low"),
            dec_text(row[c["close"]], "close"),
            dec_text(row[c["volume"]], "volume"),
            ts_event,
            ts_event + self._span,
        )


def sniff_csv(header: list[str]) -> str | None:
    """The format name a CSV header belongs to, or None."""
    names = {h.strip() for h in header}
    if names >= set(TARDIS_TRADES_COLUMNS):
        return "tardis-trades-csv"
    if names >= set(TARDIS_QUOTES_COLUMNS):
        return "tardis-quotes-csv"
    if names >= set(BINANCE_DEPTH_COLUMNS[:8]):
        return "binance-depth-csv"
    if names >= set(OHLCV_COLUMNS):
        return "ohlcv-csv"
    return None
