"""Run the table suites against PostgreSQL or the embedded SQLite store, one batch per UTC day.

Each day of each table is a Great Expectations batch over a query
(``SELECT * FROM t WHERE ts >= day AND ts < day + 1 [AND symbol = ...]``) on a SQL datasource, so
every metric is computed by the database and memory stays bounded whatever the table's size. The
columns and types are checked once per table on the table itself. Then:

- a self-contained HTML report (``index.html`` and one page per table, inline CSS, no network)
  and ``summary.json`` are written to the output folder (see :mod:`quality.report`);
- the run is recorded in ``quality_runs`` (PostgreSQL: ``sql/0003_quality_runs.sql``; the
  embedded store gets the same table created here, as it has no migration runner);
- a failed run carries a :class:`~quality.events.ValidationFailed` event.

Success means every critical expectation held on every batch; ``severity="info"`` expectations
(trade-id and sequence gaps) are counted and shown, never failed. A table with no rows in the
range passes as "no rows"; a table the store does not have (the embedded store keeps only market
data) is "absent".
"""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from core.clock import Clock, SystemClock, require_utc
from quality.events import FailedCheck, ValidationFailed
from quality.suites import MARKET_DATA, SUITES, Dialect, TableSpec, Window, schema_suite
from quality.suites._spec import expectations

if TYPE_CHECKING:
    from great_expectations.core.expectation_suite import ExpectationSuite
    from rich.progress import Progress
    from sqlalchemy.engine import Engine

TableStatus = Literal["passed", "failed", "no_rows", "absent"]
SAMPLE_ROWS = 5

_QUALITY_RUNS_SQLITE = """
CREATE TABLE IF NOT EXISTS quality_runs (
    run_id TEXT PRIMARY KEY, backend TEXT NOT NULL, target TEXT NOT NULL, tables TEXT NOT NULL,
    symbol TEXT, range_start TEXT, range_end TEXT, started_at TEXT NOT NULL, finished_at TEXT NOT NULL,
    success INTEGER NOT NULL, batches INTEGER NOT NULL, rows_validated INTEGER NOT NULL,
    failed_checks INTEGER NOT NULL, report_path TEXT, summary TEXT NOT NULL)
"""


class QualityRunsMissing(RuntimeError):
    """The PostgreSQL database has no ``quality_runs`` table.

    Operator action: run ``bot4 db migrate`` (migration 0003 creates it), then validate again.
    """


@dataclass(frozen=True, slots=True)
class CheckResult:
    """One expectation on one batch."""

    check: str
    expectation: str
    description: str
    column: str | None
    severity: str
    success: bool
    unexpected_count: int | None
    observed: Any
    sample: list[Any]
    error: str | None = None

    @property
    def failed(self) -> bool:
        """Failed and critical: info-severity observations never fail a run."""
        return not self.success and self.severity == "critical"


@dataclass(frozen=True, slots=True)
class BatchResult:
    """One table's batch: its UTC day (``schema`` for the columns-and-types batch)."""

    table: str
    day: str
    rows: int
    checks: tuple[CheckResult, ...]
    seconds: float

    @property
    def success(self) -> bool:
        return not any(c.failed for c in self.checks)


@dataclass(frozen=True, slots=True)
class TableResult:
    table: str
    status: TableStatus
    batches: tuple[BatchResult, ...] = ()

    @property
    def rows(self) -> int:
        return sum(b.rows for b in self.batches if b.day != "schema")


@dataclass(frozen=True, slots=True)
class ValidationRun:
    """Everything one ``bot4 validate`` run found."""

    run_id: str
    backend: Dialect
    target: str
    symbol: str | None
    start: datetime | None
    end: datetime | None
    started_at: datetime
    finished_at: datetime
    tables: tuple[TableResult, ...]
    out_dir: Path | None = None
    event: ValidationFailed | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def success(self) -> bool:
        return all(t.status != "failed" for t in self.tables)

    @property
    def failures(self) -> tuple[FailedCheck, ...]:
        return tuple(
            FailedCheck(t.table, b.day, c.check, c.unexpected_count)
            for t in self.tables
            for b in t.batches
            for c in b.checks
            if c.failed
        )

    def summary(self) -> dict[str, Any]:
        """The run as plain JSON-ready data (what ``summary.json`` and ``quality_runs.summary`` hold)."""
        return {
            "run_id": self.run_id,
            "success": self.success,
            "backend": self.backend,
            "target": self.target,
            "symbol": self.symbol,
            "start": self.start.isoformat() if self.start else None,
            "end": self.end.isoformat() if self.end else None,
            "started_at": self.started_at.isoformat(),
            "finished_at": self.finished_at.isoformat(),
            "seconds": round((self.finished_at - self.started_at).total_seconds(), 3),
            "batches": sum(len(t.batches) for t in self.tables),
            "rows_validated": sum(t.rows for t in self.tables),
            "failures": [vars_of(f) for f in self.failures],
            "tables": [
                {
                    "table": t.table,
                    "status": t.status,
                    "rows": t.rows,
                    "batches": [
                        {
                            "day": b.day,
                            "rows": b.rows,
                            "success": b.success,
                            "seconds": round(b.seconds, 3),
                            "checks": [vars_of(c) for c in b.checks],
                        }
                        for b in t.batches
                    ],
                }
                for t in self.tables
            ],
            "event": self.event.to_dict() if self.event else None,
        }


def vars_of(obj: Any) -> dict[str, Any]:
    return {name: getattr(obj, name) for name in obj.__slots__}


def _json_safe(value: Any) -> Any:
    """GE results hold Decimals, datetimes and numpy scalars: make them plain JSON values."""
    return json.loads(json.dumps(value, default=_json_default))


def _json_default(value: Any) -> Any:
    if isinstance(value, Decimal):
        return str(value)
    if isinstance(value, datetime | date):
        return value.isoformat()
    if hasattr(value, "item"):
        return value.item()
    return str(value)


def postgres_url(host: str, port: int, dbname: str, user: str, *, password: str = "", sslmode: str = "disable") -> str:
    """The SQLAlchemy URL GE's PostgreSQL datasource takes (psycopg 3 driver).

    >>> postgres_url("127.0.0.1", 25432, "bot4", "postgres")
    'postgresql+psycopg://postgres@127.0.0.1:25432/bot4?sslmode=disable'
    """
    from urllib.parse import quote

    auth = quote(user, safe="") + (f":{quote(password, safe='')}" if password else "")
    return f"postgresql+psycopg://{auth}@{host}:{port}/{quote(dbname, safe='')}?sslmode={sslmode}"


def validate(
    url: str,
    *,
    tables: Sequence[str] = MARKET_DATA,
    symbol: str | None = None,
    start: datetime | None = None,
    end: datetime | None = None,
    out_dir: Path | None = None,
    clock: Clock | None = None,
    show_progress: bool = False,
    record: bool = True,
) -> ValidationRun:
    """Validate ``tables`` of the database at ``url`` (``postgresql+psycopg://...`` or ``sqlite:///path``)."""
    import sqlalchemy as sa

    unknown = [t for t in tables if t not in SUITES]
    if unknown:
        raise ValueError(f"no suite for table(s) {unknown}; known: {sorted(SUITES)}")
    clock = clock or SystemClock()
    for name, value in (("start", start), ("end", end)):
        if value is not None:
            require_utc(value, name)
    started_at = clock.now()
    run_id = f"{started_at:%Y%m%dT%H%M%SZ}-{uuid.uuid4().hex[:8]}"
    engine = sa.create_engine(url)
    try:
        dialect = _dialect(engine)
        target = engine.url.render_as_string(hide_password=True)
        plans = {t: _days(engine, SUITES[t].spec, dialect, symbol=symbol, start=start, end=end) for t in tables}
        results = _run_batches(url, dialect, plans, symbol, show_progress, now=started_at)
        finished_at = clock.now()
        run = ValidationRun(
            run_id, dialect, target, symbol, start, end, started_at, finished_at, results, out_dir=out_dir
        )
        if not run.success:
            run = _with_event(run, finished_at)
        if out_dir is not None:
            from quality.report import write_report

            write_report(run, out_dir)
        if record:
            _record(engine, run)
        return run
    finally:
        engine.dispose()


def _with_event(run: ValidationRun, when: datetime) -> ValidationRun:
    event = ValidationFailed(
        run_id=run.run_id,
        backend=run.backend,
        symbol=run.symbol,
        failures=run.failures,
        ts_event=when,
        report_path=str(run.out_dir / "index.html") if run.out_dir else None,
    )
    return ValidationRun(**{**{n: getattr(run, n) for n in run.__dataclass_fields__}, "event": event})


def _dialect(engine: Engine) -> Dialect:
    name = engine.dialect.name
    if name == "postgresql":
        return "postgresql"
    if name == "sqlite":
        return "sqlite"
    raise ValueError(f"validation runs on postgresql or sqlite, not {name!r}")


def _filters(spec: TableSpec, dialect: Dialect, symbol: str | None, lo: datetime | None, hi: datetime | None) -> str:
    window = Window(dialect, lo or datetime.min.replace(tzinfo=UTC), hi or datetime.max.replace(tzinfo=UTC))
    parts = ["1 = 1"]
    if lo is not None:
        parts.append(f"{spec.time_column} >= {window.literal(lo)}")
    if hi is not None:
        parts.append(f"{spec.time_column} < {window.literal(hi)}")
    if symbol is not None and spec.symbol_column is not None:
        quoted = symbol.replace("'", "''")
        parts.append(f"{spec.symbol_column} = '{quoted}'")
    return " AND ".join(parts)


#: The values a day's rows take in the table's ``scan_prefix`` columns.
Prefixes = tuple[tuple[Any, ...], ...]


def _days(
    engine: Engine,
    spec: TableSpec,
    dialect: Dialect,
    *,
    symbol: str | None,
    start: datetime | None,
    end: datetime | None,
) -> dict[date, Prefixes] | None:
    """The UTC days holding rows, each with its ``scan_prefix`` values (None: no such table).

    One pass over the table (the range's rows) plans the whole run; the prefixes are only
    collected on PostgreSQL, where they are key columns and so never null.
    """
    import sqlalchemy as sa

    if not sa.inspect(engine).has_table(spec.table):
        return None
    col = spec.time_column
    day = f"substr({col}, 1, 10)" if dialect == "sqlite" else f"to_char({col} AT TIME ZONE 'UTC', 'YYYY-MM-DD')"
    prefix = spec.scan_prefix if dialect == "postgresql" else ()
    columns = ", ".join((day, *prefix))
    sql = f"SELECT DISTINCT {columns} FROM {spec.table} WHERE {_filters(spec, dialect, symbol, start, end)} ORDER BY 1"
    plan: dict[date, list[tuple[Any, ...]]] = {}
    with engine.connect() as conn:
        for row in conn.execute(sa.text(sql)):
            plan.setdefault(date.fromisoformat(row[0]), []).append(tuple(row[1:]))
    return {d: tuple(p) if prefix else () for d, p in plan.items()}


def _sql_literal(value: Any) -> str:
    """A key value as SQL text: integers as they are, anything else as a quoted string."""
    if isinstance(value, int) and not isinstance(value, bool):
        return str(value)
    return "'" + str(value).replace("'", "''") + "'"


def _prefix_filter(spec: TableSpec, prefixes: Prefixes) -> str:
    """``(exchange, symbol) IN (('binance', 'BTC/USDT'), ...)``: the day's key prefixes, so the
    planner can read the day through the primary key instead of scanning the table."""
    if not prefixes:
        return "1 = 1"
    values = ", ".join("(" + ", ".join(_sql_literal(v) for v in p) + ")" for p in prefixes)
    return f"({', '.join(spec.scan_prefix)}) IN ({values})"


def _run_batches(
    url: str,
    dialect: Dialect,
    plans: dict[str, dict[date, Prefixes] | None],
    symbol: str | None,
    show_progress: bool,
    *,
    now: datetime,
) -> tuple[TableResult, ...]:
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    work = sum(len(days) + 1 for days in plans.values() if days)
    results: list[TableResult] = []
    if work == 0:
        return tuple(TableResult(t, "absent" if days is None else "no_rows") for t, days in plans.items())
    datasource = _datasource(url, dialect)
    progress = Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=Console(stderr=True),
        disable=not show_progress,
        transient=True,
    )
    try:
        with progress:
            _validate_plans(datasource, dialect, plans, symbol, now, progress=progress, results=results)
    finally:
        _close(datasource.get_execution_engine())
    return tuple(results)


def _close(execution_engine: Any) -> None:
    """Close GE's connections now, not at interpreter exit: the execution engine keeps one
    connection checked out of its pool (which ``dispose()`` alone leaves open), and an open
    session blocks e.g. ``CREATE DATABASE ... TEMPLATE`` or ``DROP DATABASE``."""
    connection = getattr(execution_engine, "_connection", None)
    if connection is not None:
        connection.close()
    execution_engine.close()


def _validate_plans(
    datasource: Any,
    dialect: Dialect,
    plans: dict[str, dict[date, Prefixes] | None],
    symbol: str | None,
    now: datetime,
    *,
    progress: Progress,
    results: list[TableResult],
) -> None:
    task = progress.add_task("validating", total=sum(len(days) + 1 for days in plans.values() if days))
    for table, days in plans.items():
        if not days:
            results.append(TableResult(table, "absent" if days is None else "no_rows"))
            continue
        spec = SUITES[table].spec
        progress.update(task, description=f"{table} schema")
        batches = [_schema_batch(datasource, spec, dialect)]
        progress.advance(task)
        for day, prefixes in days.items():
            progress.update(task, description=f"{table} {day.isoformat()}")
            batches.append(_day_batch(datasource, table, dialect, day, symbol, prefixes=prefixes, now=now))
            progress.advance(task)
        ok = all(b.success for b in batches)
        results.append(TableResult(table, "passed" if ok else "failed", tuple(batches)))


def _datasource(url: str, dialect: Dialect) -> Any:
    import great_expectations as gx
    from great_expectations.data_context.types.base import ProgressBarsConfig
    from sqlalchemy.pool import NullPool

    context = gx.get_context(mode="ephemeral")
    # GE's own tqdm bars would interleave with ours (and flood logs in CI).
    context.variables.progress_bars = ProgressBarsConfig(globally=False)
    if dialect == "postgresql":
        # No pool: GE builds more than one engine per datasource and orphans the first with an
        # idle connection in its pool; without pooling no session outlives its query.
        # (``kwargs`` is the datasource's create_engine arguments; GE's typing stub leaves it out.)
        sources: Any = context.data_sources
        return sources.add_postgres("bot4_postgres", connection_string=url, kwargs={"poolclass": NullPool})
    return context.data_sources.add_sqlite("bot4_embedded", connection_string=url)


def _schema_batch(datasource: Any, spec: TableSpec, dialect: Dialect) -> BatchResult:
    started = time.monotonic()
    asset = datasource.add_table_asset(f"{spec.table}_schema", table_name=spec.table)
    batch = asset.add_batch_definition_whole_table("schema").get_batch()
    checks = _checks(batch.validate(schema_suite(spec, dialect), result_format="SUMMARY"))
    return BatchResult(spec.table, "schema", 0, checks, time.monotonic() - started)


def _day_batch(
    datasource: Any,
    table: str,
    dialect: Dialect,
    day: date,
    symbol: str | None,
    *,
    prefixes: Prefixes = (),
    now: datetime | None = None,
) -> BatchResult:
    started = time.monotonic()
    entry = SUITES[table]
    lo = datetime(day.year, day.month, day.day, tzinfo=UTC)
    window = Window(dialect, lo, lo + timedelta(days=1), symbol, at=now)
    where = _filters(entry.spec, dialect, symbol, window.start, window.end)
    query = f"SELECT * FROM {table} WHERE {where} AND {_prefix_filter(entry.spec, prefixes)}"
    asset = datasource.add_query_asset(f"{table}_{day:%Y%m%d}", query=query)
    batch = asset.add_batch_definition_whole_table(day.isoformat()).get_batch()
    suite: ExpectationSuite = entry.build(window)
    # Its observed value is the batch's row count (min 0: an empty day is not a failure).
    suite.add_expectation(expectations().ExpectTableRowCountToBeBetween(min_value=0, meta={"check": "row_count"}))
    checks = _checks(batch.validate(suite, result_format={"result_format": "SUMMARY", "partial_unexpected_count": 5}))
    rows = next((int(c.observed) for c in checks if c.check == "row_count"), 0)
    kept = tuple(c for c in checks if c.check != "row_count")
    return BatchResult(table, day.isoformat(), rows, kept, time.monotonic() - started)


def _checks(result: Any) -> tuple[CheckResult, ...]:
    out = []
    for r in result.results:
        config = r.expectation_config
        meta = config.meta or {}
        body = r.result or {}
        error = None
        if r.exception_info and r.exception_info.get("raised_exception"):
            error = str(r.exception_info.get("exception_message"))
        observed = body.get("observed_value")
        unexpected = body.get("unexpected_count")
        if unexpected is None and config.type == "unexpected_rows_expectation" and isinstance(observed, int):
            unexpected = observed
        details = body.get("details") or {}
        sample = body.get("partial_unexpected_list") or details.get("unexpected_rows") or []
        severity = getattr(config.severity, "value", str(config.severity)).lower()
        out.append(
            CheckResult(
                check=str(meta.get("check", config.type)),
                expectation=config.type,
                description=config.description or "",
                column=config.kwargs.get("column"),
                severity="info" if severity == "info" else "critical",
                success=bool(r.success) and error is None,
                unexpected_count=None if unexpected is None else int(unexpected),
                observed=_json_safe(observed),
                sample=_json_safe(list(sample)[:SAMPLE_ROWS]),
                error=error,
            )
        )
    return tuple(out)


def _record(engine: Engine, run: ValidationRun) -> None:
    """One row per run in ``quality_runs``."""
    import sqlalchemy as sa

    summary = run.summary()
    params = {
        "run_id": run.run_id,
        "backend": run.backend,
        "target": run.target,
        "tables": json.dumps([t.table for t in run.tables]),
        "symbol": run.symbol,
        "range_start": run.start.isoformat() if run.start else None,
        "range_end": run.end.isoformat() if run.end else None,
        "started_at": run.started_at.isoformat(),
        "finished_at": run.finished_at.isoformat(),
        "success": run.success,
        "batches": summary["batches"],
        "rows_validated": summary["rows_validated"],
        "failed_checks": len(run.failures),
        "report_path": str(run.out_dir / "index.html") if run.out_dir else None,
        "summary": json.dumps(summary, default=_json_default),
    }
    columns = ", ".join(params)
    if run.backend == "sqlite":
        values = ", ".join(f":{k}" for k in params)
        with engine.begin() as conn:
            conn.execute(sa.text(_QUALITY_RUNS_SQLITE))
            conn.execute(sa.text(f"INSERT INTO quality_runs ({columns}) VALUES ({values})"), params)
        return
    if not sa.inspect(engine).has_table("quality_runs"):
        raise QualityRunsMissing(f"{run.target} has no quality_runs table; run `bot4 db migrate` first")
    casts = {"tables": "jsonb", "summary": "jsonb", "range_start": "timestamptz", "range_end": "timestamptz"}
    casts |= {"started_at": "timestamptz", "finished_at": "timestamptz"}
    values = ", ".join(f"CAST(:{k} AS {casts[k]})" if k in casts else f":{k}" for k in params)
    with engine.begin() as conn:
        conn.execute(sa.text(f"INSERT INTO quality_runs ({columns}) VALUES ({values})"), params)
