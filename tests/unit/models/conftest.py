"""Real feature vectors for the model tests: Binance 1m candles of April-May 2021 through the feature engine.

The candles are ``$BOT4_SHARED_DATA/candles/binance-1m-2021/{BTC,ETH}_USDT-1m.json`` (default
``<repo>/../shared/data``); a missing file fails the test and names the path (no synthetic fallback).
"""

from __future__ import annotations

import hashlib
import json
import os
import pickle
from collections.abc import Callable
from datetime import timedelta
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


def _cache_key(path: Path, limit: int) -> str:
    """Changes with the candles file and with any source file of the feature computation."""
    digest = hashlib.sha256(f"{path}:{path.stat().st_size}:{path.stat().st_mtime_ns}:{limit}".encode())
    for source in sorted((REPO / "features").rglob("*.py")) + sorted((REPO / "core").glob("*.py")):
        digest.update(source.read_bytes())
    return digest.hexdigest()[:24]


def real_vectors(symbol: str, limit: int, cache_dir: Path | None = None) -> list[FeatureVector]:
    """Feature vectors of the first ``limit`` 1m candles of ``symbol`` (BTC or ETH) against USDT.

    With ``cache_dir`` the vectors are kept in a pickle named after the data file and the feature
    code, so a rerun skips the feature computation unless either changed.
    """
    path = candles_file(symbol)
    cached = cache_dir / f"vectors-{symbol}-{_cache_key(path, limit)}.pickle" if cache_dir else None
    if cached is not None and cached.is_file():
        return pickle.loads(cached.read_bytes())
    out = _compute(path, symbol, limit)
    if cached is not None:
        cached.write_bytes(pickle.dumps(out, protocol=pickle.HIGHEST_PROTOCOL))
    return out


def _compute(path: Path, symbol: str, limit: int) -> list[FeatureVector]:
    rows = json.loads(path.read_text())[:limit]
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


_CACHE: dict[str, tuple[int, list[FeatureVector]]] = {}
FULL = 20_000


@pytest.fixture(scope="session")
def vectors(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Callable[[str, int], list[FeatureVector]]:
    """``vectors("ETH", n)``: the real vectors of the first ``n`` candles (cached per session, and on
    disk in pytest's cache when the cache plugin is on; `make test` runs with it off)."""
    cache = getattr(request.config, "cache", None)
    cache_dir = Path(cache.mkdir("bot4_models_vectors")) if cache is not None else tmp_path_factory.mktemp("vectors")

    def get(symbol: str, n: int) -> list[FeatureVector]:
        cached = _CACHE.get(symbol)
        if cached is None or cached[0] < n:
            cached = _CACHE[symbol] = (n, real_vectors(symbol, n, cache_dir))
        return [v for v in cached[1] if v.ts_event <= cached[1][0].ts_event + timedelta(minutes=n - 1)]

    return get


@pytest.fixture(scope="session")
def btc_20k(vectors: Callable[[str, int], list[FeatureVector]]) -> list[FeatureVector]:
    """About 20,000 real BTC/USDT 1m vectors (two weeks)."""
    return vectors("BTC", FULL + 1000)
