"""Risk decisions land in PostgreSQL (idempotently) and on Kafka with their reasons."""

from __future__ import annotations

from decimal import Decimal

import orjson
import pytest

from core.clock import ManualClock, parse_utc
from core.orders import KillSwitch
from flows.risk_step import decision_message, order_message, write_decisions
from flows.settings import PostgresSettings
from flows.storage.migrate import migrate
from risk.config import RiskLimits
from risk.decisions import approved_order_from_record
from risk.engine import RiskEngine
from risk.market import InstrumentRules, MarketView
from risk.portfolio import PortfolioView
from tests.unit.flows.test_risk_step import intent

pytestmark = pytest.mark.integration
T0 = parse_utc("2024-08-08T23:54:15Z")


def test_decisions_are_stored_once_with_reasons_and_orders_round_trip(pg_database):
    import psycopg

    conninfo = PostgresSettings(dbname=pg_database).conninfo()
    migrate(conninfo)
    engine = RiskEngine("main", RiskLimits(), ManualClock(T0))
    rules = InstrumentRules(Decimal("0.01"), Decimal("0.00001"), Decimal("0.00001"), min_notional=Decimal("5"))
    market = MarketView("binance", "BTC/USDT", Decimal("61837.63"), rules, T0)
    portfolio = PortfolioView("main", Decimal("100000"))
    order, approved = engine.evaluate(intent("b4-1"), portfolio, market)
    _, denied = engine.evaluate(intent("b4-2", "0.1"), portfolio, market)
    halt = engine.kill(KillSwitch("main", "alice", "drill", T0))
    decisions = [approved, denied, *halt]
    write_decisions(conninfo, decisions)
    write_decisions(conninfo, decisions)  # a replay after a crash adds nothing
    with psycopg.connect(conninfo) as conn:
        rows = conn.execute(
            "SELECT kind, reasons, client_order_id FROM risk_decisions ORDER BY ts_event, kind"
        ).fetchall()
    assert sorted(r[0] for r in rows) == ["approved", "cancel_all", "denied", "state_changed"]
    denied_row = next(r for r in rows if r[0] == "denied")
    assert denied_row[2] == "b4-2" and "position_limit_exceeded" in {x["code"] for x in denied_row[1]}

    msg = decision_message(denied, "p.")
    assert (msg.topic, msg.key) == ("p.risk.decisions.v1", b"main")
    assert orjson.loads(msg.value)["kind"] == "denied"
    order_msg = order_message(order, "p.")
    assert order_msg.topic == "p.orders.v1"
    assert approved_order_from_record(orjson.loads(order_msg.value)) == order


def test_orders_order_events_and_fills_are_stored_once(pg_database, shared_data):
    import psycopg

    from core.fills import Fill
    from flows.execution import write_execution
    from tests.unit.flows.test_execution_step import build_inputs, capture_events, run

    conninfo = PostgresSettings(dbname=pg_database).conninfo()
    migrate(conninfo)
    inputs, _ = build_inputs(capture_events(shared_data))
    out = run(inputs)
    write_execution(conninfo, out)
    write_execution(conninfo, out)  # redelivery after a crash adds nothing
    fills = [o for o in out if isinstance(o, Fill)]
    with psycopg.connect(conninfo) as conn:
        assert conn.execute("SELECT status FROM orders").fetchall() == [("filled",)]
        assert conn.execute("SELECT count(*) FROM fills").fetchone() == (len(fills),)
        stored = conn.execute("SELECT sum(amount), sum(fee) FROM fills").fetchone()
        assert stored == (sum(f.amount for f in fills), sum(f.fee for f in fills))
        events = conn.execute("SELECT count(*) FROM order_events").fetchone()[0]
    assert events >= 3  # submit, accept/fill...
