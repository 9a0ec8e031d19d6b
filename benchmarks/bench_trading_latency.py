"""Decision latency through Kafka (issue 7): from the candle that closes a bar being produced to
``md.candles.v1`` to the approved order it causes arriving on ``orders.v1``, on loopback.

The trading flow runs as its own process (``bot4 run``, paper mode, following the topics); this
script produces the bundled real Binance BTC/USDT 1m candles one by one at a steady pace (each
candle is a closed bar, as an exchange's candle stream delivers it), reads ``orders.v1``, and
matches every order to the candle that closed its bar (the order's intent time is that bar's end).
Latency = the order message's Kafka timestamp (set by the flow's producer) minus the wall time the
candle was produced; both clocks are this host's. Needs the local services (`make services-up`).

    .venv/bin/python benchmarks/bench_trading_latency.py [--candles 3000] [--interval-ms 5]
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import subprocess
import sys
import time
import uuid
from datetime import timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import orjson  # noqa: E402
import psycopg  # noqa: E402
from confluent_kafka import Consumer, TopicPartition  # noqa: E402
from confluent_kafka.admin import AdminClient, NewTopic  # noqa: E402

from core.clock import to_epoch_us  # noqa: E402
from core.wire import encode  # noqa: E402
from flows.kafka_io import CheckedProducer, producer_config  # noqa: E402
from flows.replay import read_events  # noqa: E402
from flows.settings import load_settings  # noqa: E402
from flows.storage.migrate import migrate  # noqa: E402

CANDLES = ROOT / "data" / "sample" / "binance-1m-2021" / "BTC_USDT-1m.json"
TOPICS = ("md.trades.v1", "md.book.v1", "md.candles.v1", "dlq.v1", "features.v1", "signals.v1",
          "risk.decisions.v1", "orders.v1", "fills.v1", "orders.shadow.v1")  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--candles", type=int, default=3000)
    parser.add_argument("--interval-ms", type=float, default=5.0)
    args = parser.parse_args()

    prefix = f"lat{uuid.uuid4().hex[:6]}."
    database = f"bot4_bench_{prefix.strip('.')}"
    base = load_settings()
    admin = AdminClient({"bootstrap.servers": base.kafka.bootstrap})
    names = [prefix + t for t in TOPICS]
    new = [NewTopic(n, num_partitions=3, replication_factor=1) for n in names]
    new.append(NewTopic(prefix + "control.commands.v1", num_partitions=1, replication_factor=1))
    for fut in admin.create_topics(new).values():
        fut.result(30)
    with psycopg.connect(base.postgres.conninfo(), autocommit=True) as conn:
        conn.execute(f"CREATE DATABASE {database}")
    settings = load_settings(kafka={"topic_prefix": prefix}, postgres={"dbname": database})
    migrate(settings.postgres.conninfo())
    env = dict(os.environ)
    env.update(
        {
            "BOT4_MODE": "paper",
            "BOT4_METRICS_PORT": "0",
            "BOT4_KAFKA__TOPIC_PREFIX": prefix,
            "BOT4_POSTGRES__DBNAME": database,
            "BOT4_TRADING__SYMBOLS": '["BTC/USDT"]',
            "BOT4_TRADING__BARS_FROM": "candles",
            "BOT4_TRADING__BATCH_SIZE": "100",
        }
    )
    flow = subprocess.Popen([sys.executable, "-m", "flows.cli", "run"], env=env, cwd=ROOT, stderr=subprocess.PIPE)
    consumer = Consumer({"bootstrap.servers": settings.kafka.bootstrap, "group.id": f"lat-{prefix}"})
    consumer.assign([TopicPartition(prefix + "orders.v1", p, 0) for p in range(3)])
    producer = CheckedProducer(producer_config(settings.kafka, **{"linger.ms": 0}))
    sent: dict[int, float] = {}
    latencies: list[float] = []
    try:
        time.sleep(8)  # the flow process starts (imports, Bytewax, consumers)
        events = [e for _, e in zip(range(args.candles), read_events(CANDLES), strict=False)]
        for event in events:
            sent[to_epoch_us(event.ts_event + timedelta(minutes=1))] = time.time()
            producer.produce(settings.kafka.topic("md.candles.v1"), event.key.encode(), encode(event))
            producer.flush()
            time.sleep(args.interval_ms / 1000)
            _collect(consumer, sent, latencies, 0.0)
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            _collect(consumer, sent, latencies, 0.5)
    finally:
        flow.terminate()
        flow.wait(30)
        consumer.close()
        for fut in admin.delete_topics([*names, prefix + "control.commands.v1"]).values():
            fut.result(30)
        with psycopg.connect(base.postgres.conninfo(), autocommit=True) as conn:
            conn.execute(f"DROP DATABASE IF EXISTS {database} WITH (FORCE)")
    latencies.sort()
    print(
        f"# {platform.node()}, {os.cpu_count()} cores, {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}, "
        f"{len(events)} candles every {args.interval_ms} ms"
    )
    if not latencies:
        print("no order was matched to a candle")
        return
    p99 = latencies[max(0, int(len(latencies) * 0.99) - 1)]
    print(
        f"orders {len(latencies)}: p50 {statistics.median(latencies) * 1000:.1f} ms, "
        f"p99 {p99 * 1000:.1f} ms, max {latencies[-1] * 1000:.1f} ms (target p99 <= 20 ms)"
    )


def _collect(consumer: Consumer, sent: dict[int, float], latencies: list[float], timeout: float) -> None:
    while True:
        message = consumer.poll(timeout)
        if message is None:
            return
        if message.error():
            continue
        record = orjson.loads(message.value() or b"{}")
        produced = sent.get(int(record["ts_event"]))
        if produced is None:
            continue
        _, ts_ms = message.timestamp()
        latencies.append(ts_ms / 1000 - produced)
        timeout = 0.0


if __name__ == "__main__":
    main()
