"""The ingestion and trading flows on two Bytewax processes (``-i 0/1 -a "A;B"``, loopback) give the
same per-key outputs and the same orders as one worker (issue 10, scale-out; docs/runbook-multihost.md).

A day of the bundled real Binance 1m candles of BTC/USDT and ETH/USDT, every topic with three
partitions. Reference: the replay and then the trading flow on one worker, in this process.
Scaled: the same replay and then the trading flow, each as two ``python -m bytewax.run``
processes joined over 127.0.0.1, writing under another topic prefix and database. Compared: every
md record per key, in order; the feature vectors and signals per instrument; the orders (client
order id, side, amount, price) and the approvals and denials, which hold across processes since
the account step takes the instruments' records in event-time order (flows.event_merge).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import uuid
from collections import defaultdict
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import orjson
import psycopg
import pytest
from bytewax.testing import run_main

from flows.control import CONTROL_TOPIC
from flows.demo import TRADING_FILES
from flows.ingest import replay_flow
from flows.settings import load_settings
from flows.storage.migrate import migrate
from flows.trading_run import trading_flow
from tests.integration.conftest import read_topic
from tests.support.flow_http import free_ports
from tests.support.topics import OUT_TOPICS, topics

pytestmark = [
    pytest.mark.integration,
    pytest.mark.chaos,
    # Scale-out scenarios (a minute or more here) run with the chaos suite: `make chaos`.
    pytest.mark.skipif(os.environ.get("BOT4_CHAOS_FULL") != "1", reason="make chaos only (BOT4_CHAOS_FULL=1)"),
]

ROOT = Path(__file__).resolve().parents[2]
MD_TOPICS = ("md.trades.v1", "md.book.v1", "md.candles.v1", "dlq.v1")
BARS = 1440  # a day per instrument
TRADING_ENV = {
    "BOT4_MODE": "paper",
    "BOT4_METRICS_PORT": "0",
    "BOT4_TRADING__SYMBOLS": '["BTC/USDT", "ETH/USDT"]',
    "BOT4_TRADING__BARS_FROM": "candles",
    "BOT4_TRADING__TIMEFRAME": "1m",
    "BOT4_TRADING__BATCH_SIZE": "100",
}


@pytest.fixture(scope="module")
def runs(kafka_bootstrap: str, pg_admin_conninfo: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Runs]:
    """Both runs once for the module: the reference on one worker and the scaled on two processes,
    each under its own topic prefix (every topic in 3 partitions) and its own database."""
    one, two = (f"s{uuid.uuid4().hex[:8]}.", f"s{uuid.uuid4().hex[:8]}.")
    names = [f"{p}{t}" for p in (one, two) for t in (*MD_TOPICS, *OUT_TOPICS)]
    with topics(kafka_bootstrap, names, single=[f"{p}{CONTROL_TOPIC}" for p in (one, two)]):
        with psycopg.connect(pg_admin_conninfo, autocommit=True) as conn:
            for p in (one, two):
                conn.execute(f"CREATE DATABASE {_db(p)}")
        try:
            for p in (one, two):
                migrate(load_settings(postgres={"dbname": _db(p)}).postgres.conninfo())
            files = []
            for path in TRADING_FILES:
                files.append(tmp_path_factory.mktemp("candles") / path.name)
                files[-1].write_text(json.dumps(json.loads(path.read_text())[:BARS]))

            # One worker, in this process.
            run_main(replay_flow(files, settings=load_settings(kafka={"topic_prefix": one})))
            settings = load_settings(
                mode="paper",
                metrics_port=0,
                kafka={"topic_prefix": one},
                postgres={"dbname": _db(one)},
                trading={
                    "symbols": ["BTC/USDT", "ETH/USDT"],
                    "bars_from": "candles",
                    "timeframe": "1m",
                    "batch_size": 100,
                },
            )
            run_main(trading_flow(settings, tail=False))

            # Two processes joined over loopback.
            env = {**os.environ, **TRADING_ENV, "BOT4_KAFKA__TOPIC_PREFIX": two, "BOT4_POSTGRES__DBNAME": _db(two)}
            run_two_processes(f"flows.ingest:replay_flow({[str(f) for f in files]!r})", env)
            run_two_processes("flows.trading_run:trading_flow(tail=False)", env)
            yield Runs(kafka_bootstrap, one, two)
        finally:
            with psycopg.connect(pg_admin_conninfo, autocommit=True) as conn:
                for p in (one, two):
                    conn.execute(f"DROP DATABASE IF EXISTS {_db(p)} WITH (FORCE)")


@dataclass(frozen=True)
class Runs:
    bootstrap: str
    one: str  # topic prefix of the one-worker run
    two: str  # topic prefix of the two-process run


def _db(prefix: str) -> str:
    return f"bot4_{prefix.strip('.')}"


def run_two_processes(flow: str, env: dict[str, str], timeout: float = 180) -> None:
    """``python -m bytewax.run FLOW`` as processes 0 and 1 of one cluster on loopback, to the end."""
    addresses = ";".join(f"127.0.0.1:{port}" for port in free_ports(2))
    procs = [
        subprocess.Popen(
            [sys.executable, "-m", "bytewax.run", flow, "-i", str(i), "-a", addresses],
            env=env,
            cwd=ROOT,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
        )
        for i in range(2)
    ]
    try:
        for i, proc in enumerate(procs):
            _, err = proc.communicate(timeout=timeout)
            assert proc.returncode == 0, f"process {i} of {flow}: {err.decode()[-3000:]}"
    finally:
        for proc in procs:
            if proc.poll() is None:
                proc.kill()
                proc.wait(30)


def per_key(bootstrap: str, topic: str) -> dict[bytes, list[bytes]]:
    """The topic's values grouped by key, each key's in offset order (one key lives in one partition)."""
    out: dict[bytes, list[bytes]] = defaultdict(list)
    for key, value in read_topic(bootstrap, topic):
        out[key or b""].append(value or b"")
    return dict(out)


def trading_outcome(bootstrap: str, prefix: str) -> dict[str, object]:
    vectors = per_key(bootstrap, f"{prefix}features.v1")
    signals = per_key(bootstrap, f"{prefix}signals.v1")
    orders = sorted(
        (o["client_order_id"], o["side"], o["amount"], o.get("price"))
        for o in (orjson.loads(v) for _, v in read_topic(bootstrap, f"{prefix}orders.v1") if v)
    )
    decisions = sorted(
        (d["kind"], d.get("client_order_id"), d.get("new"))
        for d in (orjson.loads(v) for _, v in read_topic(bootstrap, f"{prefix}risk.decisions.v1") if v)
        if d["kind"] in ("approved", "denied")
    )
    return {"vectors": vectors, "signals": signals, "orders": orders, "decisions": decisions}


def test_two_processes_give_the_md_records_vectors_and_signals_per_key_of_one_worker(runs):
    md_one = per_key(runs.bootstrap, f"{runs.one}md.candles.v1")
    assert set(md_one) == {b"binance:BTC/USDT", b"binance:ETH/USDT"}
    assert all(len(v) == BARS for v in md_one.values())
    assert per_key(runs.bootstrap, f"{runs.two}md.candles.v1") == md_one
    reference = trading_outcome(runs.bootstrap, runs.one)
    scaled = trading_outcome(runs.bootstrap, runs.two)
    assert set(reference["vectors"]) == {b"binance:BTC/USDT", b"binance:ETH/USDT"}  # type: ignore[arg-type]
    assert scaled["vectors"] == reference["vectors"]
    assert scaled["signals"] == reference["signals"]
    # Whatever the interleaving, every signal gets exactly one decision.
    for run in (reference, scaled):
        signals = sum(len(v) for v in run["signals"].values())  # type: ignore[attr-defined]
        assert len(run["decisions"]) == signals > 10  # type: ignore[arg-type]


def test_two_processes_give_the_orders_and_decisions_of_one_worker(runs):
    reference = trading_outcome(runs.bootstrap, runs.one)
    scaled = trading_outcome(runs.bootstrap, runs.two)
    assert reference["orders"], "the replay should trade"
    assert scaled["orders"] == reference["orders"]
    assert scaled["decisions"] == reference["decisions"]
