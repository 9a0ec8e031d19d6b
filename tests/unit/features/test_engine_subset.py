"""A feature engine asked for a subset computes exactly those values, equal to the full engine's."""

from __future__ import annotations

from pathlib import Path

import pytest

from features.engine import FeatureEngine
from features.schema import FEATURE_NAMES
from flows.replay import read_events

SAMPLE = Path(__file__).resolve().parents[3] / "data" / "sample" / "binance-1m-2021" / "ETH_USDT-1m.json"
WANTED = frozenset({"bar_close", "bar_low", "bar_empty", "macd_12_26", "rsi_14"})


def vectors(engine: FeatureEngine, n: int = 400) -> list:
    out = []
    for i, event in enumerate(read_events(SAMPLE)):
        if i == n:
            break
        out.extend(engine.update(event))
    return out


def test_the_subset_equals_the_full_engine_on_what_it_computes_and_leaves_the_rest_unavailable():
    full = vectors(FeatureEngine("1m", bars_from="candles"))
    part = vectors(FeatureEngine("1m", bars_from="candles", features=WANTED))
    assert len(full) == len(part) > 300
    for a, b in zip(full, part, strict=True):
        for name in ("macd_12_26", "rsi_14", "bar_close", "bar_low"):
            assert a.values[name] == b.values[name]
        assert b.values["sma_20"] is None and b.values["stoch_k_14_3"] is None
    assert full[-1].values["sma_20"] is not None
    assert set(part[-1].values) == set(FEATURE_NAMES)  # the vector keeps the schema's shape


def test_unknown_feature_names_are_refused_and_a_subset_snapshot_does_not_restore_into_a_full_engine():
    with pytest.raises(ValueError, match="unknown features"):
        FeatureEngine("1m", features=frozenset({"rsi_15"}))
    part = FeatureEngine("1m", bars_from="candles", features=WANTED)
    vectors(part, 50)
    with pytest.raises(ValueError):
        FeatureEngine("1m", bars_from="candles").restore(part.snapshot())
