"""Prequential scores against independent references (River's metrics, the exact rank AUC) on real
predictions, the catalog's contract, warm start, and the prequential table on two weeks of real data."""

from __future__ import annotations

import json
import math
import pickle
from dataclasses import asdict
from datetime import UTC

import numpy as np
import pandas as pd
import pytest
from river import metrics
from scipy.stats import rankdata

from features.schema import FEATURE_NAMES
from models.catalog import CATALOG, FrequencyBaseline, entry
from models.config import ModelsConfig
from models.engine import InstrumentModels
from models.inputs import model_inputs
from models.records import Prediction
from models.scoring import BinnedAUC, PrequentialScores
from models.warm import warm_start

KEY = "binance:BTC/USDT"


def exact_auc(p: list[float], y: list[bool]) -> float:
    ranks = rankdata(p)
    pos = np.array(y)
    n_pos, n_neg = pos.sum(), (~pos).sum()
    return float((ranks[pos].sum() - n_pos * (n_pos + 1) / 2) / (n_pos * n_neg))


@pytest.fixture(scope="module")
def real_predictions(btc_20k) -> tuple[list[float], list[bool]]:
    """(p, label) pairs of the logistic pipeline on 4,000 real bars, in label order."""
    h = 5
    vectors = btc_20k[:4000]
    engine = InstrumentModels(KEY, ModelsConfig(models=("logreg",), horizon=h, dead_zone=0.0, dead_zone_policy="down"))
    ps = [o.p_up for v in vectors for o in engine.update(v) if isinstance(o, Prediction)]
    closes = [v.values["bar_close"] for v in vectors]
    ys = [closes[i + h] > closes[i] for i in range(len(vectors) - h)]
    return ps[: len(ys)], ys


def test_scores_match_river_metrics_and_the_exact_rank_auc_on_real_predictions(real_predictions):
    ps, ys = real_predictions
    scores = PrequentialScores(window=500)
    log_loss, accuracy, brier = metrics.LogLoss(), metrics.Accuracy(), metrics.MSE()
    for p, y in zip(ps, ys, strict=True):
        scores.update(p, y)
        log_loss.update(y, {True: p, False: 1 - p})
        accuracy.update(y, p > 0.5)
        brier.update(float(y), p)
    assert scores.log_loss() == pytest.approx(log_loss.get(), rel=1e-9)
    assert scores.accuracy() == pytest.approx(accuracy.get(), rel=1e-12)
    assert scores.brier() == pytest.approx(brier.get(), rel=1e-9)
    assert scores.roc_auc() == pytest.approx(exact_auc(ps, ys), abs=2e-3)
    assert scores.rolling_roc_auc() == pytest.approx(exact_auc(ps[-500:], ys[-500:]), abs=5e-3)
    assert scores.rolling_accuracy() == pytest.approx(
        np.mean([(p > 0.5) == y for p, y in zip(ps[-500:], ys[-500:], strict=True)])
    )
    tail_loss = -np.mean([math.log(p) if y else math.log(1 - p) for p, y in zip(ps[-500:], ys[-500:], strict=True)])
    assert scores.rolling_log_loss() == pytest.approx(tail_loss, rel=1e-6)


def test_binned_auc_is_exact_for_repeated_probabilities_and_reverts():
    auc = BinnedAUC()
    pairs = [(0.25, True), (0.25, False), (0.75, True), (0.75, False), (0.75, True)]
    for p, y in pairs:
        auc.update(p, y)
    assert auc.get() == pytest.approx(exact_auc([p for p, _ in pairs], [y for _, y in pairs]))
    for p, y in pairs[:4]:
        auc.revert(p, y)
    assert auc.get() is None  # one class left


def test_scores_pickle_and_continue(real_predictions):
    ps, ys = real_predictions
    a = PrequentialScores(window=300)
    for p, y in zip(ps[:1000], ys[:1000], strict=True):
        a.update(p, y)
    b = pickle.loads(pickle.dumps(a))
    for p, y in zip(ps[1000:], ys[1000:], strict=True):
        a.update(p, y)
        b.update(p, y)
    assert (a.log_loss(), a.roc_auc(), a.rolling_brier()) == (b.log_loss(), b.roc_auc(), b.rolling_brier())


@pytest.mark.parametrize("name", sorted(CATALOG))
def test_every_catalog_entry_builds_fresh_deterministic_picklable_models(btc_20k, name):
    e = entry(name)
    assert e.model_version == f"{name}:v{e.version}" and e.kind in ("model", "baseline")
    a, b = e.build(), e.build()
    xs = [model_inputs(v.values) for v in btc_20k[100:260]]
    closes = [v.values["bar_close"] for v in btc_20k[100:261]]
    for i, x in enumerate(xs):
        y = closes[i + 1] > closes[i]
        a.learn_one(x, y)
        b.learn_one(x, y)
    c = pickle.loads(pickle.dumps(a))
    probe = model_inputs(btc_20k[300].values)
    assert a.predict_proba_one(probe) == b.predict_proba_one(probe) == c.predict_proba_one(probe)


def test_unknown_baseline_rule_is_refused():
    with pytest.raises(ValueError, match="unknown baseline rule 'nope'"):
        FrequencyBaseline("nope")


def test_config_refuses_unknown_models_and_inconsistent_fallback():
    with pytest.raises(ValueError, match="unknown models"):
        ModelsConfig(models=("xgboost",))
    with pytest.raises(ValueError, match="needs a fallback"):
        ModelsConfig(drift_action="fallback")
    with pytest.raises(ValueError, match="must differ"):
        ModelsConfig(models=("logreg", "majority"), fallback="logreg")
    with pytest.raises(ValueError, match="extra"):
        ModelsConfig(horizon=5, dead_band=0.1)


# -- warm start ---------------------------------------------------------------------------------------


def feast_like_frame(vectors) -> pd.DataFrame:
    """What Feast's get_historical_features returns from PostgreSQL: naive UTC timestamps, NaN for missing."""
    frame = pd.DataFrame([v.as_row() for v in vectors])
    frame["event_timestamp"] = pd.to_datetime(frame["event_timestamp"]).dt.tz_convert(UTC).dt.tz_localize(None)
    return frame[["symbol", "event_timestamp", *FEATURE_NAMES]]


def test_warm_start_learns_the_same_labels_as_a_hand_loop_and_skips_other_symbols(btc_20k):
    h = 5
    train = btc_20k[:1500]
    other = feast_like_frame(btc_20k[5000:5300]).assign(symbol="binance:ETH/USDT")  # another instrument's rows
    frame = pd.concat([feast_like_frame(train), other]).sample(frac=1.0, random_state=7)
    cfg = ModelsConfig(models=("logreg", "majority"), horizon=h, dead_zone=0.0, dead_zone_policy="down")
    engine = InstrumentModels(KEY, cfg)
    assert warm_start(engine, frame) == len(train) - h
    ref = entry("logreg").build()
    closes = [v.values["bar_close"] for v in train]
    for i in range(len(train) - h):
        ref.learn_one(model_inputs(train[i].values), closes[i + h] > closes[i])
    probe = model_inputs(btc_20k[1600].values)
    assert engine.slots[0].model.predict_proba_one(probe) == pytest.approx(ref.predict_proba_one(probe), abs=1e-12)
    # The warm model goes live without errors and its first prediction is the warm one.
    (pred, _) = [o for o in engine.update(btc_20k[1600]) if isinstance(o, Prediction)]
    assert pred.p_up == pytest.approx(ref.predict_proba_one(probe)[True], abs=1e-12)


def test_warm_start_after_live_vectors_or_without_timestamps_is_refused(btc_20k):
    engine = InstrumentModels(KEY, ModelsConfig(models=("majority",)))
    with pytest.raises(ValueError, match="event_timestamp"):
        warm_start(engine, pd.DataFrame({"bar_close": [1.0]}))
    engine.update(btc_20k[0])
    with pytest.raises(ValueError, match="before its first live vector"):
        warm_start(engine, feast_like_frame(btc_20k[:10]))


# -- prequential scores on two weeks of real data -------------------------------------------------------


def test_prequential_scores_of_every_model_and_baseline_on_real_btc_are_computed_and_recorded(
    btc_20k, tmp_path, record_property
):
    """20,000 bars for the logistic pipeline and the baselines, 1,000 for the trees (they cost 0.4-2 ms
    a bar). The assertions are about the machinery, not about a hoped-for edge."""
    h = 5
    cfg = ModelsConfig(models=("logreg", "majority", "persistence", "ta_rule"), horizon=h, dead_zone=0.0005)
    fast = InstrumentModels(KEY, cfg)
    for v in btc_20k[:20_000]:
        fast.update(v)
    trees = InstrumentModels(KEY, cfg.model_copy(update={"models": ("hat", "arf", "majority")}))
    for v in btc_20k[:1000]:
        trees.update(v)
    table = [
        {"bars": bars, **asdict(r)}
        for bars, engine in ((20_000, fast), (1000, trees))
        for r in engine.scores(btc_20k[bars - 1].ts_event)
    ]
    for row in table:
        row["ts_event"] = row["ts_event"].isoformat()
    out = tmp_path / "prequential_btc_1m.json"
    out.write_text(json.dumps(table, indent=1))
    record_property("prequential_scores", json.dumps(table))
    by = {(row["bars"], row["model"]): row for row in table}
    labelled = by[(20_000, "majority")]["n_labels"]
    # Every model was scored on exactly the same labels, which the dead zone thinned.
    assert {row["n_labels"] for row in table if row["bars"] == 20_000} == {labelled}
    assert 0.5 * (20_000 - h) < labelled < 20_000 - h
    for row in table:
        assert all(row[f] is not None and math.isfinite(row[f]) for f in ("log_loss", "roc_auc", "accuracy", "brier"))
        assert 0.0 <= row["brier"] <= 1.0 and 0.0 <= row["roc_auc"] <= 1.0
    # The majority baseline's probability is the running share of ups: log loss near ln 2.
    assert abs(by[(20_000, "majority")]["log_loss"] - math.log(2)) < 0.02
