"""The ``bot4`` command line: settings, database, topics, ingestion and storage.

Every command reads the settings once (``BOT4_*`` and ``BOT4_CONFIG_FILE``); a bad setting stops
it at once with the field and the reason.
"""

from __future__ import annotations

import json
import os
import sys
import time
from dataclasses import replace
from datetime import timedelta
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console

from core.errors import Bot4Error
from flows.settings import Bot4Settings, load_settings, masked_dump

app = typer.Typer(help="Bot4: streaming crypto trading on Bytewax and Kafka.", no_args_is_help=True)
config_app = typer.Typer(help="Settings.", no_args_is_help=True)
db_app = typer.Typer(help="PostgreSQL schema.", no_args_is_help=True)
topics_app = typer.Typer(help="Kafka topics.", no_args_is_help=True)
app.add_typer(config_app, name="config")
app.add_typer(db_app, name="db")
app.add_typer(topics_app, name="topics")

console = Console(stderr=True)


def _settings() -> Bot4Settings:
    try:
        return load_settings()
    except Bot4Error as exc:
        console.print(f"[red]{exc}[/red]")
        raise typer.Exit(2) from None


@config_app.command("show")
def config_show() -> None:
    """Print the effective settings as JSON, secrets masked."""
    typer.echo(json.dumps(masked_dump(_settings()), indent=2, default=str))


@db_app.command("migrate")
def db_migrate() -> None:
    """Apply pending SQL migrations (TimescaleDB parts only where the extension exists)."""
    from flows.storage.migrate import migrate

    applied = migrate(_settings().postgres.conninfo())
    if not applied:
        typer.echo("schema is up to date")
    for a in applied:
        typer.echo(f"applied {a.version:04d}_{a.name} ({a.variant})")


@db_app.command("status")
def db_status() -> None:
    """List applied migrations."""
    from flows.storage.migrate import status

    for version, name, variant in status(_settings().postgres.conninfo()):
        typer.echo(f"{version:04d}_{name} ({variant})")


@topics_app.command("ensure")
def topics_ensure() -> None:
    """Create the topics of infra/topics.toml that do not exist yet."""
    from flows.topics import ensure_topics, load_topics

    settings = _settings()
    specs = [replace(t, name=settings.kafka.topic(t.name)) for t in load_topics(settings.kafka.topics_file)]
    created = ensure_topics(settings.kafka.bootstrap, specs)
    typer.echo(f"created: {', '.join(created) if created else 'nothing (all exist)'}")


def _run(flow: object, workers: int, recovery_dir: Path | None, *, graceful: bool = False) -> None:
    """Run ``flow`` with Bytewax. ``graceful``: SIGINT / SIGTERM stop it at an epoch boundary
    (:mod:`flows.shutdown`; every source of the flow must take part): exit code 0, or 128 + the
    signal's number when a second signal stopped it at once."""
    from bytewax.recovery import RecoveryConfig
    from bytewax.run import cli_main

    from flows.metrics import ensure_server
    from flows.shutdown import StopOutcome, graceful_stop

    port = ensure_server(_settings().metrics_port)
    if port:
        console.print(f"metrics: http://127.0.0.1:{port}/metrics  health: /healthz  readiness: /readyz")

    recovery = None
    if recovery_dir is not None:
        _ensure_recovery_dir(recovery_dir, workers)
        recovery = RecoveryConfig(str(recovery_dir))
    interval = timedelta(seconds=1)
    if not graceful:
        cli_main(flow, workers_per_process=workers, epoch_interval=interval, recovery_config=recovery)
        return
    with graceful_stop(workers=workers) as stop:
        try:
            cli_main(flow, workers_per_process=workers, epoch_interval=interval, recovery_config=recovery)
        except KeyboardInterrupt:
            # With several workers Bytewax ends a graceful stop with the KeyboardInterrupt handed to it.
            if stop.outcome is StopOutcome.RUNNING:
                raise
        except BaseException:
            if stop.outcome is not StopOutcome.FORCED:  # a failure, stop requested or not
                raise
            # After a second signal: whatever the interrupted step raised (Bytewax's panic).
    if stop.outcome is StopOutcome.FORCED:
        console.print("[yellow]stopped at once by a second signal; a restart resumes from the last snapshot[/yellow]")
        raise typer.Exit(stop.exit_code)
    if stop.outcome is StopOutcome.GRACEFUL:
        console.print(f"stopped on {stop.signal_name}: everything read is through the flow and acknowledged")


def _ensure_recovery_dir(path: Path, partitions: int) -> None:
    from bytewax.recovery import init_db_dir

    if not any(path.glob("part-*.sqlite3")):
        path.mkdir(parents=True, exist_ok=True)
        init_db_dir(path, partitions)


@app.command()
def ingest(
    files: Annotated[
        list[Path] | None, typer.Argument(help="Recorded files to replay (any format in shared/data).")
    ] = None,
    exchange: Annotated[str | None, typer.Option(help="Live ingestion from this ccxt exchange id.")] = None,
    symbol: Annotated[list[str] | None, typer.Option(help="Unified symbol, e.g. BTC/USDT (repeatable).")] = None,
    channel: Annotated[list[str] | None, typer.Option(help="trades, book, candles (repeatable).")] = None,
    max_events: Annotated[int | None, typer.Option(help="Stop live ingestion after this many events.")] = None,
    speed: Annotated[float | None, typer.Option(help="Replay speed vs real time (omit: as fast as possible).")] = None,
    store: Annotated[bool, typer.Option(help="After a replay, drain md.* topics into PostgreSQL.")] = True,
    workers: Annotated[int, typer.Option(min=1, help="Bytewax workers in this process.")] = 1,
) -> None:
    """Market data into the md.* Kafka topics: replay FILES, or follow --exchange live.

    A replay then drains the topics into PostgreSQL (unless --no-store); live ingestion runs until
    stopped (or --max-events) and leaves storage to `bot4 store`.
    """
    from flows.ingest import exchange_flow, replay_flow

    settings = _settings()
    if bool(files) == bool(exchange):
        console.print("[red]give either recorded FILES or --exchange (with --symbol), not both or neither[/red]")
        raise typer.Exit(2)
    started = time.monotonic()
    if exchange:
        if not symbol:
            console.print("[red]--exchange needs at least one --symbol[/red]")
            raise typer.Exit(2)
        flow = exchange_flow(exchange, symbol, channel or ["trades"], settings, max_events=max_events)
        _run(flow, workers, None)
        console.print(f"live ingestion from {exchange} ended after {time.monotonic() - started:.1f}s")
        return
    assert files is not None
    missing = [str(f) for f in files if not f.exists()]
    if missing:
        console.print(f"[red]no such file: {', '.join(missing)}[/red]")
        raise typer.Exit(2)
    _run(replay_flow(files, speed=speed, settings=settings), workers, None)
    console.print(f"replayed {len(files)} file(s) into Kafka in {time.monotonic() - started:.1f}s")
    if store:
        _drain(settings, workers)


def _drain(settings: Bot4Settings, workers: int) -> None:
    from flows.store import store_flow

    started = time.monotonic()
    _run(store_flow(settings, tail=False), workers, settings.data_dir / "recovery" / "store", graceful=True)
    console.print(f"stored md.* topics into PostgreSQL in {time.monotonic() - started:.1f}s")


@app.command("store")
def store_cmd(
    drain: Annotated[bool, typer.Option(help="Stop at the end of the topics instead of following them.")] = False,
    workers: Annotated[int, typer.Option(min=1)] = 1,
) -> None:
    """Run the storage flow (md.* topics -> contracts -> PostgreSQL, refusals -> dlq.v1) with recovery."""
    from flows.store import store_flow

    settings = _settings()
    if drain:
        _drain(settings, workers)
    else:
        _run(store_flow(settings, tail=True), workers, settings.data_dir / "recovery" / "store", graceful=True)


@app.command("run")
def run_cmd(
    drain: Annotated[bool, typer.Option(help="Stop at the end of the topics instead of following them.")] = False,
    workers: Annotated[int, typer.Option(min=1, help="Bytewax workers in this process.")] = 1,
    recovery: Annotated[Path | None, typer.Option(help="Recovery folder (created if new).")] = None,
) -> None:
    """The trading flow on Kafka in BOT4_MODE (paper by default; shadow; live only with explicit opt-in).

    Same as `python -m bytewax.run "flows.trading_run:trading_flow()"`, except on SIGINT / SIGTERM:
    it stops at the next epoch boundary with nothing lost or redone and exits with code 0 (a second
    signal stops it at once: 130 / 143); see docs/operations.md.
    """
    from core.errors import ConfigError
    from flows.control import control_source
    from flows.settings import require_live_limits
    from flows.trading_run import trading_flow

    settings = _settings()
    try:
        flow = trading_flow(settings, tail=not drain, commands=control_source(settings, tail=not drain))
        require_live_limits(settings)
    except ConfigError as exc:
        console.print(f"[red]trading refused: {exc}[/red]")
        raise typer.Exit(2) from None
    console.print(f"trading flow: mode {settings.mode}, account {settings.trading.account}, {settings.trading.symbols}")
    _run(flow, workers, recovery, graceful=True)


@app.command("execute")
def execute_cmd(
    drain: Annotated[bool, typer.Option(help="Stop at the end of the topics instead of following them.")] = False,
    recovery: Annotated[Path | None, typer.Option(help="Recovery folder (created if new).")] = None,
) -> None:
    """The execution flow: orders.v1 -> order manager on the paper venue -> fills.v1 and PostgreSQL.

    Runs beside `bot4 run` when both have BOT4_TRADING__EXECUTION=kafka (see docs/operations.md).
    Same as `python -m bytewax.run "flows.execution_run:execution_flow()"`.
    """
    from core.errors import ConfigError
    from flows.execution_run import execution_flow

    settings = _settings()
    try:
        flow = execution_flow(settings, tail=not drain)
    except ConfigError as exc:
        console.print(f"[red]execution refused: {exc}[/red]")
        raise typer.Exit(2) from None
    console.print(f"execution flow: paper venue, account {settings.trading.account}, {settings.trading.symbols}")
    _run(flow, 1, recovery, graceful=True)


@app.command()
def demo(
    out: Annotated[Path, typer.Option(help="Where the store and summary go.")] = Path("out/demo"),
) -> None:
    """Replay the bundled real sample through the flows into the embedded store; print a summary."""
    from rich.table import Table

    from flows.demo import run_demo

    summary = run_demo(out)
    table = Table(title="Bot4 demo: bundled Binance spot capture (2024-08-08 23:54-00:00 UTC)")
    for col in ("instrument", "trades", "open", "high", "low", "close", "volume", "VWAP", "1m bars"):
        table.add_column(col, justify="right" if col != "instrument" else "left")
    for s in summary["symbols"]:
        table.add_row(
            s["symbol"],
            str(s["trades"]),
            s["open"],
            s["high"],
            s["low"],
            s["close"],
            s["volume"],
            s["vwap"],
            str(s["minute_bars"]),
        )
    out_console = Console(width=140)
    out_console.print(table)
    out_console.print(f"stored: {summary['tables']}")
    out_console.print(f"dead letters by reason: {summary['dead_letters_by_reason'] or 'none'}")
    run = summary["run"]
    out_console.print(
        f"{run['seconds']}s, {run['events_per_second']} events/s; store {run['store']}, summary {out / 'summary.json'}"
    )
    from flows.demo import run_trading_demo
    from flows.trading_cmd import print_summary

    out_console.print("\nTrading: bundled Binance 1m candles (BTC/USDT, ETH/USDT, 2021-05-16 to 05-20) through")
    out_console.print("features -> EMA(12/26) cross + RSI(14) strategy -> risk gate -> paper venue (default limits)")
    trading = run_trading_demo(out / "trading", progress=True, feast_dir=out / "feast")
    print_summary(trading.report_json, trading.wall_s, trading.events)
    out_console.print(f"report: {trading.report_html}")
    from flows.demo import demo_online_features

    last_bar = trading.results.equity[-1].ts
    out_console.print(f"\nFeast (embedded: SQLite online, parquet offline, in {out / 'feast'}), online store:")
    for online in demo_online_features(out / "feast", ("binance:BTC/USDT", "binance:ETH/USDT"), last_bar):
        values = online.values
        shown = ", ".join(f"{k} {values[k]:.6g}" for k in ("bar_close", "rsi_14", "ema_20") if k in values)
        out_console.print(f"  {online.symbol}: {len(online.values)} features at {online.event_timestamp} ({shown})")


from flows.validate_cmd import register as _register_validate  # noqa: E402

_register_validate(app)

from flows.trading_cmd import register as _register_trading  # noqa: E402

_register_trading(app)


from flows.features_cmd import register as _register_features  # noqa: E402

_register_features(app)


from flows.control_cmd import register as _register_control  # noqa: E402

_register_control(app)

from flows.status_cmd import register as _register_status  # noqa: E402

_register_status(app)


from flows.console.serve_cmd import register as _register_console  # noqa: E402

_register_console(app)


def main() -> None:
    from flows.logs import configure_json_logging

    # Flow processes log JSON lines on stderr (an order's lines carry its client order id); the
    # commands' own output stays human (rich). BOT4_LOG_LEVEL=DEBUG for more.
    configure_json_logging(os.environ.get("BOT4_LOG_LEVEL", "WARNING"))
    try:
        app()
    except Bot4Error as exc:
        console.print(f"[red]{exc}[/red]")
        sys.exit(2)


if __name__ == "__main__":
    main()
