"""The per-instrument models engine on real BTC/USDT 1m vectors: delayed labels, no look-ahead,
snapshot/restore, odd values, refusals, drift and fallback, the quantile target."""

from __future__ import annotations

import itertools
import math
import pickle
from dataclasses import replace
from datetime import timedelta

import pytest
from river import linear_model, optim, preprocessing

from core.events import Side
from features.schema import FeatureVector
from models.config import ModelsConfig
from models.engine import InstrumentModels, RejectedVector
from models.inputs import model_inputs
from models.records import DriftEvent, Prediction, ScoreRecord
from models.strategy import EmaCrossRsi, ModelStrategy

KEY = "binance:BTC/USDT"
FAST = ("logreg", "majority", "persistence", "ta_rule")


def run(engine: InstrumentModels, vectors: list[FeatureVector]) -> list:
    return [o for v in vectors for o in engine.update(v)]


def predictions(outs: list) -> dict[tuple[str, object], float]:
    return {(o.model, o.ts_event): o.p_up for o in outs if isinstance(o, Prediction)}


def with_values(v: FeatureVector, **changes: object) -> FeatureVector:
    values = dict(v.values)
    values.update(changes)
    return replace(v, values=values)


def forward_returns(vectors: list[FeatureVector], h: int) -> list[float | None]:
    closes = [v.values["bar_close"] for v in vectors]
    out: list[float | None] = []
    for i, c in enumerate(closes):
        later = closes[i + h] if i + h < len(closes) else None
        out.append(None if c is None or later is None else later / c - 1.0)
    return out


def test_real_vectors_are_consecutive_minutes(btc_20k):
    steps = {(b.ts_event - a.ts_event) for a, b in itertools.pairwise(btc_20k)}
    assert steps == {timedelta(minutes=1)}


@pytest.mark.parametrize(
    ("models", "n", "cuts"), [(FAST, 2000, (400, 1000, 1800)), (("hat",), 1200, (700,)), (("arf",), 400, (250,))]
)
def test_altering_prices_after_t_leaves_every_prediction_at_or_before_t_unchanged(btc_20k, models, n, cuts):
    cfg = ModelsConfig(models=models, horizon=5, dead_zone=0.0005)
    vectors = btc_20k[:n]
    base = predictions(run(InstrumentModels(KEY, cfg), vectors))
    later_segment = btc_20k[n : 2 * n]  # a different real stretch of the same market
    for cut in cuts:
        t = vectors[cut].ts_event
        altered = vectors[: cut + 1] + [
            replace(v, values={**other.values, "bar_close": other.values["bar_close"] * 1.5})
            for v, other in zip(vectors[cut + 1 :], reversed(later_segment), strict=False)
        ]
        got = predictions(run(InstrumentModels(KEY, cfg), altered))
        before = {k: p for k, p in base.items() if k[1] <= t}
        assert before and {k: got[k] for k in before} == before
        assert any(got[k] != p for k, p in base.items() if k[1] > t), "the alteration changed nothing after t"


def test_a_label_is_learned_exactly_h_bars_later_and_matches_a_hand_written_river_loop(btc_20k):
    h = 7
    vectors = btc_20k[:1500]
    engine = InstrumentModels(KEY, ModelsConfig(models=("logreg",), horizon=h, dead_zone=0.0, dead_zone_policy="down"))
    ref = preprocessing.StandardScaler() | linear_model.LogisticRegression(optimizer=optim.SGD(0.01), l2=1e-4)
    xs: list[dict[str, float]] = []
    closes = [v.values["bar_close"] for v in vectors]
    for i, v in enumerate(vectors):
        (pred,) = [o for o in engine.update(v) if isinstance(o, Prediction)]
        assert engine.slots[0].scores.n == max(0, i - h + 1)  # bar j is learned at bar j + h, not before
        if i >= h:
            j = i - h
            ref.learn_one(xs[j], closes[i] / closes[j] - 1.0 > 0.0)
        x = model_inputs(v.values)
        xs.append(x)
        expected = ref.predict_proba_one(x).get(True, 0.5) if i >= h else 0.5
        assert pred.p_up == pytest.approx(expected, abs=1e-12)


def test_a_model_given_the_label_early_scores_far_better_so_the_delay_is_real(btc_20k):
    h = 5
    vectors = btc_20k[:5000]
    fwd = forward_returns(vectors, h)
    # The leak: each bar's return_1 replaced by its own forward return, i.e. the label known at t.
    leaked = [with_values(v, return_1=f, log_return_1=None) for v, f in zip(vectors, fwd, strict=True)]
    cfg = ModelsConfig(models=("logreg", "persistence", "majority"), horizon=h, dead_zone=0.0005)
    honest_engine, leaky_engine = InstrumentModels(KEY, cfg), InstrumentModels(KEY, cfg)
    run(honest_engine, vectors)
    run(leaky_engine, leaked)
    end = vectors[-1].ts_event
    honest = {r.model: r for r in honest_engine.scores(end)}
    leaky = {r.model: r for r in leaky_engine.scores(end)}
    for model in ("logreg", "persistence"):
        assert leaky[model].roc_auc > 0.9 and leaky[model].accuracy > 0.8
        assert leaky[model].log_loss < honest["majority"].log_loss - 0.2
        # Honest 1m direction prediction has no such edge; AUC this far from 0.5 would mean a leak.
        assert 0.4 < honest[model].roc_auc < 0.6
    assert leaky["majority"].log_loss == pytest.approx(honest["majority"].log_loss)  # it ignores features


def test_snapshot_and_restore_mid_stream_gives_identical_outputs_to_never_stopping(btc_20k):
    cfg = ModelsConfig(models=("logreg", "hat", "majority", "persistence", "ta_rule"), horizon=5, scores_every=100)
    vectors = btc_20k[:1200]

    def fresh() -> InstrumentModels:
        return InstrumentModels(KEY, cfg, [EmaCrossRsi("paper"), ModelStrategy("paper", model="logreg")])

    whole = run(fresh(), vectors)
    engine = fresh()
    outs = run(engine, vectors[:600])
    engine = pickle.loads(pickle.dumps(engine))
    outs += run(engine, vectors[600:900])
    engine = pickle.loads(pickle.dumps(engine))
    outs += run(engine, vectors[900:])
    assert outs == whole
    kinds = {type(o).__name__ for o in whole}
    assert {"Prediction", "ScoreRecord", "Signal"} <= kinds


def test_arf_restores_exactly(btc_20k):
    cfg = ModelsConfig(models=("arf",), horizon=3)
    vectors = btc_20k[:360]
    whole = run(InstrumentModels(KEY, cfg), vectors)
    engine = InstrumentModels(KEY, cfg)
    outs = run(engine, vectors[:200])
    outs += run(pickle.loads(pickle.dumps(engine)), vectors[200:])
    assert outs == whole


ODD_VARIANTS = {
    "all_none": lambda v: {k: None for k in v.values},
    "missing_half": lambda v: dict(list(v.values.items())[::2]),
    "empty": lambda v: {},
    "new_features": lambda v: {**v.values, "funding_rate_8h": 0.0001, "sentiment": 3},
    "nan": lambda v: {**v.values, "rsi_14": math.nan, "ema_20": math.nan, "return_1": math.nan},
    "inf": lambda v: {**v.values, "rsi_14": math.inf, "ema_20": -math.inf, "return_1": math.inf},
    "huge": lambda v: {**v.values, "atr_14": 1e300, "return_1": -1.0, "book_spread_bps": 1e308},
    "wrong_types": lambda v: {**v.values, "rsi_14": "55", "ema_20": True, "macd_12_26": [1.0]},
    "close_nan": lambda v: {**v.values, "bar_close": math.nan},
    "close_zero": lambda v: {**v.values, "bar_close": 0.0},
}


@pytest.mark.parametrize("model", ["logreg", "hat", "arf", "majority", "persistence", "ta_rule"])
def test_every_model_survives_missing_new_nan_inf_and_wrong_type_values(btc_20k, model):
    cfg = ModelsConfig(models=(model,), horizon=3)
    engine = InstrumentModels(KEY, cfg, [EmaCrossRsi("paper"), ModelStrategy("paper")])
    run(engine, btc_20k[: 150 if model == "arf" else 400])
    template = btc_20k[400]
    frozen = pickle.dumps(engine)
    got: dict[str, float] = {}
    for name, make in ODD_VARIANTS.items():
        copy = pickle.loads(frozen)
        outs = copy.update(replace(template, values=make(template)))
        (pred,) = [o for o in outs if isinstance(o, Prediction)]
        assert 0.0 <= pred.p_up <= 1.0, name
        assert not [o for o in outs if isinstance(o, RejectedVector)], name
        got[name] = pred.p_up
        run(copy, btc_20k[401:406])  # and it keeps going
    # Defined behaviour: a non-finite or wrongly typed value is the same as a missing one.
    for name, keys in (("nan", ("rsi_14", "ema_20", "return_1")), ("inf", ("rsi_14", "ema_20", "return_1"))):
        none_variant = {**template.values, **dict.fromkeys(keys)}
        copy = pickle.loads(frozen)
        (pred,) = [o for o in copy.update(replace(template, values=none_variant)) if isinstance(o, Prediction)]
        assert pred.p_up == got[name]
    assert got["new_features"] == pickle.loads(frozen).update(template)[0].p_up  # unknown names are ignored


def test_vector_of_another_schema_version_is_refused_with_a_reason_and_changes_nothing(btc_20k):
    cfg = ModelsConfig(models=FAST, horizon=3)
    engine, twin = InstrumentModels(KEY, cfg), InstrumentModels(KEY, cfg)
    run(engine, btc_20k[:100])
    run(twin, btc_20k[:100])
    (reject,) = engine.update(replace(btc_20k[100], schema_version=2))
    assert isinstance(reject, RejectedVector) and reject.reason == "schema_version_mismatch"
    assert "logreg:v1 was built for feature schema v1, got a vector of schema v2" in reject.detail
    assert run(engine, btc_20k[100:200]) == run(twin, btc_20k[100:200])


def test_restored_model_of_an_older_schema_refuses_current_vectors(btc_20k):
    engine = InstrumentModels(KEY, ModelsConfig(models=("logreg",)), schema_version=0)
    (reject,) = engine.update(btc_20k[0])
    assert reject.reason == "schema_version_mismatch"
    assert "built for feature schema v0, got a vector of schema v1" in reject.detail


def test_refusals_for_repeats_wrong_key_naive_time_bad_timeframe_and_non_vectors(btc_20k):
    engine = InstrumentModels(KEY, ModelsConfig(models=("logreg",)))
    v0, v1 = btc_20k[0], btc_20k[1]
    assert [type(o) for o in engine.update(v0)] == [Prediction]
    reasons = [
        engine.update(v0)[0].reason,
        engine.update(replace(v1, key="binance:ETH/USDT"))[0].reason,
        engine.update(replace(v1, ts_event=v1.ts_event.replace(tzinfo=None)))[0].reason,
        engine.update(replace(v1, timeframe="1x"))[0].reason,
        engine.update(replace(v1, values=None))[0].reason,  # type: ignore[arg-type]
        engine.update("not a vector")[0].reason,  # type: ignore[arg-type]
    ]
    assert reasons == [
        "stale_vector",
        "wrong_key",
        "naive_timestamp",
        "bad_timeframe",
        "malformed_vector",
        "malformed_vector",
    ]


def test_after_a_gap_the_label_comes_from_the_first_vector_after_the_horizon(btc_20k):
    h = 3
    vectors = btc_20k[:40]
    gapped = vectors[:10] + vectors[20:]  # bars 10..19 missing
    engine = InstrumentModels(
        KEY, ModelsConfig(models=("majority",), horizon=h, dead_zone=0.0, dead_zone_policy="down")
    )
    counts = []
    for v in gapped:
        engine.update(v)
        counts.append(engine.slots[0].scores.n)
    # bars 0..6 are labelled by bars 3..9; bars 7, 8, 9 (due at 10, 11, 12) wait for bar 20.
    assert counts[9] == 7 and counts[10] == 10


def test_empty_bar_labels_with_the_last_traded_close(btc_20k):
    vectors = btc_20k[:6]
    empty = with_values(vectors[3], bar_close=None, bar_low=None, bar_high=None, bar_empty=True)
    engine = InstrumentModels(
        KEY, ModelsConfig(models=("majority",), horizon=1, dead_zone=0.0, dead_zone_policy="down")
    )
    run(engine, [*vectors[:3], empty])
    assert engine.slots[0].scores.n == 3
    # bar 3's reference close is bar 2's, so bar 2's label is "not up" (no change).
    assert engine.slots[0].model.counts["all"][1] == 3


def test_dead_zone_skip_learns_nothing_from_small_moves(btc_20k):
    vectors = btc_20k[:2000]
    fwd = forward_returns(vectors, 5)
    engine = InstrumentModels(KEY, ModelsConfig(models=("majority",), horizon=5, dead_zone=0.001))
    run(engine, vectors)
    big = sum(1 for f in fwd[: len(vectors) - 5] if abs(f) > 0.001)
    assert engine.slots[0].scores.n == big and engine.labels_skipped == len(vectors) - 5 - big


def test_quantile_target_labels_about_the_top_share(btc_20k):
    engine = InstrumentModels(
        KEY, ModelsConfig(models=("majority",), target="quantile", quantile=0.8, horizon=5, drift_detector="none")
    )
    run(engine, btc_20k[:6000])
    up, n = engine.slots[0].model.counts["all"]
    assert n == 6000 - 5
    assert 0.15 < up / n < 0.25


def flipped(vectors: list[FeatureVector], h: int, flip_at: int) -> list[FeatureVector]:
    """Real vectors with return_1 replaced by the forward return, sign-flipped from ``flip_at`` on:
    a perfectly learnable relation that reverses, the textbook concept drift."""
    fwd = forward_returns(vectors, h)
    return [
        with_values(v, return_1=None if f is None else (f if i < flip_at else -f), log_return_1=None)
        for i, (v, f) in enumerate(zip(vectors, fwd, strict=True))
    ]


def test_drift_on_a_reversed_relation_emits_an_event_and_resets_the_model(btc_20k):
    vectors = flipped(btc_20k[:5000], 5, 2500)
    engine = InstrumentModels(KEY, ModelsConfig(models=("persistence",), horizon=5, drift_action="reset"))
    outs = run(engine, vectors)
    events = [o for o in outs if isinstance(o, DriftEvent)]
    flip_ts = vectors[2500].ts_event
    after = [e for e in events if e.ts_event > flip_ts]
    assert after and after[0].ts_event < flip_ts + timedelta(minutes=300)
    assert after[0].action == "reset" and engine.slots[0].resets >= 1
    # After the reset it relearns the reversed relation.
    assert engine.slots[0].scores.rolling_accuracy() > 0.8


def test_drift_with_fallback_routes_strategies_to_the_fallback_then_restores_the_primary(btc_20k):
    vectors = flipped(btc_20k[:5000], 5, 2500)
    cfg = ModelsConfig(
        models=("persistence", "majority"), fallback="majority", drift_action="fallback", fallback_min_labels=300,
        horizon=5,
    )  # fmt: skip
    seen: list[tuple[object, str | None]] = []

    class Recorder(ModelStrategy):
        def on_features(self, vector, prediction):
            seen.append((vector.ts_event, None if prediction is None else prediction.model))
            return super().on_features(vector, prediction)

    engine = InstrumentModels(KEY, cfg, [Recorder("paper")])
    outs = run(engine, vectors)
    events = [o for o in outs if isinstance(o, DriftEvent) and o.ts_event > vectors[2500].ts_event]
    actions = [e.action for e in events]
    assert actions[:2] == ["fallback", "restored"]
    switched, restored = events[0].ts_event, events[1].ts_event
    used = dict(seen)
    assert {used[v.ts_event] for v in vectors if switched < v.ts_event < restored} == {"majority"}
    assert used[vectors[-1].ts_event] == "persistence" and used[vectors[10].ts_event] == "persistence"


def test_no_models_runs_only_the_strategies(btc_20k):
    engine = InstrumentModels(KEY, ModelsConfig(models=()), [EmaCrossRsi("paper")])
    outs = run(engine, btc_20k[:3000])
    assert outs and all(o.side in (Side.BUY, Side.SELL) for o in outs)
    assert [o.side for o in outs][:2] == [Side.BUY, Side.SELL]


def test_score_records_come_every_n_labels_and_match_the_running_scores(btc_20k):
    cfg = ModelsConfig(models=("logreg", "majority"), horizon=5, scores_every=250, dead_zone=0.0005)
    engine = InstrumentModels(KEY, cfg)
    outs = run(engine, btc_20k[:3000])
    records = [o for o in outs if isinstance(o, ScoreRecord)]
    assert {r.n_labels % 250 for r in records} == {0}
    last = max((r for r in records if r.model == "logreg"), key=lambda r: r.n_labels)
    assert last.window == 1000 and all(
        getattr(last, f) is not None for f in ("log_loss", "roc_auc", "accuracy", "brier", "rolling_roc_auc")
    )


@pytest.mark.parametrize(("detector", "action"), [("page_hinkley", "none"), ("adwin", "none")])
def test_page_hinkley_and_report_only_drift_leave_the_model_running(btc_20k, detector, action):
    vectors = flipped(btc_20k[:4000], 5, 2000)
    cfg = ModelsConfig(models=("persistence",), horizon=5, drift_detector=detector, drift_action=action)
    engine = InstrumentModels(KEY, cfg)
    events = [o for o in run(engine, vectors) if isinstance(o, DriftEvent)]
    after = [e for e in events if e.ts_event > vectors[2000].ts_event]
    assert after and after[0].detector == detector and after[0].action == "none"
    assert engine.slots[0].resets == 0
