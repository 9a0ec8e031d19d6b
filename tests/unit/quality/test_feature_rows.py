"""The feature_rows suite's warm-up table against the real FeatureEngine on real trades, and its
range check against the single feature list."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pytest

from core.events import Trade
from features.engine import FeatureEngine
from features.schema import FEATURES, FeatureVector
from flows.replay import read_events
from quality.suites.feature_rows import TRADED_ONLY, WARMUP_BARS, range_query


@pytest.fixture(scope="module")
def xrp_vectors(shared_data: Path) -> list[FeatureVector]:
    """freqtrade's real XRP/ETH trades through the full engine: 1m bars over three days."""
    engine = FeatureEngine("1m", allowed_lateness=timedelta(seconds=2))
    vectors: list[FeatureVector] = []
    for event in read_events(shared_data / "ticks" / "freqtrade-xrp-eth" / "XRP_ETH-trades.feather"):
        if isinstance(event, Trade):
            vectors.extend(v for v in engine.update(event) if isinstance(v, FeatureVector))
    vectors.extend(engine.flush())
    return vectors


def test_each_feature_first_has_a_value_on_the_traded_bar_the_warmup_table_names(xrp_vectors):
    traded = 0
    first: dict[str, int] = {}
    for vector in xrp_vectors:
        traded += not vector.values["bar_empty"]
        for name in WARMUP_BARS:
            if vector.values[name] is not None:
                first.setdefault(name, traded)
    assert first == WARMUP_BARS


def test_past_its_warmup_a_feature_is_missing_only_where_the_suite_allows(xrp_vectors):
    traded = 0
    missing: dict[str, int] = {}
    empty_bars = 0
    for vector in xrp_vectors:
        empty = bool(vector.values["bar_empty"])
        empty_bars += empty
        traded += not empty
        for name, bars in WARMUP_BARS.items():
            if traded >= bars and vector.values[name] is None:
                assert empty and name in TRADED_ONLY, (name, vector.ts_event)
                missing[name] = missing.get(name, 0) + 1
    # The data has empty minutes, so the exemption is exercised, and only for the bar's own fields.
    assert empty_bars > 1000
    assert set(missing) == TRADED_ONLY


def test_the_range_check_covers_every_bounded_feature_of_the_schema_with_its_declared_bounds():
    sql = range_query("postgresql")
    bounded = [f for f in FEATURES if f.dtype != "bool" and (f.min > float("-inf") or f.max < float("inf"))]
    assert sql.count("UNION ALL") == len(bounded) - 1
    assert "'rsi_14' AS feature" in sql and '"rsi_14" < 0.0 OR "rsi_14" > 100.0' in sql
    assert '"return_1" < -1.0)' in sql  # a lower bound only
    assert "'log_return_1'" not in sql  # unbounded: only the finite check applies
