"""The trading flow and the execution flow as two processes talking through Kafka, in paper mode.

Real Binance BTC/USDT 1m candles (bundled, May 2021) are produced into Kafka at a steady pace while
both processes run (``BOT4_TRADING__EXECUTION=kafka``): the trading flow decides and publishes on
``orders.v1``; the execution flow executes on the paper venue, paced by the trading flow's progress,
and publishes order events and fills on ``fills.v1``, which the trading flow reads back into the
portfolio its gate judges. A kill switch at the end cancels what is still open. Checked: every
signal has one decision, every approved order is submitted once and reaches exactly one terminal
state, fills in Kafka equal fills in PostgreSQL, each fill is at the open of the bar after its
decision (the in-process fill rule, so pacing held across processes), and exits were approved
(the trading flow saw its entries' fills come back).
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import orjson
import psycopg
import pytest
from confluent_kafka import Producer

from core.clock import from_epoch_us
from core.events import Candle
from core.orders import KillSwitch, client_order_id
from core.wire import encode, topic_for
from flows.control import publish_command
from flows.models import decode_signal
from flows.replay import read_events
from flows.settings import load_settings
from flows.storage.migrate import migrate
from tests.support.flow_http import free_port, ready
from tests.support.topics import flow_topics

from .conftest import read_topic

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]
BTC_1M = ROOT / "data" / "sample" / "binance-1m-2021" / "BTC_USDT-1m.json"
BARS = 400
TERMINAL = ("filled", "canceled", "rejected", "expired")


@pytest.fixture
def topics(topic_prefix: str, kafka_bootstrap: str) -> Iterator[str]:
    with flow_topics(kafka_bootstrap, topic_prefix):
        yield topic_prefix


def env_for(prefix: str, database: str, data_dir: Path, metrics_port: int) -> dict[str, str]:
    env = dict(os.environ)
    env.update(
        {
            "BOT4_MODE": "paper",
            "BOT4_METRICS_PORT": str(metrics_port),
            "BOT4_KAFKA__TOPIC_PREFIX": prefix,
            "BOT4_POSTGRES__DBNAME": database,
            "BOT4_DATA_DIR": str(data_dir),
            "BOT4_TRADING__ACCOUNT": "paper",
            "BOT4_TRADING__SYMBOLS": '["BTC/USDT"]',
            "BOT4_TRADING__BARS_FROM": "candles",
            "BOT4_TRADING__TIMEFRAME": "1m",
            "BOT4_TRADING__EXECUTION": "kafka",
            "BOT4_TRADING__BATCH_SIZE": "20",
        }
    )
    return env


def records(bootstrap: str, topic: str) -> list[dict]:
    return [orjson.loads(value) for _, value in read_topic(bootstrap, topic) if value is not None]


def start(flow: str, env: dict[str, str]) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [sys.executable, "-m", "bytewax.run", flow],
        env=env,
        cwd=ROOT,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        start_new_session=True,
    )


def stop(proc: subprocess.Popen[bytes]) -> str:
    if proc.poll() is None:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(10)
    assert proc.stderr is not None
    return proc.stderr.read().decode(errors="replace")[-3000:]


def wait_for(condition, timeout: float, what: str, procs) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        for p in procs:
            assert p.poll() is None, f"a flow exited early while waiting for {what}: {stop(p)}"
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.5)


def test_trading_and_execution_processes_through_kafka_execute_every_approved_order_once(
    topics, pg_database, kafka_bootstrap, tmp_path
):
    prefix = topics
    settings = load_settings(
        mode="paper",
        kafka={"topic_prefix": prefix},
        postgres={"dbname": pg_database},
        trading={"account": "paper", "symbols": ["BTC/USDT"], "execution": "kafka"},
    )
    migrate(settings.postgres.conninfo())
    candles = [e for _, e in zip(range(BARS), read_events(BTC_1M), strict=False) if isinstance(e, Candle)]
    ports = (free_port(), free_port())
    execution = start("flows.execution_run:execution_flow()", env_for(prefix, pg_database, tmp_path, ports[0]))
    trading = start("flows.trading_run:trading_flow()", env_for(prefix, pg_database, tmp_path, ports[1]))
    procs = (execution, trading)
    try:
        wait_for(lambda: all(ready(p) for p in ports), 60, "both flows to read their topics", procs)
        producer = Producer({"bootstrap.servers": kafka_bootstrap})
        for n, candle in enumerate(candles):  # 50 bars a second: a fast live feed, fills come back in time
            producer.produce(f"{prefix}{topic_for(candle)}", encode(candle), candle.key.encode())
            if n % 10 == 9:
                producer.flush()
                time.sleep(0.2)
        producer.flush()
        last_bar_end = candles[-1].ts_event + timedelta(minutes=1)

        def decided_to_the_end() -> bool:
            progress = [r for r in records(kafka_bootstrap, f"{prefix}orders.v1") if r.get("type") == "progress"]
            return bool(progress) and from_epoch_us(progress[-1]["ts"]) >= last_bar_end

        wait_for(decided_to_the_end, 90, "the trading flow to decide through the last bar", procs)
        publish_command(settings, KillSwitch("paper", "test", "end of the run", candles[-1].ts_event), via="cli")

        def every_order_done() -> bool:
            orders = [r for r in records(kafka_bootstrap, f"{prefix}orders.v1") if "type" not in r]
            done = {
                e["client_order_id"]
                for e in records(kafka_bootstrap, f"{prefix}fills.v1")
                if e["type"] == "order" and e["status"] in TERMINAL
            }
            return bool(orders) and {o["client_order_id"] for o in orders} <= done

        wait_for(every_order_done, 60, "every approved order to reach a terminal state", procs)
    finally:
        logs = [stop(p) for p in procs]
    print("\n".join(logs))

    signals = [decode_signal(v) for _, v in read_topic(kafka_bootstrap, f"{prefix}signals.v1") if v is not None]
    decisions = records(kafka_bootstrap, f"{prefix}risk.decisions.v1")
    on_orders_topic = records(kafka_bootstrap, f"{prefix}orders.v1")
    orders = [r for r in on_orders_topic if "type" not in r]
    execution_records = records(kafka_bootstrap, f"{prefix}fills.v1")
    judged = [d for d in decisions if d["kind"] in ("approved", "denied")]
    assert len(signals) > 10
    assert sorted(d["client_order_id"] for d in judged) == sorted(
        client_order_id(s.strategy, s.symbol, s.ts_event) for s in signals
    )
    approved = {d["client_order_id"] for d in judged if d["kind"] == "approved"}
    assert {o["client_order_id"] for o in orders} == approved
    assert any(r.get("type") == "cancel_all" for r in on_orders_topic)  # the kill switch reached execution

    events = [e for e in execution_records if e["type"] == "order"]
    submits = Counter(e["client_order_id"] for e in events if e["kind"] == "submit")
    assert set(submits) == approved and set(submits.values()) == {1}  # each submitted exactly once
    terminal = Counter(e["client_order_id"] for e in events if e["status"] in TERMINAL)
    assert set(terminal) == approved and set(terminal.values()) == {1}
    assert not [e for e in events if e["kind"] == "reject"]  # never sold what it did not hold

    fills = [f for f in execution_records if f["type"] == "fill"]
    assert fills
    # The in-process fill rule held across processes: a fill at the open of the bar after the one
    # whose close decided it.
    decided = {o["client_order_id"]: from_epoch_us(o["ts_decided"]) for o in orders}
    opens = {c.ts_event: c.open for c in candles}
    for f in fills:
        when = from_epoch_us(f["ts_event"])
        assert when == decided[f["client_order_id"]], f
        assert str(opens[when]) == f["price"], f
    sides = {o["client_order_id"]: o["side"] for o in orders}
    filled_sells = [f for f in fills if sides[f["client_order_id"]] == "sell"]
    assert filled_sells, "exits are approved only when the entries' fills came back to the trading flow"

    with psycopg.connect(settings.postgres.conninfo()) as conn:
        stored_fills = sorted(
            (r[0], r[1], str(r[2]), str(r[3]))
            for r in conn.execute("SELECT fill_id, client_order_id, price, amount FROM fills")
        )
        stored_orders = dict(conn.execute("SELECT client_order_id, status FROM orders").fetchall())
    kafka_fills = sorted((f["fill_id"], f["client_order_id"], f["price"], f["amount"]) for f in fills)
    assert [f[:2] for f in kafka_fills] == [f[:2] for f in stored_fills]
    assert [(float(a), float(b)) for *_, a, b in kafka_fills] == [(float(a), float(b)) for *_, a, b in stored_fills]
    assert set(stored_orders) == approved and set(stored_orders.values()) <= set(TERMINAL)
