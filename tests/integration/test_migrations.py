from __future__ import annotations

import shutil

import psycopg
import pytest

from core.errors import HaltAndAlert
from flows.settings import PostgresSettings
from flows.storage.migrate import SQL_DIR, discover, migrate, status, timescale_available

pytestmark = pytest.mark.integration

TABLES = {
    "md_trades",
    "md_quotes",
    "md_book_snapshots",
    "md_book_deltas",
    "md_candles",
    "dead_letters",
    "features",
    "signals",
    "risk_decisions",
    "orders",
    "order_events",
    "fills",
    "equity",
}


def conninfo(db: str) -> str:
    return PostgresSettings(dbname=db).conninfo()


def test_every_migration_has_both_variants_where_timescale_is_used():
    migrations = discover()
    assert [m.version for m in migrations] == sorted(m.version for m in migrations)
    for m in migrations:
        if m.timescale is not None:
            assert "timescaledb" in m.timescale.read_text() or "create_hypertable" in m.timescale.read_text()
        # a path is chosen for both servers: the variant files listed are the ones that exist
        assert m.files("plain")[0] == m.base and m.files("timescale")[0] == m.base
    first = migrations[0]
    assert first.files("timescale")[-1].name.endswith(".timescale.sql")
    assert first.files("plain")[-1].name.endswith(".plain.sql")


def test_this_server_has_no_timescaledb_so_the_plain_path_is_detected(pg_database):
    with psycopg.connect(conninfo(pg_database)) as conn:
        assert timescale_available(conn) is False
    applied = migrate(conninfo(pg_database))
    assert {a.variant for a in applied} == {"plain"}


def test_plain_migrations_create_the_schema_and_are_idempotent(pg_database):
    first = migrate(conninfo(pg_database))
    assert [a.version for a in first] == [m.version for m in discover()]
    assert migrate(conninfo(pg_database)) == []
    assert [v for v, _, _ in status(conninfo(pg_database))] == [m.version for m in discover()]
    with psycopg.connect(conninfo(pg_database)) as conn:
        tables = {r[0] for r in conn.execute("SELECT tablename FROM pg_tables WHERE schemaname = 'public'")}
        assert tables >= TABLES
        # the plain stand-in for the continuous aggregate exists with the same name
        kind = conn.execute("SELECT relkind FROM pg_class WHERE relname = 'md_trade_bars_1m'").fetchone()
        assert kind == ("v",)


def test_the_timescale_path_is_chosen_when_the_extension_is_available_and_fails_loudly_without_it(pg_database):
    # Forcing the TimescaleDB variant on a server without the extension must fail, not half-apply.
    with pytest.raises(psycopg.Error, match="timescaledb"):
        migrate(conninfo(pg_database), variant="timescale")
    assert status(conninfo(pg_database)) == []


def test_a_changed_migration_is_refused(pg_database, tmp_path):
    sql_dir = tmp_path / "sql"
    shutil.copytree(SQL_DIR, sql_dir)
    migrate(conninfo(pg_database), sql_dir=sql_dir)
    first = sorted(sql_dir.glob("0001_*.sql"))[0]
    first.write_text(first.read_text() + "\n-- edited\n")
    with pytest.raises(HaltAndAlert, match="changed after it was applied"):
        migrate(conninfo(pg_database), sql_dir=sql_dir)


def test_a_badly_named_migration_is_refused(tmp_path):
    (tmp_path / "1_bad.sql").write_text("select 1")
    with pytest.raises(ValueError, match="not named like"):
        discover(tmp_path)


def test_operator_commands_accept_strategy_pauses_only_with_the_strategy_named(pg_database):
    migrate(conninfo(pg_database))
    insert = (
        "INSERT INTO operator_commands (kind, account, breaker, strategy, requested_by, reason, via, ts) "
        "VALUES (%s, 'main', %s, %s, 'alice', 'why', 'cli', now())"
    )
    with psycopg.connect(conninfo(pg_database), autocommit=True) as conn:
        conn.execute(insert, ("pause_strategy", None, "trend-v1"))
        conn.execute(insert, ("resume_strategy", None, "trend-v1"))
        conn.execute(insert, ("kill_switch", None, None))
        for kind, breaker, strategy in [
            ("pause_strategy", None, None),
            ("resume_strategy", None, " "),
            ("kill_switch", None, "trend-v1"),
            ("launch", None, None),
        ]:
            with pytest.raises(psycopg.errors.CheckViolation):
                conn.execute(insert, (kind, breaker, strategy))
        kinds = [r[0] for r in conn.execute("SELECT kind FROM operator_commands ORDER BY id")]
    assert kinds == ["pause_strategy", "resume_strategy", "kill_switch"]
