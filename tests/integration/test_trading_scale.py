"""The trading flow on two Bytewax workers gives the same vectors and signals per instrument, and
the same decisions, orders and fills, as on one (DESIGN: "a run on N workers gives the same
per-key outputs as a run on one").

The bundled real Binance 1m candles of BTC/USDT and ETH/USDT are replayed into Kafka (three
partitions per topic, so the two instruments can land on different workers); the flow is drained
once on one worker and once on two. What is keyed by instrument (features, strategies) must be
identical. The account takes both instruments' records in event-time order
(flows/event_merge.py), so its decisions do not depend on how the workers interleave them: the
orders and fills are identical too.
"""

from __future__ import annotations

import os
from collections.abc import Iterator

import orjson
import psycopg
import pytest
from bytewax.testing import cluster_main, run_main
from confluent_kafka.admin import AdminClient, NewTopic

from flows.control import CONTROL_TOPIC
from flows.demo import TRADING_FILES
from flows.ingest import replay_flow
from flows.models import decode_signal
from flows.settings import load_settings
from flows.storage.migrate import migrate
from flows.trading_run import trading_flow
from tests.integration.conftest import read_topic

pytestmark = [
    pytest.mark.integration,
    pytest.mark.chaos,
    # Scale-out scenarios (a minute or more here) run with the chaos suite: `make chaos`.
    pytest.mark.skipif(os.environ.get("BOT4_CHAOS_FULL") != "1", reason="make chaos only (BOT4_CHAOS_FULL=1)"),
]

OUT_TOPICS = ("features.v1", "signals.v1", "risk.decisions.v1", "orders.v1", "fills.v1", "orders.shadow.v1")


def _topics(admin: AdminClient, prefix: str) -> list[str]:
    names = [f"{prefix}{t}" for t in OUT_TOPICS]
    new = [NewTopic(n, num_partitions=3, replication_factor=1) for n in names]
    new.append(NewTopic(f"{prefix}{CONTROL_TOPIC}", num_partitions=1, replication_factor=1))
    for fut in admin.create_topics(new).values():
        fut.result(30)
    return [*names, f"{prefix}{CONTROL_TOPIC}"]


@pytest.fixture
def replayed(topic_prefix: str, kafka_bootstrap: str) -> Iterator[AdminClient]:
    admin = AdminClient({"bootstrap.servers": kafka_bootstrap})
    run_main(replay_flow(list(TRADING_FILES), settings=load_settings(kafka={"topic_prefix": topic_prefix})))
    yield admin


def _run(prefix: str, md_prefix: str, database: str, workers: int, bootstrap: str, admin: AdminClient) -> dict:
    """Drain the flow reading ``md_prefix``'s market data and writing to ``prefix``'s topics."""
    names = _topics(admin, prefix)
    try:
        settings = load_settings(
            mode="paper",
            metrics_port=0,
            kafka={"topic_prefix": prefix},
            postgres={"dbname": database},
            trading={"symbols": ["BTC/USDT", "ETH/USDT"], "bars_from": "candles", "timeframe": "1m"},
        )
        migrate(settings.postgres.conninfo())
        # The market data lives under the replay's prefix: point the source there by prefix swap.
        md = load_settings(kafka={"topic_prefix": md_prefix}).kafka
        from flows.aligned_source import AlignedKafkaSource
        from flows.features import CANDLE_TOPICS

        source = AlignedKafkaSource(md, [md.topic(t) for t in CANDLE_TOPICS], tail=False, batch_size=100)
        flow = trading_flow(settings, tail=False, source=source)
        if workers == 1:
            run_main(flow)
        else:
            cluster_main(flow, [], 0, worker_count_per_proc=workers)
        vectors = sorted(
            (orjson.loads(v)["symbol"], orjson.loads(v)["event_timestamp"], v)
            for _, v in read_topic(bootstrap, f"{prefix}features.v1")
            if v
        )
        signals = sorted(
            (s.key, s.ts_event, s.side.value, s.strategy)
            for s in (decode_signal(v) for _, v in read_topic(bootstrap, f"{prefix}signals.v1") if v)
        )
        decisions = [orjson.loads(v) for _, v in read_topic(bootstrap, f"{prefix}risk.decisions.v1") if v]
        orders = sorted(v for _, v in read_topic(bootstrap, f"{prefix}orders.v1") if v)
        fills = sorted(
            v for _, v in read_topic(bootstrap, f"{prefix}fills.v1") if v and orjson.loads(v)["type"] == "fill"
        )
        return {"vectors": vectors, "signals": signals, "decisions": decisions, "orders": orders, "fills": fills}
    finally:
        for fut in admin.delete_topics(names).values():
            fut.result(30)


def test_two_workers_give_the_same_vectors_and_signals_per_instrument_as_one(
    replayed, topic_prefix, kafka_bootstrap, pg_admin_conninfo
):
    databases = [f"bot4_scale_{topic_prefix.strip('.')}_{n}" for n in (1, 2)]
    with psycopg.connect(pg_admin_conninfo, autocommit=True) as conn:
        for name in databases:
            conn.execute(f"CREATE DATABASE {name}")
    try:
        one = _run(f"{topic_prefix}w1.", topic_prefix, databases[0], 1, kafka_bootstrap, replayed)
        two = _run(f"{topic_prefix}w2.", topic_prefix, databases[1], 2, kafka_bootstrap, replayed)
    finally:
        with psycopg.connect(pg_admin_conninfo, autocommit=True) as conn:
            for name in databases:
                conn.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")
    assert {v[0] for v in one["vectors"]} == {"binance:BTC/USDT", "binance:ETH/USDT"}
    assert [v[2] for v in two["vectors"]] == [v[2] for v in one["vectors"]]
    assert two["signals"] == one["signals"] and len(one["signals"]) > 50
    for run in (one, two):
        judged = [d for d in run["decisions"] if d["kind"] in ("approved", "denied")]
        assert len(judged) == len(run["signals"])
    assert len(one["orders"]) > 20 and one["fills"]
    assert two["orders"] == one["orders"]  # byte for byte: the same decisions at the same times
    assert two["fills"] == one["fills"]
    assert sorted(orjson.dumps(d) for d in two["decisions"]) == sorted(orjson.dumps(d) for d in one["decisions"])
