"""Soak run of the trading flow (issue 10): the flow as its own process (``bot4 run``, paper mode,
following the topics) fed a month of real Binance BTC/USDT 1m candles at scaled real time for
``--minutes`` (default 30), while its memory, open files and threads are sampled every
``--every`` seconds. They must stay flat: no growth from the warm window to the end.

    .venv/bin/python benchmarks/bench_soak.py [--minutes 30] [--rate 25] [--every 10]

``--rate`` is bars per second (25: a 1m candle every 40 ms, 1,500x real time). Needs the local
services (``make services-up``). Prints a table of samples and a verdict; writes the samples as
JSON to ``out/bench/soak-<time>.json``.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import threading
import time
import uuid
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import psutil  # noqa: E402
import psycopg  # noqa: E402
from confluent_kafka.admin import AdminClient, NewTopic  # noqa: E402

from core.events import Candle  # noqa: E402
from core.wire import encode  # noqa: E402
from flows.kafka_io import CheckedProducer, producer_config  # noqa: E402
from flows.replay import read_events  # noqa: E402
from flows.settings import load_settings  # noqa: E402
from flows.storage.migrate import migrate  # noqa: E402

SHARED = Path(os.environ.get("BOT4_SHARED_DATA", ROOT.parent / "shared" / "data"))
CANDLES = SHARED / "candles" / "binance-1m-2021" / "BTC_USDT-1m.json"
TOPICS = ("md.trades.v1", "md.book.v1", "md.candles.v1", "dlq.v1", "features.v1", "signals.v1",
          "risk.decisions.v1", "orders.v1", "fills.v1", "orders.shadow.v1", "control.commands.v1")  # fmt: skip


def sample(proc: psutil.Process, conninfo: str) -> dict[str, float]:
    with proc.oneshot():
        rss = proc.memory_info().rss
        fds = proc.num_fds()
        threads = proc.num_threads()
    with psycopg.connect(conninfo) as conn:
        rows = conn.execute("SELECT count(*) FROM equity").fetchone()[0]  # type: ignore[index]
    return {"t": time.monotonic(), "rss_mb": rss / 2**20, "fds": fds, "threads": threads, "bars_stored": rows}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--minutes", type=float, default=30.0)
    parser.add_argument("--rate", type=float, default=25.0, help="bars per second")
    parser.add_argument("--every", type=float, default=10.0, help="seconds between samples")
    args = parser.parse_args()

    prefix = f"soak{uuid.uuid4().hex[:6]}."
    database = f"bot4_bench_{prefix.strip('.')}"
    base = load_settings()
    admin = AdminClient({"bootstrap.servers": base.kafka.bootstrap})
    names = [prefix + t for t in TOPICS]
    for fut in admin.create_topics([NewTopic(n, num_partitions=3, replication_factor=1) for n in names]).values():
        fut.result(30)
    with psycopg.connect(base.postgres.conninfo(), autocommit=True) as conn:
        conn.execute(f"CREATE DATABASE {database}")
    settings = load_settings(kafka={"topic_prefix": prefix}, postgres={"dbname": database})
    conninfo = settings.postgres.conninfo()
    migrate(conninfo)
    env = dict(os.environ) | {
        "BOT4_MODE": "paper",
        "BOT4_METRICS_PORT": "0",
        "BOT4_KAFKA__TOPIC_PREFIX": prefix,
        "BOT4_POSTGRES__DBNAME": database,
        "BOT4_TRADING__SYMBOLS": '["BTC/USDT"]',
        "BOT4_TRADING__BARS_FROM": "candles",
        "BOT4_TRADING__BATCH_SIZE": "100",
    }
    flow = subprocess.Popen(
        [sys.executable, "-m", "flows.cli", "run"], env=env, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE
    )
    candles = [e for e in read_events(CANDLES) if isinstance(e, Candle)]
    duration = args.minutes * 60
    stop = threading.Event()
    produced = 0

    def produce() -> None:
        nonlocal produced
        producer = CheckedProducer(producer_config(settings.kafka))
        started = time.monotonic()
        topic = settings.kafka.topic("md.candles.v1")
        for n, candle in enumerate(candles):
            if stop.is_set() or time.monotonic() - started > duration:
                break
            producer.produce(topic, candle.key.encode(), encode(candle))
            produced = n + 1
            if n % 25 == 24:
                producer.flush()
            delay = started + (n + 1) / args.rate - time.monotonic()
            if delay > 0:
                time.sleep(delay)
        producer.flush()

    samples: list[dict[str, float]] = []
    feeder = threading.Thread(target=produce, daemon=True)
    try:
        time.sleep(8)  # imports, Bytewax, consumers
        proc = psutil.Process(flow.pid)
        feeder.start()
        start = time.monotonic()
        while time.monotonic() - start < duration:
            assert flow.poll() is None, (flow.stderr.read() if flow.stderr else b"").decode()[-3000:]
            samples.append(sample(proc, conninfo))
            time.sleep(args.every)
        samples.append(sample(proc, conninfo))
    finally:
        stop.set()
        feeder.join(30)
        flow.terminate()
        flow.wait(30)
        for fut in admin.delete_topics(names).values():
            fut.result(30)
        with psycopg.connect(base.postgres.conninfo(), autocommit=True) as conn:
            conn.execute(f"DROP DATABASE IF EXISTS {database} WITH (FORCE)")

    t0 = samples[0]["t"]
    print(
        f"# {platform.node()}, {os.cpu_count()} cores, {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}, "
        f"{args.minutes:g} min at {args.rate:g} bars/s, {produced} bars produced, "
        f"load average {os.getloadavg()[0]:.1f}"
    )
    print("| minute | RSS MB | open files | threads | bars stored |")
    print("|---:|---:|---:|---:|---:|")
    step = max(1, len(samples) // 12)
    for s in samples[::step] + ([samples[-1]] if (len(samples) - 1) % step else []):
        cells = [f"{(s['t'] - t0) / 60:.1f}", *(f"{s[k]:.0f}" for k in ("rss_mb", "fds", "threads", "bars_stored"))]
        print("| " + " | ".join(cells) + " |")
    warm = [s for s in samples if s["t"] - t0 >= 120][:30] or samples
    tail = samples[-30:]
    for key in ("rss_mb", "fds", "threads"):
        a, b = statistics.median(x[key] for x in warm), statistics.median(x[key] for x in tail)
        print(f"{key}: median after warm-up {a:.1f}, over the last samples {b:.1f}, change {b - a:+.1f}")
    out = ROOT / "out" / "bench"
    out.mkdir(parents=True, exist_ok=True)
    path = out / f"soak-{time.strftime('%Y%m%dT%H%M', time.gmtime())}.json"
    path.write_text(json.dumps({"args": vars(args), "produced": produced, "samples": samples}, indent=1))
    print(f"samples: {path}")


if __name__ == "__main__":
    main()
