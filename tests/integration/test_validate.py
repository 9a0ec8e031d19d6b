"""`bot4 validate` on PostgreSQL: the real BTC capture (both days) and freqtrade's XRP/ETH trades
with the 1m candles built from them, loaded through the storage writer; faults injected with SQL.

The tables' CHECK, NOT NULL and key constraints refuse most faults on the way in; the fault test
drops the ones in the way first, which is what data loaded by another tool (or before a
constraint existed) would look like. A NaN price passes `CHECK (price > 0)` on its own: PostgreSQL
sorts NaN above every number."""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import psycopg
import pytest
from typer.testing import CliRunner

from flows.cli import app
from flows.replay import read_events
from flows.settings import PostgresSettings
from flows.storage.migrate import migrate
from flows.storage.sink import PostgresWriter
from quality.validate import ValidationRun, postgres_url, validate

pytestmark = pytest.mark.integration

DAY1, DAY2 = datetime(2024, 8, 8, tzinfo=UTC), datetime(2024, 8, 9, tzinfo=UTC)


def _create(admin: str, name: str, template: str | None = None) -> None:
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(f"CREATE DATABASE {name}" + (f" TEMPLATE {template}" if template else ""))


def _drop(admin: str, name: str) -> None:
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")


@pytest.fixture(scope="module")
def loaded_db(pg_admin_conninfo: str, shared_data: Path) -> Iterator[str]:
    """A migrated database holding both BTC capture days and the XRP/ETH trades and 1m candles."""
    name = f"bot4_test_{uuid.uuid4().hex[:10]}"
    _create(pg_admin_conninfo, name)
    try:
        conninfo = PostgresSettings(dbname=name).conninfo()
        migrate(conninfo)
        writer = PostgresWriter(conninfo)
        ticks = shared_data / "ticks"
        for path in (
            ticks / "binance-spot-ws" / "btcusdt_20240808.gz",
            ticks / "binance-spot-ws" / "btcusdt_20240809.gz",
            ticks / "freqtrade-xrp-eth" / "XRP_ETH-trades.feather",
            ticks / "freqtrade-xrp-eth" / "XRP_ETH-1m.feather",
        ):
            writer.write(read_events(path))
        writer.close()
        # What autovacuum does within a minute of a bulk load; without statistics the planner
        # picks nested loops for the per-day windows and the key-uniqueness join (3-4x slower).
        with psycopg.connect(conninfo, autocommit=True) as conn:
            conn.execute("ANALYZE")
        yield name
    finally:
        _drop(pg_admin_conninfo, name)


@pytest.fixture
def copy_db(pg_admin_conninfo: str, loaded_db: str) -> Iterator[str]:
    """A private copy of the loaded database (CREATE DATABASE ... TEMPLATE), for faults."""
    name = f"bot4_test_{uuid.uuid4().hex[:10]}"
    _create(pg_admin_conninfo, name, template=loaded_db)
    try:
        yield name
    finally:
        _drop(pg_admin_conninfo, name)


def url(db: str) -> str:
    pg = PostgresSettings(dbname=db)
    return postgres_url(pg.host, pg.port, pg.dbname, pg.user)


def execute(db: str, *statements: str) -> None:
    with psycopg.connect(PostgresSettings(dbname=db).conninfo()) as conn:
        for sql in statements:
            assert conn.execute(sql).rowcount != 0, f"fault not applied: {sql}"


def query(db: str, sql: str, params: tuple = ()) -> list[tuple]:
    with psycopg.connect(PostgresSettings(dbname=db).conninfo()) as conn:
        return conn.execute(sql, params).fetchall()


def test_real_capture_on_postgres_validates_clean_one_batch_per_day_and_records_the_run(loaded_db: str, tmp_path):
    run = validate(url(loaded_db), symbol="BTC/USDT", out_dir=tmp_path)
    assert run.success, run.failures
    days = {t.table: [b.day for b in t.batches if b.day != "schema"] for t in run.tables}
    assert days["md_trades"] == days["md_quotes"] == days["md_book_deltas"] == ["2024-08-08", "2024-08-09"]
    assert days["md_book_snapshots"] == ["2024-08-08"]
    assert next(t for t in run.tables if t.table == "md_candles").status == "no_rows"
    assert next(t for t in run.tables if t.table == "md_trades").rows == 9757 + 10147
    rows = query(loaded_db, "SELECT run_id, success, backend, symbol, rows_validated, summary FROM quality_runs")
    assert len(rows) == 1
    run_id, success, backend, symbol, rows_validated, summary = rows[0]
    assert (run_id, success, backend, symbol) == (run.run_id, True, "postgresql", "BTC/USDT")
    assert rows_validated == run.summary()["rows_validated"] == summary["rows_validated"]
    assert json.loads((tmp_path / "summary.json").read_text())["run_id"] == run.run_id


def test_candles_reconcile_with_the_trade_bars_view_and_the_trading_tables_are_empty(loaded_db: str):
    run = validate(url(loaded_db), tables=["md_candles", "features", "orders", "fills", "equity"], record=False)
    assert run.success, run.failures
    statuses = {t.table: t.status for t in run.tables}
    assert statuses == {
        "md_candles": "passed",
        "features": "no_rows",
        "orders": "no_rows",
        "fills": "no_rows",
        "equity": "no_rows",
    }
    candles = run.tables[0]
    assert [b.day for b in candles.batches] == ["schema", "2019-10-11", "2019-10-12", "2019-10-13"]


def _failures(run: ValidationRun) -> dict[tuple[str, str], int | None]:
    return {(f.table, f.check): f.unexpected_count for f in run.failures}


def test_faults_on_postgres_are_caught_by_name_with_counts_and_raise_a_validation_failed_event(copy_db: str):
    tid = query(
        copy_db, "SELECT trade_id FROM md_trades WHERE symbol = 'BTC/USDT' ORDER BY trade_id::bigint LIMIT 4 OFFSET 500"
    )
    a, b, c, d = (r[0] for r in tid)
    execute(
        copy_db,
        "ALTER TABLE md_trades DROP CONSTRAINT md_trades_price_check",
        "ALTER TABLE md_candles DROP CONSTRAINT md_candles_check",
        f"UPDATE md_trades SET price = -1 WHERE trade_id = '{a}'",
        f"UPDATE md_trades SET price = 'NaN' WHERE trade_id = '{b}'",
        # Same trade id again a millisecond later: the stored key (which carries ts_event) allows it.
        f"INSERT INTO md_trades SELECT exchange, symbol, trade_id, price, amount, side, ts_event + interval '1 ms', "
        f"ts_recv FROM md_trades WHERE trade_id = '{c}'",
        f"UPDATE md_trades SET ts_event = ts_event - interval '30 seconds' WHERE trade_id = '{d}'",
        "UPDATE md_quotes SET bid_price = ask_price + 1 WHERE (ts_event, sequence_key) = "
        "(SELECT ts_event, sequence_key FROM md_quotes ORDER BY ts_event, sequence_key LIMIT 1)",
        "UPDATE md_candles SET high = low / 2 WHERE ts_event = '2019-10-11T06:00:00Z'",
        "UPDATE md_candles SET close = low WHERE ts_event = '2019-10-11T12:01:00Z'",
    )
    run = validate(url(copy_db), tables=["md_trades", "md_quotes", "md_candles"])
    assert not run.success
    found = _failures(run)
    assert found == {
        ("md_trades", "price_positive"): 1,
        ("md_trades", "price_finite"): 1,
        ("md_trades", "natural_key_unique"): 2,
        ("md_trades", "ts_event_increasing_by_trade_id"): 1,
        ("md_quotes", "book_not_crossed"): 1,
        ("md_candles", "high_gte_open_close"): 1,
        ("md_candles", "high_gte_low"): 1,
        ("md_candles", "bars_match_exchange_candles"): 2,
    }, found
    assert run.event is not None
    assert set(run.event.tables) == {"md_trades", "md_quotes", "md_candles"}
    assert all(f.day in ("2024-08-08", "2019-10-11") for f in run.event.failures)
    # The copy also holds the clean run recorded in the template database before it was copied.
    recorded = query(copy_db, "SELECT success, failed_checks FROM quality_runs WHERE run_id = %s", (run.run_id,))
    assert recorded == [(False, 8)]


def test_bot4_validate_exits_0_on_clean_data_and_1_on_a_failing_table(copy_db: str, tmp_path):
    runner = CliRunner()
    env = {"BOT4_POSTGRES__DBNAME": copy_db, "BOT4_DATA_DIR": str(tmp_path)}
    args = ["validate", "--table", "md_trades", "--symbol", "BTC/USDT", "--start", "2024-08-08", "--end", "2024-08-10"]
    clean = runner.invoke(app, [*args, "--no-progress"], env=env)
    assert clean.exit_code == 0, clean.output
    assert (tmp_path / "quality" / "index.html").is_file()
    execute(
        copy_db,
        "UPDATE md_trades SET ts_event = ts_event - interval '1 minute' WHERE trade_id = "
        "(SELECT trade_id FROM md_trades WHERE symbol = 'BTC/USDT' ORDER BY trade_id::bigint LIMIT 1 OFFSET 9000)",
    )
    broken = runner.invoke(app, [*args, "--no-progress", "--out", str(tmp_path / "broken")], env=env)
    assert broken.exit_code == 1, broken.output
    assert "ts_event_increasing_by_trade_id" in broken.output
    recorded = query(copy_db, "SELECT success FROM quality_runs ORDER BY started_at")
    assert recorded[-2:] == [(True,), (False,)]
    bad_table = runner.invoke(app, ["validate", "--table", "md_nothing"], env=env)
    assert bad_table.exit_code == 2
