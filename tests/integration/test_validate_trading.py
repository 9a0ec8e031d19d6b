"""`bot4 validate` on the tables the trading stages write, on PostgreSQL: feature rows of the real
XRP/ETH trades (the real FeatureEngine, written by the features flow's writer), and risk
decisions, orders and fills of market orders the real risk gate approved at prices of the real
Binance BTC/USDT capture and the paper venue filled against its recorded book. Faults are
injected with SQL into a private copy of that database."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path

import psycopg
import pytest

from core.clock import ManualClock
from core.events import BookSnapshot, Trade
from core.orders import ApprovedOrder
from features.engine import FeatureEngine
from features.schema import FeatureVector
from flows.execution import write_execution
from flows.features import FeatureRowWriter
from flows.replay import read_events
from flows.risk_step import write_decisions
from flows.settings import PostgresSettings
from flows.storage.migrate import migrate
from quality.validate import ValidationRun, postgres_url, validate
from risk.config import RiskLimits
from risk.decisions import RiskDecision
from risk.engine import RiskEngine
from risk.market import MarketView
from risk.portfolio import PortfolioView
from tests.unit.flows.test_execution_step import RULES, capture_events, run
from tests.unit.flows.test_risk_step import intent

pytestmark = pytest.mark.integration

TRADING = ["feature_rows", "risk_decisions", "orders", "fills"]
ORDERS = ("b4-val-1", "b4-val-2", "b4-val-3")
#: The middle day of the XRP/ETH trades: its warm-up count starts in the day before.
DAY = datetime(2019, 10, 12, tzinfo=UTC)


def _xrp_vectors(shared_data: Path) -> list[FeatureVector]:
    engine = FeatureEngine("1m", allowed_lateness=timedelta(seconds=2))
    vectors: list[FeatureVector] = []
    for event in read_events(shared_data / "ticks" / "freqtrade-xrp-eth" / "XRP_ETH-trades.feather"):
        if isinstance(event, Trade):
            vectors.extend(v for v in engine.update(event) if isinstance(v, FeatureVector))
    vectors.extend(engine.flush())
    return vectors


def _paper_orders(shared_data: Path) -> tuple[list[object], list[RiskDecision]]:
    """Three 0.01 BTC market buys approved by the gate at the last trade price before each, spread
    over the capture once the book is live, through the paper venue."""
    capture = capture_events(shared_data)
    snap_at = next(i for i, e in enumerate(capture) if isinstance(e, BookSnapshot))
    inputs: list[object] = []
    decisions: list[RiskDecision] = []
    start = 0
    for coid, at in zip(ORDERS, (snap_at + 200, snap_at + 1500, snap_at + 3000), strict=True):
        last = next(e for e in reversed(capture[:at]) if isinstance(e, Trade))
        engine = RiskEngine("main", RiskLimits(), ManualClock(last.ts_event))
        market = MarketView("binance", "BTC/USDT", last.price, RULES, last.ts_event)
        order, decision = engine.evaluate(intent(coid, "0.01"), PortfolioView("main", Decimal("100000")), market)
        assert isinstance(order, ApprovedOrder), order
        inputs.extend([*capture[start:at], order])
        decisions.append(decision)
        start = at
    inputs.extend(capture[start:])
    return run(inputs), decisions


@pytest.fixture(scope="module")
def trading_db(pg_admin_conninfo: str, shared_data: Path) -> Iterator[str]:
    name = f"bot4_test_{uuid.uuid4().hex[:10]}"
    with psycopg.connect(pg_admin_conninfo, autocommit=True) as conn:
        conn.execute(f"CREATE DATABASE {name}")
    try:
        conninfo = PostgresSettings(dbname=name).conninfo()
        migrate(conninfo)
        writer = FeatureRowWriter(conninfo)
        writer.write(_xrp_vectors(shared_data))
        writer.close()
        out, decisions = _paper_orders(shared_data)
        write_execution(conninfo, out)  # type: ignore[arg-type]
        write_decisions(conninfo, decisions)
        with psycopg.connect(conninfo, autocommit=True) as conn:
            conn.execute("ANALYZE")
        yield name
    finally:
        with psycopg.connect(pg_admin_conninfo, autocommit=True) as conn:
            conn.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")


@pytest.fixture
def copy_db(pg_admin_conninfo: str, trading_db: str) -> Iterator[str]:
    name = f"bot4_test_{uuid.uuid4().hex[:10]}"
    with psycopg.connect(pg_admin_conninfo, autocommit=True) as conn:
        conn.execute(f"CREATE DATABASE {name} TEMPLATE {trading_db}")
    try:
        yield name
    finally:
        with psycopg.connect(pg_admin_conninfo, autocommit=True) as conn:
            conn.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")


def url(db: str) -> str:
    pg = PostgresSettings(dbname=db)
    return postgres_url(pg.host, pg.port, pg.dbname, pg.user)


def execute(db: str, *statements: str) -> None:
    with psycopg.connect(PostgresSettings(dbname=db).conninfo()) as conn:
        for sql in statements:
            assert conn.execute(sql).rowcount != 0, f"fault not applied: {sql}"


def query(db: str, sql: str) -> list[tuple]:
    with psycopg.connect(PostgresSettings(dbname=db).conninfo()) as conn:
        return conn.execute(sql).fetchall()


def failures(run: ValidationRun) -> dict[tuple[str, str], int | None]:
    return {(f.table, f.check): f.unexpected_count for f in run.failures}


def test_real_feature_rows_orders_and_fills_validate_clean(trading_db: str):
    run = validate(url(trading_db), tables=TRADING, record=False)
    assert run.success, run.failures
    statuses = {t.table: t.status for t in run.tables}
    assert statuses == dict.fromkeys(TRADING, "passed")
    features = next(t for t in run.tables if t.table == "feature_rows")
    assert [b.day for b in features.batches] == ["schema", "2019-10-11", "2019-10-12", "2019-10-13"]
    assert features.rows == 3560
    # The data has the empty minutes the warm-up rule exempts; MACD, the longest warm-up, is
    # missing only on the 41 minutes (33 traded, 8 empty) before the 34th traded one.
    assert query(trading_db, "SELECT count(*) FILTER (WHERE bar_empty), count(macd_12_26) FROM feature_rows") == [
        (1091, 3560 - 41)
    ]
    assert query(trading_db, "SELECT status, count(*) FROM orders GROUP BY status") == [("filled", 3)]


def test_feature_faults_are_counted_out_of_range_nan_and_missing_after_the_warmup(copy_db: str):
    # Three traded minutes of 2019-10-12, each long past every warm-up.
    a, b, c = (
        r[0].isoformat()
        for r in query(
            copy_db,
            f"SELECT event_timestamp FROM feature_rows WHERE NOT bar_empty AND event_timestamp >= '{DAY.isoformat()}' "
            "ORDER BY event_timestamp LIMIT 3 OFFSET 300",
        )
    )
    execute(
        copy_db,
        f"UPDATE feature_rows SET rsi_14 = 101, flow_imbalance_60s = -1.5 WHERE event_timestamp = '{a}'",
        f"UPDATE feature_rows SET log_return_1 = 'NaN' WHERE event_timestamp = '{b}'",
        f"UPDATE feature_rows SET sma_20 = NULL, bar_close = NULL WHERE event_timestamp = '{c}'",
    )
    run = validate(url(copy_db), tables=["feature_rows"], start=DAY, end=DAY + timedelta(days=1), record=False)
    assert failures(run) == {
        ("feature_rows", "feature_in_declared_range"): 2,
        ("feature_rows", "features_finite"): 1,
        ("feature_rows", "feature_present_after_warmup"): 2,
    }
    assert all(f.day == "2019-10-12" for f in run.failures)


def test_an_indicator_its_writer_never_computed_is_not_a_missing_value(copy_db: str):
    # A backtest computes only what its strategies read: those columns are NULL on every row.
    execute(copy_db, "UPDATE feature_rows SET macd_12_26 = NULL, macd_signal_9 = NULL, macd_hist = NULL")
    run = validate(url(copy_db), tables=["feature_rows"], start=DAY, end=DAY + timedelta(days=1), record=False)
    assert run.success, run.failures


def test_an_approved_order_left_open_or_never_stored_and_fills_short_of_a_filled_order_are_caught(copy_db: str):
    fill_id = query(copy_db, f"SELECT fill_id FROM fills WHERE client_order_id = '{ORDERS[0]}' LIMIT 1")[0][0]
    execute(
        copy_db,
        f"UPDATE fills SET amount = amount / 2 WHERE fill_id = '{fill_id}'",
        f"UPDATE orders SET status = 'accepted' WHERE client_order_id = '{ORDERS[1]}'",
        # An approval whose order never reached the orders table.
        "INSERT INTO risk_decisions SELECT decision_id || '-lost', account, 'b4-val-lost', kind, trading_state, "
        f"reasons, detail, ts_event FROM risk_decisions WHERE client_order_id = '{ORDERS[2]}'",
    )
    run = validate(url(copy_db), tables=["risk_decisions", "orders", "fills"], record=False)
    assert failures(run) == {
        ("orders", "filled_order_fills_sum_to_amount"): 1,
        ("risk_decisions", "approved_order_reaches_terminal_state"): 2,
    }


def test_an_open_order_is_judged_only_once_a_day_has_passed_since_its_approval(copy_db: str):
    execute(copy_db, f"UPDATE orders SET status = 'accepted' WHERE client_order_id = '{ORDERS[1]}'")
    approved = query(copy_db, f"SELECT ts_event FROM risk_decisions WHERE client_order_id = '{ORDERS[1]}'")[0][0]
    soon = validate(url(copy_db), tables=["risk_decisions"], clock=ManualClock(approved + timedelta(hours=23)))
    assert soon.success, soon.failures
    later = validate(url(copy_db), tables=["risk_decisions"], clock=ManualClock(approved + timedelta(hours=25)))
    assert failures(later) == {("risk_decisions", "approved_order_reaches_terminal_state"): 1}
