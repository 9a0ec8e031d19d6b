"""Models flow on the real services: real BTC and ETH feature vectors on features.v1 (Kafka) through
models_flow give on signals.v1 exactly the engine's signals, scores and drift events in PostgreSQL
(sql/0006), refusals on dlq.v1; a second drain from recovery adds nothing."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path

import psycopg
import pytest
from bytewax.recovery import RecoveryConfig, init_db_dir
from bytewax.testing import run_main
from confluent_kafka import Producer
from confluent_kafka.admin import AdminClient, NewTopic

from core.clock import from_epoch_ms
from core.deadletter import decode_dead_letter
from core.events import Candle
from features.engine import FeatureEngine
from features.schema import FeatureVector
from flows.features import encode_feature_vector
from flows.models import ModelsConfig, decode_signal, default_strategies, models_flow
from flows.storage.migrate import migrate
from models.engine import InstrumentModels
from models.records import DriftEvent, ScoreRecord

from .conftest import make_settings, read_topic

pytestmark = pytest.mark.integration

CONFIG = ModelsConfig(models=("logreg", "majority", "persistence"), horizon=5, scores_every=200)
BARS = 1500


def real_vectors(shared: Path, symbol: str) -> list[FeatureVector]:
    rows = json.loads((shared / "candles" / "binance-1m-2021" / f"{symbol}_USDT-1m.json").read_text())[:BARS]
    engine = FeatureEngine("1m", bars_from="candles")
    out: list[FeatureVector] = []
    for ts_ms, *ohlcv in rows:
        ts = from_epoch_ms(int(ts_ms))
        o, h, low, c, v = (Decimal(repr(float(x))) for x in ohlcv)
        out.extend(x for x in engine.update(Candle("binance", f"{symbol}/USDT", "1m", o, h, low, c, v, ts, ts)))
    return [x for x in out if isinstance(x, FeatureVector)]


@pytest.fixture
def model_topics(topic_prefix: str, kafka_bootstrap: str) -> Iterator[tuple[str, str]]:
    names = [f"{topic_prefix}features.v1", f"{topic_prefix}signals.v1"]
    admin = AdminClient({"bootstrap.servers": kafka_bootstrap})
    for fut in admin.create_topics([NewTopic(n, num_partitions=3, replication_factor=1) for n in names]).values():
        fut.result(30)
    try:
        yield names[0], names[1]
    finally:
        for fut in admin.delete_topics(names).values():
            fut.result(30)


def test_models_flow_from_kafka_to_signals_scores_and_dead_letters(
    shared_data, topic_prefix, model_topics, kafka_bootstrap, pg_database, tmp_path
):
    features_topic, signals_topic = model_topics
    settings = make_settings(topic_prefix, pg_database, tmp_path)
    migrate(settings.postgres.conninfo())
    vectors = {s: real_vectors(shared_data, s) for s in ("BTC", "ETH")}
    producer = Producer({"bootstrap.servers": kafka_bootstrap})
    for symbol_vectors in vectors.values():
        for v in symbol_vectors:
            producer.produce(features_topic, key=v.key.encode(), value=encode_feature_vector(v))
    producer.produce(features_topic, key=b"binance:BTC/USDT", value=b'{"type": "feature_vector", "v": 1}')
    producer.produce(features_topic, key=b"binance:ETH/USDT", value=encode_feature_vector(vectors["ETH"][3]))
    assert producer.flush(30) == 0

    recovery = tmp_path / "recovery"
    recovery.mkdir()
    init_db_dir(recovery, 1)
    factory = default_strategies("paper")
    for _ in range(2):  # the second drain resumes at the end: nothing new anywhere
        flow = models_flow(settings, config=CONFIG, strategies_factory=factory, tail=False)
        run_main(flow, epoch_interval=timedelta(seconds=1), recovery_config=RecoveryConfig(str(recovery)))

    want_signals, want_scores, want_drift = [], [], []
    for symbol_vectors in vectors.values():
        engine = InstrumentModels(symbol_vectors[0].key, CONFIG, factory())
        for v in symbol_vectors:
            for o in engine.update(v):
                if isinstance(o, ScoreRecord):
                    want_scores.append(o)
                elif isinstance(o, DriftEvent):
                    want_drift.append(o)
                elif not hasattr(o, "p_up"):
                    want_signals.append(o)

    got_signals = [decode_signal(value) for _, value in read_topic(kafka_bootstrap, signals_topic)]
    key = lambda s: (s.key, s.ts_event, s.strategy)  # noqa: E731
    assert sorted(got_signals, key=key) == sorted(want_signals, key=key)
    assert {s.strategy for s in got_signals} == {"ema_cross_rsi", "model_fusion"}

    letters = [decode_dead_letter(value) for _, value in read_topic(kafka_bootstrap, f"{topic_prefix}dlq.v1")]
    assert sorted((d.stage, d.reason) for d in letters) == [
        ("models", "malformed_feature_vector"),
        ("models", "stale_vector"),
    ]

    with psycopg.connect(settings.postgres.conninfo()) as conn:
        rows = conn.execute(
            "SELECT model, model_version, symbol, ts_event, n_labels, log_loss, roc_auc, accuracy, brier, "
            "rolling_log_loss FROM model_scores ORDER BY symbol, model, n_labels"
        ).fetchall()
        drift_rows = conn.execute("SELECT count(*) FROM model_drift_events").fetchone()
    want_rows = sorted(
        (
            (r.model, r.model_version, r.key, r.ts_event, r.n_labels, r.log_loss, r.roc_auc, r.accuracy, r.brier,
             r.rolling_log_loss)
            for r in want_scores
        ),
        key=lambda r: (r[2], r[0], r[4]),
    )  # fmt: skip
    assert len(rows) == len(want_rows) > 0
    for got, want in zip(rows, want_rows, strict=True):
        assert got[:5] == want[:5]
        assert got[5:] == pytest.approx(want[5:], rel=1e-12)
        assert got[3].tzinfo is not None and got[3] > datetime(2021, 4, 1, tzinfo=UTC)
    assert drift_rows == (len(want_drift),)
