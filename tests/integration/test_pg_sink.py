"""The flows' PostgreSQL sink against the real server: one connection kept across batches, and a
connection killed under it (as a PostgreSQL restart does) costs a reconnect, not a row."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import psycopg
import pytest

from flows.pg_sink import RowsSink, connected
from flows.settings import load_settings

pytestmark = pytest.mark.integration


def write_points(target: Any, items: Sequence[tuple[int, str]]) -> None:
    with connected(target) as conn, conn.cursor() as cur:
        cur.executemany("INSERT INTO points (id, label) VALUES (%s, %s) ON CONFLICT (id) DO NOTHING", items)


def backend_pids(conninfo: str) -> set[int]:
    with psycopg.connect(conninfo, autocommit=True) as conn:
        rows = conn.execute(
            "SELECT pid FROM pg_stat_activity WHERE datname = current_database() AND pid <> pg_backend_pid()"
        ).fetchall()
    return {r[0] for r in rows}


def test_the_sink_keeps_one_connection_and_survives_losing_it_without_losing_or_doubling_rows(pg_database):
    conninfo = load_settings(postgres={"dbname": pg_database}).postgres.conninfo()
    with psycopg.connect(conninfo, autocommit=True) as conn:
        conn.execute("CREATE TABLE points (id int PRIMARY KEY, label text NOT NULL)")
    part = RowsSink(conninfo, write_points).build("points", 0, 1)
    try:
        part.write_batch([(1, "a"), (2, "b")])
        first = backend_pids(conninfo)
        part.write_batch([(3, "c")])
        assert backend_pids(conninfo) == first and len(first) == 1  # the same connection, kept open
        with psycopg.connect(conninfo, autocommit=True) as admin:
            admin.execute("SELECT pg_terminate_backend(%s)", (next(iter(first)),))
        part.write_batch([(4, "d"), (3, "c")])  # reconnects; the replayed row adds nothing
        assert backend_pids(conninfo) != first
        part.write_batch([])
    finally:
        part.close()
    with psycopg.connect(conninfo) as conn:
        assert conn.execute("SELECT id, label FROM points ORDER BY id").fetchall() == [
            (1, "a"),
            (2, "b"),
            (3, "c"),
            (4, "d"),
        ]
    assert backend_pids(conninfo) == set()  # closed with the sink
