"""Restart after kill -9: how long until the trading flow processes again, and how fast it catches up.

A month of real Binance BTC/USDT 1m candles (../shared/data, 43k bars) is replayed into Kafka
under a fresh topic prefix; ``bot4 run --drain --recovery DIR`` (the environment and database of
tests/chaos/test_kill_trading.py) is started, SIGKILLed at seeded points (a seeded 0.2 to 5 s after
its first processed batch), restarted from recovery, and finally run to the end. (Kill points
counted in stored equity rows, as the chaos test does, do not suit a benchmark: a restart resumes
from Bytewax's last snapshot, which can be ahead of the rows counted at the kill, so later points
fall behind the resume point and those starts measure nothing.)

Per start, from the process start (``Popen``), measured on the flow's own /metrics (scraped every
50 ms) and in PostgreSQL:
- metrics up: imports, settings, flow built, endpoint serving;
- first processed batch: ``bot4_events_total{stage="instrument"}`` above 0. The counter moves
  once per batch of the instrument step, and a restart's backlog arrives in one or two 1 s epochs,
  so this is when the first batch (often the whole backlog) was processed, not the first candle;
- first stored row: a new ``equity`` row in PostgreSQL (what the chaos test records);
- catch-up throughput: candles through the instrument step per second, from /metrics up to the
  last change of the counter (the backlog read from Kafka and processed);
- for the final start, run to the end: the wall time to the exit (every row and message written).

Baseline in the same script: a bare interpreter importing what ``bot4 run`` imports (the part of
every restart that is Python start-up, not recovery).

Usage: ``python benchmarks/bench_restart.py [--kills 20] [--seed 20261125]``, with the services of
``infra/services.sh up``. Results go to docs/benchmarks.md by hand, with the machine's load.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import re
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
import uuid
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import orjson  # noqa: E402
import psycopg  # noqa: E402
from bytewax.testing import run_main  # noqa: E402
from confluent_kafka.admin import AdminClient, NewTopic  # noqa: E402

from flows.control import CONTROL_TOPIC  # noqa: E402
from flows.ingest import replay_flow  # noqa: E402
from flows.settings import PostgresSettings, load_settings  # noqa: E402
from tests.support.kill_restart import BOT4, OUT_TOPICS, env_for, equity_rows, fresh_database  # noqa: E402

SHARED = Path(os.environ.get("BOT4_SHARED_DATA", ROOT.parent / "shared" / "data"))
BTC_1M = SHARED / "candles" / "binance-1m-2021" / "BTC_USDT-1m.json"
MD_TOPICS = ("md.trades.v1", "md.book.v1", "md.candles.v1", "dlq.v1")
_SAMPLE = re.compile(r'^bot4_events_total\{outcome="ok",stage="instrument"\} (\S+)$', re.M)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _instrument_events(port: int) -> float | None:
    """Candles the instrument step has processed in this process, or None if /metrics is not up."""
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=1) as resp:
            text = resp.read().decode()
    except OSError:
        return None
    match = _SAMPLE.search(text)
    return float(match.group(1)) if match else 0.0


def one_start(
    env: dict[str, str], recovery: Path, conninfo: str, kill_after_s: float | None
) -> dict[str, float | None]:
    """Start the flow (killed with SIGKILL ``kill_after_s`` seconds after its first processed batch,
    or run to the end when None) and time it."""
    port = _free_port()
    rows_before = equity_rows(conninfo)
    started = time.monotonic()
    proc = subprocess.Popen(
        [*BOT4, "run", "--drain", "--recovery", str(recovery)],
        env={**env, "BOT4_METRICS_PORT": str(port)},
        cwd=ROOT,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    up = first_event = first_row = last_at = None
    last_events = 0.0
    next_row_check = 0.0
    killed = False
    try:
        while proc.poll() is None:
            now = time.monotonic() - started
            events = _instrument_events(port)
            if events is not None:
                up = now if up is None else up
                if events > 0:
                    first_event = now if first_event is None else first_event
                    last_events, last_at = events, now
            if now >= next_row_check:
                next_row_check = now + 0.2
                rows = equity_rows(conninfo)
                if first_row is None and rows > rows_before:
                    first_row = now
            if kill_after_s is not None and first_event is not None and now >= first_event + kill_after_s:
                proc.send_signal(signal.SIGKILL)
                proc.wait(30)
                killed = True
                break
            if now > 600:
                raise RuntimeError("the trading flow made no progress in 600 s")
            time.sleep(0.05)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(30)
    ended = time.monotonic() - started
    if not killed and proc.returncode != 0:
        raise RuntimeError((proc.stderr.read() if proc.stderr else b"").decode()[-3000:])
    rate = None
    if up is not None and last_at is not None and last_at > up:
        rate = last_events / (last_at - up)
    return {
        "ended_s": ended,
        "killed": float(killed),
        "metrics_up_s": up,
        "first_event_s": first_event,
        "first_row_s": first_row,
        "events": last_events,
        "catch_up_events_per_s": rate,
    }


def import_baseline(runs: int = 5) -> dict[str, float]:
    """Seconds for a bare interpreter to import what ``bot4 run`` imports before it serves /metrics:
    the floor under every restart on this machine at this load."""
    took = []
    for _ in range(runs):
        started = time.monotonic()
        subprocess.run([sys.executable, "-c", "import bytewax.run, flows.cli, flows.trading_run"], cwd=ROOT, check=True)
        took.append(time.monotonic() - started)
    return {"median": round(statistics.median(took), 2), "worst": round(max(took), 2), "n": runs}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--kills", type=int, default=20)
    parser.add_argument("--seed", type=int, default=20261125)
    parser.add_argument("--only-import-baseline", action="store_true", help="Time the imports alone.")
    args = parser.parse_args()
    # SIGTERM runs the clean-up below (topics and database) like an exception would.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    if args.only_import_baseline:
        print(json.dumps({"import_s": import_baseline(), "load_avg": os.getloadavg()}))
        return
    bars = len(orjson.loads(BTC_1M.read_bytes()))
    bootstrap = load_settings().kafka.bootstrap
    prefix = f"bench{uuid.uuid4().hex[:8]}."
    admin = AdminClient({"bootstrap.servers": bootstrap})
    names = [f"{prefix}{t}" for t in (*MD_TOPICS, *OUT_TOPICS)]
    new = [NewTopic(n, num_partitions=3, replication_factor=1) for n in names]
    new.append(NewTopic(f"{prefix}{CONTROL_TOPIC}", num_partitions=1, replication_factor=1))
    for fut in admin.create_topics(new).values():
        fut.result(30)
    database = f"bot4_bench_{prefix.strip('.')}"
    admin_conninfo = PostgresSettings().conninfo()
    try:
        run_main(replay_flow([BTC_1M], settings=load_settings(kafka={"topic_prefix": prefix})))
        conninfo = fresh_database(admin_conninfo, database)
        with tempfile.TemporaryDirectory(prefix="bot4-bench-restart-") as tmp:
            env = env_for(prefix, database, Path(tmp) / "data")
            recovery = Path(tmp) / "recovery"
            # Each start resumes from the last snapshot and is killed a seeded 0.2-5 s after its
            # first processed batch.
            rng = random.Random(args.seed)
            points = [round(rng.uniform(0.2, 5.0), 2) for _ in range(args.kills)]
            starts = []
            for i, point in enumerate(points):
                starts.append(one_start(env, recovery, conninfo, point))
                print(f"start {i}: kill {point} s after the first batch: {json.dumps(starts[-1])}", flush=True)
            starts.append(one_start(env, recovery, conninfo, None))
            print(f"final start to the end: {json.dumps(starts[-1])}", flush=True)
            stored = equity_rows(conninfo)
    finally:
        with psycopg.connect(admin_conninfo, autocommit=True) as conn:
            conn.execute(f"DROP DATABASE IF EXISTS {database} WITH (FORCE)")
        for fut in admin.delete_topics([*names, f"{prefix}{CONTROL_TOPIC}"]).values():
            fut.result(30)

    restarts = starts[1:]  # the first start has no state to restore
    summary: dict[str, object] = {"bars": bars, "kills": args.kills, "kill_points": points}
    summary["equity_rows_at_end"] = stored
    for name in ("metrics_up_s", "first_event_s", "first_row_s"):
        values = [s[name] for s in restarts if s[name] is not None]
        summary[name] = {
            "n": len(values),
            "median": round(statistics.median(values), 2),
            "worst": round(max(values), 2),
        }
    rates = [s["catch_up_events_per_s"] for s in restarts if s["catch_up_events_per_s"]]
    summary["catch_up_events_per_s"] = {
        "n": len(rates),
        "median": round(statistics.median(rates)),
        "min": round(min(rates)),
    }
    summary["import_baseline_s"] = import_baseline()
    summary["load_avg"] = os.getloadavg()
    print(json.dumps(summary, indent=2))


if __name__ == "__main__":
    main()
