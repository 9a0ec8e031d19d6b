"""Features flow and feature store on the real services: the recorded BTC capture through Kafka and
the features flow equals a direct batch run of the engine; recovery resumes exactly; Feast online
and point-in-time historical reads on Redis + PostgreSQL and on the embedded SQLite + parquet."""

from __future__ import annotations

import heapq
import math
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pandas as pd
import psycopg
import pytest
from bytewax.recovery import RecoveryConfig, init_db_dir
from bytewax.testing import TestingSource, cluster_main, run_main
from confluent_kafka.admin import AdminClient, NewTopic
from typer.testing import CliRunner

from core.events import MarketEvent, Trade
from core.wire import encode, topic_for
from features.book import ResyncRequired
from features.engine import FeatureEngine
from features.schema import FEATURE_NAMES, FEATURES, FeatureVector
from flows.dlq import Inbound
from flows.feature_store import FeastConfig
from flows.features import ROW_COLUMNS, FeatureRowWriter, decode_feature_vector, features_flow
from flows.ingest import replay_flow
from flows.replay import read_events
from flows.storage.migrate import migrate

from .conftest import make_settings, read_topic

pytestmark = pytest.mark.integration

NO_PUSH = FeastConfig(push=False)


@pytest.fixture
def features_topic(topic_prefix: str, kafka_bootstrap: str) -> Iterator[str]:
    name = f"{topic_prefix}features.v1"
    admin = AdminClient({"bootstrap.servers": kafka_bootstrap})
    for fut in admin.create_topics([NewTopic(name, num_partitions=3, replication_factor=1)]).values():
        fut.result(30)
    try:
        yield name
    finally:
        for fut in admin.delete_topics([name]).values():
            fut.result(30)


@pytest.fixture
def feast_project() -> Iterator[str]:
    """A Feast project name of this test only; its keys are removed from the shared Redis after."""
    import redis

    project = f"t_{uuid.uuid4().hex[:10]}"
    yield project
    client = redis.Redis(host="127.0.0.1", port=26379)
    for key in client.scan_iter(match=f"*{project}".encode()):  # Feast keys end with the project
        client.delete(key)


def event_time_order(events: list[MarketEvent]) -> list[MarketEvent]:
    """What the flow's source does per instrument: merge trades and book events by event time."""
    trades = [e for e in events if isinstance(e, Trade)]
    others = [e for e in events if not isinstance(e, Trade)]
    return list(heapq.merge(trades, others, key=lambda e: e.ts_event))


def batch_run(events: list[MarketEvent]) -> tuple[list[FeatureVector], list]:
    engine = FeatureEngine("1m")
    outs = [o for e in event_time_order(events) for o in engine.update(e)]
    return [o for o in outs if isinstance(o, FeatureVector)], [o for o in outs if not isinstance(o, FeatureVector)]


def stored_vectors(conninfo: str) -> list[FeatureVector]:
    with psycopg.connect(conninfo) as conn:
        rows = conn.execute(f"SELECT {', '.join(ROW_COLUMNS)} FROM feature_rows ORDER BY symbol, event_timestamp")
        out = []
        for row in rows:
            record = dict(zip(ROW_COLUMNS, row, strict=True))
            values = {name: record[name] for name in FEATURE_NAMES}
            out.append(
                FeatureVector(
                    record["symbol"],
                    record["timeframe"],
                    record["event_timestamp"].astimezone(UTC),
                    record["bar_start"].astimezone(UTC),
                    values,
                    record["schema_version"],
                )
            )
        return out


def test_streaming_through_kafka_equals_the_batch_engine_and_feature_rows_hold_the_same_rows(
    btc_capture, topic_prefix, features_topic, pg_database, kafka_bootstrap, feast_project, tmp_path
):
    from flows.feature_store import apply, read_online

    settings = make_settings(topic_prefix, pg_database, tmp_path)
    migrate(settings.postgres.conninfo())
    run_main(replay_flow([btc_capture], settings=settings))
    recovery = tmp_path / "recovery"
    recovery.mkdir()
    init_db_dir(recovery, 1)
    feast = FeastConfig(env="dev", project=feast_project, registry_db=pg_database, push=True)
    store = apply(feast, settings)

    run_main(features_flow(settings, tail=False, feast=feast), recovery_config=RecoveryConfig(str(recovery)))

    want, rejects = batch_run(list(read_events(btc_capture)))
    assert len(want) >= 5
    got = sorted(
        (decode_feature_vector(v) for _, v in read_topic(kafka_bootstrap, features_topic)),
        key=lambda v: (v.key, v.ts_event),
    )
    assert got == want  # same bars, every value identical (book features included)
    assert stored_vectors(settings.postgres.conninfo()) == want
    dead = [r for r in rejects if not isinstance(r, ResyncRequired)]
    assert len(read_topic(kafka_bootstrap, f"{topic_prefix}dlq.v1")) == len(dead)
    # The flow pushed every vector to Redis: the online store holds the last bar's values.
    online = read_online(store, want[-1].key, want[-1].ts_event)
    assert online.event_timestamp == want[-1].ts_event
    assert online.values == dict(want[-1].values)

    # A second drain resumes from the recovery snapshot at the end of the topics: nothing new.
    run_main(features_flow(settings, tail=False, feast=feast), recovery_config=RecoveryConfig(str(recovery)))
    assert len(read_topic(kafka_bootstrap, features_topic)) == len(want)


def test_features_flow_killed_mid_stream_and_resumed_from_recovery_equals_an_uninterrupted_run(
    btc_capture, topic_prefix, features_topic, pg_database, tmp_path
):
    settings = make_settings(topic_prefix, pg_database, tmp_path)
    migrate(settings.postgres.conninfo())
    events = event_time_order(list(read_events(btc_capture)))
    records = [
        Inbound(topic_for(e), 0, i, e.key.encode(), encode(e)) for i, e in enumerate(events)
    ]  # what the Kafka source hands over, in the order it does
    half = len(records) // 2
    items = [*records[:half], TestingSource.ABORT(), *records[half:]]
    (tmp_path / "recovery").mkdir()
    init_db_dir(tmp_path / "recovery", 1)
    recovery = RecoveryConfig(str(tmp_path / "recovery"))

    def run() -> None:
        flow = features_flow(settings, feast=NO_PUSH, source=TestingSource(items, batch_size=500))
        run_main(flow, epoch_interval=timedelta(0), recovery_config=recovery)

    want, _ = batch_run(events)
    run()
    partial = stored_vectors(settings.postgres.conninfo())
    assert 0 < len(partial) < len(want)
    run()
    assert stored_vectors(settings.postgres.conninfo()) == want


def test_two_workers_give_per_instrument_the_same_vectors_as_one_engine(
    btc_capture, topic_prefix, features_topic, pg_database, tmp_path
):
    captures = [btc_capture, btc_capture.with_name("ethusdt_20240808.gz")]  # two keys to spread
    settings = make_settings(topic_prefix, pg_database, tmp_path)
    migrate(settings.postgres.conninfo())
    run_main(replay_flow(captures, settings=settings))
    cluster_main(features_flow(settings, tail=False, feast=NO_PUSH), [], 0, worker_count_per_proc=2)
    want = sorted(
        (v for path in captures for v in batch_run(list(read_events(path)))[0]), key=lambda v: (v.key, v.ts_event)
    )
    assert {v.key for v in want} == {"binance:BTC/USDT", "binance:ETH/USDT"}
    assert stored_vectors(settings.postgres.conninfo()) == want


# -- Feast --------------------------------------------------------------------------------------------

T0 = datetime(2024, 1, 1, 0, 10, tzinfo=UTC)
BTC = "binance:BTC/USDT"
ETH = "binance:ETH/USDT"


def crafted(symbol: str, ts: datetime, close: float) -> FeatureVector:
    values = {spec.name: None for spec in FEATURES}
    values.update(bar_close=close, bar_empty=False, bar_trade_count=int(close))
    return FeatureVector(symbol, "1m", ts, ts - timedelta(minutes=1), values)


#: Known writes: BTC at 00:10 (100) and 00:12 (101), and the next day at 00:00 (102).
TIMELINE = [
    crafted(BTC, T0, 100.0),
    crafted(BTC, T0 + timedelta(minutes=2), 101.0),
    crafted(BTC, datetime(2024, 1, 2, tzinfo=UTC), 102.0),
]
#: Entity rows before, at, between, after (inside the 5-minute TTL, on its edge, beyond it), next day.
EXPECTED = [
    (BTC, T0 - timedelta(minutes=1), None),
    (BTC, T0, 100.0),
    (BTC, T0 + timedelta(minutes=1), 100.0),
    (BTC, T0 + timedelta(minutes=2), 101.0),
    (BTC, T0 + timedelta(minutes=7), 101.0),
    (BTC, T0 + timedelta(minutes=8), None),
    (BTC, datetime(2024, 1, 2, 0, 0, 30, tzinfo=UTC), 102.0),
    (ETH, T0 + timedelta(minutes=1), None),
]


def assert_point_in_time(frame: pd.DataFrame) -> None:
    assert list(zip(frame["symbol"], frame["event_timestamp"], strict=True)) == [(s, t) for s, t, _ in EXPECTED]
    for (_, ts, close), got, count in zip(EXPECTED, frame["bar_close"], frame["bar_trade_count"], strict=True):
        if close is None:
            assert got is None or math.isnan(got), f"{ts}: expected no feature, got {got}"
            assert pd.isna(count)
        else:
            assert got == close, f"{ts}: expected {close}, got {got}"
            assert int(count) == int(close)


def check_store(config: FeastConfig, settings, write_history) -> None:
    from flows.feature_store import apply, push, read_history, read_online

    store = apply(config, settings)
    write_history(TIMELINE)
    push(store, TIMELINE[:2], config.env)

    online = read_online(store, BTC, T0 + timedelta(minutes=3))
    assert online.event_timestamp == T0 + timedelta(minutes=2)
    assert online.age == timedelta(minutes=1)
    assert online.values["bar_close"] == 101.0
    assert online.values["bar_trade_count"] == 101
    assert online.values["bar_empty"] is False
    assert online.values["rsi_14"] is None
    assert set(online.values) == set(FEATURE_NAMES)
    stale = read_online(store, BTC, T0 + timedelta(minutes=30))
    assert not stale.present and stale.age == timedelta(minutes=28) and stale.values == {}
    assert not read_online(store, "binance:XRP/ETH", T0).present  # never written

    entities = pd.DataFrame(
        {
            "symbol": [s for s, _, _ in EXPECTED],
            "event_timestamp": pd.to_datetime([t for _, t, _ in EXPECTED], utc=True),
        }
    )
    assert_point_in_time(read_history(store, entities))


def test_feast_on_redis_and_postgresql_online_and_point_in_time_history(pg_database, feast_project, tmp_path):
    settings = make_settings("unused.", pg_database, tmp_path)
    migrate(settings.postgres.conninfo())
    config = FeastConfig(env="dev", project=feast_project, registry_db=pg_database, push=True)
    writer = FeatureRowWriter(settings.postgres.conninfo())
    try:
        check_store(config, settings, writer.write)
        assert writer.write(TIMELINE) == 0  # a repeated write adds nothing
    finally:
        writer.close()


def test_feast_embedded_sqlite_and_parquet_and_the_cli(tmp_path, monkeypatch):
    from flows.cli import app
    from flows.feature_store import push

    settings = make_settings("unused.", "bot4", tmp_path)
    project = f"t_{uuid.uuid4().hex[:10]}"
    config = FeastConfig(env="local", project=project, data_dir=tmp_path / "feast", push=True)
    stores: list = []

    def write_history(vectors: list[FeatureVector]) -> None:
        # On the embedded store the history is the push source's parquet; check_store's own push
        # (ONLINE_AND_OFFLINE) appends the first two, this writes the next-day one offline only.
        from feast.data_source import PushMode

        from flows.feature_store import PUSH_SOURCE, open_store, vectors_frame

        stores.append(open_store(config, settings))
        stores[0].push(PUSH_SOURCE, vectors_frame(vectors[2:]), to=PushMode.OFFLINE)

    check_store(config, settings, write_history)

    # The CLI on the same store: a value written 30 s ago is current, the history is the same.
    for key, value in {"ENV": "local", "PROJECT": project, "DATA_DIR": str(tmp_path / "feast")}.items():
        monkeypatch.setenv(f"BOT4_FEAST_{key}", value)
    recent = crafted(BTC, datetime.now(UTC).replace(microsecond=0) - timedelta(seconds=30), 103.0)
    push(stores[0], [recent], "local")
    runner = CliRunner()
    result = runner.invoke(app, ["features", "online", "--symbol", BTC, "--json"])
    assert result.exit_code == 0, result.output
    assert '"bar_close": 103.0' in result.output
    assert runner.invoke(app, ["features", "online", "--symbol", ETH]).exit_code == 1

    out = tmp_path / "train.parquet"
    args = ["features", "history", "--symbols", BTC, "--start", "2024-01-01T00:09:00Z", "--end", "2024-01-01T00:18:00Z"]
    result = runner.invoke(app, [*args, "--every", "1m", "--out", str(out)])
    assert result.exit_code == 0, result.output
    frame = pd.read_parquet(out)
    closes = [None if pd.isna(c) else c for c in frame["bar_close"]]
    assert closes == [None, 100.0, 100.0, 101.0, 101.0, 101.0, 101.0, 101.0, 101.0, None]
    assert frame["event_timestamp"].iloc[0] == pd.Timestamp("2024-01-01T00:09:00Z")
