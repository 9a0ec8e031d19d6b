"""PostgreSQL stopped for 30 s in the middle of a paper trading run (issue 10): the flow pauses on
its sinks (bounded memory: the worker waits, the Kafka source is not read ahead), says so in its
log, resumes by itself when the server is back, and stores exactly what an uninterrupted run
stores: the same decisions, orders, fills and equity rows.

The server is a private PostgreSQL cluster on its own port (initdb in a temporary folder, as
``infra/services.sh`` makes the shared one), so stopping it disturbs nothing else. Input: the
bundled real Binance BTC/USDT 1m candles of 2021-05-19 replayed into Kafka once. ``make chaos``.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import subprocess
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import psutil
import psycopg
import pytest
from bytewax.testing import run_main

from flows.control import CONTROL_TOPIC
from flows.ingest import replay_flow
from flows.settings import load_settings
from flows.storage.migrate import migrate
from tests.support.flow_http import free_port
from tests.support.kill_restart import BOT4, OUT_TOPICS, ROOT, env_for, run_to_end
from tests.support.topics import topics

pytestmark = [
    pytest.mark.integration,
    pytest.mark.chaos,
    pytest.mark.skipif(os.environ.get("BOT4_CHAOS_FULL") != "1", reason="make chaos only (BOT4_CHAOS_FULL=1)"),
]

PG_BIN = Path(os.environ.get("BOT4_PG_BIN", "/usr/lib/postgresql/15/bin"))
BTC_1M = ROOT / "data" / "sample" / "binance-1m-2021" / "BTC_USDT-1m.json"
OUTAGE_S = 30.0
AS_PG = ("runuser", "-u", "postgres", "--")


@dataclass
class PrivatePostgres:
    port: int
    folder: Path

    def _pg_ctl(self, *args: str) -> None:
        subprocess.run(
            [*AS_PG, str(PG_BIN / "pg_ctl"), "-D", str(self.folder / "data"), *args],
            check=True,
            capture_output=True,
            cwd="/",
        )

    def start(self) -> None:
        options = f"-p {self.port} -k {self.folder} -c listen_addresses=127.0.0.1 -c fsync=off"
        self._pg_ctl("-o", options, "-l", str(self.folder / "server.log"), "-w", "start")

    def stop(self) -> None:
        self._pg_ctl("-m", "fast", "-w", "stop")

    def conninfo(self, dbname: str) -> str:
        return f"host=127.0.0.1 port={self.port} user=postgres dbname={dbname}"

    def fresh_database(self, name: str) -> str:
        with psycopg.connect(self.conninfo("postgres"), autocommit=True) as conn:
            conn.execute(f"CREATE DATABASE {name}")
        migrate(self.conninfo(name))
        return self.conninfo(name)


@pytest.fixture
def private_postgres() -> Iterator[PrivatePostgres]:
    if os.geteuid() != 0 or shutil.which("runuser") is None or not (PG_BIN / "initdb").exists():
        pytest.skip("needs root, runuser and PostgreSQL's server binaries to run a private cluster")
    folder = Path(tempfile.mkdtemp(prefix="bot4-pg-outage-", dir="/tmp"))
    shutil.chown(folder, "postgres", "postgres")
    subprocess.run(
        [*AS_PG, str(PG_BIN / "initdb"), "-D", str(folder / "data"), "-A", "trust", "-U", "postgres", "-E", "UTF8"],
        check=True,
        capture_output=True,
        cwd="/",
    )
    server = PrivatePostgres(free_port(), folder)
    server.start()
    try:
        yield server
    finally:
        with contextlib.suppress(subprocess.CalledProcessError):  # already stopped by a failed test
            server.stop()
        shutil.rmtree(folder, ignore_errors=True)


@pytest.fixture
def replayed(topic_prefix: str, kafka_bootstrap: str) -> Iterator[str]:
    names = [f"{topic_prefix}{t}" for t in (*OUT_TOPICS, CONTROL_TOPIC)]
    with topics(kafka_bootstrap, names):
        run_main(replay_flow([BTC_1M], settings=load_settings(kafka={"topic_prefix": topic_prefix})))
        yield topic_prefix


def stored(conninfo: str) -> dict[str, object]:
    with psycopg.connect(conninfo) as conn:
        return {
            "decisions": sorted(r[0] for r in conn.execute("SELECT decision_id FROM risk_decisions")),
            "orders": sorted(conn.execute("SELECT client_order_id, status FROM orders").fetchall()),
            "fills": sorted(conn.execute("SELECT fill_id, client_order_id, price, amount, fee FROM fills").fetchall()),
            "equity": conn.execute("SELECT ts_event, equity, cash FROM equity ORDER BY ts_event").fetchall(),
            "signals": conn.execute("SELECT count(*) FROM signals").fetchone(),
        }


def equity_rows(conninfo: str) -> int:
    try:
        with psycopg.connect(conninfo, connect_timeout=2) as conn:
            return int(conn.execute("SELECT count(*) FROM equity").fetchone()[0])  # type: ignore[index]
    except psycopg.Error:
        return 0


def test_postgresql_stopped_for_30_s_mid_run_pauses_the_flow_which_then_stores_exactly_the_uninterrupted_rows(
    private_postgres, replayed, tmp_path
):
    server = private_postgres
    reference_db = server.fresh_database("reference")
    chaos_db = server.fresh_database("outage")

    env = env_for(replayed, "reference", tmp_path / "reference") | {"BOT4_POSTGRES__PORT": str(server.port)}
    run_to_end(env, None)
    reference = stored(reference_db)
    assert reference["orders"] and reference["fills"] and len(reference["equity"]) > 1000

    env = env_for(replayed, "outage", tmp_path / "outage") | {
        "BOT4_POSTGRES__PORT": str(server.port),
        "BOT4_TRADING__BATCH_SIZE": "20",  # small batches: the run is still going when the server stops
    }
    proc = subprocess.Popen(
        [*BOT4, "run", "--drain"], env=env, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE
    )
    try:
        deadline = time.monotonic() + 120
        while equity_rows(chaos_db) < 300:
            assert proc.poll() is None, "the flow ended before the outage"
            assert time.monotonic() < deadline, "the flow made no progress"
            time.sleep(0.1)
        before = psutil.Process(proc.pid).memory_info().rss
        server.stop()
        stopped_at = time.monotonic()
        peak = before
        while time.monotonic() - stopped_at < OUTAGE_S:
            assert proc.poll() is None, "the flow died while PostgreSQL was down instead of waiting"
            peak = max(peak, psutil.Process(proc.pid).memory_info().rss)
            time.sleep(0.5)
        server.start()
        _, err = proc.communicate(timeout=240)
    finally:
        if proc.poll() is None:
            proc.kill()
    log = err.decode(errors="replace")
    assert proc.returncode == 0, log[-3000:]
    assert "PostgreSQL write failed" in log or "write failed" in log, log[-3000:]  # it said what happened
    assert peak - before < 64 * 2**20, (before, peak)  # paused, not buffering the topics in memory
    assert stored(chaos_db) == reference
