"""The operator console API against the real PostgreSQL and Kafka: every endpoint returns what the
database holds (rows written by the repo's own writers from the real Binance capture), commands are
refused without the right token, and the kill switch lands on the command path with its audit row."""

from __future__ import annotations

import dataclasses
import json
import threading
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import orjson
import psycopg
import pytest
import requests
import uvicorn
from confluent_kafka.admin import AdminClient, NewTopic

from core.clock import ManualClock
from core.events import BookDelta, BookSnapshot, Quote, Trade
from core.fills import Fill
from core.orders import KillSwitch, TradingState
from flows.console.app import create_app
from flows.control import CONTROL_TOPIC, decode_command
from flows.dlq import Inbound, dead_letter
from flows.execution import write_execution
from flows.kafka_io import CheckedProducer, producer_config
from flows.risk_step import decision_message, write_decisions
from flows.settings import Bot4Settings, load_settings
from flows.storage.migrate import migrate
from flows.storage.sink import PostgresWriter
from risk.config import RiskLimits
from risk.engine import RiskEngine
from risk.market import InstrumentRules, MarketView
from risk.portfolio import PortfolioView
from tests.support.flow_http import free_port
from tests.unit.flows.test_execution_step import build_inputs, capture_events, run
from tests.unit.flows.test_risk_step import intent

from .conftest import read_topic

pytestmark = pytest.mark.integration

TOKEN = "console-test-token-" + "x" * 8
LIVE_TOPICS = ("fills.v1", "orders.v1", "risk.decisions.v1")
RULES = InstrumentRules(Decimal("0.01"), Decimal("0.00001"), Decimal("0.00001"), min_notional=Decimal("5"))


@dataclass
class Stored:
    """What a test wrote, so assertions can compare the API with PostgreSQL."""

    conninfo: str
    fills: list[Fill]
    client_order_id: str
    reports_dir: Path


def create_topics(bootstrap: str, prefix: str) -> list[str]:
    admin = AdminClient({"bootstrap.servers": bootstrap})
    names = [prefix + t for t in LIVE_TOPICS]
    specs = [NewTopic(n, 1, 1) for n in names]
    specs.append(NewTopic(prefix + CONTROL_TOPIC, 1, 1, config={"cleanup.policy": "compact"}))
    for fut in admin.create_topics(specs).values():
        fut.result(30)
    return [*names, prefix + CONTROL_TOPIC]


def delete_topics(bootstrap: str, names: list[str]) -> None:
    admin = AdminClient({"bootstrap.servers": bootstrap})  # kept alive until every future resolves
    for fut in admin.delete_topics(names).values():
        fut.result(30)


def store_trading_day(settings: Bot4Settings, shared_data: Path, tmp: Path, *, validation: bool = True) -> Stored:
    """Market data, a paper-filled order, risk decisions, a dead letter, equity, a validation run (unless
    ``validation`` is false: Great Expectations takes seconds) and two report folders, each written the
    way Bot4 writes it."""
    conninfo = settings.postgres.conninfo()
    migrate(conninfo)
    capture = capture_events(shared_data)
    writer = PostgresWriter(conninfo)
    writer.write(e for e in capture if isinstance(e, Trade | Quote | BookSnapshot | BookDelta))
    last_trade = next(e for e in reversed(capture) if isinstance(e, Trade))
    clock = ManualClock(last_trade.ts_event)
    origin = Inbound(settings.kafka.topic("md.trades.v1"), 0, 42, b"binance:BTC/USDT", b'{"price": "-1"}')
    writer.write([dead_letter("store", "contract_price_not_positive", "price -1 <= 0", origin, clock)])
    writer.close()

    inputs, order = build_inputs(capture)
    executed = run(inputs)
    write_execution(conninfo, executed)
    fills = [o for o in executed if isinstance(o, Fill)]

    engine = RiskEngine("main", RiskLimits(), ManualClock(order.intent.ts_event))
    market = MarketView("binance", "BTC/USDT", last_trade.price, RULES, order.intent.ts_event)
    portfolio = PortfolioView("main", Decimal("100000"))
    _, approved = engine.evaluate(intent("b4-console-1"), portfolio, market)
    _, denied = engine.evaluate(intent("b4-console-2", "0.1"), portfolio, market)
    write_decisions(conninfo, [approved, denied])

    # The equity curve of the account as the paper portfolio kept it (fills then the last mark).
    from execution.portfolio import Portfolio

    book = Portfolio("main", Decimal("100000"))
    for fill in fills:
        book.apply_fill(fill)
    book.mark("binance", "BTC/USDT", last_trade.price, last_trade.ts_event)
    with psycopg.connect(conninfo) as conn:
        peak = Decimal(0)
        for ts, equity in book.equity_curve:
            peak = max(peak, equity)
            conn.execute(
                "INSERT INTO equity VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s) ON CONFLICT DO NOTHING",
                (
                    "main",
                    ts,
                    equity,
                    book.cash,
                    book.market_value,
                    book.market_value,
                    book.realized_pnl,
                    book.unrealized_pnl,
                    peak,
                    (peak - equity) / peak,
                ),
            )

    write_model_scores(conninfo)

    if validation:
        from quality.validate import postgres_url, validate

        pg = settings.postgres
        validate(postgres_url(pg.host, pg.port, pg.dbname, pg.user), tables=["md_trades"], out_dir=tmp / "validation")

    reports = write_report_folders(tmp / "reports")
    return Stored(conninfo, fills, order.intent.client_order_id, reports)


def write_report_folders(reports: Path) -> Path:
    """Two report folders in the layout flows.report writes (report.json and report.html), and one
    folder that is not a report."""
    for name, ret in (("2024-08-08-ema", "0.0123"), ("2024-08-08-ema-wide", "-0.0040")):
        folder = reports / name
        folder.mkdir(parents=True)
        doc = {"v": 1, "metadata": {"run": name}, "metrics": {"total_return": ret, "trades": 3}}
        (folder / "report.json").write_text(json.dumps(doc))
        (folder / "report.html").write_text(f"<html><body><h1>{name}</h1></body></html>")
    (reports / "not-a-report").mkdir()
    return reports


BTC_1M = Path(__file__).resolve().parents[2] / "data" / "sample" / "binance-1m-2021" / "BTC_USDT-1m.json"


def write_model_scores(conninfo: str, bars: int = 300) -> list[tuple[Any, ...]]:
    """Prequential scores of the base-rate predictor (P(up) = share of up bars so far) on the next
    bar's direction of real BTC/USDT 1m candles, stored by the models flow's own writer."""
    from itertools import islice, pairwise

    from core.events import Candle
    from flows.models import score_row, write_scores
    from flows.replay import read_events
    from models.records import ScoreRecord
    from models.scoring import PrequentialScores

    closes = [(e.ts_event, e.close) for e in islice(read_events(BTC_1M), bars) if isinstance(e, Candle)]
    scores = PrequentialScores(window=50)
    ups, records = 0, []
    for n, ((_, a), (ts, b)) in enumerate(pairwise(closes), start=1):
        up = b > a
        scores.update(min(max(ups / (n - 1) if n > 1 else 0.5, 0.01), 0.99), up)
        ups += up
        records.append(
            ScoreRecord(
                "base_rate",
                "base_rate:v1",
                "binance:BTC/USDT",
                ts,
                n,
                50,
                scores.log_loss(),
                scores.roc_auc(),
                scores.accuracy(),
                scores.brier(),
                scores.rolling_log_loss(),
                scores.rolling_roc_auc(),
                scores.rolling_accuracy(),
                scores.rolling_brier(),
            )
        )
    write_scores(conninfo, records)
    return [score_row(r) for r in records]


class Served:
    def __init__(self, settings: Bot4Settings, live: bool = True) -> None:
        self.port = settings.console.port
        self.app = create_app(settings, live=live)
        self.server = uvicorn.Server(uvicorn.Config(self.app, host="127.0.0.1", port=self.port, log_level="warning"))
        self.thread = threading.Thread(target=self.server.run, daemon=True)

    def __enter__(self) -> Served:
        self.thread.start()
        deadline = time.monotonic() + 20
        while not self.server.started:
            assert time.monotonic() < deadline, "console did not start within 20 s"
            time.sleep(0.05)
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.should_exit = True
        self.thread.join(10)

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.port}{path}"

    def get(self, path: str, **params: Any) -> Any:
        response = requests.get(self.url(path), params=params, timeout=20)
        assert response.status_code == 200, (path, response.status_code, response.text)
        return response.json()


@pytest.fixture(scope="module")
def console_env(
    tmp_path_factory, shared_data, kafka_bootstrap, pg_admin_conninfo
) -> Iterator[tuple[Bot4Settings, Stored]]:
    database = f"bot4_test_{uuid.uuid4().hex[:10]}"
    with psycopg.connect(pg_admin_conninfo, autocommit=True) as conn:
        conn.execute(f"CREATE DATABASE {database}")
    prefix = f"con{uuid.uuid4().hex[:6]}."
    topics = create_topics(kafka_bootstrap, prefix)
    tmp = tmp_path_factory.mktemp("console")
    try:
        settings = load_settings(
            kafka={"topic_prefix": prefix, "bootstrap": kafka_bootstrap},
            postgres={"dbname": database},
            data_dir=tmp,
            console={"port": free_port(), "token": TOKEN, "reports_dir": tmp / "reports"},
        )
        stored = store_trading_day(settings, shared_data, tmp)
        yield settings, stored
    finally:
        delete_topics(kafka_bootstrap, topics)
        with psycopg.connect(pg_admin_conninfo, autocommit=True) as conn:
            conn.execute(f"DROP DATABASE IF EXISTS {database} WITH (FORCE)")


def rows(conninfo: str, sql: str, *params: Any) -> list[tuple[Any, ...]]:
    with psycopg.connect(conninfo) as conn:
        return conn.execute(sql, params).fetchall()


def iso(ts) -> str:
    return ts.isoformat().replace("+00:00", "Z")


def test_every_read_endpoint_returns_what_postgresql_holds(console_env):
    settings, stored = console_env
    db = stored.conninfo
    with Served(settings, live=False) as api:
        info = api.get("/api/info")
        assert info["commands_enabled"] is True and "token" not in json.dumps(info).replace("token_configured", "")
        assert TOKEN not in json.dumps(info)

        accounts = api.get("/api/accounts")
        assert [a["account"] for a in accounts] == ["main"]
        assert accounts[0]["fills"] == len(stored.fills) and accounts[0]["orders"] == 1
        assert accounts[0]["trading_state"] == "active"

        (order,) = api.get("/api/orders")
        (status, amount, ts_created) = rows(db, "SELECT status, amount, ts_created FROM orders")[0]
        assert (order["client_order_id"], order["status"], order["amount"]) == (
            stored.client_order_id,
            status,
            format(amount, "f"),
        )
        assert order["ts_created"] == iso(ts_created)
        assert Decimal(order["filled"]) == sum(f.amount for f in stored.fills)
        assert api.get("/api/orders", status="canceled") == [] and api.get("/api/orders", account="other") == []

        detail = api.get(f"/api/orders/{stored.client_order_id}")
        events = rows(db, "SELECT seq, event, status_before, status_after FROM order_events ORDER BY seq")
        assert [(e["seq"], e["event"], e["status_before"], e["status_after"]) for e in detail["events"]] == events
        assert {f["fill_id"] for f in detail["fills"]} == {f.fill_id for f in stored.fills}
        assert requests.get(api.url("/api/orders/nope"), timeout=10).status_code == 404

        fills = api.get("/api/fills")
        db_fills = rows(db, "SELECT fill_id, price, amount, fee, ts_event FROM fills ORDER BY ts_event DESC, fill_id")
        assert [(f["fill_id"], f["price"], f["amount"], f["fee"], f["ts_event"]) for f in fills] == [
            (i, format(p, "f"), format(a, "f"), format(fee, "f"), iso(t)) for i, p, a, fee, t in db_fills
        ]
        assert api.get("/api/fills", side="sell") == []

        (position,) = api.get("/api/positions")
        signed, cost = rows(
            db, "SELECT sum(CASE side WHEN 'buy' THEN amount ELSE -amount END), sum(price * amount) FROM fills"
        )[0]
        mark = rows(db, "SELECT price FROM md_trades ORDER BY ts_event DESC, trade_id DESC LIMIT 1")[0][0]
        assert Decimal(position["amount"]) == signed and position["mark"] == format(mark, "f")
        assert position["mark_source"] == "trade"
        assert Decimal(position["unrealized_pnl"]) == signed * mark - cost
        assert Decimal(position["notional"]) == signed * mark

        curve = api.get("/api/equity", account="main")
        db_curve = rows(db, "SELECT ts_event, equity, drawdown FROM equity ORDER BY ts_event")
        assert [(p["ts_event"], p["equity"], p["drawdown"]) for p in curve["points"]] == [
            (iso(t), format(e, "f"), format(d, "f")) for t, e, d in db_curve
        ]
        assert api.get("/api/equity", account="nobody")["points"] == []

        decisions = api.get("/api/decisions")
        assert sorted(d["kind"] for d in decisions) == ["approved", "denied"]
        (denied,) = api.get("/api/decisions", reason="position_limit_exceeded")
        assert denied["client_order_id"] == "b4-console-2"
        db_reasons = rows(db, "SELECT reasons FROM risk_decisions WHERE kind = 'denied'")[0][0]
        assert denied["reasons"] == db_reasons

        (model,) = api.get("/api/models")
        newest = rows(
            db, "SELECT ts_event, n_labels, log_loss, accuracy FROM model_scores ORDER BY ts_event DESC LIMIT 1"
        )
        assert (model["model_version"], model["symbol"], model["drift_events"]) == (
            "base_rate:v1",
            "binance:BTC/USDT",
            0,
        )
        assert (model["ts_event"], model["n_labels"], model["log_loss"], model["accuracy"]) == (
            iso(newest[0][0]),
            newest[0][1],
            newest[0][2],
            newest[0][3],
        )

        (risk,) = api.get("/api/risk")
        assert (risk["account"], risk["trading_state"], risk["breakers"]) == ("main", "active", [])

        (fresh,) = api.get("/api/freshness")
        newest = rows(db, "SELECT max(ts_event) FROM md_trades")[0][0]
        newest_quote = rows(db, "SELECT max(ts_event) FROM md_quotes")[0][0]
        assert (fresh["key"], fresh["last_trade_at"], fresh["dead_letters"]) == ("binance:BTC/USDT", iso(newest), 1)
        assert fresh["last_quote_at"] == iso(newest_quote) and fresh["age_seconds"] > 0

        (dl,) = api.get("/api/dead-letters")
        assert (dl["key"], dl["stage"], dl["reason"], dl["count"]) == (
            "binance:BTC/USDT",
            "store",
            "contract_price_not_positive",
            1,
        )

        chart = api.get("/api/candles", key="binance:BTC/USDT", interval=60, limit=500)
        bars = rows(
            db,
            "SELECT date_bin('60 s', ts_event, timestamptz '2000-01-01Z'), min(price), max(price), sum(amount),"
            " count(*) FROM md_trades GROUP BY 1 ORDER BY 1",
        )
        assert [(c["ts"], c["low"], c["high"], c["volume"], c["trades"]) for c in chart["candles"]] == [
            (iso(t), format(lo, "f"), format(hi, "f"), format(v, "f"), n) for t, lo, hi, v, n in bars
        ]
        first_close = rows(db, "SELECT price FROM md_trades ORDER BY ts_event DESC, trade_id DESC LIMIT 1")[0][0]
        assert chart["candles"][-1]["close"] == format(first_close, "f")
        assert {f["fill_id"] for f in chart["fills"]} == {f.fill_id for f in stored.fills}
        assert chart["source"] == "trades" and chart["signals"] == []
        assert requests.get(api.url("/api/candles"), params={"key": "nokey"}, timeout=10).status_code == 422

        (run_row,) = api.get("/api/validation")
        run_id, success, checked = rows(db, "SELECT run_id, success, rows_validated FROM quality_runs")[0]
        assert (run_row["run_id"], run_row["success"], run_row["rows_validated"]) == (run_id, success, checked)
        page = requests.get(api.url(run_row["report_url"]), timeout=10)
        assert page.status_code == 200 and "md_trades" in page.text
        assert (
            requests.get(api.url(f"/api/validation/{run_id}/report/..%2F..%2Fetc%2Fpasswd"), timeout=10).status_code
            == 404
        )

        reports = api.get("/api/reports")
        assert {r["name"] for r in reports} == {"2024-08-08-ema", "2024-08-08-ema-wide"}
        ema = next(r for r in reports if r["name"] == "2024-08-08-ema")
        assert api.get(ema["json_url"])["metrics"]["total_return"] == "0.0123"
        html = requests.get(api.url(ema["html_url"]), timeout=10)
        assert html.status_code == 200 and "<h1>2024-08-08-ema</h1>" in html.text
        for bad in (
            "/api/reports/..%2F..%2F/report.json",
            "/api/reports/2024-08-08-ema/..%2Freport.json",
            "/api/reports/.hidden/report.json",
            "/api/reports/not-a-report/report.json",
        ):
            assert requests.get(api.url(bad), timeout=10).status_code == 404, bad

        spec = api.get("/openapi.json")
        for path in (
            "/api/accounts",
            "/api/positions",
            "/api/orders",
            "/api/orders/{client_order_id}",
            "/api/fills",
            "/api/equity",
            "/api/risk",
            "/api/decisions",
            "/api/freshness",
            "/api/dead-letters",
            "/api/validation",
            "/api/reports",
            "/api/events",
            "/api/commands/kill",
            "/api/commands/reset",
        ):
            assert path in spec["paths"], path
        assert requests.get(api.url("/"), timeout=10).status_code in {200, 503}
        assert requests.get(api.url("/api/info"), headers={"Host": "evil.example"}, timeout=10).status_code == 400


def kill_body(**over: Any) -> dict[str, Any]:
    return {"account": "main", "reason": "venue incident", "operator": "alice", "confirm": "KILL", **over}


def test_commands_without_the_right_token_confirmation_or_json_are_refused_and_not_sent(console_env, kafka_bootstrap):
    settings, stored = console_env
    before = rows(stored.conninfo, "SELECT count(*) FROM operator_commands")[0][0]
    on_topic = len(read_topic(kafka_bootstrap, settings.kafka.topic(CONTROL_TOPIC)))
    with Served(settings, live=False) as api:
        url = api.url("/api/commands/kill")
        good = {"Authorization": f"Bearer {TOKEN}"}
        assert requests.post(url, json=kill_body(), timeout=10).status_code == 401
        wrong = requests.post(
            url, json=kill_body(), headers={"Authorization": "Bearer wrong-token-0123456789"}, timeout=10
        )
        assert wrong.status_code == 401 and TOKEN not in wrong.text
        assert (
            requests.post(url, json=kill_body(), headers={"Authorization": f"Basic {TOKEN}"}, timeout=10).status_code
            == 401
        )
        assert requests.post(url, data=kill_body(), headers=good, timeout=10).status_code == 415  # a form post
        cross = {**good, "Origin": "http://evil.example"}
        assert requests.post(url, json=kill_body(), headers=cross, timeout=10).status_code == 403
        for bad in (
            kill_body(confirm="yes"),
            kill_body(reason=""),
            kill_body(operator=""),
            kill_body(extra=1),
            # Whitespace says nothing: it was once stripped to "" and sent, then the audit insert failed (500).
            kill_body(reason="   "),
            kill_body(operator=" \t"),
        ):
            assert requests.post(url, json=bad, headers=good, timeout=10).status_code == 422, bad
        reset = {"account": "main", "breaker": "kill_switch", "reason": "over", "operator": "bob", "confirm": "KILL"}
        assert requests.post(api.url("/api/commands/reset"), json=reset, headers=good, timeout=10).status_code == 422

    for console in ({"token": None}, {"token": TOKEN, "read_only": True}):
        locked = settings.model_copy(update={"console": settings.console.model_copy(update=console)})
        with Served(locked, live=False) as api:
            assert api.get("/api/info")["commands_enabled"] is False
            refused = requests.post(
                api.url("/api/commands/kill"),
                json=kill_body(),
                headers={"Authorization": f"Bearer {TOKEN}"},
                timeout=10,
            )
            assert refused.status_code == 403 and "disabled" in refused.json()["detail"]
    assert rows(stored.conninfo, "SELECT count(*) FROM operator_commands")[0][0] == before
    assert len(read_topic(kafka_bootstrap, settings.kafka.topic(CONTROL_TOPIC))) == on_topic


def read_events(response: requests.Response, wanted: int, timeout: float) -> list[tuple[str, dict[str, Any]]]:
    out: list[tuple[str, dict[str, Any]]] = []
    name = ""
    deadline = time.monotonic() + timeout
    for line in response.iter_lines(decode_unicode=True):
        if line.startswith("event: "):
            name = line[7:]
        elif line.startswith("data: "):
            out.append((name, json.loads(line[6:])))
            if len(out) >= wanted:
                return out
        assert time.monotonic() < deadline, f"only {len(out)} of {wanted} live events within {timeout} s: {out}"
    return out


def test_the_kill_switch_from_the_api_reaches_the_command_path_the_audit_and_the_live_page(
    console_env, kafka_bootstrap
):
    settings, stored = console_env
    control = settings.kafka.topic(CONTROL_TOPIC)
    with Served(settings) as api:
        stream = requests.get(api.url("/api/events"), stream=True, timeout=30)
        assert stream.headers["content-type"].startswith("text/event-stream")
        _wait_live(api)

        sent = requests.post(
            api.url("/api/commands/kill"), json=kill_body(), headers={"Authorization": f"Bearer {TOKEN}"}, timeout=20
        )
        assert sent.status_code == 202, sent.text
        assert sent.json()["topic"] == control and TOKEN not in sent.text

        (key, value), *_ = read_topic(kafka_bootstrap, control)
        command = decode_command(value)
        assert key == b"main" and isinstance(command, KillSwitch)
        assert (command.account, command.requested_by, command.reason) == ("main", "alice", "venue incident")
        audit = rows(stored.conninfo, "SELECT kind, account, requested_by, reason, via FROM operator_commands")
        assert audit == [("kill_switch", "main", "alice", "venue incident", "api")]

        (pending,) = api.get("/api/risk")[0]["pending_commands"]
        assert (pending["kind"], pending["requested_by"], pending["via"]) == ("kill_switch", "alice", "api")

        # The risk engine's side of the path, as the trading flow runs it: halt, record, publish.
        engine = RiskEngine("main", RiskLimits(), ManualClock(command.ts + timedelta(milliseconds=5)))
        decisions = engine.kill(command)
        assert engine.state is TradingState.HALTED
        write_decisions(stored.conninfo, decisions)
        producer = CheckedProducer(producer_config(settings.kafka))
        for d in decisions:
            msg = decision_message(d, settings.kafka.topic_prefix)
            producer.produce(msg.topic, msg.key, msg.value)
        producer.flush()

        live = read_events(stream, 1 + len(decisions), timeout=20)
        stream.close()
        assert live[0][0] == "control.commands.v1" and live[0][1]["kind"] == "kill_switch"
        assert [e[1]["kind"] for e in live[1:]] == [d.kind.value for d in decisions]
        assert all(e[1]["trading_state"] == "halted" for e in live[1:])

        (risk,) = api.get("/api/risk")
        assert risk["trading_state"] == "halted" and risk["pending_commands"] == []
        (breaker,) = risk["breakers"]
        assert (breaker["name"], breaker["status"]) == ("kill_switch", "open")
        assert "alice" in breaker["reason"] and api.get("/api/accounts")[0]["trading_state"] == "halted"
        (audited,) = api.get("/api/commands")
        assert (audited["via"], audited["reason"]) == ("api", "venue incident")

        reset = {
            "account": "main",
            "breaker": "kill_switch",
            "reason": "incident over",
            "operator": "bob",
            "confirm": "RESET",
        }
        done = requests.post(
            api.url("/api/commands/reset"), json=reset, headers={"Authorization": f"Bearer {TOKEN}"}, timeout=20
        )
        assert done.status_code == 202, done.text
        assert decode_command(read_topic(kafka_bootstrap, control)[-1][1]).breaker == "kill_switch"


def _wait_live(api: Served) -> None:
    """Until the live feed follows every topic (it starts at each partition's end, resolved then)."""
    deadline = time.monotonic() + 15
    while len(api.get("/api/info")["live_following"]) < 4:
        assert time.monotonic() < deadline, "the live feed did not find its topics within 15 s"
        time.sleep(0.1)


def test_a_fill_on_kafka_reaches_the_event_stream_in_the_api_shape(console_env):
    settings, stored = console_env
    from flows.execution import execution_message

    with Served(settings) as api:
        stream = requests.get(api.url("/api/events"), stream=True, timeout=30)
        _wait_live(api)
        producer = CheckedProducer(producer_config(settings.kafka))
        msg = execution_message(stored.fills[0], settings.kafka.topic_prefix)
        started = time.monotonic()
        producer.produce(msg.topic, msg.key, msg.value)
        producer.flush()
        ((topic, event),) = read_events(stream, 1, timeout=10)
        took = time.monotonic() - started
        stream.close()
    fill = stored.fills[0]
    assert topic == "fills.v1" and event["type"] == "fill"
    assert (event["fill_id"], event["price"], event["amount"]) == (
        fill.fill_id,
        format(fill.price, "f"),
        format(fill.amount, "f"),
    )
    assert event["ts_event"] == iso(fill.ts_event) and took < 1.0, took
    assert orjson.loads(msg.value)["type"] == "fill"


def test_pause_and_resume_from_the_api_are_confirmed_audited_published_and_shown_per_strategy(
    console_env, kafka_bootstrap
):
    from core.events import Side
    from core.orders import PauseStrategy, ResumeStrategy, Signal
    from flows.trading_run import write_signals

    settings, stored = console_env
    control = settings.kafka.topic(CONTROL_TOPIC)
    (ts_signal,) = rows(stored.conninfo, "SELECT max(ts_event) FROM md_trades")[0]
    signal = Signal("trend-v1", "main", "binance", "BTC/USDT", Side.BUY, 0.5, 0.7, ("ema cross",), "ema:v1", ts_signal)
    write_signals(stored.conninfo, [signal, dataclasses.replace(signal, strategy="mr-v2")])
    auth = {"Authorization": f"Bearer {TOKEN}"}
    body = {"account": "main", "strategy": "trend-v1", "reason": "fills look wrong", "operator": "carol"}
    audit_before = rows(stored.conninfo, "SELECT count(*) FROM operator_commands")[0][0]
    on_topic = len(read_topic(kafka_bootstrap, control))
    with Served(settings, live=False) as api:
        assert [(s["strategy"], s["paused"], s["signals"]) for s in api.get("/api/strategies")] == [
            ("mr-v2", False, 1),
            ("trend-v1", False, 1),
        ]
        pause_url, resume_url = api.url("/api/commands/pause"), api.url("/api/commands/resume")
        assert requests.post(pause_url, json={**body, "confirm": "PAUSE"}, timeout=10).status_code == 401
        for bad in (
            {**body, "confirm": "RESUME"},
            {**body, "confirm": "PAUSE", "account": " "},
            {**body, "confirm": "PAUSE", "strategy": "   "},
            {**body, "confirm": "PAUSE", "reason": " "},
            {**body},
        ):
            assert requests.post(pause_url, json=bad, headers=auth, timeout=10).status_code == 422, bad
        assert rows(stored.conninfo, "SELECT count(*) FROM operator_commands")[0][0] == audit_before
        assert len(read_topic(kafka_bootstrap, control)) == on_topic

        sent = requests.post(pause_url, json={**body, "confirm": "PAUSE"}, headers=auth, timeout=20)
        assert sent.status_code == 202, sent.text
        accepted = sent.json()
        assert (accepted["kind"], accepted["account"], accepted["strategy"], accepted["topic"]) == (
            "pause_strategy",
            "main",
            "trend-v1",
            control,
        )
        paused = {s["strategy"]: s for s in api.get("/api/strategies")}
        assert paused["trend-v1"]["paused"] is True and paused["mr-v2"]["paused"] is False
        assert (paused["trend-v1"]["last_command"]["requested_by"], paused["trend-v1"]["last_command"]["via"]) == (
            "carol",
            "api",
        )
        # A pause is not a trading-state change: nothing is shown as awaiting the risk engine for it.
        assert all(c["kind"] != "pause_strategy" for r in api.get("/api/risk") for c in r["pending_commands"])

        resumed = requests.post(
            resume_url, json={**body, "reason": "venue fixed", "confirm": "RESUME"}, headers=auth, timeout=20
        )
        assert resumed.status_code == 202, resumed.text
        assert not any(s["paused"] for s in api.get("/api/strategies"))
        newest = api.get("/api/commands", limit=2)
        assert [(c["kind"], c["strategy"], c["reason"]) for c in newest] == [
            ("resume_strategy", "trend-v1", "venue fixed"),
            ("pause_strategy", "trend-v1", "fills look wrong"),
        ]

        # '*' pauses the strategy on every account: main's mr-v2 shows paused by that command.
        everywhere = {**body, "account": "*", "strategy": "mr-v2", "reason": "model drift", "confirm": "PAUSE"}
        assert requests.post(pause_url, json=everywhere, headers=auth, timeout=20).status_code == 202
        shown = {(s["account"], s["strategy"]): s for s in api.get("/api/strategies")}
        assert shown["main", "mr-v2"]["paused"] is True and shown["main", "trend-v1"]["paused"] is False
        assert shown["main", "mr-v2"]["last_command"]["account"] == "*"

    published = [decode_command(value) for key, value in read_topic(kafka_bootstrap, control)[on_topic:]]
    assert [type(c) for c in published] == [PauseStrategy, ResumeStrategy, PauseStrategy]
    assert [(c.account, c.strategy, c.requested_by) for c in published] == [
        ("main", "trend-v1", "carol"),
        ("main", "trend-v1", "carol"),
        ("*", "mr-v2", "carol"),
    ]
