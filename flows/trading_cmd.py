"""``bot4 backtest``, ``bot4 report`` and ``bot4 markets sync``.

A backtest takes recorded files (any format ``flows.replay`` reads), runs them through the trading
flow with the paper venue and the event-time clock, and writes ``results/`` (the stored results),
``report.html`` (opens offline) and ``report.json`` into ``--out``. Settings (risk limits, account,
starting cash, strategies) come from ``BOT4_*`` and the settings file like every other command;
the options below override the trading ones. Exit codes: 0 done, 2 a usage or settings error.
"""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.console import Console
from rich.table import Table

from core.errors import Bot4Error
from core.events import Candle
from flows.settings import Bot4Settings, load_settings

if TYPE_CHECKING:
    # flows.replay reads parquet and CSV (pyarrow): the backtest imports it, not every `bot4` start.
    from flows.replay.source import ReplayFile

console = Console(stderr=True, soft_wrap=True)
out_console = Console(width=140)


def _first_candle(file: ReplayFile) -> Candle | None:
    events = file.events(on_error=lambda raw, err: None)
    try:
        first = next(events, None)
    finally:
        close = getattr(events, "close", None)
        if close is not None:
            close()
    return first if isinstance(first, Candle) else None


def backtest_cmd(
    files: Annotated[
        list[Path] | None, typer.Argument(help="Recorded market data files (trades, books, candles).")
    ] = None,
    *,
    out: Annotated[Path | None, typer.Option(help="Output folder (default <data_dir>/backtest/<run id>).")] = None,
    symbol: Annotated[list[str] | None, typer.Option(help="Trade only these symbols (default: the files').")] = None,
    strategy: Annotated[list[str] | None, typer.Option(help="Strategies to run (default from settings).")] = None,
    timeframe: Annotated[str | None, typer.Option(help="Bar timeframe (default: the candles', else settings).")] = None,
    cash: Annotated[str | None, typer.Option(help="Starting cash in the quote currency.")] = None,
    progress: Annotated[bool, typer.Option(help="Show progress on stderr.")] = True,
    walk_forward: Annotated[
        int, typer.Option(help="Rolling folds: train (warm up) on one window, trade the next.", min=0)
    ] = 0,
    lookahead_check: Annotated[
        str | None,
        typer.Option(help="Rerun with every price after this ISO time moved; report any earlier difference."),
    ] = None,
    from_db: Annotated[
        str | None, typer.Option(help="Replay stored PostgreSQL history instead of files: 'candles' or 'trades'.")
    ] = None,
    start: Annotated[str | None, typer.Option(help="With --from-db: first event time (ISO, UTC).")] = None,
    end: Annotated[str | None, typer.Option(help="With --from-db: end of the range (ISO, UTC, exclusive).")] = None,
) -> None:
    """Replay FILES through the trading flow (paper venue, event time) and write the report."""
    from flows.backtest import BacktestConfig, run_backtest, run_id_for
    from flows.backtest import lookahead_check as check_lookahead
    from flows.backtest import walk_forward as run_walk_forward
    from flows.replay.source import ReplayFile

    settings = load_settings()
    trading = settings.trading
    if from_db is not None:
        history_backtest(settings, from_db, symbol, timeframe, start, end, out, progress)
        return
    if not files:
        console.print("[red]give recorded FILES, or --from-db candles|trades for stored history[/red]")
        raise typer.Exit(2)
    missing = [str(f) for f in files if not f.exists()]
    if missing:
        console.print(f"[red]no such file: {', '.join(missing)}[/red]")
        raise typer.Exit(2)
    replay = tuple(ReplayFile(f) for f in files)
    candles = [_first_candle(f) for f in replay]
    bars_from = "candles" if all(c is not None for c in candles) else "trades"
    if any(c is not None for c in candles) and bars_from == "trades":
        console.print("[red]mixing candle files with trade/book files in one backtest is not supported[/red]")
        raise typer.Exit(2)
    tf = timeframe or (candles[0].timeframe if bars_from == "candles" and candles[0] is not None else trading.timeframe)
    try:
        initial = Decimal(cash) if cash is not None else trading.initial_cash
    except InvalidOperation:
        console.print(f"[red]--cash {cash!r} is not a number[/red]")
        raise typer.Exit(2) from None
    config = BacktestConfig(
        files=replay,
        exchange=trading.exchange,
        symbols=tuple(symbol or ()),
        strategies=tuple(strategy or trading.strategies),
        account=trading.account,
        timeframe=tf,
        bars_from=bars_from,
        quote_currency=trading.quote_currency,
        initial_cash=initial,
        limits=settings.risk,
        markets_dir=trading.markets_dir,
        models=trading.models,
    )
    try:
        target = out or settings.data_dir / "backtest" / run_id_for(config)
        if lookahead_check is not None:
            cutoff = datetime.fromisoformat(lookahead_check)
            cutoff = cutoff.replace(tzinfo=UTC) if cutoff.tzinfo is None else cutoff
            report = check_lookahead(config, cutoff)
            verdict = "no look-ahead" if report.clean else "LOOK-AHEAD FOUND"
            out_console.print(
                f"{verdict}: {report.compared} records decided at or before {cutoff.isoformat()} compared"
            )
            for line in report.differences:
                out_console.print(f"  {line}")
            raise typer.Exit(0 if report.clean else 1)
        if walk_forward:
            rows = run_walk_forward(config, walk_forward, target)
            table = Table(title=f"walk-forward, {walk_forward} folds ({target / 'walk_forward.json'})")
            for col in ("fold", "test window", "return", "buy & hold", "sharpe", "max dd", "trades"):
                table.add_column(col, justify="right")
            for r in rows:
                table.add_row(
                    str(r["fold"]),
                    f"{r['test_start'][:16]} -> {r['test_end'][:16]}",
                    _pct(r["total_return"]),
                    _pct(r["buy_and_hold_return"]),
                    "-" if r["sharpe"] is None else f"{r['sharpe']:.2f}",
                    _pct(r["max_drawdown_pct"]),
                    str(r["trades"]),
                )
            out_console.print(table)
            return
        run = run_backtest(config, target, progress=progress)
    except (Bot4Error, ValueError) as exc:
        console.print(f"[red]backtest refused: {exc}[/red]")
        raise typer.Exit(2) from None
    print_summary(run.report_json, run.wall_s, run.events)
    out_console.print(f"report: {run.report_html}")


def _when(text: str | None, name: str) -> datetime | None:
    if text is None:
        return None
    try:
        value = datetime.fromisoformat(text)
    except ValueError:
        console.print(f"[red]--{name} {text!r} is not an ISO-8601 time (e.g. 2021-05-01T00:00Z)[/red]")
        raise typer.Exit(2) from None
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def history_backtest(  # noqa: PLR0917 - the command's options, passed on
    settings: Bot4Settings,
    kind: str,
    symbols: list[str] | None,
    timeframe: str | None,
    start: str | None,
    end: str | None,
    out: Path | None,
    progress: bool,
) -> None:
    """``bot4 backtest --from-db``: the stored ``md_candles`` / ``md_trades`` rows through the flow."""
    from flows.backtest import BacktestConfig, run_backtest, run_id_for
    from flows.replay.history import HistoryQuery, stored_symbols

    if kind not in ("candles", "trades"):
        console.print(f"[red]--from-db takes 'candles' or 'trades', not {kind!r}[/red]")
        raise typer.Exit(2)
    trading = settings.trading
    tf = timeframe or trading.timeframe
    query = HistoryQuery(
        settings.postgres.conninfo(),
        trading.exchange,
        tuple(symbols or trading.symbols),
        kind,  # type: ignore[arg-type]
        tf,
        _when(start, "start"),
        _when(end, "end"),
    )
    config = BacktestConfig(
        files=(),
        exchange=trading.exchange,
        symbols=query.symbols,
        strategies=trading.strategies,
        account=trading.account,
        timeframe=tf,
        bars_from=kind,
        quote_currency=trading.quote_currency,
        initial_cash=trading.initial_cash,
        limits=settings.risk,
        markets_dir=trading.markets_dir,
        models=trading.models,
        history=query,
    )
    try:
        run = run_backtest(config, out or settings.data_dir / "backtest" / run_id_for(config), progress=progress)
    except (Bot4Error, ValueError) as exc:
        stored = stored_symbols(query.conninfo, query.exchange, kind, tf)
        console.print(f"[red]backtest refused: {exc}[/red] (stored {kind} {tf} symbols: {stored or 'none'})")
        raise typer.Exit(2) from None
    print_summary(run.report_json, run.wall_s, run.events)
    out_console.print(f"report: {run.report_html}")


def _pct(x: float | None) -> str:
    return "-" if x is None else f"{x * 100:.2f}%"


def print_summary(report_json: Path, wall_s: float, events: int) -> None:
    """The headline numbers of a report, as a table."""
    import json

    doc = json.loads(report_json.read_text())
    m = doc["metrics"]
    meta = doc["metadata"]
    table = Table(title=f"Bot4 {meta['mode']} {meta['run_id']}: {', '.join(meta['symbols'])} {meta['timeframe']}")
    table.add_column("metric")
    table.add_column("value", justify="right")

    def pct(x: float | None) -> str:
        return "-" if x is None else f"{x * 100:.2f}%"

    def num(x: float | None) -> str:
        return "-" if x is None else f"{x:.2f}"

    rows = [
        ("period", f"{meta['start']} -> {meta['end']}"),
        ("final equity", f"{Decimal(m['final_equity']):.2f} {meta['quote_currency']}"),
        ("net profit", f"{Decimal(m['net_profit']):.2f} {meta['quote_currency']}"),
        ("total return", pct(m["total_return"])),
        ("buy and hold", pct(m["buy_and_hold_return"])),
        ("max drawdown", pct(m["max_drawdown_pct"])),
        ("sharpe / sortino / calmar", f"{num(m['sharpe'])} / {num(m['sortino'])} / {num(m['calmar'])}"),
        ("trades (win rate)", f"{m['trades']} ({pct(m['win_rate'])})"),
        ("profit factor", num(m["profit_factor"])),
        ("fees", f"{Decimal(m['fees']):.2f}"),
        ("risk approvals / denials", f"{m['risk_approvals']} / {m['risk_denials']}"),
        ("dead letters", str(sum(d["count"] for d in doc["dead_letters"]))),
        ("events, wall time", f"{events:,} in {wall_s:.1f} s ({events / max(wall_s, 1e-9):,.0f}/s)"),
    ]
    for name, value in rows:
        table.add_row(name, value)
    out_console.print(table)


def report_cmd(
    results: Annotated[Path, typer.Argument(help="A backtest's output folder (holding results/) or results/ itself.")],
) -> None:
    """Rebuild report.html and report.json from stored results."""
    from flows.report import rebuild_report

    folder = results / "results" if (results / "results").is_dir() else results
    if not (folder / "metadata.json").exists():
        console.print(f"[red]{results} holds no stored results (no metadata.json)[/red]")
        raise typer.Exit(2)
    paths = rebuild_report(folder, folder.parent if folder.name == "results" else folder)
    out_console.print(f"report: {paths.html}\njson:   {paths.json}")


markets_app = typer.Typer(help="Market metadata (precision, limits, fees) kept for offline runs.", no_args_is_help=True)


@markets_app.command("sync")
def markets_sync(
    symbol: Annotated[list[str] | None, typer.Option(help="Symbols to keep (default from settings).")] = None,
    api_url: Annotated[str | None, typer.Option(help="Exchange origin override (a mirror or a test server).")] = None,
) -> None:
    """Fetch the exchange's markets through ccxt and refresh <markets_dir>/<exchange>.json."""
    from datetime import UTC, datetime

    from execution.markets import capabilities_to_json, fetch_capabilities

    settings = load_settings()
    trading = settings.trading
    symbols = tuple(symbol or trading.symbols)
    try:
        caps = fetch_capabilities(trading.exchange, symbols, api_url)
    except Exception as exc:  # the message says what failed; a network error is the usual one here
        console.print(f"[red]markets sync from {trading.exchange} failed: {type(exc).__name__}: {exc}[/red]")
        raise typer.Exit(1) from None
    target = trading.markets_dir / f"{trading.exchange}.json"
    target.parent.mkdir(parents=True, exist_ok=True)
    when = datetime.now(UTC).isoformat(timespec="seconds")
    target.write_bytes(capabilities_to_json(caps, source=f"{trading.exchange} via ccxt, synced {when}"))
    out_console.print(f"{len(caps.rules)} markets written to {target}")


def register(app: typer.Typer) -> None:
    """Add the commands to the ``bot4`` CLI."""
    app.command("backtest")(backtest_cmd)
    app.command("report")(report_cmd)
    app.add_typer(markets_app, name="markets")
