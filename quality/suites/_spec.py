"""What every suite is made of: a table's columns and keys, the SQL dialect it runs on, and the
day window of the batch being validated.

A suite is built in code, per batch, by ``build(window)`` in each table's module. Great
Expectations is imported inside the builders (importing it costs seconds), so listing the suites
or reading a spec stays cheap.

Each expectation carries ``meta["check"]``: a stable name (``price_positive``, ``book_not_crossed``)
that reports, tests and the :class:`~quality.events.ValidationFailed` event use. Expectations with
``severity="info"`` are observations (trade-id gaps, sequence gaps): their count is reported, they
never fail a run.

>>> ts = Column("ts_event", "ts")
>>> spec = TableSpec("md_x", (Column("price", "numeric"), ts), key=("ts_event",), time_column="ts_event")
>>> [c.name for c in spec.columns_for("sqlite")]
['price', 'ts_event']
>>> num("price", "sqlite")
'CAST(price AS REAL)'
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Any, Literal

if TYPE_CHECKING:
    from great_expectations.core.expectation_suite import ExpectationSuite
    from great_expectations.expectations.expectation import Expectation

Dialect = Literal["postgresql", "sqlite"]
Kind = Literal["text", "numeric", "int", "ts", "json", "bool", "float"]

#: Column types as GE reports them (SQLAlchemy reflection), per dialect. The embedded SQLite store
#: keeps decimals and times as exact text, booleans as integers.
TYPE_NAMES: dict[Dialect, dict[Kind, tuple[str, ...]]] = {
    "postgresql": {
        "text": ("TEXT", "VARCHAR"),
        "numeric": ("NUMERIC",),
        "int": ("BIGINT", "INTEGER", "SMALLINT"),
        "ts": ("TIMESTAMP WITH TIME ZONE", "TIMESTAMP"),
        "json": ("JSONB", "JSON"),
        "bool": ("BOOLEAN",),
        "float": ("DOUBLE PRECISION", "DOUBLE_PRECISION", "FLOAT"),
    },
    "sqlite": {
        "text": ("TEXT",),
        "numeric": ("TEXT", "NUMERIC", "REAL"),
        "int": ("INTEGER", "INT", "BIGINT"),
        "ts": ("TEXT",),
        "json": ("TEXT",),
        "bool": ("INTEGER", "INT", "BOOLEAN"),
        "float": ("REAL", "FLOAT", "TEXT"),
    },
}


@dataclass(frozen=True, slots=True)
class Column:
    """One stored column: its name, what kind of value it holds, and whether it may be null."""

    name: str
    kind: Kind
    nullable: bool = False
    #: Only in PostgreSQL (a generated column the embedded store does not have).
    postgres_only: bool = False


@dataclass(frozen=True, slots=True)
class TableSpec:
    """A stored table as the suites see it."""

    table: str
    columns: tuple[Column, ...]
    #: The natural key: one row per value of these columns.
    key: tuple[str, ...]
    #: The event-time column the run is partitioned on (one batch per UTC day).
    time_column: str
    #: The instrument column a ``--symbol`` filter applies to (None: the table has none).
    symbol_column: str | None = "symbol"
    #: The PostgreSQL primary key's columns before ``time_column``. A day's batch names the values
    #: they take that day, so PostgreSQL reads the day through the key's index; a bare time range
    #: on a plain (non-Timescale) table is a scan of the whole table for every query of every day.
    scan_prefix: tuple[str, ...] = ()

    def columns_for(self, dialect: Dialect) -> tuple[Column, ...]:
        return tuple(c for c in self.columns if dialect == "postgresql" or not c.postgres_only)


@dataclass(frozen=True, slots=True)
class Window:
    """The batch being validated: one UTC day of one table on one backend."""

    dialect: Dialect
    start: datetime
    end: datetime
    symbol: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)
    #: When the run started (its injected clock): checks of what "should have happened by now"
    #: (an approved order reaching a terminal state) judge against it. None: the window's end.
    at: datetime | None = None

    @property
    def now(self) -> datetime:
        return self.at if self.at is not None else self.end

    def literal(self, when: datetime) -> str:
        """``when`` as a SQL literal comparable with the stored time column on this backend."""
        if self.dialect == "sqlite":
            # The embedded store writes datetime.isoformat() of aware UTC times, so ISO text
            # compares in time order.
            return f"'{when.isoformat()}'"
        return f"TIMESTAMPTZ '{when.isoformat()}'"


def num(column: str, dialect: Dialect) -> str:
    """The column as a number on this backend (SQLite stores decimals as text)."""
    return f"CAST({column} AS REAL)" if dialect == "sqlite" else column


def bigint(column: str, dialect: Dialect) -> str:
    return f"CAST({column} AS INTEGER)" if dialect == "sqlite" else f"CAST({column} AS BIGINT)"


def is_digits(column: str, dialect: Dialect) -> str:
    """True where the text column holds a plain non-negative integer (numeric trade ids)."""
    if dialect == "sqlite":
        return f"({column} <> '' AND {column} NOT GLOB '*[^0-9]*' AND length({column}) < 19)"
    # No regex quantifier braces: GE fills ``{batch}`` with str.format.
    return f"({column} ~ '^[0-9]+$' AND length({column}) < 19)"


def not_finite(column: str, dialect: Dialect) -> str:
    """True where a stored number is NaN or infinite (PostgreSQL numeric allows both)."""
    if dialect == "sqlite":
        return (
            f"(lower({column}) IN ('nan', 'snan', '-nan', 'inf', '-inf', '+inf', 'infinity', '-infinity', "
            f"'+infinity') OR CAST({column} AS REAL) IN (9e999, -9e999))"
        )
    return f"({column} IN ('NaN'::numeric, 'Infinity'::numeric, '-Infinity'::numeric))"


def expectations() -> Any:
    """GE's public expectation namespace (``gx.expectations``), imported on first use.

    Typed ``Any``: the package re-exports its expectation classes without ``__all__``, so mypy
    would otherwise reject every ``gxe.Expect...`` name that GE documents as public.
    """
    import importlib

    return importlib.import_module("great_expectations.expectations")


def _severity(name: str) -> Any:
    from great_expectations.expectations.metadata_types import FailureSeverity

    return FailureSeverity(name)


def rows_where(condition: str, check: str, description: str, *, severity: str = "critical") -> Expectation:
    """Rows of the batch matching ``condition`` are unexpected; the count is the observed value."""
    return query_rows(f"SELECT * FROM {{batch}} WHERE {condition}", check, description, severity=severity)


def query_rows(query: str, check: str, description: str, *, severity: str = "critical") -> Expectation:
    """Every row ``query`` returns is unexpected (for checks that need windows or joins)."""
    expectation: Expectation = expectations().UnexpectedRowsExpectation(
        unexpected_rows_query=query, description=description, severity=_severity(severity), meta={"check": check}
    )
    return expectation


def finite_positive(column: str, dialect: Dialect, *, allow_zero: bool = False) -> list[Expectation]:
    """``<column>_finite`` and ``<column>_positive`` (or ``_not_negative``); nulls are not-null's job."""
    bad = not_finite(column, dialect)
    op, word = ("<", "not_negative") if allow_zero else ("<=", "positive")
    return [
        rows_where(f"{column} IS NOT NULL AND {bad}", f"{column}_finite", f"{column} is a finite number"),
        rows_where(
            f"{column} IS NOT NULL AND NOT {bad} AND {num(column, dialect)} {op} 0",
            f"{column}_{word}",
            f"{column} {'>=' if allow_zero else '>'} 0",
        ),
    ]


def finite(column: str, dialect: Dialect) -> Expectation:
    return rows_where(
        f"{column} IS NOT NULL AND {not_finite(column, dialect)}", f"{column}_finite", f"{column} is a finite number"
    )


def not_null(spec: TableSpec, dialect: Dialect) -> list[Expectation]:
    gxe = expectations()
    return [
        gxe.ExpectColumnValuesToNotBeNull(column=c.name, meta={"check": f"{c.name}_not_null"})
        for c in spec.columns_for(dialect)
        if not c.nullable
    ]


def unique_key(columns: tuple[str, ...], check: str = "natural_key_unique") -> Expectation:
    """Every row whose key value occurs more than once (both rows of a duplicated pair count, as
    GE's compound-columns expectation counts them; rows with the whole key null are left to
    not-null).

    One window count over the day instead of GE's ``ExpectCompoundColumnsToBeUnique``: that one
    groups the day twice more (its count and its sample) and was the costliest check of a
    md_trades day (2.7 s of 10.4 s for 193k rows); it also refuses a one-column key.
    """
    keys = ", ".join(columns)
    all_null = " AND ".join(f"{c} IS NULL" for c in columns)
    return query_rows(
        f"SELECT * FROM (SELECT {keys}, count(*) OVER (PARTITION BY {keys}) AS key_rows FROM {{batch}} "
        f"WHERE NOT ({all_null})) keyed WHERE key_rows > 1",
        check,
        f"one row per ({keys})",
    )


def in_set(column: str, values: tuple[str, ...]) -> Expectation:
    expectation: Expectation = expectations().ExpectColumnValuesToBeInSet(
        column=column, value_set=list(values), meta={"check": f"{column}_in_set"}
    )
    return expectation


def increasing_per_key(
    partition: tuple[str, ...], order_by: str, ts: str, *, check: str, description: str, where: str = "1 = 1"
) -> Expectation:
    """Rows whose ``ts`` is earlier than the previous row's, in ``order_by`` order within ``partition``."""
    keys = ", ".join(partition)
    return query_rows(
        f"SELECT * FROM (SELECT {ts} AS ts_this, LAG({ts}) OVER (PARTITION BY {keys} ORDER BY {order_by}) AS ts_prev, "
        f"{keys} FROM {{batch}} WHERE {where}) ordered WHERE ts_this < ts_prev",
        check,
        description,
    )


def schema_suite(spec: TableSpec, dialect: Dialect) -> ExpectationSuite:
    """The table's columns, exactly, and each column's type (checked once per table, not per day)."""
    import great_expectations as gx

    gxe = expectations()

    suite = gx.ExpectationSuite(name=f"{spec.table}.schema")
    columns = spec.columns_for(dialect)
    suite.add_expectation(
        gxe.ExpectTableColumnsToMatchSet(
            column_set=[c.name for c in columns], exact_match=True, meta={"check": "columns_match"}
        )
    )
    for c in columns:
        suite.add_expectation(
            gxe.ExpectColumnValuesToBeInTypeList(
                column=c.name, type_list=list(TYPE_NAMES[dialect][c.kind]), meta={"check": f"{c.name}_type"}
            )
        )
    return suite


def suite_of(name: str, expectations: list[Expectation]) -> ExpectationSuite:
    import great_expectations as gx

    suite = gx.ExpectationSuite(name=name)
    for expectation in expectations:
        suite.add_expectation(expectation)
    return suite
