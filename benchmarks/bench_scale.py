"""Scale-out throughput: the ingestion and trading flows on 1 worker, 2 workers and 2 processes.

What runs (each as real ``python -m bytewax.run`` processes, as an operator starts them):
- **ingest**: the replay flow (``flows.ingest:replay_flow``), real files -> ``md.*`` topics;
- **store**: the storage flow drained (``flows.store:store_flow(tail=False)``), ``md.*`` ->
  contracts -> a scratch PostgreSQL database (the second half of ``bot4 ingest``);
- **trading**: the trading flow drained in paper mode (``flows.trading_run:trading_flow(tail=False)``,
  what ``bot4 run --drain`` builds), ``md.*`` -> features, strategy, risk gate, paper venue ->
  ``features.v1``, ``signals.v1``, ``risk.decisions.v1``, ``orders.v1``, ``fills.v1`` and the
  scratch database.

Data: the real month of Binance 1m candles of BTC/USDT and ETH/USDT
(``shared/data/candles/binance-1m-2021``, 85,830 bars: two instrument keys to spread). Topics get
the partition counts of ``infra/topics.toml`` (md and features 6, account topics 3), under a fresh
prefix per run; the database is a fresh scratch one, emptied before every run. Each run's
pipeline is ingest -> store -> trading on its own topics, so every run's input is the one just
ingested (and checked).

Layouts: ``1w`` (``-w 1``), ``2w`` (``-w 2``, one process), ``2p`` (``-i 0/1 -a`` two processes
of one worker joined over 127.0.0.1). Runs are interleaved (1w, 2w, 2p, 1w, ...) so a change in the
machine's load hits all layouts alike; the figures are medians over ``--repeats`` runs and the
ratios are against the 1-worker runs of the same invocation.

Per run:
- **wall**: process start to the last process's exit (Python imports, Bytewax start, drain end
  included) and **events/s (wall)** = input events / wall;
- **events/s (steady)**: from the first to the last processed event, start-up excluded. Ingest and
  trading: the broker timestamps (producer CreateTime) of the first and last output message; the
  events counted are the outputs after the first one's millisecond. Store: PostgreSQL's row count
  polled every 0.25 s (first non-zero poll to the poll that saw every row);
- **CPU s**: user + system CPU of the flow's processes (``wait4``), and **CPU/wall**: 1.0 is one
  core busy for the whole run, 2.0 both cores of this machine;
- **busiest thread CPU s (share)**: the CPU of the run's busiest thread (/proc, sampled every
  0.1 s) and its share of the run's CPU: does one worker do everything? (1w's one thread also
  carries the imports, ~2-4 s here; with ``-w 2`` they are on the main thread, beside the workers);
- **bound**: 1w's process CPU over this layout's busiest process CPU, the speedup the layout could
  reach on an idle machine with the cores to itself, a figure the neighbours' load moves less than
  wall time. Per process, not per thread: a process's Python threads hold one GIL, so ``-w 2``'s
  two workers cannot run Python at the same moment (librdkafka's and libpq's own threads can);
- **complete**: every output counted and compared. Ingest: md records per key = the events read
  from the files, none to the DLQ or other md topics. Store: rows per instrument = input, no dead
  letters. Trading: one decision per signal, at least one feature vector per candle (the bars
  fill the minutes the exchange has no candle: 43,199 a month), and the vectors per instrument,
  signals (bytes), orders (client order id, side, amount, price), fills and equity rows equal to
  the first 1-worker run's. An incomplete run is reported and left out of the medians.

The catch-up cap (``BOT4_TRADING__MAX_EVENTS_PER_S``, 3000 per partition by default) is set to 0 in
the trading runs: it limits what a restart hands to an epoch, and would cap a drain at 3000 bars/s
per instrument, i.e. measure the setting, not the flow.

Usage (services of ``infra/services.sh up``; Kafka 127.0.0.1:29092, PostgreSQL 25432)::

    .venv/bin/python benchmarks/bench_scale.py            # the month, 3 runs per layout (15-30 min)
    .venv/bin/python benchmarks/bench_scale.py --quick    # 2 days per instrument, 1 run (~2 min)
    .venv/bin/python benchmarks/bench_scale.py --flows trading --repeats 5 --json out.json

The flows run from a ``git archive`` of HEAD (``--tree worktree``: from the working tree as it
is), so edits others make to the shared working tree during the ~20 minutes cannot change the
code between runs. It prints a table, the commit, the machine and the load average before and
after, and (``--json``) every run's figures. It creates only topics under its own ``bsc<hex>.``
prefix and one database ``bot4_bsc<hex>``, and deletes them at the end.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections import Counter, defaultdict
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import orjson  # noqa: E402
import psycopg  # noqa: E402
from confluent_kafka import Consumer, TopicPartition  # noqa: E402
from confluent_kafka.admin import AdminClient, NewTopic  # type: ignore[attr-defined]  # noqa: E402

from flows.replay import replay_files  # noqa: E402
from flows.settings import PostgresSettings, load_settings  # noqa: E402
from flows.storage.migrate import migrate  # noqa: E402
from flows.topics import load_topics  # noqa: E402
from tests.support.flow_http import free_ports  # noqa: E402

SHARED = Path(os.environ.get("BOT4_SHARED_DATA", ROOT.parent / "shared" / "data"))
CANDLES = [SHARED / "candles" / "binance-1m-2021" / f"{s}_USDT-1m.json" for s in ("BTC", "ETH")]
MD_TOPICS = ("md.trades.v1", "md.book.v1", "md.candles.v1", "dlq.v1")
OUT_TOPICS = ("features.v1", "signals.v1", "risk.decisions.v1", "orders.v1", "fills.v1", "orders.shadow.v1")
CONTROL = "control.commands.v1"
LAYOUTS = {"1w": (1, 1), "2w": (1, 2), "2p": (2, 1)}  # name -> (processes, workers per process)
FLOWS = ("ingest", "store", "trading")
TICK = os.sysconf("SC_CLK_TCK")


@dataclass
class Run:
    flow: str
    layout: str
    repeat: int
    events: int
    wall_s: float
    cpu_s: float
    cpu_per_process_s: list[float]
    steady_s: float | None
    steady_events: int
    busiest_thread_share: float
    threads_over_1s: int
    thread_cpu_s: list[float]  # the run's threads with at least 0.5 s of CPU, largest first
    load_before: float
    load_after: float
    complete: bool
    problems: list[str] = field(default_factory=list)

    @property
    def rate_wall(self) -> float:
        return self.events / self.wall_s

    @property
    def rate_steady(self) -> float | None:
        return self.steady_events / self.steady_s if self.steady_s else None


# ----------------------------------------------------------------------------------------------
# Processes


def _thread_ticks(pid: int, into: dict[tuple[int, int], int]) -> None:
    """Each live thread's user + system ticks so far (the newest reading wins)."""
    try:
        tids = os.listdir(f"/proc/{pid}/task")
    except OSError:
        return
    for tid in tids:
        try:
            with open(f"/proc/{pid}/task/{tid}/stat", "rb") as f:
                fields = f.read().rsplit(b")", 1)[1].split()
        except OSError:
            continue
        into[(pid, int(tid))] = int(fields[11]) + int(fields[12])  # utime, stime (fields 14, 15)


@dataclass
class Cluster:
    wall_s: float
    cpu_per_process_s: list[float]
    thread_cpu_s: list[float]


def run_cluster(
    target: str,
    env: dict[str, str],
    layout: str,
    logs: Path,
    *,
    cwd: Path = ROOT,
    timeout: float = 900,
    while_running: Callable[[], None] | None = None,
) -> Cluster:
    """``python -m bytewax.run TARGET`` in ``layout``, to the end of every process."""
    procs_n, workers = LAYOUTS[layout]
    cmd = [sys.executable, "-m", "bytewax.run", target, "-w", str(workers)]
    addresses = ";".join(f"127.0.0.1:{p}" for p in free_ports(procs_n)) if procs_n > 1 else ""
    started = time.monotonic()
    procs = []
    for i in range(procs_n):
        extra = ["-i", str(i), "-a", addresses] if procs_n > 1 else []
        err = (logs / f"{layout}-{i}.stderr").open("wb")
        procs.append(subprocess.Popen([*cmd, *extra], env=env, cwd=cwd, stdout=subprocess.DEVNULL, stderr=err))
    cpu: dict[int, float] = {}
    ended: dict[int, float] = {}
    ticks: dict[tuple[int, int], int] = {}
    try:
        while len(ended) < len(procs):
            for proc in procs:
                if proc.pid in ended:
                    continue
                _thread_ticks(proc.pid, ticks)
                pid, status, usage = os.wait4(proc.pid, os.WNOHANG)
                if pid:
                    ended[proc.pid] = time.monotonic()
                    cpu[proc.pid] = usage.ru_utime + usage.ru_stime
                    proc.returncode = os.waitstatus_to_exitcode(status)
            if while_running is not None:
                while_running()
            if time.monotonic() - started > timeout:
                raise TimeoutError(f"{target} on {layout} still running after {timeout:.0f}s")
            time.sleep(0.1)
    finally:
        for proc in procs:
            if proc.returncode is None:
                proc.kill()
                proc.wait(30)
    for i, proc in enumerate(procs):
        if proc.returncode != 0:
            tail = (logs / f"{layout}-{i}.stderr").read_text(errors="replace")[-3000:]
            raise RuntimeError(f"process {i} of {target} on {layout} exited {proc.returncode}:\n{tail}")
    return Cluster(
        wall_s=max(ended.values()) - started,
        cpu_per_process_s=[round(cpu[p.pid], 3) for p in procs],
        thread_cpu_s=sorted((t / TICK for t in ticks.values()), reverse=True),
    )


# ----------------------------------------------------------------------------------------------
# Kafka and PostgreSQL


@dataclass(frozen=True)
class Message:
    partition: int
    key: bytes
    value: bytes
    ts_ms: int


def read_topic(bootstrap: str, topic: str, timeout: float = 120.0) -> list[Message]:
    """Every record now in ``topic`` with its partition and broker timestamp, partition by partition."""
    consumer = Consumer(
        {"bootstrap.servers": bootstrap, "group.id": f"bsc-{uuid.uuid4().hex}", "enable.auto.commit": False}
    )
    try:
        meta = consumer.list_topics(topic, timeout=30).topics[topic]
        ends: dict[int, int] = {}
        for p in meta.partitions:
            low, high = consumer.get_watermark_offsets(TopicPartition(topic, p), timeout=30)
            if high > low:
                ends[p] = high
        consumer.assign([TopicPartition(topic, p, 0) for p in ends])
        out: list[Message] = []
        nxt = dict.fromkeys(ends, 0)
        deadline = time.monotonic() + timeout
        while any(nxt[p] < ends[p] for p in ends):
            if time.monotonic() > deadline:
                raise TimeoutError(f"reading {topic}: not every record arrived within {timeout:.0f}s")
            for m in consumer.consume(10_000, 0.5):
                if m.error():
                    raise RuntimeError(f"reading {topic}: {m.error()}")
                p, off = m.partition(), m.offset()
                assert p is not None and off is not None
                out.append(Message(p, m.key() or b"", m.value() or b"", m.timestamp()[1]))
                nxt[p] = off + 1
        return out
    finally:
        consumer.close()


def create_topics(admin: AdminClient, prefix: str, names: Sequence[str]) -> list[str]:
    specs = {t.name: t.partitions for t in load_topics()}
    new = [NewTopic(f"{prefix}{n}", num_partitions=specs[n], replication_factor=1) for n in names]
    for fut in admin.create_topics(new).values():
        fut.result(30)
    return [t.topic for t in new]


def delete_topics(admin: AdminClient, names: Sequence[str]) -> None:
    if names:
        for fut in admin.delete_topics(list(names)).values():
            try:
                fut.result(30)
            except Exception as exc:  # cleanup: report and go on
                print(f"  could not delete a topic: {exc}", file=sys.stderr)


def empty_database(conninfo: str) -> None:
    with psycopg.connect(conninfo, autocommit=True) as conn:
        tables = [
            r[0]
            for r in conn.execute(
                "SELECT tablename FROM pg_tables WHERE schemaname = 'public' AND tablename <> 'schema_migrations'"
            )
        ]
        conn.execute("TRUNCATE " + ", ".join(tables))


def one_value(conninfo: str, sql: str) -> Any:
    with psycopg.connect(conninfo) as conn:
        row = conn.execute(sql).fetchone()
        return None if row is None else row[0]


@contextmanager
def scratch_database(name: str) -> Iterator[str]:
    admin = PostgresSettings().model_copy(update={"dbname": "postgres"}).conninfo()
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(f"CREATE DATABASE {name}")
    try:
        conninfo = load_settings(postgres={"dbname": name}).postgres.conninfo()
        migrate(conninfo)
        yield conninfo
    finally:
        with psycopg.connect(admin, autocommit=True) as conn:
            conn.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")


# ----------------------------------------------------------------------------------------------
# The three flows


@dataclass
class Bench:
    bootstrap: str
    admin: AdminClient
    prefix: str
    database: str
    conninfo: str
    files: list[Path]
    expected: dict[str, int]  # candles per instrument key
    minutes: int  # distinct candle minutes: the account's equity samples
    logs: Path
    data_dir: Path
    tree: Path  # the code the flows run from
    reference: dict[str, Any] = field(default_factory=dict)
    topics: list[str] = field(default_factory=list)

    def env(self, run_prefix: str) -> dict[str, str]:
        env = dict(os.environ)
        env.update(
            {
                "BOT4_MODE": "paper",
                "BOT4_METRICS_PORT": "0",
                "BOT4_KAFKA__BOOTSTRAP": self.bootstrap,
                "BOT4_KAFKA__TOPIC_PREFIX": run_prefix,
                "BOT4_POSTGRES__DBNAME": self.database,
                "BOT4_DATA_DIR": str(self.data_dir),
                "BOT4_TRADING__SYMBOLS": '["BTC/USDT", "ETH/USDT"]',
                "BOT4_TRADING__BARS_FROM": "candles",
                "BOT4_TRADING__TIMEFRAME": "1m",
                "BOT4_TRADING__MAX_EVENTS_PER_S": "0",
            }
        )
        return env


def _steady(stamps: list[int]) -> tuple[float | None, int]:
    """Seconds from the first to the last output timestamp, and the outputs after the first ms."""
    if not stamps:
        return None, 0
    first, last = min(stamps), max(stamps)
    return ((last - first) / 1000 or None), sum(1 for s in stamps if s > first)


def ingest(bench: Bench, layout: str, run_prefix: str) -> tuple[Cluster, float | None, int, list[str]]:
    bench.topics += create_topics(bench.admin, run_prefix, [*MD_TOPICS, *OUT_TOPICS, CONTROL])
    target = f"flows.ingest:replay_flow({[str(f) for f in bench.files]!r})"
    cluster = run_cluster(target, bench.env(run_prefix), layout, bench.logs, cwd=bench.tree)
    candles = read_topic(bench.bootstrap, f"{run_prefix}md.candles.v1")
    problems = []
    per_key = Counter(m.key.decode() for m in candles)
    if dict(per_key) != bench.expected:
        problems.append(f"md.candles.v1 per key {dict(per_key)} != files {bench.expected}")
    parts = {m.key.decode(): m.partition for m in candles}
    bench.reference.setdefault("md_partitions", parts)
    for other in ("md.trades.v1", "md.book.v1", "dlq.v1"):
        if n := len(read_topic(bench.bootstrap, f"{run_prefix}{other}")):
            problems.append(f"{n} records on {other}")
    steady_s, steady_n = _steady([m.ts_ms for m in candles])
    return cluster, steady_s, steady_n, problems


def store(bench: Bench, layout: str, run_prefix: str) -> tuple[Cluster, float | None, int, list[str]]:
    empty_database(bench.conninfo)
    total = sum(bench.expected.values())
    polls: list[tuple[float, int]] = []
    conn = psycopg.connect(bench.conninfo, autocommit=True)
    last_poll = [0.0]

    def poll() -> None:
        now = time.monotonic()
        if now - last_poll[0] >= 0.25:
            last_poll[0] = now
            row = conn.execute("SELECT count(*) FROM md_candles").fetchone()
            polls.append((now, int(row[0]) if row else 0))

    try:
        cluster = run_cluster(
            "flows.store:store_flow(tail=False)",
            bench.env(run_prefix),
            layout,
            bench.logs,
            cwd=bench.tree,
            while_running=poll,
        )
        poll_end = time.monotonic()
        row = conn.execute("SELECT count(*) FROM md_candles").fetchone()
        polls.append((poll_end, int(row[0]) if row else 0))
        stored = {
            f"{e}:{s}": n
            for e, s, n in conn.execute("SELECT exchange, symbol, count(*) FROM md_candles GROUP BY 1, 2").fetchall()
        }
        letters = conn.execute("SELECT count(*) FROM dead_letters").fetchone()
    finally:
        conn.close()
    problems = []
    if stored != bench.expected:
        problems.append(f"md_candles per instrument {stored} != input {bench.expected}")
    if letters and letters[0]:
        problems.append(f"{letters[0]} dead letters")
    first = next(((t, n) for t, n in polls if n > 0), None)
    done = next((t for t, n in polls if n >= total), None)
    if first is None or done is None or done <= first[0]:
        return cluster, None, 0, problems
    return cluster, done - first[0], total - first[1], problems


def _trading_outcome(bench: Bench, run_prefix: str) -> dict[str, Any]:
    topics = {t: read_topic(bench.bootstrap, f"{run_prefix}{t}") for t in OUT_TOPICS}
    signals = sorted(m.value for m in topics["signals.v1"])
    orders = sorted(
        (o["client_order_id"], o["side"], o["amount"], o.get("price"))
        for o in (orjson.loads(m.value) for m in topics["orders.v1"])
        if "client_order_id" in o and "side" in o
    )
    judged = sum(1 for m in topics["risk.decisions.v1"] if orjson.loads(m.value).get("kind") in ("approved", "denied"))
    return {
        "vectors": dict(Counter(m.key.decode() for m in topics["features.v1"])),
        "signals": signals,
        "orders": orders,
        "judged": judged,
        "fills": sum(1 for m in topics["fills.v1"] if orjson.loads(m.value).get("type") == "fill"),
        "stamps": [m.ts_ms for msgs in topics.values() for m in msgs],
        "vector_stamps": [m.ts_ms for m in topics["features.v1"]],
        "feature_partitions": {m.key.decode(): m.partition for m in topics["features.v1"]},
    }


def trading(bench: Bench, layout: str, run_prefix: str) -> tuple[Cluster, float | None, int, list[str]]:
    empty_database(bench.conninfo)
    target = "flows.trading_run:trading_flow(tail=False)"
    cluster = run_cluster(target, bench.env(run_prefix), layout, bench.logs, cwd=bench.tree)
    out = _trading_outcome(bench, run_prefix)
    equity = one_value(bench.conninfo, "SELECT count(*) FROM equity")
    problems = []
    # One vector per instrument and minute of the data's span (the bars fill the few minutes the
    # exchange has no candle), so at least one per candle, and the same in every run.
    if any(out["vectors"].get(k, 0) < n for k, n in bench.expected.items()):
        problems.append(f"feature vectors per instrument {out['vectors']} < candles {bench.expected}")
    if out["judged"] != len(out["signals"]):
        problems.append(f"{out['judged']} decisions for {len(out['signals'])} signals")
    if not out["orders"]:
        problems.append("no orders: the strategy did not trade")
    out["equity"] = equity
    ref = bench.reference.setdefault(
        "trading", {k: out[k] for k in ("vectors", "signals", "orders", "fills", "equity")}
    )
    for what in ("vectors", "signals", "orders", "fills", "equity"):
        if out[what] != ref[what]:
            problems.append(f"{what} differ from the first 1-worker run")
    bench.reference.setdefault("feature_partitions", out["feature_partitions"])
    bench.reference.setdefault(
        "trading_counts",
        {
            "vectors": out["vectors"],
            "signals": len(out["signals"]),
            "orders": len(out["orders"]),
            "fills": out["fills"],
            "equity rows": equity,
        },
    )
    # Span: the first to the last output message of any topic; events: the input candles in the
    # share of feature vectors (one per instrument and minute) made after the first output's ms.
    steady_s, _ = _steady(out["stamps"])
    first = min(out["stamps"], default=0)
    after = sum(1 for s in out["vector_stamps"] if s > first) / max(1, len(out["vector_stamps"]))
    return cluster, steady_s, round(after * sum(bench.expected.values())), problems


STEPS = {"ingest": ingest, "store": store, "trading": trading}


def run_once(bench: Bench, flow: str, layout: str, repeat: int, run_prefix: str) -> Run:
    load_before = os.getloadavg()[0]
    cluster, steady_s, steady_n, problems = STEPS[flow](bench, layout, run_prefix)
    total_cpu = sum(cluster.cpu_per_process_s)
    threads = cluster.thread_cpu_s
    run = Run(
        flow=flow,
        layout=layout,
        repeat=repeat,
        events=sum(bench.expected.values()),
        wall_s=round(cluster.wall_s, 3),
        cpu_s=round(total_cpu, 3),
        cpu_per_process_s=cluster.cpu_per_process_s,
        steady_s=None if steady_s is None else round(steady_s, 3),
        steady_events=steady_n,
        busiest_thread_share=round(threads[0] / sum(threads), 3) if threads and sum(threads) else 0.0,
        threads_over_1s=sum(1 for t in threads if t >= 1.0),
        thread_cpu_s=[round(t, 2) for t in threads if t >= 0.5],
        load_before=round(load_before, 2),
        load_after=round(os.getloadavg()[0], 2),
        complete=not problems,
        problems=problems,
    )
    steady = f"{run.rate_steady:,.0f}/s steady" if run.rate_steady else "steady n/a"
    print(
        f"  {flow:8} {layout} #{repeat}: wall {run.wall_s:6.2f} s ({run.rate_wall:7,.0f}/s), {steady},"
        f" CPU {run.cpu_s:6.2f} s {cluster.cpu_per_process_s}, CPU/wall {run.cpu_s / run.wall_s:.2f},"
        f" threads >=1 s CPU: {[round(t, 1) for t in threads if t >= 1.0]}, load {run.load_before}->{run.load_after}"
        + ("" if run.complete else f"  INCOMPLETE: {problems}"),
        flush=True,
    )
    return run


# ----------------------------------------------------------------------------------------------
# Input, table


def code_tree(which: str, tmp: Path) -> tuple[Path, str]:
    """Where the flows run from, and what that code is."""
    head = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True, text=True, check=True)
    commit = head.stdout.strip()
    if which == "worktree":
        return ROOT, f"working tree of {ROOT} (HEAD {commit} plus any uncommitted changes)"
    tree = tmp / "tree"
    tree.mkdir()
    archive = subprocess.run(["git", "archive", "--format=tar", "HEAD"], cwd=ROOT, capture_output=True, check=True)
    subprocess.run(["tar", "-x", "-C", str(tree)], input=archive.stdout, check=True)
    return tree, f"commit {commit} (git archive in {tree})"


def prepare_files(limit: int | None, into: Path) -> list[Path]:
    """The real candle files, or their first ``limit`` bars each (``--quick``)."""
    if limit is None:
        return list(CANDLES)
    out = []
    for path in CANDLES:
        out.append(into / path.name)
        out[-1].write_text(json.dumps(json.loads(path.read_text())[:limit]))
    return out


def _median(values: Sequence[float | None]) -> float | None:
    present = [v for v in values if v is not None]
    return statistics.median(present) if present else None


def table(runs: list[Run]) -> str:
    lines = [
        "| flow | layout | runs complete | events | wall s (median) | events/s wall | events/s steady | CPU s"
        " | CPU/wall | events per CPU s | busiest thread CPU s (share) | busiest process CPU s"
        " | ratio to 1w: events/s wall / steady / per CPU s | bound |",
        "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|---:|",
    ]
    by: dict[tuple[str, str], list[Run]] = defaultdict(list)
    for r in runs:
        by[(r.flow, r.layout)].append(r)
    for flow in FLOWS:
        base: dict[str, float | None] = {}
        for layout in LAYOUTS:
            all_runs = by.get((flow, layout), [])
            good = [r for r in all_runs if r.complete]
            if not all_runs:
                continue
            if not good:
                lines.append(f"| {flow} | {layout} | 0 of {len(all_runs)} | | | | | | | | | | incomplete | |")
                continue
            wall = _median([r.wall_s for r in good])
            rate_w = _median([r.rate_wall for r in good])
            rate_s = _median([r.rate_steady for r in good])
            cpu = _median([r.cpu_s for r in good])
            util = _median([r.cpu_s / r.wall_s for r in good])
            per_cpu = _median([r.events / r.cpu_s for r in good])
            share = _median([r.busiest_thread_share for r in good])
            busiest = _median([r.thread_cpu_s[0] if r.thread_cpu_s else None for r in good])
            # On an idle machine a run takes at least its busiest process's CPU (one GIL each).
            proc = _median([max(r.cpu_per_process_s) for r in good])
            if layout == "1w":
                base = {"wall": rate_w, "steady": rate_s, "cpu": per_cpu, "proc": proc}

            def ratio(now: float | None, then: float | None) -> str:
                return f"{now / then:.2f}" if now and then else "n/a"

            ratios = (
                "1.00 (baseline)"
                if layout == "1w"
                else " / ".join(
                    (
                        ratio(rate_w, base.get("wall")),
                        ratio(rate_s, base.get("steady")),
                        ratio(per_cpu, base.get("cpu")),
                    )
                )
            )
            bound = "1.00" if layout == "1w" else ratio(base.get("proc"), proc)
            lines.append(
                f"| {flow} | {layout} | {len(good)} of {len(all_runs)} | {good[0].events:,} | {wall:.2f}"
                f" | {rate_w:,.0f}"
                f" | {'n/a' if rate_s is None else f'{rate_s:,.0f}'} | {cpu:.2f} | {util:.2f} | {per_cpu:,.0f}"
                f" | {'n/a' if busiest is None else f'{busiest:.1f}'} ({share:.2f}) | {proc:.2f} | {ratios} | {bound} |"
            )
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--quick", action="store_true", help="2 days per instrument, 1 run per layout")
    parser.add_argument("--repeats", type=int, default=None, help="runs per flow and layout (default 3; quick 1)")
    parser.add_argument("--bars", type=int, default=None, help="first N bars of each file (default: all)")
    parser.add_argument("--flows", default=",".join(FLOWS), help="comma list of ingest, store, trading")
    parser.add_argument("--layouts", default=",".join(LAYOUTS), help="comma list of 1w, 2w, 2p")
    parser.add_argument(
        "--tree",
        choices=("HEAD", "worktree"),
        default="HEAD",
        help="run the flows from a `git archive` of HEAD (default: others' edits to the working tree cannot"
        " change the code mid-run) or from the working tree as it is",
    )
    parser.add_argument("--json", type=Path, default=None, help="write every run's figures here")
    args = parser.parse_args(argv)
    repeats = args.repeats or (1 if args.quick else 3)
    bars = args.bars or (2880 if args.quick else None)
    flows = [f for f in args.flows.split(",") if f]
    layouts = [x for x in args.layouts.split(",") if x]
    if "1w" not in layouts or any(f not in FLOWS for f in flows) or any(x not in LAYOUTS for x in layouts):
        parser.error("flows are ingest, store, trading; layouts 1w, 2w, 2p (1w needed: it is the baseline)")
    needs = {"store": "ingest", "trading": "ingest"}
    flows_run = sorted({*flows, *(needs[f] for f in flows if f in needs)}, key=FLOWS.index)

    settings = load_settings()
    bootstrap = settings.kafka.bootstrap
    tag = uuid.uuid4().hex[:8]
    prefix = f"bsc{tag}."
    database = f"bot4_bsc{tag}"
    started_at = datetime.now(UTC)
    load_start = os.getloadavg()
    print(
        f"bench_scale {started_at:%Y-%m-%d %H:%M} UTC; {platform.node()} {platform.machine()}, {os.cpu_count()} cores,"
        f" Python {platform.python_version()};"
        f" load average {load_start[0]:.2f} {load_start[1]:.2f} {load_start[2]:.2f};"
        f" topics {prefix}*, database {database}",
        flush=True,
    )
    admin = AdminClient({"bootstrap.servers": bootstrap})
    runs: list[Run] = []
    with tempfile.TemporaryDirectory(prefix="bench_scale_") as tmp, scratch_database(database) as conninfo:
        files = prepare_files(bars, Path(tmp))
        tree, code = code_tree(args.tree, Path(tmp))
        print(f"code: {code}", flush=True)
        keys: Counter[str] = Counter()
        minutes: set[datetime] = set()
        for event in replay_files(files):
            keys[event.key] += 1
            minutes.add(event.ts_event)
        bench = Bench(
            bootstrap,
            admin,
            prefix,
            database,
            conninfo,
            files,
            dict(keys),
            len(minutes),
            Path(tmp),
            Path(tmp) / "data",
            tree,
        )
        bench.data_dir.mkdir()
        print(f"input: {dict(keys)} real 1m candles, {len(minutes):,} distinct minutes; {repeats} run(s) per layout")
        try:
            for repeat in range(repeats):
                for layout in layouts:
                    run_prefix = f"{prefix}{layout}{repeat}."
                    try:
                        for flow in flows_run:
                            run = run_once(bench, flow, layout, repeat, run_prefix)
                            if flow in flows:
                                runs.append(run)
                    finally:
                        delete_topics(admin, bench.topics)
                        bench.topics = []
        finally:
            delete_topics(admin, bench.topics)
    load_end = os.getloadavg()
    print()
    print(
        f"md.candles.v1 partition per instrument (6 partitions): {bench.reference.get('md_partitions')};"
        f" trading outputs (1w run): {bench.reference.get('trading_counts')}"
    )
    print(f"load average at the end: {load_end[0]:.2f} {load_end[1]:.2f} {load_end[2]:.2f}")
    print()
    print(table(runs))
    if args.json:
        args.json.write_text(
            json.dumps(
                {
                    "started": started_at.isoformat(),
                    "machine": f"{platform.node()} {platform.machine()} {os.cpu_count()} cores",
                    "load_start": load_start,
                    "load_end": load_end,
                    "input": bench.expected,
                    "md_partitions": bench.reference.get("md_partitions"),
                    "trading_counts": bench.reference.get("trading_counts"),
                    "runs": [asdict(r) | {"rate_wall": r.rate_wall, "rate_steady": r.rate_steady} for r in runs],
                },
                indent=1,
            )
        )
    return 0 if all(r.complete for r in runs) else 1


if __name__ == "__main__":
    raise SystemExit(main())
