"""Ingestion throughput: replay -> Kafka and Kafka -> PostgreSQL, each against a bare
confluent-kafka loop on the same data in the same run (the machine is shared and noisy, so the
ratio is what carries over).

Data: every real trade in ../shared/data that has a unique (exchange, symbol, id): the Binance
spot and USD-M captures, the Tardis futures trades, the nautilus parquet trades and the freqtrade
XRP/ETH trades. Needs the services of `make services-up`. Prints a JSON result and, with
``--record``, appends a dated section to docs/benchmarks.md.

    .venv/bin/python benchmarks/bench_ingest.py [--repeat 3] [--record]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path

import psycopg
from bytewax.testing import TestingSource, run_main
from confluent_kafka import Consumer, Producer, TopicPartition
from confluent_kafka.admin import AdminClient, NewTopic

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from core.events import Trade  # noqa: E402
from core.wire import encode  # noqa: E402
from flows.ingest import to_kafka  # noqa: E402
from flows.replay import read_events  # noqa: E402
from flows.settings import KafkaSettings, PostgresSettings, QualitySettings, load_settings  # noqa: E402
from flows.storage.migrate import migrate  # noqa: E402
from flows.store import store_flow  # noqa: E402

DATA = Path(os.environ.get("BOT4_SHARED_DATA", ROOT.parent / "shared" / "data"))
TRADE_FILES = [
    "ticks/binance-spot-ws/btcusdt_20240808.gz",
    "ticks/binance-spot-ws/btcusdt_20240809.gz",
    "ticks/binance-spot-ws/ethusdt_20240808.gz",
    "ticks/binance-spot-ws/ethusdt_20240809.gz",
    "ticks/binance-usdm-ws/btcusdt_20240808.gz",
    "ticks/tardis-binance-futures/trades.csv",
    "ticks/binance-spot-2021/btcusdt-trades.parquet",
    "ticks/freqtrade-xrp-eth/XRP_ETH-trades.feather",
]


def load_trades() -> tuple[list[Trade], float]:
    started = time.perf_counter()
    seen: set[tuple[str, str, str]] = set()
    trades: list[Trade] = []
    for rel in TRADE_FILES:
        for event in read_events(DATA / rel):
            if isinstance(event, Trade) and (event.exchange, event.symbol, event.trade_id) not in seen:
                seen.add((event.exchange, event.symbol, event.trade_id))
                trades.append(event)
    # Files of one instrument come from different years: order by event time so the per-key
    # ordering contract sees the history as an exchange would have sent it.
    trades.sort(key=lambda t: t.ts_event)
    return trades, time.perf_counter() - started


def create_topics(bootstrap: str, names: list[str], partitions: int = 6) -> None:
    admin = AdminClient({"bootstrap.servers": bootstrap})
    for fut in admin.create_topics([NewTopic(n, partitions, 1) for n in names]).values():
        fut.result(30)


def delete_topics(bootstrap: str, names: list[str]) -> None:
    admin = AdminClient({"bootstrap.servers": bootstrap})
    for fut in admin.delete_topics(names).values():
        fut.result(30)


def bare_produce(bootstrap: str, topic: str, messages: list[tuple[bytes, bytes]]) -> float:
    """Baseline: the same bytes through a bare idempotent producer, as fast as it goes."""
    producer = Producer(
        {
            "bootstrap.servers": bootstrap,
            "enable.idempotence": True,
            "acks": "all",
            "linger.ms": 20,
            "compression.type": "lz4",
            "queue.buffering.max.messages": 1_000_000,
        }
    )
    started = time.perf_counter()
    for key, value in messages:
        while True:
            try:
                producer.produce(topic, value=value, key=key)
                break
            except BufferError:
                producer.poll(0.05)
    assert producer.flush(60) == 0
    return time.perf_counter() - started


def bare_consume(bootstrap: str, topic: str, expected: int) -> tuple[float, float]:
    """Baseline: read every message of ``topic`` back with a bare consumer.

    Returns (total seconds, seconds from the first message to the last): the second leaves out
    the fixed cost of connecting and the first fetch, which dominates a run this short.
    """
    consumer = Consumer(
        {"bootstrap.servers": bootstrap, "group.id": f"bench-{uuid.uuid4().hex}", "enable.auto.commit": False}
    )
    meta = consumer.list_topics(topic, timeout=10).topics[topic]
    consumer.assign([TopicPartition(topic, p, 0) for p in meta.partitions])
    started = time.perf_counter()
    first: float | None = None
    got = 0
    while got < expected:
        for msg in consumer.consume(10_000, 1.0):
            if not msg.error():
                if first is None:
                    first = time.perf_counter()
                got += 1
    ended = time.perf_counter()
    consumer.close()
    return ended - started, ended - (first or started)


def bot4_produce(settings, trades: list[Trade]) -> float:
    """Bot4's ingest path from parsed events: wire encoding + Bytewax + checked idempotent sink."""
    import bytewax.operators as op
    from bytewax.dataflow import Dataflow

    flow = Dataflow("bench_ingest")
    events = op.input("events", flow, TestingSource([(t.key, t) for t in trades], batch_size=1000))
    to_kafka(events, settings)
    started = time.perf_counter()
    run_main(flow)
    return time.perf_counter() - started


def bot4_store(settings, topics: list[str] | None = None) -> float:
    started = time.perf_counter()
    run_main(store_flow(settings, tail=False, topics=topics))
    return time.perf_counter() - started


def run_once(trades: list[Trade]) -> dict[str, float]:
    base = load_settings()
    bootstrap = base.kafka.bootstrap
    prefix = f"bench{uuid.uuid4().hex[:6]}."
    db = f"bot4_bench_{uuid.uuid4().hex[:8]}"
    names = [f"{prefix}{t}" for t in ("md.trades.v1", "md.book.v1", "md.candles.v1", "dlq.v1", "baseline")]
    empty = [f"{prefix}empty.{t}" for t in ("md.trades.v1", "md.book.v1", "md.candles.v1")]
    names += empty
    create_topics(bootstrap, names)
    admin_conn = base.postgres.conninfo()
    with psycopg.connect(admin_conn, autocommit=True) as conn:
        conn.execute(f"CREATE DATABASE {db}")
    try:
        settings = load_settings(
            kafka=KafkaSettings(bootstrap=bootstrap, topic_prefix=prefix),
            postgres=PostgresSettings(dbname=db),
            quality=QualitySettings(known_symbols=()),
        )
        migrate(settings.postgres.conninfo())
        messages = [(t.key.encode(), encode(t)) for t in trades]
        n = len(trades)
        t_bare_p = bare_produce(bootstrap, f"{prefix}baseline", messages)
        t_bare_c, t_bare_c_steady = bare_consume(bootstrap, f"{prefix}baseline", n)
        t_bot_p = bot4_produce(settings, trades)
        t_bot_start = bot4_store(settings, empty)  # the flow's fixed start-up and drain-end cost
        t_bot_s = bot4_store(settings)
        with psycopg.connect(settings.postgres.conninfo()) as conn:
            stored = conn.execute("SELECT count(*) FROM md_trades").fetchone()[0]
        assert stored == n, f"stored {stored} of {n} trades"
        return {
            "bare_produce_per_s": n / t_bare_p,
            "bot4_into_kafka_per_s": n / t_bot_p,
            "bare_consume_per_s": n / t_bare_c,
            "bot4_into_postgres_per_s": n / t_bot_s,
            "bare_consume_steady_per_s": n / t_bare_c_steady,
            "bot4_into_postgres_steady_per_s": n / max(t_bot_s - t_bot_start, 1e-9),
            "bot4_store_startup_s": t_bot_start,
        }
    finally:
        with psycopg.connect(admin_conn, autocommit=True) as conn:
            conn.execute(f"DROP DATABASE IF EXISTS {db} WITH (FORCE)")
        delete_topics(bootstrap, names)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--record", action="store_true", help="append the result to docs/benchmarks.md")
    args = parser.parse_args()
    trades, parse_s = load_trades()
    runs = [run_once(trades) for _ in range(args.repeat)]
    med = {k: statistics.median(r[k] for r in runs) for k in runs[0]}
    result = {
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "machine": f"{platform.node()} {platform.machine()} {os.cpu_count()} cores, Python {platform.python_version()}",
        "load_average_1m": round(os.getloadavg()[0], 2),
        "trades": len(trades),
        "parse_files_per_s": round(len(trades) / parse_s),
        "repeats": args.repeat,
        **{k: (round(v, 2) if k.endswith("_s") and not k.endswith("per_s") else round(v)) for k, v in med.items()},
        "into_kafka_vs_bare": round(med["bot4_into_kafka_per_s"] / med["bare_produce_per_s"], 3),
        "into_postgres_vs_bare_consume": round(med["bot4_into_postgres_per_s"] / med["bare_consume_per_s"], 3),
        "into_postgres_steady_vs_bare": round(
            med["bot4_into_postgres_steady_per_s"] / med["bare_consume_steady_per_s"], 3
        ),
    }
    print(json.dumps(result, indent=2))
    if args.record:
        record(result)
    return 0


def record(r: dict) -> None:
    doc = ROOT / "docs" / "benchmarks.md"
    rows = [
        (
            "Bot4 ingest into Kafka (encode + Bytewax + checked idempotent sink)",
            r["bot4_into_kafka_per_s"],
            f"bare idempotent produce loop: {r['bare_produce_per_s']:,}/s",
            r["into_kafka_vs_bare"],
            ">= 50,000",
        ),
        (
            "Bot4 storage flow Kafka -> PostgreSQL (decode + contracts + COPY/ON CONFLICT)",
            r["bot4_into_postgres_per_s"],
            f"bare consume loop: {r['bare_consume_per_s']:,}/s",
            r["into_postgres_vs_bare_consume"],
            ">= 30,000",
        ),
        (
            "the same, steady state (start-up of the flow, measured on empty topics, left out; "
            f"{r['bot4_store_startup_s']:.2f} s)",
            r["bot4_into_postgres_steady_per_s"],
            f"bare consume loop from its first message: {r['bare_consume_steady_per_s']:,}/s",
            r["into_postgres_steady_vs_bare"],
            ">= 30,000",
        ),
        ("parsing the recorded files (all event types read, trades kept)", r["parse_files_per_s"], "", "", ""),
    ]
    table = "\n".join(f"| {a} | {b:,} | {c} | {d} | {e} |" for a, b, c, d, e in rows)
    section = (
        f"\n## Ingestion throughput, {r['date'][:10]}\n\n"
        f"Machine: {r['machine']}, load average {r['load_average_1m']} at the end. "
        "Command: `.venv/bin/python benchmarks/bench_ingest.py "
        f"--repeat {r['repeats']} --record` (median of {r['repeats']} runs; {r['trades']:,} real trades from "
        "shared/data, unique by exchange, symbol, id).\n\n"
        "| path | trades/s | baseline in the same run | ratio | target |\n|---|---:|---|---:|---:|\n"
        f"{table}\n"
    )
    with doc.open("a") as fh:
        fh.write(section)


if __name__ == "__main__":
    sys.exit(main())
