"""sql/0004_feature_rows.sql has one column per feature of features/schema.py, same order and type."""

from __future__ import annotations

import re
from pathlib import Path

from features.schema import FEATURES
from flows.features import ROW_COLUMNS

MIGRATION = Path(__file__).resolve().parents[3] / "sql" / "0004_feature_rows.sql"
PG_TYPES = {"float64": "double precision", "int64": "bigint", "bool": "boolean"}
KEY_COLUMNS = [
    ("symbol", "text"),
    ("timeframe", "text"),
    ("schema_version", "integer"),
    ("event_timestamp", "timestamptz"),
    ("bar_start", "timestamptz"),
]


def table_columns(sql: str) -> list[tuple[str, str]]:
    body = re.search(r"CREATE TABLE IF NOT EXISTS feature_rows \((.*?)\n\);", sql, re.S)
    assert body is not None, "no CREATE TABLE feature_rows in the migration"
    columns = []
    for raw in body.group(1).splitlines():
        line = raw.split("--")[0].strip().rstrip(",")
        if not line or line.startswith("PRIMARY KEY"):
            continue
        name, rest = line.split(None, 1)
        columns.append((name, rest.replace("NOT NULL", "").strip()))
    return columns


def test_feature_rows_columns_equal_the_schema_names_and_types_in_order() -> None:
    columns = table_columns(MIGRATION.read_text())
    assert columns[: len(KEY_COLUMNS)] == KEY_COLUMNS
    assert columns[len(KEY_COLUMNS) :] == [(spec.name, PG_TYPES[spec.dtype]) for spec in FEATURES]


def test_the_sink_writes_exactly_the_migrations_columns() -> None:
    assert [name for name, _ in table_columns(MIGRATION.read_text())] == list(ROW_COLUMNS)


def test_natural_key_is_symbol_timeframe_schema_version_and_bar_end() -> None:
    assert "PRIMARY KEY (symbol, timeframe, schema_version, event_timestamp)" in MIGRATION.read_text()
