"""Parquet and feather (Arrow IPC) inputs: nautilus trades/quotes, ccxt trades, OHLCV candles.

Files are read one record batch at a time and converted to Python values in slices of
``ROWS_PER_SLICE``, so memory stays bounded whatever the file's length. Float columns become
Decimal through their shortest repr (:func:`core.money.float_to_decimal`); timestamp columns are
read as integers in their own unit, so no float or pandas time conversion sits in between, and a
naive timestamp column is taken as UTC.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import ROUND_HALF_EVEN, Decimal
from pathlib import Path
from typing import Any

import orjson
import pyarrow as pa
import pyarrow.parquet as pq
from pyarrow import ipc

from core.clock import from_epoch_ms, from_epoch_ns, from_epoch_us
from core.errors import QuarantineRecord
from core.events import Candle, MarketEvent, Quote, Side, Trade
from core.symbols import timeframe_seconds
from flows.replay._common import (
    FileUnreadable,
    Reason,
    ReplayStats,
    binance_unified_symbol,
    dec_float,
    int_field,
)
from flows.replay.json_arrays import parse_ccxt_trade

ROWS_PER_SLICE = 4096
Row = tuple[Any, ...]

_EPOCH_OF_UNIT: dict[str, Callable[[int], datetime]] = {
    "s": lambda v: from_epoch_ms(v * 1000),
    "ms": from_epoch_ms,
    "us": from_epoch_us,
    "ns": from_epoch_ns,
}


def arrow_schema(path: Path) -> pa.Schema:
    """Schema of a parquet or feather file (by magic: parquet files start with ``PAR1``)."""
    with path.open("rb") as fh:
        magic = fh.read(6)
    if magic[:4] == b"PAR1":
        return pq.ParquetFile(path).schema_arrow
    if magic == b"ARROW1":
        with pa.memory_map(str(path)) as source:
            return ipc.open_file(source).schema
    raise ValueError(f"{path.name!r} is neither parquet (PAR1) nor feather v2 (ARROW1): magic {magic!r}")


def _batches(path: Path, columns: Sequence[str]) -> Iterator[pa.RecordBatch]:
    with path.open("rb") as fh:
        magic = fh.read(4)
    if magic == b"PAR1":
        yield from pq.ParquetFile(path).iter_batches(batch_size=ROWS_PER_SLICE, columns=list(columns))
        return
    with pa.memory_map(str(path)) as source:
        reader = ipc.open_file(source)
        for i in range(reader.num_record_batches):
            yield reader.get_batch(i).select(list(columns))


def time_converter(field: pa.Field) -> Callable[[int], datetime]:
    """Integer-to-aware-UTC conversion for a timestamp column (or an int64 column of epoch ms)."""
    if pa.types.is_timestamp(field.type):
        return _EPOCH_OF_UNIT[field.type.unit]
    if pa.types.is_integer(field.type):
        return from_epoch_ms
    raise ValueError(f"column {field.name!r} must be a timestamp or integer epoch ms, got {field.type}")


class _ArrowReader:
    """Rows of selected columns, with timestamp columns as integers in their unit."""

    columns: tuple[str, ...] = ()
    time_column = "timestamp"

    def __init__(self, path: Path, stats: ReplayStats | None) -> None:
        self.path = path
        self.stats = stats if stats is not None else ReplayStats()
        schema = arrow_schema(path)
        missing = [c for c in self.columns if c not in schema.names]
        if missing:
            raise ValueError(
                f"{path.name!r} lacks columns {missing}: it has {schema.names}, expected {list(self.columns)}"
            )
        self.to_time = time_converter(schema.field(self.time_column))

    def records(self) -> Iterator[Row]:
        try:
            for batch in _batches(self.path, self.columns):
                for start in range(0, batch.num_rows, ROWS_PER_SLICE):
                    piece = batch.slice(start, ROWS_PER_SLICE)
                    cols = []
                    for name, column in zip(piece.schema.names, piece.columns, strict=True):
                        as_ints = name == self.time_column and pa.types.is_timestamp(column.type)
                        cols.append((column.cast(pa.int64()) if as_ints else column).to_pylist())
                    yield from zip(*cols, strict=True)
        except (OSError, pa.ArrowException) as exc:
            raise FileUnreadable(
                QuarantineRecord(Reason.TRUNCATED_FILE, f"{self.path}: cannot read further: {exc}")
            ) from exc

    def raw(self, record: Row) -> bytes:
        return orjson.dumps(dict(zip(self.columns, record, strict=True)), default=str)

    def time(self, value: object) -> datetime:
        if value is None:
            raise QuarantineRecord(Reason.MISSING_FIELD, f"{self.time_column} is null")
        try:
            return self.to_time(int_field(value, self.time_column))
        except OverflowError:
            raise QuarantineRecord(Reason.BAD_TIMESTAMP, f"{self.time_column} {value!r} is out of range") from None


_INSTRUMENT = re.compile(r"^(?P<kind>\w+)\(id=(?P<id>[^,]+),")
_FIELD = re.compile(r"(?P<key>\w+)=(?P<value>[^,()]*)")
#: Relative distance under which a float and the decimal on the instrument's grid are the same
#: number (float arithmetic leaves ~1e-16 relative noise: 0.014596000000000001 is 0.014596).
FLOAT_NOISE = 1e-12


@dataclass(frozen=True, slots=True)
class NautilusInstrument:
    """What the instrument text beside a nautilus data file says about its instrument."""

    exchange: str
    symbol: str
    price_places: int | None
    size_places: int | None


def _places(fields: dict[str, str], key: str) -> int | None:
    value = fields.get(key, "")
    return int(value) if value.isdigit() else None


def nautilus_instrument(path: Path) -> NautilusInstrument | None:
    """The ``<prefix>-instrument.txt`` beside a nautilus data file (``btcusdt-trades.parquet``), if any.

    nautilus prints instruments as ``CurrencyPair(id=BTCUSDT.BINANCE, raw_symbol=BTCUSDT,
    quote_currency=USDT, base_currency=BTC, price_precision=2, size_precision=6, ...)``;
    perpetuals also name a settlement currency.
    """
    candidate = path.with_name(path.name.split("-", 1)[0] + "-instrument.txt")
    if not candidate.is_file():
        return None
    text = candidate.read_text(encoding="utf-8").strip()
    head = _INSTRUMENT.match(text)
    if head is None:
        raise ValueError(f"{candidate.name!r} is not a nautilus instrument repr: {text[:80]!r}")
    fields = {m["key"]: m["value"].strip() for m in _FIELD.finditer(text)}
    venue = head["id"].rpartition(".")[2].lower()
    base, quote = fields.get("base_currency"), fields.get("quote_currency")
    if not base or not quote:
        raise ValueError(f"{candidate.name!r} names no base_currency/quote_currency: {text[:120]!r}")
    settle = fields.get("settlement_currency")
    if head["kind"] == "CurrencyPair" or not settle:
        exchange, symbol = venue, f"{base}/{quote}"
    else:
        exchange, symbol = ("binanceusdm" if venue == "binance" else venue), f"{base}/{quote}:{settle}"
    return NautilusInstrument(exchange, symbol, _places(fields, "price_precision"), _places(fields, "size_precision"))


def on_grid(value: object, places: int | None, name: str) -> Decimal:
    """A float column value as the decimal on the instrument's grid of ``places`` decimals.

    nautilus wrote some amounts from float arithmetic (``0.014596000000000001``); their shortest
    repr carries the noise, so it is rounded to the instrument's precision, after checking that
    only float noise is removed. A value genuinely off the grid is refused, not rounded.
    """
    exact = dec_float(value, name)
    if places is None:
        return exact
    rounded = exact.quantize(Decimal(1).scaleb(-places), rounding=ROUND_HALF_EVEN)
    if rounded != exact and not math.isclose(float(rounded), float(exact), rel_tol=FLOAT_NOISE):
        raise QuarantineRecord(Reason.OFF_GRID, f"{name} {exact} is not on the instrument's grid of {places} decimals")
    return rounded


def _buyer_maker(value: object) -> Side:
    if value in (True, "True", "true"):
        return Side.SELL
    if value in (False, "False", "false"):
        return Side.BUY
    raise QuarantineRecord(Reason.BAD_SIDE, f"buyer_maker must be True or False, got {value!r}")


class _NautilusReader(_ArrowReader):
    """Exchange, symbol and precisions from the instrument text, unless overridden."""

    def __init__(self, path: Path, *, exchange: str | None, symbol: str | None, stats: ReplayStats | None) -> None:
        super().__init__(path, stats)
        self.instrument = nautilus_instrument(path)
        found = self.instrument
        self.exchange = exchange or (found.exchange if found else "binance")
        self.symbol_from_text = found.symbol if found else None
        self.price_places = found.price_places if found else None
        self.size_places = found.size_places if found else None


class NautilusTradesReader(_NautilusReader):
    """nautilus' Binance trade ticks: ``buyer_maker`` True means the aggressor sold.

    The symbol and precisions come from the instrument text beside the file. There is no receive
    time: ``ts_recv = ts_event``.
    """

    columns: tuple[str, ...] = ("timestamp", "trade_id", "price", "quantity", "buyer_maker")

    def __init__(self, path: Path, *, exchange: str | None, symbol: str | None, stats: ReplayStats | None) -> None:
        super().__init__(path, exchange=exchange, symbol=symbol, stats=stats)
        found = symbol or self.symbol_from_text
        if found is None:
            raise ValueError(f"symbol of {path.name!r} is unknown: no instrument text beside it and no symbol= given")
        self.symbol: str = found

    def parse(self, record: Row) -> Trade:
        ts, trade_id, price, quantity, buyer_maker = record
        ts_event = self.time(ts)
        if trade_id is None:
            raise QuarantineRecord(Reason.MISSING_FIELD, "trade_id is null")
        return Trade(
            self.exchange,
            self.symbol,
            str(trade_id),
            on_grid(price, self.price_places, "price"),
            on_grid(quantity, self.size_places, "quantity"),
            _buyer_maker(buyer_maker),
            ts_event,
            ts_event,
        )


class NautilusQuotesReader(_NautilusReader):
    """nautilus' quote ticks (``bid``/``bid_size``/``ask``/``ask_size``); no sequence, no receive time.

    A ``symbol`` column is more specific than the instrument text, so it names the symbol.
    """

    columns: tuple[str, ...] = ("timestamp", "bid", "bid_size", "ask", "ask_size")

    def __init__(self, path: Path, *, exchange: str | None, symbol: str | None, stats: ReplayStats | None) -> None:
        if symbol is None and "symbol" in arrow_schema(path).names:
            self.columns = (*type(self).columns, "symbol")
        super().__init__(path, exchange=exchange, symbol=symbol, stats=stats)
        in_column = "symbol" in self.columns
        self._symbol = symbol if symbol is not None or in_column else self.symbol_from_text
        if self._symbol is None and not in_column:
            raise ValueError(
                f"symbol of {path.name!r} is unknown: no symbol column, no instrument text, no symbol= given"
            )
        self._symbols: dict[str, str] = {}

    def _row_symbol(self, raw: object) -> str:
        if type(raw) is not str or not raw:
            raise QuarantineRecord(Reason.WRONG_TYPE, f"symbol must be a non-empty string, got {raw!r}")
        symbol = self._symbols.get(raw)
        if symbol is None:
            symbol = raw if "/" in raw else binance_unified_symbol(raw, linear=False)
            self._symbols[raw] = symbol
        return symbol

    def parse(self, record: Row) -> Quote:
        ts_event = self.time(record[0])
        symbol = self._symbol or self._row_symbol(record[5])
        price, size = self.price_places, self.size_places
        return Quote(
            self.exchange,
            symbol,
            on_grid(record[1], price, "bid"),
            on_grid(record[2], size, "bid_size"),
            on_grid(record[3], price, "ask"),
            on_grid(record[4], size, "ask_size"),
            ts_event,
            ts_event,
        )


class CcxtTradesFeatherReader(_ArrowReader):
    """freqtrade's trade feather (ccxt columns, ``timestamp`` in epoch ms); same events as the JSON file."""

    columns: tuple[str, ...] = ("timestamp", "id", "side", "price", "amount")

    def __init__(self, path: Path, *, exchange: str, symbol: str, stats: ReplayStats | None) -> None:
        super().__init__(path, stats)
        self.exchange, self.symbol = exchange, symbol

    def parse(self, record: Row) -> Trade:
        ts, trade_id, side, price, amount = record
        return parse_ccxt_trade(
            self.exchange, self.symbol, ts, trade_id, side=side, price=price, amount=amount, number=dec_float
        )


class OhlcvFeatherReader(_ArrowReader):
    """freqtrade's candle feather (``date, open, high, low, close, volume``), ``date`` = open time."""

    columns: tuple[str, ...] = ("date", "open", "high", "low", "close", "volume")
    time_column = "date"

    def __init__(self, path: Path, *, exchange: str, symbol: str, timeframe: str, stats: ReplayStats | None) -> None:
        super().__init__(path, stats)
        self.exchange, self.symbol, self.timeframe = exchange, symbol, timeframe
        self._span = timedelta(seconds=timeframe_seconds(timeframe))

    def parse(self, record: Row) -> MarketEvent:
        ts = self.time(record[0])
        _, o, h, low, c, v = record
        if (
            type(o) is float
            and type(h) is float
            and type(low) is float
            and type(c) is float
            and type(v) is float
            and math.isfinite(o + h + low + c + v)  # finite sum: every one finite (else the checks below say which)
        ):
            # dec_float's result for five finite floats, without its per-value checks.
            return Candle(
                self.exchange,
                self.symbol,
                self.timeframe,
                Decimal(repr(o)),
                Decimal(repr(h)),
                Decimal(repr(low)),
                Decimal(repr(c)),
                Decimal(repr(v)),
                ts,
                ts + self._span,
            )
        return Candle(
            self.exchange,
            self.symbol,
            self.timeframe,
            dec_float(record[1], "open"),
            dec_float(record[2], "high"),
            dec_float(record[3], "low"),
            dec_float(record[4], "close"),
            dec_float(record[5], "volume"),
            ts,
            ts + self._span,
        )


def sniff_arrow(path: Path) -> str | None:
    """The format name of a parquet/feather file from its column names, or None."""
    names = set(arrow_schema(path).names)
    if names >= set(NautilusTradesReader.columns):
        return "nautilus-trades-parquet"
    if names >= set(NautilusQuotesReader.columns):
        return "nautilus-quotes-parquet"
    if names >= set(CcxtTradesFeatherReader.columns):
        return "ccxt-trades-feather"
    if names >= set(OhlcvFeatherReader.columns):
        return "ohlcv-feather"
    return None
