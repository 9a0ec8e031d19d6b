"""``bot4 features``: apply the Feast declarations, read the latest features of a symbol, and write
a point-in-time correct training set.

The environment is ``--env local`` (embedded: SQLite, parquet, file registry under
``BOT4_FEAST_DATA_DIR``) or ``--env dev`` (Redis, PostgreSQL, SQL registry from the ``BOT4_*``
settings); ``--project`` picks the Feast project (default ``BOT4_FEAST_PROJECT`` or ``bot4``).
Feast is imported only when a command runs.
"""

from __future__ import annotations

import json
import time
from datetime import datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.console import Console

from core.clock import SystemClock, parse_utc
from core.errors import Bot4Error, ConfigError
from core.symbols import timeframe_seconds
from flows.settings import Bot4Settings, load_settings

if TYPE_CHECKING:
    from flows.feature_store import FeastConfig

features_app = typer.Typer(help="Feature store: apply, online values, training sets.", no_args_is_help=True)
console = Console(stderr=True)

EnvOption = Annotated[str | None, typer.Option("--env", help="Feast environment: local or dev (BOT4_FEAST_ENV).")]
ProjectOption = Annotated[str | None, typer.Option(help="Feast project (BOT4_FEAST_PROJECT, default bot4).")]
DataDirOption = Annotated[Path | None, typer.Option(help="local env: Feast files (BOT4_FEAST_DATA_DIR).")]


def _config(env: str | None, project: str | None, data_dir: Path | None) -> tuple[Bot4Settings, FeastConfig]:
    from flows.feature_store import FeastConfig  # imports neither feast nor pandas

    overrides: dict[str, object] = {}
    if env is not None:
        overrides["env"] = env
    if project is not None:
        overrides["project"] = project
    if data_dir is not None:
        overrides["data_dir"] = data_dir
    try:
        return load_settings(), FeastConfig.from_env(**overrides)
    except Bot4Error as exc:
        console.print(f"[red]{exc}[/red]")
        raise typer.Exit(2) from None


def _utc(text: str, name: str) -> datetime:
    try:
        return parse_utc(text.replace("Z", "+00:00") if text.endswith("Z") else text)
    except ValueError as exc:
        raise typer.BadParameter(f"{name}={text!r} is not an ISO-8601 time with an offset or Z: {exc}") from None


@features_app.command("apply")
def apply_cmd(*, env: EnvOption = None, project: ProjectOption = None, data_dir: DataDirOption = None) -> None:
    """Register feature_repo/ (entity, sources, views, services) in the environment's registry."""
    from flows.feature_store import apply

    settings, config = _config(env, project, data_dir)
    started = time.monotonic()
    apply(config, settings)
    typer.echo(f"applied feature_repo to project {config.project} ({config.env}) in {time.monotonic() - started:.1f}s")


@features_app.command("online")
def online_cmd(
    *,
    symbol: Annotated[str, typer.Option(help="Instrument key, e.g. binance:BTC/USDT.")],
    env: EnvOption = None,
    project: ProjectOption = None,
    data_dir: DataDirOption = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON instead of a table.")] = False,
) -> None:
    """The latest feature values of SYMBOL from the online store, with their age.

    Values older than the view's TTL (or never written) are reported missing: exit code 1.
    """
    from flows.feature_store import open_store, read_online

    settings, config = _config(env, project, data_dir)
    now = SystemClock().now()
    result = read_online(open_store(config, settings), symbol, now)
    if not result.present:
        age = "never written" if result.age is None else f"newest is {result.age} old (older than the TTL)"
        console.print(f"[yellow]no current features for {symbol} in {config.project} ({config.env}): {age}[/yellow]")
        raise typer.Exit(1)
    assert result.event_timestamp is not None and result.age is not None
    if as_json:
        payload = {
            "symbol": symbol,
            "event_timestamp": result.event_timestamp.isoformat(),
            "age_seconds": result.age.total_seconds(),
            "values": result.values,
        }
        typer.echo(json.dumps(payload, indent=2))
        return
    from rich.table import Table

    table = Table(title=f"{symbol} as of {result.event_timestamp.isoformat()} (age {result.age})")
    table.add_column("feature")
    table.add_column("value", justify="right")
    for name, value in result.values.items():
        table.add_row(name, "-" if value is None else str(value))
    Console(width=120).print(table)


@features_app.command("history")
def history_cmd(
    *,
    symbols: Annotated[list[str], typer.Option("--symbols", help="Instrument keys (repeat or comma-separate).")],
    start: Annotated[str, typer.Option(help="First entity time, ISO-8601 with Z or offset.")],
    end: Annotated[str, typer.Option(help="Last entity time (inclusive).")],
    out: Annotated[Path, typer.Option(help="Parquet file to write.")],
    every: Annotated[str, typer.Option(help="Entity row spacing, a timeframe like 1m, 5m, 1h.")] = "1m",
    env: EnvOption = None,
    project: ProjectOption = None,
    data_dir: DataDirOption = None,
) -> None:
    """A point-in-time correct training set: one row per symbol and time, NaN where no feature was
    known yet (or only one older than the TTL)."""
    from flows.feature_store import entity_frame, open_store, read_history

    settings, config = _config(env, project, data_dir)
    keys = [s.strip() for item in symbols for s in item.split(",") if s.strip()]
    first, last = _utc(start, "--start"), _utc(end, "--end")
    try:
        step = timedelta(seconds=timeframe_seconds(every))
    except (ValueError, KeyError, ConfigError) as exc:
        raise typer.BadParameter(f"--every {every!r} is not a timeframe like 1m, 5m, 1h: {exc}") from None
    if last < first:
        raise typer.BadParameter(f"--end {end} is before --start {start}")
    started = time.monotonic()
    frame = read_history(open_store(config, settings), entity_frame(keys, first, last, step))
    out.parent.mkdir(parents=True, exist_ok=True)
    frame.to_parquet(out, index=False)
    filled = int(frame["bar_close"].notna().sum()) if len(frame) else 0
    typer.echo(
        f"wrote {len(frame)} rows ({filled} with features) for {len(keys)} symbol(s) to {out} "
        f"in {time.monotonic() - started:.1f}s"
    )


def register(app: typer.Typer) -> None:
    """Add ``bot4 features ...`` to the main CLI."""
    app.add_typer(features_app, name="features")
