"""Vocabulary shared by the replay parsers: reason codes, counters, number and symbol helpers.

Every parser turns one raw record (a line, a group of CSV rows, a table row) into at most one
:mod:`core.events` event, or raises :class:`~core.errors.QuarantineRecord` with one of the
:class:`Reason` codes so the caller can put the original bytes on the dead-letter topic.
"""

from __future__ import annotations

import gzip
import io
import re
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import Final, Protocol, TypeVar

from core.errors import QuarantineRecord
from core.events import MarketEvent
from core.money import float_to_decimal
from core.symbols import timeframe_seconds


class Reason:
    """Reason codes of refused records; they become the ``reason`` label of the DLQ metric.

    Plain strings rather than an enum, so a code reaches Kafka, PostgreSQL and Prometheus as
    itself whatever the serializer does with enums.
    """

    MALFORMED_LINE: Final = "malformed_line"
    MALFORMED_JSON: Final = "malformed_json"
    UNKNOWN_MESSAGE: Final = "unknown_message"
    MISSING_FIELD: Final = "missing_field"
    WRONG_TYPE: Final = "wrong_type"
    BAD_NUMBER: Final = "bad_number"
    OFF_GRID: Final = "off_grid"
    BAD_TIMESTAMP: Final = "bad_timestamp"
    BAD_SIDE: Final = "bad_side"
    UNKNOWN_SYMBOL: Final = "unknown_symbol"
    WRONG_COLUMN_COUNT: Final = "wrong_column_count"
    UNKNOWN_UPDATE_TYPE: Final = "unknown_update_type"
    TRUNCATED_FILE: Final = "truncated_file"


@dataclass
class ReplayStats:
    """What a replay did with its input: events emitted, records skipped by kind, refused by reason.

    Skipped records are valid messages that carry no market-data event (Binance ``markPrice``,
    a futures ``trade`` printed by the insurance fund); refused ones went to ``on_error``.
    Nothing is dropped without being counted here.
    """

    events: int = 0
    skipped: Counter[str] = field(default_factory=Counter)
    quarantined: Counter[str] = field(default_factory=Counter)


R = TypeVar("R")


class RecordReader(Protocol[R]):
    """One open input file: raw records in file order, and the per-record parser.

    ``parse`` returns the event, ``None`` for a record that is valid but carries no event (it
    counts it in the stats as skipped), or raises :class:`QuarantineRecord`. ``raw`` gives the
    bytes that go to the dead-letter topic with the refusal.
    """

    def records(self) -> Iterator[R]:
        """Raw records in file order; raises :class:`FileUnreadable` where the container breaks."""

    def parse(self, record: R) -> MarketEvent | None:
        """The record's event, None if it carries none, or :class:`QuarantineRecord`."""

    def raw(self, record: R) -> bytes:
        """The record's original bytes, for the dead letter."""


class FileUnreadable(Exception):
    """The container itself broke (truncated gzip, corrupt page): no further record can be read."""

    def __init__(self, record: QuarantineRecord, raw: bytes = b"") -> None:
        super().__init__(str(record))
        self.record = record
        self.raw = raw


GZIP_MAGIC = b"\x1f\x8b"


def open_binary(path: Path) -> io.BufferedIOBase:
    """Open ``path`` for reading bytes, decompressing on the fly when it is gzip (by magic, not name)."""
    with path.open("rb") as probe:
        magic = probe.read(2)
    if magic == GZIP_MAGIC:
        return gzip.open(path, "rb")
    return path.open("rb")


def dec_text(value: object, name: str) -> Decimal:
    """Exact Decimal of a decimal string from the exchange (``"61837.63000000"`` keeps its scale)."""
    if type(value) is not str:
        raise QuarantineRecord(Reason.WRONG_TYPE, f"{name} must be a decimal string, got {value!r}")
    try:
        result = Decimal(value)
    except InvalidOperation:
        raise QuarantineRecord(Reason.BAD_NUMBER, f"{name} {value!r} is not a decimal number") from None
    if not result.is_finite():
        raise QuarantineRecord(Reason.BAD_NUMBER, f"{name} {value!r} is not finite")
    return result


def dec_float(value: object, name: str) -> Decimal:
    """Decimal of a float from a parquet/feather column, through its shortest repr (never Decimal(float))."""
    if type(value) is float:
        try:
            return float_to_decimal(value, name=name)
        except ValueError as exc:
            raise QuarantineRecord(Reason.BAD_NUMBER, str(exc)) from None
    if type(value) is int:
        return Decimal(value)
    if value is None:
        raise QuarantineRecord(Reason.MISSING_FIELD, f"{name} is null")
    raise QuarantineRecord(Reason.WRONG_TYPE, f"{name} must be a number, got {value!r}")


def dec_json(value: object, name: str) -> Decimal:
    """Decimal of a JSON number parsed with ``parse_float=Decimal`` (so the text's digits are kept)."""
    if type(value) is Decimal:
        return value
    if type(value) is int:
        return Decimal(value)
    if type(value) is str:
        return dec_text(value, name)
    raise QuarantineRecord(Reason.WRONG_TYPE, f"{name} must be a number, got {value!r}")


def int_field(value: object, name: str) -> int:
    """An integer id or epoch time; bools and floats are refused (a float time would lose digits)."""
    if type(value) is not int:
        raise QuarantineRecord(Reason.WRONG_TYPE, f"{name} must be an integer, got {value!r}")
    return value


#: Quote assets recognised at the end of a Binance symbol, longest first so ``FDUSD`` wins over a
#: shorter suffix and ``BNBFDUSD`` becomes ``BNB/FDUSD``. ``EUR`` because the shared cryptofeed
#: recording trades ``RUNEEUR``.
QUOTE_ASSETS = ("FDUSD", "USDT", "BUSD", "USDC", "BTC", "ETH", "BNB", "EUR")


def binance_unified_symbol(raw: str, *, linear: bool) -> str:
    """ccxt's unified symbol for a Binance market id: ``BTCUSDT`` -> ``BTC/USDT`` (``:USDT`` if linear).

    >>> binance_unified_symbol("BTCUSDT", linear=False), binance_unified_symbol("btcusdt", linear=True)
    ('BTC/USDT', 'BTC/USDT:USDT')
    >>> binance_unified_symbol("BNBFDUSD", linear=False)
    'BNB/FDUSD'
    """
    upper = raw.upper()
    for quote in QUOTE_ASSETS:
        if upper.endswith(quote) and len(upper) > len(quote):
            base = upper[: -len(quote)]
            return f"{base}/{quote}:{quote}" if linear else f"{base}/{quote}"
    raise QuarantineRecord(
        Reason.UNKNOWN_SYMBOL,
        f"Binance symbol {raw!r} does not end with a known quote asset {QUOTE_ASSETS}; pass symbol=",
    )


_FREQTRADE_NAME = re.compile(
    r"^(?P<base>[A-Z0-9]+)_(?P<quote>[A-Z0-9]+)(?:_(?P<settle>[A-Z0-9]+))?"
    r"-(?P<what>trades|\d+[smhdw])(?:-futures)?\.(?:feather|parquet|csv|json|json\.gz)$"
)
_PERP_NAME = re.compile(r"^(?P<base>[a-z0-9]+)-perp(?:-\d{8}-\d{8})?_(?P<tf>\d+[smhdw])\.csv$", re.IGNORECASE)


def symbol_timeframe_from_name(path: Path) -> tuple[str | None, str | None]:
    """Symbol and timeframe that a file's name states, ``(None, None)`` where it states nothing.

    freqtrade names ``BTC_USDT-1m.json`` (spot), ``BTC_USDT_USDT-1h-futures.feather`` (linear) and
    ``XRP_ETH-trades.json.gz``; FTX perpetual exports ``btc-perp-20211231-20220201_1m.csv``
    (ccxt's FTX perpetuals were ``BTC/USD:USD``).

    >>> symbol_timeframe_from_name(Path("BTC_USDT-1m.json"))
    ('BTC/USDT', '1m')
    >>> symbol_timeframe_from_name(Path("XRP_ETH-trades.json.gz"))
    ('XRP/ETH', None)
    >>> symbol_timeframe_from_name(Path("btc-perp-20211231-20220201_1m.csv"))
    ('BTC/USD:USD', '1m')
    """
    m = _FREQTRADE_NAME.match(path.name)
    if m:
        symbol = f"{m['base']}/{m['quote']}" + (f":{m['settle']}" if m["settle"] else "")
        what = m["what"]
        return symbol, (None if what == "trades" else what)
    p = _PERP_NAME.match(path.name)
    if p:
        return f"{p['base'].upper()}/USD:USD", p["tf"]
    return None, None


#: ccxt exchange ids recognised as the first word of a data folder (``ftx-1m`` -> ``ftx``).
KNOWN_EXCHANGES = frozenset(
    {"binance", "binanceusdm", "binancecoinm", "bybit", "coinbase", "ftx", "kraken", "okx", "bitfinex"}
)


def exchange_from_folder(path: Path, fallback: str = "binance") -> str:
    """The exchange a folder's name states (``candles/ftx-1m`` -> ``ftx``), else ``fallback``.

    >>> exchange_from_folder(Path("candles/ftx-1m/x.csv")), exchange_from_folder(Path("a/b.json"))
    ('ftx', 'binance')
    """
    word = path.parent.name.split("-", 1)[0].lower()
    return word if word in KNOWN_EXCHANGES else fallback


def resolve_timeframe(path: Path, override: str | None) -> str:
    """The candle timeframe: the explicit override, else the one in the file name; validated."""
    timeframe = override or symbol_timeframe_from_name(path)[1]
    if timeframe is None:
        raise ValueError(
            f"timeframe of {path.name!r} is unknown: the name is not like 'BTC_USDT-1m.json'; pass timeframe="
        )
    timeframe_seconds(timeframe)  # raises ValueError naming the bad value
    return timeframe


def resolve_symbol(path: Path, override: str | None) -> str:
    """The unified symbol: the explicit override, else the one in the file name."""
    symbol = override or symbol_timeframe_from_name(path)[0]
    if symbol is None:
        raise ValueError(f"symbol of {path.name!r} is unknown: the name is not like 'BTC_USDT-1m.json'; pass symbol=")
    return symbol
