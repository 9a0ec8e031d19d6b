"""Real market data for the feature tests, read from the shared data folder.

The folder is ``$BOT4_SHARED_DATA`` or, by default, ``<repo>/../shared/data``. A missing file is a
test failure that names the path (these tests have no synthetic fallback).
"""

from __future__ import annotations

import gzip
import json
import os
from collections.abc import Callable, Iterator
from decimal import Decimal
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from core.clock import from_epoch_ms, from_epoch_ns
from core.events import BookDelta, BookSnapshot, Candle, Level, MarketEvent, Quote, Side, Trade
from core.money import float_to_decimal

REPO = Path(__file__).resolve().parents[3]


def shared_data_dir() -> Path:
    """The shared data folder: ``$BOT4_SHARED_DATA`` or ``<repo>/../shared/data``."""
    return Path(os.environ.get("BOT4_SHARED_DATA", REPO.parent / "shared" / "data"))


def shared_file(*parts: str) -> Path:
    path = shared_data_dir().joinpath(*parts)
    if not path.is_file():
        pytest.fail(f"real data file {path} is missing: set BOT4_SHARED_DATA to the shared data folder")
    return path


# -- freqtrade XRP/ETH: trades and the candles freqtrade built from them ------------------------


@pytest.fixture(scope="session")
def xrp_trades_df() -> pd.DataFrame:
    df = pd.read_feather(shared_file("ticks", "freqtrade-xrp-eth", "XRP_ETH-trades.feather"))
    df["date"] = pd.to_datetime(df["timestamp"], unit="ms", utc=True)
    return df


@pytest.fixture(scope="session")
def xrp_trades(xrp_trades_df: pd.DataFrame) -> list[Trade]:
    """The ccxt trade rows as Trade events; float prices go through their shortest repr."""
    out = []
    for ts, tid, side, price, amount in zip(
        xrp_trades_df["timestamp"],
        xrp_trades_df["id"],
        xrp_trades_df["side"],
        xrp_trades_df["price"],
        xrp_trades_df["amount"],
        strict=True,
    ):
        when = from_epoch_ms(int(ts))
        out.append(
            Trade(
                "binance",
                "XRP/ETH",
                str(tid),
                float_to_decimal(float(price)),
                float_to_decimal(float(amount)),
                Side(side),
                when,
                when,
            )
        )
    return out


@pytest.fixture(scope="session")
def xrp_candles() -> dict[str, pd.DataFrame]:
    folder = ("ticks", "freqtrade-xrp-eth")
    return {tf: pd.read_feather(shared_file(*folder, f"XRP_ETH-{tf}.feather")) for tf in ("1m", "5m")}


# -- Binance BTC/USDT candles --------------------------------------------------------------------


@pytest.fixture(scope="session")
def btc_1h() -> pd.DataFrame:
    return pd.read_feather(shared_file("candles", "binance-1h", "BTC_USDT-1h.feather"))


@pytest.fixture(scope="session")
def btc_1m() -> pd.DataFrame:
    rows = json.loads(shared_file("candles", "binance-1m-2021", "BTC_USDT-1m.json").read_text())
    arr = np.array(rows, dtype=float)
    return pd.DataFrame(
        {
            "date": pd.to_datetime(arr[:, 0].astype(np.int64), unit="ms", utc=True),
            "open": arr[:, 1],
            "high": arr[:, 2],
            "low": arr[:, 3],
            "close": arr[:, 4],
            "volume": arr[:, 5],
        }
    )


@pytest.fixture(scope="session")
def btc_1h_candles(btc_1h: pd.DataFrame) -> list[Candle]:
    """The whole BTC/USDT 1h history as Candle events (58,419 of them, 28 outage gaps)."""
    return candles_from_frame(btc_1h, "1h")


@pytest.fixture(scope="session")
def to_candles() -> Callable[..., list[Candle]]:
    """``to_candles(frame, timeframe)``: OHLCV rows as closed Candle events."""
    return candles_from_frame


def candles_from_frame(df: pd.DataFrame, timeframe: str, symbol: str = "BTC/USDT") -> list[Candle]:
    """OHLCV rows as closed Candle events (floats through their shortest repr)."""
    out = []
    for date, o, h, low, c, v in zip(
        df["date"], df["open"], df["high"], df["low"], df["close"], df["volume"], strict=True
    ):
        when = date.to_pydatetime()
        out.append(
            Candle(
                "binance",
                symbol,
                timeframe,
                float_to_decimal(o),
                float_to_decimal(h),
                float_to_decimal(low),
                float_to_decimal(c),
                float_to_decimal(v),
                when,
                when,
            )
        )
    return out


# -- Binance spot websocket capture (hftbacktest) ------------------------------------------------


def _levels(raw: list[list[str]]) -> tuple[Level, ...]:
    return tuple((Decimal(price), Decimal(amount)) for price, amount in raw)


def parse_binance_ws_line(line: str, symbol: str = "BTC/USDT") -> MarketEvent | None:
    """One ``<recv ns> <json>`` line of the capture as an event (``None`` for other streams).

    A tiny local reader for these tests only; the official parsers live in flows/replay.
    Depth diffs and trades carry the exchange time (``E`` / ``T``); the REST snapshot and
    bookTicker have none, so their ``ts_event`` is the receive time.
    """
    recv_ns, _, body = line.partition(" ")
    msg = json.loads(body)
    recv = from_epoch_ns(int(recv_ns))
    if "lastUpdateId" in msg:
        return BookSnapshot(
            "binance", symbol, msg["lastUpdateId"], _levels(msg["bids"]), _levels(msg["asks"]), recv, recv
        )
    stream, data = msg["stream"], msg["data"]
    if stream.endswith("@depth@100ms"):
        return BookDelta(
            "binance", symbol, data["U"], data["u"], _levels(data["b"]), _levels(data["a"]),
            from_epoch_ms(data["E"]), recv,
        )  # fmt: skip
    if stream.endswith("@bookTicker"):
        return Quote(
            "binance", symbol, Decimal(data["b"]), Decimal(data["B"]), Decimal(data["a"]), Decimal(data["A"]),
            recv, recv, data["u"],
        )  # fmt: skip
    if stream.endswith("@trade"):
        # "m": the buyer is the maker, so the aggressor sold.
        side = Side.SELL if data["m"] else Side.BUY
        return Trade(
            "binance", symbol, str(data["t"]), Decimal(data["p"]), Decimal(data["q"]), side,
            from_epoch_ms(data["T"]), recv,
        )  # fmt: skip
    return None


def read_ws_capture(name: str) -> list[MarketEvent]:
    def lines() -> Iterator[str]:
        with gzip.open(shared_file("ticks", "binance-spot-ws", name), "rt") as handle:
            yield from handle

    return [event for event in map(parse_binance_ws_line, lines()) if event is not None]


@pytest.fixture(scope="session")
def btc_ws_day1() -> list[MarketEvent]:
    """2024-08-08 23:54 -> 00:00 UTC, starting with the REST snapshot (after a few diffs)."""
    return read_ws_capture("btcusdt_20240808.gz")


@pytest.fixture(scope="session")
def btc_ws_day2() -> list[MarketEvent]:
    """The same streams continuing after midnight, without a snapshot."""
    return read_ws_capture("btcusdt_20240809.gz")


@pytest.fixture(scope="session")
def btc_ws_trades(btc_ws_day1: list[MarketEvent]) -> list[Trade]:
    return [e for e in btc_ws_day1 if isinstance(e, Trade)]
