"""The registry of recorded-file formats, format detection, and :func:`read_events`.

Each format is a reader (``records()`` in file order, a per-record ``parse`` that raises
:class:`~core.errors.QuarantineRecord`, and ``raw`` for the dead letter's bytes). The functions
here pick the reader and drive it; a refused record goes to ``on_error`` (or raises, by default),
so a bad line never stops a replay silently and is never dropped silently.
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from core.errors import QuarantineRecord
from core.events import MarketEvent
from flows.replay._common import (
    FileUnreadable,
    RecordReader,
    ReplayStats,
    exchange_from_folder,
    open_binary,
    resolve_symbol,
    resolve_timeframe,
)
from flows.replay.binance_ws import BinanceWsReader, CryptofeedBinanceReader, sniff_cryptofeed_market, sniff_market
from flows.replay.columnar import (
    CcxtTradesFeatherReader,
    NautilusQuotesReader,
    NautilusTradesReader,
    OhlcvFeatherReader,
    sniff_arrow,
)
from flows.replay.csv_formats import (
    BinanceDepthCsvReader,
    OhlcvCsvReader,
    TardisQuotesReader,
    TardisTradesReader,
    sniff_csv,
    split_row,
)
from flows.replay.json_arrays import CcxtTradesJsonReader, OhlcvJsonReader, sniff_json

OnError = Callable[[bytes, QuarantineRecord], None]
PathLike = str | os.PathLike[str]


@dataclass(frozen=True, slots=True)
class ReaderOptions:
    """Overrides for what a file does not say (or says wrongly) about itself."""

    exchange: str | None = None
    symbol: str | None = None
    timeframe: str | None = None


Opener = Callable[[Path, ReaderOptions, ReplayStats], RecordReader[Any]]


@dataclass(frozen=True, slots=True)
class ReplayFormat:
    """One recorded-file format: its name, what it is, and how to open a reader for a file."""

    name: str
    description: str
    open: Opener


def _ws(market: str, reader: type[BinanceWsReader] = BinanceWsReader) -> Opener:
    def open_ws(path: Path, o: ReaderOptions, stats: ReplayStats) -> RecordReader[Any]:
        return reader(path, market=market, exchange=o.exchange, symbol=o.symbol, stats=stats)

    return open_ws


def _candles(reader: type[OhlcvCsvReader | OhlcvJsonReader | OhlcvFeatherReader]) -> Opener:
    def open_candles(path: Path, o: ReaderOptions, stats: ReplayStats) -> RecordReader[Any]:
        return reader(
            path,
            exchange=o.exchange or exchange_from_folder(path),
            symbol=resolve_symbol(path, o.symbol),
            timeframe=resolve_timeframe(path, o.timeframe),
            stats=stats,
        )

    return open_candles


def _ccxt_trades(reader: type[CcxtTradesJsonReader | CcxtTradesFeatherReader]) -> Opener:
    def open_trades(path: Path, o: ReaderOptions, stats: ReplayStats) -> RecordReader[Any]:
        return reader(
            path, exchange=o.exchange or exchange_from_folder(path), symbol=resolve_symbol(path, o.symbol), stats=stats
        )

    return open_trades


def _plain(
    reader: type[TardisTradesReader | TardisQuotesReader | BinanceDepthCsvReader]
    | type[NautilusTradesReader | NautilusQuotesReader],
) -> Opener:
    def open_plain(path: Path, o: ReaderOptions, stats: ReplayStats) -> RecordReader[Any]:
        return reader(path, exchange=o.exchange, symbol=o.symbol, stats=stats)

    return open_plain


FORMATS: dict[str, ReplayFormat] = {
    f.name: f
    for f in (
        ReplayFormat(
            "binance-ws-spot",
            "Binance spot websocket capture, '<recv ns> <json>' lines (trade, depth diff, bookTicker, snapshot)",
            _ws("spot"),
        ),
        ReplayFormat(
            "binance-ws-usdm",
            "Binance USD-M futures websocket capture (trade/aggTrade, depth with pu, bookTicker, snapshot)",
            _ws("usdm"),
        ),
        ReplayFormat(
            "cryptofeed-binance-ws-spot",
            "cryptofeed's recording of a Binance spot websocket, '<recv s>: <json>' lines",
            _ws("spot", CryptofeedBinanceReader),
        ),
        ReplayFormat(
            "cryptofeed-binance-ws-usdm",
            "cryptofeed's recording of a Binance USD-M futures websocket",
            _ws("usdm", CryptofeedBinanceReader),
        ),
        ReplayFormat("tardis-trades-csv", "Tardis trades CSV, µs timestamps", _plain(TardisTradesReader)),
        ReplayFormat("tardis-quotes-csv", "Tardis top-of-book quotes CSV, µs timestamps", _plain(TardisQuotesReader)),
        ReplayFormat(
            "binance-depth-csv", "Binance depth CSV, one row per level, snap/set groups", _plain(BinanceDepthCsvReader)
        ),
        ReplayFormat("nautilus-trades-parquet", "nautilus trade ticks (parquet)", _plain(NautilusTradesReader)),
        ReplayFormat("nautilus-quotes-parquet", "nautilus quote ticks (parquet)", _plain(NautilusQuotesReader)),
        ReplayFormat(
            "ccxt-trades-json", "freqtrade/ccxt trades, JSON array of rows", _ccxt_trades(CcxtTradesJsonReader)
        ),
        ReplayFormat("ccxt-trades-feather", "freqtrade/ccxt trades, feather", _ccxt_trades(CcxtTradesFeatherReader)),
        ReplayFormat("ohlcv-json", "OHLCV candles, JSON array of [ms, o, h, l, c, v]", _candles(OhlcvJsonReader)),
        ReplayFormat(
            "ohlcv-feather",
            "OHLCV candles, feather (date, open, high, low, close, volume)",
            _candles(OhlcvFeatherReader),
        ),
        ReplayFormat(
            "ohlcv-csv", "OHLCV candles, CSV (timestamp, open, high, low, close, volume)", _candles(OhlcvCsvReader)
        ),
    )
}

_CAPTURE_LINE = re.compile(rb"^\d+ \{")
SNIFF_LINES = 200


def _head_lines(path: Path, max_lines: int = SNIFF_LINES, max_line: int = 1 << 16) -> list[bytes]:
    """The first lines of a (maybe gzip) text file, each cut at ``max_line`` bytes.

    A cut-short gzip still yields the lines before the cut, so a damaged file is detected and
    its damage reported by the reader, not by the detection.
    """
    lines: list[bytes] = []
    with open_binary(path) as fh:
        try:
            while len(lines) < max_lines:
                line = fh.readline(max_line)
                if not line:
                    break
                lines.append(line)
        except (EOFError, OSError):
            pass
    return lines


def detect_format(path: PathLike) -> str:
    """Name of the :data:`FORMATS` entry that reads ``path``, by content (magic, header, first lines).

    The name is consulted only where content cannot tell: a capture whose first lines carry no
    market-specific field is ``usdm`` if its path says ``usdm``/``futures``, else ``spot``.
    """
    file = Path(path)
    if not file.is_file():
        raise FileNotFoundError(f"replay input {file} does not exist or is not a file")
    with file.open("rb") as fh:
        magic = fh.read(6)
    name: str | None
    if magic[:4] == b"PAR1" or magic == b"ARROW1":
        name = sniff_arrow(file)
    else:
        head = _head_lines(file)
        first = head[0] if head else b""
        cryptofeed_market = sniff_cryptofeed_market(first)
        if cryptofeed_market is not None:
            name = f"cryptofeed-binance-ws-{cryptofeed_market}"
        elif _CAPTURE_LINE.match(first):
            market = sniff_market(head)
            if market is None:
                lowered = str(file).lower()
                market = "usdm" if "usdm" in lowered or "futures" in lowered else "spot"
            name = f"binance-ws-{market}"
        elif first.lstrip().startswith(b"["):
            name = sniff_json(file)
        else:
            try:
                name = sniff_csv(split_row(first))
            except (UnicodeDecodeError, ValueError):
                name = None
    if name is None:
        raise ValueError(
            f"format of {file} is not recognised (magic {magic!r}); known formats: {sorted(FORMATS)}; pass fmt="
        )
    return name


def open_reader(
    path: PathLike,
    *,
    fmt: str | None = None,
    exchange: str | None = None,
    symbol: str | None = None,
    timeframe: str | None = None,
    stats: ReplayStats | None = None,
) -> RecordReader[Any]:
    """The reader for one file (its ``parse`` is the per-record function that raises ``QuarantineRecord``)."""
    file = Path(path)
    name = fmt or detect_format(file)
    spec = FORMATS.get(name)
    if spec is None:
        raise ValueError(f"fmt {name!r} is not a known replay format; expected one of {sorted(FORMATS)}")
    return spec.open(file, ReaderOptions(exchange, symbol, timeframe), stats if stats is not None else ReplayStats())


def read_events(
    path: PathLike,
    *,
    exchange: str | None = None,
    symbol: str | None = None,
    fmt: str | None = None,
    timeframe: str | None = None,
    on_error: OnError | None = None,
    stats: ReplayStats | None = None,
) -> Iterator[MarketEvent]:
    """Stream the events of one recorded file, in file order, without loading it whole.

    ``exchange``/``symbol``/``timeframe`` override what the file (or its name) says; ``fmt`` skips
    detection. A record that does not parse raises :class:`QuarantineRecord` (with a note naming the
    file and record number) unless ``on_error`` is given: then ``on_error(original_bytes, error)``
    is called and the replay goes on. ``stats`` counts events, skipped and refused records.

    The format is detected and the reader opened when this is called (so a wrong path or an
    unknown format fails here); the file itself is read lazily.
    """
    counters = stats if stats is not None else ReplayStats()
    reader = open_reader(path, fmt=fmt, exchange=exchange, symbol=symbol, timeframe=timeframe, stats=counters)
    return _drain(reader, Path(path), on_error, counters)


def _drain(
    reader: RecordReader[Any], path: Path, on_error: OnError | None, stats: ReplayStats
) -> Iterator[MarketEvent]:
    records = reader.records()
    parse, raw = reader.parse, reader.raw
    number = 0
    try:
        for number, record in enumerate(records, 1):
            try:
                event = parse(record)
            except QuarantineRecord as err:
                stats.quarantined[err.reason] += 1
                err.add_note(f"in {path} record {number}")
                if on_error is None:
                    raise
                on_error(raw(record), err)
                continue
            if event is not None:
                stats.events += 1
                yield event
    except FileUnreadable as broken:
        refusal = broken.record
        stats.quarantined[refusal.reason] += 1
        refusal.add_note(f"in {path} after record {number}")
        if on_error is None:
            raise refusal from broken.__cause__
        on_error(broken.raw, refusal)
    finally:
        close = getattr(records, "close", None)
        if close is not None:
            close()
