"""The kill-and-restart machinery shared by the chaos tests (tests/chaos/test_kill_trading.py,
tests/chaos/test_kill_execution.py) and the restart benchmark (benchmarks/bench_restart.py): the
trading flow's environment, a fresh migrated database, progress as stored equity rows, a run to the
end, and what a run produced; for the execution flow as its own process, its environment, its
start, and what it produced (its metrics: tests/support/flow_http.py)."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterable
from decimal import Decimal
from pathlib import Path
from typing import Any

import orjson
import psycopg

from core.fills import fill_from_record
from execution.portfolio import Portfolio
from flows.settings import load_settings
from flows.storage.migrate import migrate
from tests.integration.conftest import read_topic
from tests.support.topics import OUT_TOPICS  # noqa: F401  # re-exported: the chaos tests and bench_restart read it here

ROOT = Path(__file__).resolve().parents[2]
BOT4 = [sys.executable, "-m", "flows.cli"]


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


# -- the execution flow as its own process (tests/chaos/test_kill_execution.py) ------------------

TERMINAL = ("filled", "canceled", "rejected", "expired")


def execution_env(prefix: str, database: str, data_dir: Path, metrics_port: int) -> dict[str, str]:
    """:func:`env_for` with execution through Kafka (``bot4 run`` publishes orders.v1, ``bot4 execute``
    executes them) and the process's metrics on ``metrics_port``."""
    env = env_for(prefix, database, data_dir)
    env.update({"BOT4_TRADING__EXECUTION": "kafka", "BOT4_METRICS_PORT": str(metrics_port)})
    return env


def spawn(command: str, env: dict[str, str], recovery: Path) -> subprocess.Popen[bytes]:
    """``bot4 run`` or ``bot4 execute`` following its topics (no drain) with ``--recovery``."""
    return subprocess.Popen(
        [*BOT4, command, "--recovery", str(recovery)],
        env=env,
        cwd=ROOT,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )


def stored_count(conninfo: str, table: str) -> int:
    try:
        with psycopg.connect(conninfo, connect_timeout=2) as conn:
            return int(conn.execute(f"SELECT count(*) FROM {table}").fetchone()[0])  # type: ignore[index]
    except psycopg.Error:
        return 0


def execution_outcome(bootstrap: str, prefix: str, conninfo: str) -> dict[str, Any]:
    """What one execution process produced, on ``fills.v1`` and in PostgreSQL.

    Outputs are at-least-once: a restart re-publishes what followed its last snapshot. A repeat of
    the same record (same order event ``(client_order_id, seq)``, same fill id) collapses, but only
    if it is byte for byte what was published before; anything else fails here. ``republished``
    counts the repeats; ``submits`` is the number of distinct ``submit`` events per client order id
    (a second submission at the venue would be a second distinct one)."""
    events: dict[tuple[str, int], dict[str, Any]] = {}
    fills: dict[str, dict[str, Any]] = {}
    republished = 0
    for _, value in read_topic(bootstrap, f"{prefix}fills.v1", timeout=120):
        record = orjson.loads(value or b"{}")
        if record.get("type") == "fill":
            first = fills.setdefault(record["fill_id"], record)
        else:
            first = events.setdefault((record["client_order_id"], record["seq"]), record)
        if first is not record:
            assert first == record, f"published twice with different contents: {first} then {record}"
            republished += 1
    submits: dict[str, set[bytes]] = {}
    for (cid, _), e in events.items():
        if e["kind"] == "submit":
            submits.setdefault(cid, set()).add(orjson.dumps(e))
    final: dict[str, str] = {}
    for (cid, _), e in sorted(events.items()):
        final[cid] = e["status"]
    with psycopg.connect(conninfo) as conn:
        stored_orders: dict[str, str] = dict(conn.execute("SELECT client_order_id, status FROM orders").fetchall())
        stored_events = sorted(
            (r[0], r[1], r[2], r[3])
            for r in conn.execute("SELECT client_order_id, seq, event, status_after FROM order_events")
        )
        stored_fills = sorted(
            (r[0], r[1], str(r[2].normalize()), str(r[3].normalize()), str(r[4].normalize()))
            for r in conn.execute("SELECT fill_id, client_order_id, price, amount, fee FROM fills")
        )
    return {
        "events": dict(sorted(events.items())),
        "fills": fills,
        "final_status": final,
        "submits": {cid: len(s) for cid, s in submits.items()},
        "republished": republished,
        "stored_orders": stored_orders,
        "stored_events": stored_events,
        "stored_fills": stored_fills,
    }


def portfolio_from_fills(fills: Iterable[dict[str, Any]], cash: Decimal, marks: dict[str, Decimal]) -> dict[str, Any]:
    """Positions, cash, fees, realized PnL and equity booked from ``fills.v1`` fill records in
    publication order, by the same :class:`~execution.portfolio.Portfolio` the trading flow keeps,
    each instrument marked at ``marks`` (``exchange:SYMBOL`` -> price)."""
    portfolio = Portfolio("paper", cash, "USDT")
    for record in fills:
        portfolio.apply_fill(fill_from_record(record))
    for key, price in marks.items():
        exchange, symbol = key.split(":", 1)
        if key in portfolio.holdings():
            portfolio.mark(exchange, symbol, price)
    return {
        "positions": {k: h.amount for k, h in portfolio.holdings().items()},
        "cash": portfolio.cash,
        "fees": portfolio.fees,
        "realized_pnl": portfolio.realized_pnl,
        "equity": portfolio.equity,
    }
