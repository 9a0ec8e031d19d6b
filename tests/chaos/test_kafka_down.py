"""Kafka down under the trading flow, on a private broker (the shared one must never stop).

1. The kill file halts trading while Kafka is down (issue 10, "the kill switch works when Kafka
   is down (file trigger)").
2. The broker killed (SIGKILL) and started again mid-run: the orders, fills and equity equal an
   uninterrupted run (issue 10 chaos suite).

The trading flow (``bot4 run``, paper mode) follows real Binance 1m candles on a private broker
(the shared one must never stop); once it trades, the broker is killed with SIGKILL and the
operator creates ``$BOT4_DATA_DIR/KILL``. The flow polls that file itself, so the account must
report HALTED on its metrics endpoint, which needs no Kafka, within seconds.

Known limit (found here, reported in issue 10): the broker is killed once the flow has caught up.
A broker lost while the Kafka sink flushes a batch blocks the worker in that flush (up to the
producer's 60 s flush timeout, then the process fails), and the kill file is not read meanwhile.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
import uuid
from pathlib import Path

import psycopg
import pytest
from bytewax.testing import run_main

from flows.control import CONTROL_TOPIC
from flows.demo import TRADING_FILES
from flows.ingest import replay_flow
from flows.settings import load_settings
from flows.storage.migrate import migrate
from tests.integration.conftest import topic_message_count
from tests.support.flow_http import free_port, metric
from tests.support.kill_restart import OUT_TOPICS, env_for, equity_rows, fresh_database, outcome, run_to_end
from tests.support.private_kafka import PrivateKafka, jars_present

pytestmark = [
    pytest.mark.integration,
    pytest.mark.chaos,
    pytest.mark.skipif(not jars_present(), reason="needs the Kafka jars (bash infra/services.sh tools)"),
    # A private broker and a flow process: about a minute on the shared 2-core machine, so only
    # `make chaos` (which sets this) runs it, not `make test`.
    pytest.mark.skipif(os.environ.get("BOT4_CHAOS_FULL") != "1", reason="make chaos only (BOT4_CHAOS_FULL=1)"),
]

ROOT = Path(__file__).resolve().parents[2]
TOPICS = {
    "md.candles.v1": 3,
    "md.trades.v1": 3,
    "md.book.v1": 3,
    "dlq.v1": 3,
    CONTROL_TOPIC: 1,
    "features.v1": 3,
    "signals.v1": 3,
    "risk.decisions.v1": 3,
    "orders.v1": 3,
    "fills.v1": 3,
    "orders.shadow.v1": 3,
}


def _wait(condition, timeout: float, what: str, proc: subprocess.Popen[bytes]) -> float:
    started = time.monotonic()
    while not condition():
        if proc.poll() is not None:
            raise AssertionError(f"the trading flow exited ({proc.returncode}) before {what}")
        if time.monotonic() - started > timeout:
            raise AssertionError(f"not within {timeout} s: {what}")
        time.sleep(0.3)
    return time.monotonic() - started


def test_the_kill_file_halts_the_account_while_the_kafka_broker_is_down(pg_database, tmp_path):
    broker = PrivateKafka(tmp_path / "kafka")
    proc: subprocess.Popen[bytes] | None = None
    try:
        broker.start()
        broker.create_topics(TOPICS)
        kafka = {"bootstrap": broker.bootstrap}
        candles = tmp_path / "BTC_USDT-1m.json"
        candles.write_text(json.dumps(json.loads(TRADING_FILES[0].read_text())[:800]))
        run_main(replay_flow([candles], settings=load_settings(kafka=kafka)))
        migrate(load_settings(postgres={"dbname": pg_database}).postgres.conninfo())

        port = free_port()
        data_dir = tmp_path / "data"
        env = dict(os.environ)
        env.update(
            {
                "BOT4_MODE": "paper",
                "BOT4_METRICS_PORT": str(port),
                "BOT4_KAFKA__BOOTSTRAP": broker.bootstrap,
                "BOT4_POSTGRES__DBNAME": pg_database,
                "BOT4_DATA_DIR": str(data_dir),
                "BOT4_TRADING__SYMBOLS": '["BTC/USDT"]',
                "BOT4_TRADING__BARS_FROM": "candles",
                "BOT4_TRADING__TIMEFRAME": "1m",
            }
        )
        log = (tmp_path / "flow.log").open("wb")
        proc = subprocess.Popen(
            [sys.executable, "-m", "flows.cli", "run"], env=env, cwd=ROOT, stdout=log, stderr=subprocess.STDOUT
        )
        account = {"account": "paper"}
        _wait(
            lambda: metric(port, "bot4_risk_state", **account, state="active") == 1,
            90,
            "the account trades (risk state active on /metrics)",
            proc,
        )
        # Wait until the replay's decisions are all out (the count stops growing): a broker lost
        # while a batch is being flushed blocks the worker in the sink (see the module docstring).
        counts: list[int] = []
        _wait(
            lambda: (
                counts.append(topic_message_count(broker.bootstrap, "risk.decisions.v1")) is None
                and len(counts) > 4
                and counts[-1] > 0
                and len(set(counts[-5:])) == 1
            ),
            120,
            "the flow caught up with the replay",
            proc,
        )

        broker.kill()
        time.sleep(1.0)  # the flow notices nothing: its sources just stop receiving
        assert metric(port, "bot4_risk_state", **account, state="halted") == 0
        data_dir.mkdir(exist_ok=True)
        (data_dir / "KILL").write_text("drill: broker down\n")
        took = _wait(
            lambda: metric(port, "bot4_risk_state", **account, state="halted") == 1,
            15,
            "the kill file halts the account with Kafka down",
            proc,
        )
        assert metric(port, "bot4_risk_state", **account, state="active") == 0
        print(f"kill file to HALTED on /metrics with the broker down: {took:.2f} s")
    finally:
        if proc is not None and proc.poll() is None:
            proc.kill()
            proc.wait(30)
        broker.kill()


def _run_through_broker_restart(
    env: dict[str, str], recovery: Path, conninfo: str, broker: PrivateKafka, kill_at_rows: int, down_s: float
) -> dict[str, object]:
    """``bot4 run --drain --recovery`` while the broker is SIGKILLed at ``kill_at_rows`` equity rows
    and started again ``down_s`` later. A flow process that exits meanwhile is restarted from
    recovery (as a supervisor would); returns what happened."""
    flow_starts = 0
    exits: list[int] = []
    broker_restarted = False
    while True:
        flow_starts += 1
        proc = subprocess.Popen(
            [sys.executable, "-m", "flows.cli", "run", "--drain", "--recovery", str(recovery)],
            env=env,
            cwd=ROOT,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
        )
        try:
            deadline = time.monotonic() + 300
            while proc.poll() is None:
                if not broker_restarted and equity_rows(conninfo) >= kill_at_rows:
                    broker.kill()
                    time.sleep(down_s)
                    broker.start()
                    broker_restarted = True
                assert time.monotonic() < deadline, "the trading flow did not finish within 300 s"
                time.sleep(0.1)
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait(30)
        if proc.returncode == 0 and broker_restarted:
            return {"flow_starts": flow_starts, "exits": exits}
        assert proc.returncode != 0 or broker_restarted, "the flow ended before the broker was killed"
        exits.append(proc.returncode)
        assert flow_starts < 5, f"the flow kept failing after the broker came back: {exits}"


def test_the_broker_killed_and_restarted_mid_run_loses_no_order_or_fill_and_doubles_none(pg_admin_conninfo, tmp_path):
    broker = PrivateKafka(tmp_path / "kafka")
    try:
        broker.start()
        broker.create_topics(TOPICS)
        candles = tmp_path / "BTC_USDT-1m.json"
        bars = 6000
        candles.write_text(json.dumps(json.loads(TRADING_FILES[0].read_text())[:bars]))
        run_main(replay_flow([candles], settings=load_settings(kafka={"bootstrap": broker.bootstrap})))

        ref_db, chaos_db = (f"bot4_brokerkill_{uuid.uuid4().hex[:8]}_{n}" for n in ("ref", "chaos"))
        reference_conninfo = fresh_database(pg_admin_conninfo, ref_db)
        chaos_conninfo = fresh_database(pg_admin_conninfo, chaos_db)
        try:
            env = {**env_for("", ref_db, tmp_path / "ref"), "BOT4_KAFKA__BOOTSTRAP": broker.bootstrap}
            run_to_end(env, None)
            reference = outcome(broker.bootstrap, "", reference_conninfo)
            assert reference["orders"] and reference["fills"]

            # The chaotic run writes to its own topics: the reference's output topics recreated empty.
            outputs = {t: n for t, n in TOPICS.items() if t in OUT_TOPICS}
            broker.delete_topics(list(outputs))
            broker.create_topics(outputs)
            env = {**env_for("", chaos_db, tmp_path / "chaos"), "BOT4_KAFKA__BOOTSTRAP": broker.bootstrap}
            happened = _run_through_broker_restart(
                env, tmp_path / "recovery", chaos_conninfo, broker, kill_at_rows=bars // 3, down_s=5.0
            )
            chaotic = outcome(broker.bootstrap, "", chaos_conninfo)
        finally:
            with psycopg.connect(pg_admin_conninfo, autocommit=True) as conn:
                for name in (ref_db, chaos_db):
                    conn.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")
        print(f"broker killed at {bars // 3} equity rows, down 5 s: {happened}")
        assert chaotic["orders"] == reference["orders"]  # none lost, none extra
        assert chaotic["fills"] == reference["fills"]
        assert chaotic["stored_orders"] == reference["stored_orders"]
        assert chaotic["stored_fills"] == reference["stored_fills"]
        assert chaotic["equity"] == reference["equity"]
    finally:
        broker.kill()
