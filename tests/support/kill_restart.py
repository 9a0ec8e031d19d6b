"""The kill-and-restart machinery shared by the chaos test (tests/chaos/test_kill_trading.py) and
the restart benchmark (benchmarks/bench_restart.py): the trading flow's environment, a fresh
migrated database, progress as stored equity rows, a run to the end, and what a run produced."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import orjson
import psycopg

from flows.settings import load_settings
from flows.storage.migrate import migrate
from tests.integration.conftest import read_topic

ROOT = Path(__file__).resolve().parents[2]
BOT4 = [sys.executable, "-m", "flows.cli"]
OUT_TOPICS = ("features.v1", "signals.v1", "risk.decisions.v1", "orders.v1", "fills.v1", "orders.shadow.v1")


def env_for(prefix: str, database: str, data_dir: Path) -> dict[str, str]:
    env = dict(os.environ)
    env.update(
        {
            "BOT4_MODE": "paper",
            "BOT4_METRICS_PORT": "0",
            "BOT4_KAFKA__TOPIC_PREFIX": prefix,
            "BOT4_POSTGRES__DBNAME": database,
            "BOT4_DATA_DIR": str(data_dir),
            "BOT4_TRADING__ACCOUNT": "paper",
            "BOT4_TRADING__SYMBOLS": '["BTC/USDT"]',
            "BOT4_TRADING__BARS_FROM": "candles",
            "BOT4_TRADING__TIMEFRAME": "1m",
            # Small batches: recovery epochs (1 s) and kill points fall inside the replay, not
            # between two batches of thousands of bars.
            "BOT4_TRADING__BATCH_SIZE": "100",
        }
    )
    return env


def fresh_database(admin_conninfo: str, name: str) -> str:
    with psycopg.connect(admin_conninfo, autocommit=True) as conn:
        conn.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")
        conn.execute(f"CREATE DATABASE {name}")
    settings = load_settings(postgres={"dbname": name})
    migrate(settings.postgres.conninfo())
    return settings.postgres.conninfo()


def equity_rows(conninfo: str) -> int:
    try:
        with psycopg.connect(conninfo, connect_timeout=2) as conn:
            return int(conn.execute("SELECT count(*) FROM equity").fetchone()[0])  # type: ignore[index]
    except psycopg.Error:
        return 0


def run_to_end(env: dict[str, str], recovery: Path | None, timeout: float = 240) -> None:
    args = [*BOT4, "run", "--drain"] + ([] if recovery is None else ["--recovery", str(recovery)])
    done = subprocess.run(args, env=env, cwd=ROOT, capture_output=True, text=True, timeout=timeout, check=False)
    assert done.returncode == 0, done.stderr[-3000:]


def outcome(bootstrap: str, prefix: str, conninfo: str) -> dict[str, object]:
    """Distinct orders and fills on the topics and in PostgreSQL (duplicated messages collapse:
    outputs are at-least-once, their keys make them idempotent downstream)."""
    orders = {orjson.loads(v)["client_order_id"] for _, v in read_topic(bootstrap, f"{prefix}orders.v1") if v}
    fills = {}
    for _, value in read_topic(bootstrap, f"{prefix}fills.v1"):
        record = orjson.loads(value or b"{}")
        if record.get("type") == "fill":
            key = record["fill_id"]
            seen = (record["client_order_id"], record["price"], record["amount"], record["fee"])
            assert fills.setdefault(key, seen) == seen, f"fill {key} published twice with different contents"
    with psycopg.connect(conninfo) as conn:
        stored_orders = {r[0]: r[1] for r in conn.execute("SELECT client_order_id, status FROM orders")}
        stored_fills = sorted(
            (r[0], r[1], str(r[2].normalize()), str(r[3].normalize()))
            for r in conn.execute("SELECT fill_id, client_order_id, price, amount FROM fills")
        )
        equity = conn.execute("SELECT count(*), max(equity) FROM equity").fetchone()
    return {
        "orders": sorted(orders),
        "fills": sorted(fills.items()),
        "stored_orders": stored_orders,
        "stored_fills": stored_fills,
        "equity": equity,
    }
