"""``bot4 validate``: the Great Expectations suites of ``quality/`` over stored data.

Runs on PostgreSQL (from the settings) or, with ``--embedded PATH``, on the embedded SQLite store.
Writes the offline HTML report and ``summary.json`` to ``--out`` (default
``<data_dir>/quality``), records the run in ``quality_runs`` and exits 1 when a critical check
failed, so cron and CI can act on it; 2 on a usage or settings error.
"""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.console import Console
from rich.table import Table

from core.errors import Bot4Error
from flows.settings import load_settings

if TYPE_CHECKING:
    from quality.validate import ValidationRun

console = Console(stderr=True)


def _utc(text: str | None, name: str) -> datetime | None:
    """ISO date or time; without an offset it is taken as UTC."""
    if text is None:
        return None
    try:
        value = datetime.fromisoformat(text)
    except ValueError:
        console.print(f"[red]--{name} {text!r} is not an ISO-8601 date or time (e.g. 2024-08-08T00:00Z)[/red]")
        raise typer.Exit(2) from None
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def validate_cmd(
    *,
    table: Annotated[
        list[str] | None, typer.Option("--table", "-t", help="Table to validate (repeatable; default: market data).")
    ] = None,
    symbol: Annotated[str | None, typer.Option(help="Only this instrument, e.g. BTC/USDT.")] = None,
    start: Annotated[str | None, typer.Option(help="From this ISO time (UTC if no offset), inclusive.")] = None,
    end: Annotated[str | None, typer.Option(help="Up to this ISO time (UTC if no offset), exclusive.")] = None,
    all_tables: Annotated[
        bool, typer.Option("--all", help="Every table with a suite (market data and trading).")
    ] = False,
    embedded: Annotated[
        Path | None, typer.Option(help="Validate this embedded SQLite store instead of PostgreSQL.")
    ] = None,
    out: Annotated[Path | None, typer.Option(help="Report folder (default: <data_dir>/quality).")] = None,
    progress: Annotated[bool, typer.Option(help="Show a progress bar.")] = True,
) -> None:
    """Validate stored data with the Great Expectations suites; exit 1 if any critical check fails."""
    from quality.suites import MARKET_DATA, SUITES
    from quality.validate import postgres_url, validate

    try:
        settings = load_settings()
    except Bot4Error as exc:
        console.print(f"[red]{exc}[/red]")
        raise typer.Exit(2) from None
    tables = list(SUITES) if all_tables else (table or list(MARKET_DATA))
    unknown = sorted(set(tables) - set(SUITES))
    if unknown:
        console.print(f"[red]no suite for table(s) {', '.join(unknown)}; known: {', '.join(SUITES)}[/red]")
        raise typer.Exit(2)
    if embedded is not None:
        if not embedded.is_file():
            console.print(f"[red]embedded store {embedded} does not exist[/red]")
            raise typer.Exit(2)
        url = f"sqlite:///{embedded.resolve()}"
    else:
        pg = settings.postgres
        url = postgres_url(
            pg.host, pg.port, pg.dbname, pg.user, password=pg.password.get_secret_value(), sslmode=pg.sslmode
        )
    out_dir = out or settings.data_dir / "quality"
    run = validate(
        url,
        tables=tables,
        symbol=symbol,
        start=_utc(start, "start"),
        end=_utc(end, "end"),
        out_dir=out_dir,
        show_progress=progress,
    )
    _print(run)
    if not run.success:
        raise typer.Exit(1)


def _print(run: ValidationRun) -> None:
    table = Table(title=f"bot4 validate · {run.backend} · run {run.run_id}")
    for col in ("table", "status", "days", "rows", "failed checks", "reported"):
        table.add_column(col, justify="left" if col in ("table", "status") else "right")
    for t in run.tables:
        colour = {"passed": "green", "failed": "red"}.get(t.status, "dim")
        table.add_row(
            t.table,
            f"[{colour}]{t.status}[/{colour}]",
            str(sum(1 for b in t.batches if b.day != "schema")),
            f"{t.rows:,}",
            str(sum(1 for b in t.batches for c in b.checks if c.failed)),
            str(sum(1 for b in t.batches for c in b.checks if c.severity == "info" and not c.success)),
        )
    out = Console(width=120)
    out.print(table)
    for f in run.failures:
        count = "" if f.unexpected_count is None else f" ({f.unexpected_count} rows)"
        out.print(f"[red]FAILED[/red] {f.table} {f.day} {f.check}{count}")
    summary = run.summary()
    where = f"report {run.out_dir / 'index.html'}" if run.out_dir else "no report"
    out.print(f"{'passed' if run.success else 'FAILED'} in {summary['seconds']}s; {where}")


def register(app: typer.Typer) -> None:
    """Add ``validate`` to the ``bot4`` command line."""
    app.command("validate")(validate_cmd)
