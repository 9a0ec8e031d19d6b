"""Operator console (issue 11): API latency with 100k stored orders, and a fill's way from Kafka to the
console's live stream and to the page.

Everything runs against the local services (`make services-up`) in a scratch PostgreSQL database and
scratch Kafka topics, both removed at the end:

1. Store: the bundled real Binance BTC/USDT and ETH/USDT 1m candles (2021-05-16..20) through the
   project's ``PostgresWriter``; then ``--orders`` orders of one account ``bench`` built from those
   candles (one per candle and strategy: side from the candle's direction, price its close, 100 USDT
   each; 7 of 10 filled, 2 canceled, 1 left open), each with the order events the order state
   machine (``execution.orders.ORDER_TRANSITIONS``) gives it and, when filled, its fill, all loaded
   with COPY into the tables the execution writer fills.
2. Serve: ``bot4 serve`` as its own process (read-only, live feed on). API latency: ``--requests``
   sequential GETs per endpoint (keep-alive, after 10 warm-up requests), p50/p99 of the wall time;
   the overview page's seven requests fetched concurrently, as the browser does, timed to the last.
3. Live: ``--fills`` fills produced to ``fills.v1`` one every ``--interval-ms`` (produce + flush, as a
   flow sends a batch), timed to their arrival as server-sent events on ``/api/events``; with
   ``--page`` also to the moment the console page in Chromium (playwright-core, Debian's chromium)
   shows them in its live panel (a DOM mutation observer in the page notes the wall time).

    .venv/bin/python benchmarks/bench_console.py [--orders 100000] [--requests 200] [--fills 200] [--page]
"""

from __future__ import annotations

import argparse
import concurrent.futures
import json
import os
import platform
import shutil
import socket
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from datetime import timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import orjson  # noqa: E402
import psycopg  # noqa: E402
import requests  # noqa: E402
from confluent_kafka.admin import AdminClient, NewTopic  # noqa: E402

from core.events import Candle, Side  # noqa: E402
from core.fills import Fill, Liquidity, OrderEvent, OrderEventKind, OrderStatus, order_event_record  # noqa: E402
from core.orders import client_order_id  # noqa: E402
from execution.orders import ORDER_TRANSITIONS, StateMachine  # noqa: E402
from flows.execution import execution_message  # noqa: E402
from flows.kafka_io import CheckedProducer, producer_config  # noqa: E402
from flows.replay import read_events  # noqa: E402
from flows.settings import Bot4Settings, load_settings  # noqa: E402
from flows.storage.migrate import migrate  # noqa: E402
from flows.storage.sink import PostgresWriter  # noqa: E402

CANDLES = [ROOT / "data" / "sample" / "binance-1m-2021" / f"{s}_USDT-1m.json" for s in ("BTC", "ETH")]
ACCOUNT = "bench"
LIVE = ("fills.v1", "orders.v1", "risk.decisions.v1", "control.commands.v1")
NOTIONAL = Decimal("100")
FEE_RATE = Decimal("0.001")
LOT = Decimal("0.00001")
OVERVIEW = (
    "/api/info",
    "/api/accounts",
    "/api/risk",
    "/api/strategies",
    "/api/positions",
    "/api/freshness",
    f"/api/equity?account={ACCOUNT}",
)
ORDERS = (
    "/api/orders?limit=500",
    "/api/orders?limit=500&status=canceled",
    f"/api/orders?limit=500&account={ACCOUNT}&symbol=ETH/USDT&side=sell",
)
_EVENTS = {
    "filled": (OrderEventKind.SUBMIT, OrderEventKind.ACCEPT, OrderEventKind.FILL),
    "canceled": (OrderEventKind.SUBMIT, OrderEventKind.ACCEPT, OrderEventKind.CANCEL_REQUEST, OrderEventKind.CANCEL),
    "open": (OrderEventKind.SUBMIT, OrderEventKind.ACCEPT),
}


def _outcome(i: int) -> str:
    return "filled" if i % 10 < 7 else "canceled" if i % 10 < 9 else "open"


def order_rows(
    candles: list[Candle], count: int
) -> Iterator[tuple[tuple[Any, ...], list[tuple[Any, ...]], Fill | None]]:
    """(orders row, order_events rows, fill) per order: one order per candle and strategy."""
    strategies = [f"bench-{k}" for k in range(count // len(candles) + 1)]
    for i in range(count):
        candle = candles[i % len(candles)]
        strategy = strategies[i // len(candles)]
        cid = client_order_id(strategy, candle.symbol, candle.ts_event)
        side = Side.BUY if candle.close >= candle.open else Side.SELL
        amount = (NOTIONAL / candle.close).quantize(LOT)
        limit = i % 2 == 1
        ts = candle.ts_event + timedelta(seconds=60)
        machine = StateMachine(ORDER_TRANSITIONS, OrderStatus.PENDING_SUBMIT)
        events, filled = [], Decimal(0)
        for seq, kind in enumerate(_EVENTS[_outcome(i)], start=1):
            before = machine.status
            after = machine.apply(kind, cid)
            filled = amount if kind is OrderEventKind.FILL else filled
            event = OrderEvent(
                candle.exchange, ACCOUNT, cid, candle.symbol, kind, after, filled, amount - filled,
                ts + timedelta(milliseconds=5 * seq), f"paper-{i}", "", before, seq,
            )  # fmt: skip
            detail = orjson.dumps(order_event_record(event)).decode()
            events.append((cid, seq, kind.value, before.value, after.value, detail, event.ts_event))
        fill = None
        if machine.status is OrderStatus.FILLED:
            fill = Fill(
                candle.exchange, f"bench-{i}", cid, ACCOUNT, candle.symbol, side, candle.close, amount,
                (candle.close * amount * FEE_RATE).quantize(Decimal("0.00000001")), "USDT",
                Liquidity.MAKER if limit else Liquidity.TAKER, events[-1][-1],
            )  # fmt: skip
        row = (
            cid, ACCOUNT, strategy, candle.exchange, candle.symbol, side.value, "limit" if limit else "market",
            amount, candle.close if limit else None, machine.status.value, f"paper-{i}", ts, events[-1][-1],
        )  # fmt: skip
        yield row, events, fill


def store(conninfo: str, orders: int) -> dict[str, Any]:
    candles = sorted(
        (e for path in CANDLES for e in read_events(path) if isinstance(e, Candle)), key=lambda c: c.ts_event
    )
    started = time.perf_counter()
    writer = PostgresWriter(conninfo)
    writer.write(candles)
    writer.close()
    counts = {"candles": len(candles), "orders": 0, "order_events": 0, "fills": 0}
    with psycopg.connect(conninfo) as conn, conn.cursor() as cur:
        fills: list[Fill] = []
        events: list[tuple[Any, ...]] = []
        with cur.copy(
            "COPY orders (client_order_id, account, strategy, exchange, symbol, side, order_type, amount,"
            " limit_price, status, venue_order_id, ts_created, ts_updated) FROM STDIN"
        ) as orders_copy:
            for row, order_events, fill in order_rows(candles, orders):
                orders_copy.write_row(row)
                events.extend(order_events)
                if fill is not None:
                    fills.append(fill)
        with cur.copy(
            "COPY order_events (client_order_id, seq, event, status_before, status_after, detail, ts_event) FROM STDIN"
        ) as copy:
            for e in events:
                copy.write_row(e)
        with cur.copy(
            "COPY fills (exchange, fill_id, client_order_id, account, symbol, side, price, amount, fee, fee_currency,"
            " liquidity, ts_event) FROM STDIN"
        ) as copy:
            for f in fills:
                copy.write_row(
                    (f.exchange, f.fill_id, f.client_order_id, f.account, f.symbol, f.side.value, f.price, f.amount,
                     f.fee, f.fee_currency, f.liquidity.value, f.ts_event)
                )  # fmt: skip
        counts.update(orders=orders, order_events=len(events), fills=len(fills))
    with psycopg.connect(conninfo, autocommit=True) as conn:
        conn.execute("ANALYZE")
    counts["store_s"] = round(time.perf_counter() - started, 1)
    return counts


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _quantiles(samples_ms: list[float]) -> dict[str, float]:
    ordered = sorted(samples_ms)

    def at(q: float) -> float:
        return round(ordered[min(len(ordered) - 1, int(q * len(ordered)))], 1)

    return {"n": len(ordered), "p50_ms": at(0.50), "p99_ms": at(0.99), "max_ms": round(ordered[-1], 1)}


def api_latency(url: str, n: int) -> dict[str, Any]:
    session = requests.Session()
    out: dict[str, Any] = {}
    for path in (*OVERVIEW, *ORDERS):
        for _ in range(10):
            session.get(url + path, timeout=60).raise_for_status()
        samples = []
        for _ in range(n):
            t = time.perf_counter()
            response = session.get(url + path, timeout=60)
            samples.append((time.perf_counter() - t) * 1000)
            response.raise_for_status()
        out[path] = {**_quantiles(samples), "bytes": len(response.content), "rows": _rows(response.json())}
    with concurrent.futures.ThreadPoolExecutor(len(OVERVIEW)) as pool:
        sessions = [requests.Session() for _ in OVERVIEW]
        samples = []
        for _ in range(max(20, n // 4)):
            t = time.perf_counter()
            for r in pool.map(lambda sp: sp[0].get(url + sp[1], timeout=60), zip(sessions, OVERVIEW, strict=True)):
                r.raise_for_status()
            samples.append((time.perf_counter() - t) * 1000)
    out["overview page (7 requests at once)"] = _quantiles(samples)
    return out


def _rows(body: Any) -> int:
    if isinstance(body, list):
        return len(body)
    if isinstance(body, dict) and isinstance(body.get("points"), list):
        return len(body["points"])
    return 1


def _fill(i: int) -> Fill:
    # A fill of the first stored order's shape, with its own id and time (its time names it on the page).
    ts = CANDLE_T0 + timedelta(days=365, seconds=i)
    return Fill(
        "binance", f"live-{uuid.uuid4().hex[:8]}-{i}", "b4-live", ACCOUNT, "BTC/USDT", Side.BUY,
        Decimal("43000.10"), Decimal("0.00232"), Decimal("0.09976023"), "USDT", Liquidity.TAKER, ts,
    )  # fmt: skip


CANDLE_T0 = next(e for e in read_events(CANDLES[0]) if isinstance(e, Candle)).ts_event


def live_latency(settings: Bot4Settings, url: str, fills: int, interval_ms: float, page: bool) -> dict[str, Any]:
    arrived: dict[str, float] = {}
    stream = requests.get(url + "/api/events", stream=True, timeout=60)

    def read() -> None:
        for line in stream.iter_lines(decode_unicode=True):
            if line.startswith("data: "):
                event = json.loads(line[6:])
                if event.get("type") == "fill":
                    arrived.setdefault(event["fill_id"], time.time())

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    profile = f"/tmp/bench-console-{uuid.uuid4().hex[:6]}"
    browser = _open_page(url, profile) if page else None
    producer = CheckedProducer(producer_config(settings.kafka))
    sent: dict[str, tuple[float, str]] = {}
    try:
        for i in range(fills):
            fill = _fill(i)
            msg = execution_message(fill, settings.kafka.topic_prefix)
            t = time.time()
            producer.produce(msg.topic, msg.key, msg.value)
            producer.flush()
            sent[fill.fill_id] = (
                t,
                fill.ts_event.strftime("%Y-%m-%d %H:%M:%S.") + f"{fill.ts_event.microsecond // 1000:03d} UTC",
            )
            time.sleep(interval_ms / 1000)
        deadline = time.monotonic() + 10
        while len(arrived) < fills and time.monotonic() < deadline:
            time.sleep(0.05)
    finally:
        stream.close()
    sse = [(arrived[k] - t) * 1000 for k, (t, _) in sent.items() if k in arrived]
    out: dict[str, Any] = {"sse": {**_quantiles(sse), "lost": fills - len(sse)}}
    if browser is not None:
        shown = _close_page(browser, profile)
        on_page = [(shown[text] - t * 1000) for t, text in sent.values() if text in shown]
        out["page"] = {**_quantiles(on_page), "lost": fills - len(on_page)}
    return out


def _open_page(url: str, profile: str) -> subprocess.Popen[str]:
    chromium = os.environ.get("BOT4_CHROMIUM", "/usr/bin/chromium")
    proc = subprocess.Popen(
        ["node", "e2e/live_latency.bench.mjs"],
        cwd=ROOT / "console",
        env={**os.environ, "CONSOLE_URL": url, "CHROMIUM": chromium, "USER_DATA_DIR": profile},
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )  # fmt: skip
    assert proc.stdout is not None
    first = proc.stdout.readline()
    if not json.loads(first or "{}").get("ready"):
        raise RuntimeError(f"the page did not open: {first}{proc.stdout.read()}")
    return proc


def _close_page(proc: subprocess.Popen[str], profile: str) -> dict[str, float]:
    out, _ = proc.communicate("done\n", timeout=60)
    shutil.rmtree(profile, ignore_errors=True)
    result = json.loads(out.strip().splitlines()[-1])
    if not result.get("ok"):
        raise RuntimeError(f"page measurement failed: {result}")
    return {text: float(ms) for text, ms in result["seen"].items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--orders", type=int, default=100_000)
    parser.add_argument("--requests", type=int, default=200)
    parser.add_argument("--fills", type=int, default=200)
    parser.add_argument("--interval-ms", type=float, default=50.0)
    parser.add_argument("--page", action="store_true", help="also time the fill to the page (Chromium)")
    args = parser.parse_args()

    tag = uuid.uuid4().hex[:6]
    prefix, database = f"bcon{tag}.", f"bot4_bench_console_{tag}"
    base = load_settings()
    settings = load_settings(kafka={"topic_prefix": prefix}, postgres={"dbname": database}, metrics_port=0)
    admin_pg = base.postgres.model_copy(update={"dbname": "postgres"}).conninfo()
    admin = AdminClient({"bootstrap.servers": base.kafka.bootstrap})
    topics = [prefix + t for t in LIVE]
    for fut in admin.create_topics([NewTopic(t, 1, 1) for t in topics]).values():
        fut.result(30)
    with psycopg.connect(admin_pg, autocommit=True) as conn:
        conn.execute(f"CREATE DATABASE {database}")
    server = None
    try:
        migrate(settings.postgres.conninfo())
        stored = store(settings.postgres.conninfo(), args.orders)
        print(json.dumps({"stored": stored}), flush=True)
        port = _free_port()
        env = {
            **os.environ,
            "BOT4_KAFKA__TOPIC_PREFIX": prefix,
            "BOT4_POSTGRES__DBNAME": database,
            "BOT4_CONSOLE__PORT": str(port),
            "BOT4_METRICS_PORT": "0",
            "BOT4_LOG_LEVEL": "WARNING",
        }
        server = subprocess.Popen(
            [str(ROOT / ".venv" / "bin" / "bot4"), "serve"], cwd=ROOT, env=env, stdout=subprocess.DEVNULL
        )
        url = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 60
        while True:
            try:
                if len(requests.get(url + "/api/info", timeout=2).json()["live_following"]) == len(LIVE):
                    break
            except requests.RequestException:
                pass
            if time.monotonic() > deadline or server.poll() is not None:
                raise RuntimeError("bot4 serve did not start and follow its live topics within 60 s")
            time.sleep(0.2)
        result = {
            "date_utc": time.strftime("%Y-%m-%d %H:%M", time.gmtime()),
            "machine": f"{platform.machine()}, {os.cpu_count()} cores, load {os.getloadavg()[0]:.1f}",
            "stored": stored,
            "api": api_latency(url, args.requests),
            "live": live_latency(settings, url, args.fills, args.interval_ms, args.page),
            "load_after": round(os.getloadavg()[0], 1),
        }
        print(json.dumps(result, indent=1))
    finally:
        if server is not None:
            server.terminate()
            server.wait(15)
        for fut in admin.delete_topics(topics).values():
            fut.result(30)
        with psycopg.connect(admin_pg, autocommit=True) as conn:
            conn.execute(f"DROP DATABASE IF EXISTS {database} WITH (FORCE)")


if __name__ == "__main__":
    main()
