"""Real feature vectors for the model tests: Binance 1m candles of April-May 2021 through the feature engine.

The candles are ``$BOT4_SHARED_DATA/candles/binance-1m-2021/{BTC,ETH}_USDT-1m.json`` (default
``<repo>/../shared/data``); a missing file fails the test and names the path (no synthetic fallback).
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from decimal import Decimal
from pathlib import Path

import pytest

from core.clock import from_epoch_ms
from core.events import Candle
from features.engine import FeatureEngine
from features.schema import FeatureVector

REPO = Path(__file__).resolve().parents[3]


def candles_file(symbol: str) -> Path:
    base = Path(os.environ.get("BOT4_SHARED_DATA", REPO.parent / "shared" / "data"))
    path = base / "candles" / "binance-1m-2021" / f"{symbol}_USDT-1m.json"
    if not path.is_file():
        pytest.fail(f"real data file {path} is missing: set BOT4_SHARED_DATA to the shared data folder")
    return path


def real_vectors(symbol: str, limit: int) -> list[FeatureVector]:
    """Feature vectors of the first ``limit`` 1m candles of ``symbol`` (BTC or ETH) against USDT."""
    rows = json.loads(candles_file(symbol).read_text())[:limit]
    engine = FeatureEngine("1m", bars_from="candles")
    out: list[FeatureVector] = []
    for ts_ms, o, h, low, c, v in rows:
        ts = from_epoch_ms(int(ts_ms))
        candle = Candle(
            "binance", f"{symbol}/USDT", "1m",
            Decimal(repr(float(o))), Decimal(repr(float(h))), Decimal(repr(float(low))), Decimal(repr(float(c))),
            Decimal(repr(float(v))), ts, ts,
        )  # fmt: skip
        out.extend(x for x in engine.update(candle) if isinstance(x, FeatureVector))
    return out


_CACHE: dict[str, list[FeatureVector]] = {}
FULL = 20_000


@pytest.fixture(scope="session")
def vectors() -> Callable[[str, int], list[FeatureVector]]:
    """``vectors("BTC", n)``: the first ``n`` real vectors of the first 20,000 candles (cached per session)."""

    def get(symbol: str, n: int) -> list[FeatureVector]:
        if symbol not in _CACHE:
            _CACHE[symbol] = real_vectors(symbol, FULL)
        return _CACHE[symbol][:n]

    return get


@pytest.fixture(scope="session")
def btc_20k(vectors: Callable[[str, int], list[FeatureVector]]) -> list[FeatureVector]:
    """About 20,000 real BTC/USDT 1m vectors (two weeks)."""
    return vectors("BTC", FULL + 1000)
