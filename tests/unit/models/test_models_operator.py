"""flows.models: run_models inside Bytewax (per key, recovery), refusals as dead letters, the
signals.v1 codec and the features.v1 decoding step."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from functools import partial

import bytewax.operators as op
import pytest
from bytewax.dataflow import Dataflow
from bytewax.recovery import RecoveryConfig, init_db_dir
from bytewax.testing import TestingSink, TestingSource, run_main

from core.clock import ManualClock
from core.deadletter import DeadLetter
from core.errors import WireFormatError
from core.events import Side
from core.orders import Signal
from features.schema import FeatureVector
from flows.dlq import Inbound
from flows.features import decode_feature_vector, encode_feature_vector
from flows.models import ModelsConfig, decode_signal, decode_vectors, default_strategies, encode_signal, run_models
from models.engine import InstrumentModels
from models.records import DriftEvent, Prediction, ScoreRecord
from models.strategy import EmaCrossRsi, ModelStrategy

CFG = ModelsConfig(models=("logreg", "majority", "ta_rule"), horizon=5, scores_every=200)
CLOCK_T = datetime(2026, 11, 25, tzinfo=UTC)


def strategies() -> list:
    return [EmaCrossRsi("paper"), ModelStrategy("paper", model="logreg")]


@pytest.fixture(scope="module")
def two_symbols(btc_20k, vectors) -> list[FeatureVector]:
    """1,200 bars of BTC and of ETH, interleaved by bar time as a features topic would carry them."""
    btc, eth = btc_20k[:1200], vectors("ETH", 1300)[:1200]
    return [v for pair in zip(btc, eth, strict=True) for v in pair]


def build(items: list, sinks: dict[str, list], config: ModelsConfig = CFG, batch_size: int = 300) -> Dataflow:
    flow = Dataflow("models_test")
    source = op.input("in", flow, TestingSource(items, batch_size=batch_size))
    keyed = op.map("key", source, lambda v: (v.key if isinstance(v, FeatureVector) else "binance:BTC/USDT", v))
    out = run_models("models", keyed, config, strategies, clock=ManualClock(CLOCK_T))
    for name in ("signals", "predictions", "scores", "drift", "rejects"):
        op.output(name, getattr(out, name), TestingSink(sinks.setdefault(name, [])))
    return flow


def direct(vectors: list[FeatureVector], config: ModelsConfig = CFG) -> dict[str, list]:
    engines: dict[str, InstrumentModels] = {}
    outs: dict[str, list] = {"signals": [], "predictions": [], "scores": [], "drift": []}
    kinds = {Signal: "signals", Prediction: "predictions", ScoreRecord: "scores", DriftEvent: "drift"}
    for v in vectors:
        engine = engines.setdefault(v.key, InstrumentModels(v.key, config, strategies()))
        for o in engine.update(v):
            outs[kinds[type(o)]].append(o)
    return outs


def per_key(records: list) -> dict[str, list]:
    out: dict[str, list] = {}
    for r in records:
        out.setdefault(r.key, []).append(r)
    return out


def test_operator_gives_per_key_exactly_what_the_engines_give(two_symbols):
    sinks: dict[str, list] = {}
    run_main(build(two_symbols, sinks))
    want = direct(two_symbols)
    for name in ("signals", "predictions", "scores", "drift"):
        assert per_key(sinks[name]) == per_key(want[name]), name
    assert sinks["rejects"] == []
    assert len(sinks["predictions"]) == 3 * len(two_symbols) and sinks["scores"] and sinks["signals"]


def test_abort_and_resume_from_the_snapshot_gives_the_uninterrupted_outputs(two_symbols, tmp_path):
    init_db_dir(tmp_path, 1)
    recovery = RecoveryConfig(str(tmp_path))
    half = len(two_symbols) // 2
    items = [*two_symbols[:half], TestingSource.ABORT(), *two_symbols[half:]]
    sinks: dict[str, list] = {}
    run_main(build(items, sinks), epoch_interval=timedelta(0), recovery_config=recovery)
    assert len(sinks["predictions"]) < 3 * len(two_symbols)
    run_main(build(items, sinks), epoch_interval=timedelta(0), recovery_config=recovery)
    want = direct(two_symbols)
    for name in ("signals", "predictions", "scores"):
        assert per_key(sinks[name]) == per_key(want[name]), name


def test_refused_vectors_become_dead_letters_citing_the_vector_and_the_flow_goes_on(two_symbols):
    bad_schema = FeatureVector(
        "binance:BTC/USDT", "1m", two_symbols[-2].ts_event + timedelta(minutes=1),
        two_symbols[-2].ts_event, dict(two_symbols[-2].values), schema_version=99,
    )  # fmt: skip
    items = [*two_symbols[:200], two_symbols[0], bad_schema, "garbage", *two_symbols[200:400]]
    sinks: dict[str, list] = {}
    run_main(build(items, sinks))
    letters = sinks["rejects"]
    assert [(d.stage, d.reason) for d in letters] == [
        ("models", "stale_vector"),
        ("models", "schema_version_mismatch"),
        ("models", "malformed_vector"),
    ]
    assert all(isinstance(d, DeadLetter) and d.ts_recv == CLOCK_T and d.key == b"binance:BTC/USDT" for d in letters)
    assert decode_feature_vector(letters[0].original) == two_symbols[0]
    assert letters[2].original == b"'garbage'"
    assert len(sinks["predictions"]) == 3 * 400


def test_no_models_means_only_strategies_and_no_predictions(two_symbols):
    sinks: dict[str, list] = {}
    run_main(build(two_symbols, sinks, ModelsConfig(models=())))
    assert sinks["predictions"] == [] and sinks["scores"] == []
    assert per_key(sinks["signals"]) == per_key(direct(two_symbols, ModelsConfig(models=()))["signals"])
    assert {s.strategy for s in sinks["signals"]} == {"ema_cross_rsi"}  # the fusion needs a prediction


def test_signal_wire_round_trip_on_real_signals(two_symbols):
    signals = direct(two_symbols)["signals"]
    assert signals
    assert [decode_signal(encode_signal(s)) for s in signals] == signals


@pytest.mark.parametrize(
    ("data", "reason"),
    [
        (b"not json", "malformed_signal"),
        (b"[1, 2]", "unknown_signal_wire"),
        (b'{"type": "trade", "v": 1}', "unknown_signal_wire"),
        (b'{"type": "signal", "v": 1}', "malformed_signal"),
        (
            b'{"type": "signal", "v": 1, "strategy": "s", "account": "a", "exchange": "e", "symbol": "X/Y", '
            b'"side": "hold", "strength": 1.0, "confidence": 1.0, "reasons": [], "model_version": "m", "ts_event": 0}',
            "malformed_signal",
        ),
        (
            b'{"type": "signal", "v": 1, "strategy": "s", "account": "a", "exchange": "e", "symbol": "X/Y", '
            b'"side": "buy", "strength": 2.0, "confidence": 1.0, "reasons": [], "model_version": "m", "ts_event": 0}',
            "malformed_signal",
        ),
        (
            b'{"type": "signal", "v": 1, "strategy": "s", "account": "a", "exchange": "e", "symbol": "X/Y", '
            b'"side": "buy", "strength": 1.0, "confidence": 1.0, "reasons": [3], "model_version": "m", "ts_event": 0}',
            "malformed_signal",
        ),
    ],
)
def test_decode_signal_refuses_anything_but_a_v1_signal(data, reason):
    with pytest.raises(WireFormatError) as info:
        decode_signal(data)
    assert info.value.reason == reason


def test_decode_vectors_keys_good_records_and_dead_letters_bad_ones(two_symbols):
    good = Inbound("features.v1", 0, 7, b"binance:BTC/USDT", encode_feature_vector(two_symbols[0]))
    bad = Inbound("features.v1", 1, 8, b"k", b'{"type": "feature_vector", "v": 9}')
    passed = DeadLetter("consume", "kafka_error", "x", b"", CLOCK_T)
    out = decode_vectors([good, bad, passed], ManualClock(CLOCK_T))
    assert out[0] == ("binance:BTC/USDT", two_symbols[0])
    assert isinstance(out[1], DeadLetter) and out[1].reason == "unknown_feature_wire" and out[1].source_offset == 8
    assert out[2] is passed


def test_default_strategies_are_fresh_per_call():
    factory = default_strategies("acct")
    a, b = factory(), factory()
    assert a[0] is not b[0] and [s.account for s in a] == ["acct", "acct"]
    assert isinstance(factory, partial)
    sig = Signal("s", "a", "binance", "BTC/USDT", Side.SELL, 0.5, 0.5, (), "m", CLOCK_T)
    assert decode_signal(encode_signal(sig)) == sig


def test_scores_and_drift_are_exported_as_prometheus_metrics_with_model_and_symbol_labels(two_symbols):
    from prometheus_client import REGISTRY

    sinks: dict[str, list] = {}
    run_main(build(two_symbols, sinks))
    last = {}
    for record in sinks["scores"]:
        last[(record.model, record.key)] = record
    for (model, key), record in last.items():
        labels = {"model": model, "symbol": key}
        assert REGISTRY.get_sample_value("bot4_model_log_loss", labels) == pytest.approx(record.log_loss)
        assert REGISTRY.get_sample_value("bot4_model_rolling_brier", labels) == pytest.approx(record.rolling_brier)
        assert REGISTRY.get_sample_value("bot4_model_labels", labels) == record.n_labels
        assert REGISTRY.get_sample_value("bot4_model_predictions_total", labels) >= len(two_symbols) // 2


def test_a_key_whose_first_item_is_not_a_vector_is_refused_until_a_real_vector_arrives(two_symbols):
    eth = [v for v in two_symbols if v.key == "binance:ETH/USDT"][:50]
    sinks: dict[str, list] = {}
    flow = Dataflow("models_first_garbage")
    source = op.input("in", flow, TestingSource([("binance:ETH/USDT", None), *((v.key, v) for v in eth)], batch_size=1))
    out = run_models("models", source, CFG, strategies, clock=ManualClock(CLOCK_T))
    op.output("rejects", out.rejects, TestingSink(sinks.setdefault("rejects", [])))
    op.output("predictions", out.predictions, TestingSink(sinks.setdefault("predictions", [])))
    run_main(flow)
    assert [(d.reason, d.key) for d in sinks["rejects"]] == [("malformed_vector", b"unknown")]
    assert len(sinks["predictions"]) == 3 * 50 and {p.key for p in sinks["predictions"]} == {"binance:ETH/USDT"}
