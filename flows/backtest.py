"""``bot4 backtest``: recorded files through the trading flow as fast as it can go, then a report.

The flow is :func:`flows.trading.trading_steps`, the one every mode runs; a backtest differs only
in its edges: a replay source that merges every file by event time into one ordered stream, the
paper venue, the event-time clock, and an in-process collector instead of Kafka and PostgreSQL.
Market metadata (precision, lot limits, minimum notional, fees) comes from the markets file
(``data/markets/<exchange>.json``, refreshed by ``bot4 markets sync``), so a backtest runs offline.

Results are a pure function of the input files and the configuration: nothing in them reads the
wall clock, so two runs give byte-identical results files (the timing goes to ``timing.json``).
"""

from __future__ import annotations

import hashlib
import json
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime
from decimal import Decimal
from pathlib import Path
from typing import TYPE_CHECKING, Any, NamedTuple

import bytewax.operators as op
from bytewax.dataflow import Dataflow
from bytewax.outputs import DynamicSink, StatelessSinkPartition
from bytewax.testing import run_main

from core.clock import Clock, SystemClock
from core.deadletter import DeadLetter
from core.events import BookDelta, BookSnapshot, Candle, MarketEvent, Quote, Trade
from core.fills import Fill
from core.orders import ApprovedOrder, Signal
from execution.markets import load_capabilities
from features.schema import FeatureVector
from flows.replay import ReplaySource
from flows.replay.history import HistoryQuery, HistorySource
from flows.replay.source import ReplayFile
from flows.report.results import (
    EquitySample as ReportEquity,
)
from flows.report.results import (
    PricePoint,
    RunMetadata,
    RunResults,
    dead_letter_counts,
    save_results,
)
from flows.strategies import STRATEGIES, strategies_for  # noqa: F401 - STRATEGIES: still importable from here
from flows.trading import (
    AccountSetup,
    EquitySample,
    InstrumentSetup,
    Mode,
    limits_for_bars,
    trading_steps,
)
from models.config import ModelsConfig
from risk.config import RiskLimits
from risk.decisions import RiskDecision

if TYPE_CHECKING:
    from flows.feature_store import FeastConfig

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_MARKETS = ROOT / "data" / "markets"

#: The features each strategy reads (a strategy missing here, or any model, gets all of them).
STRATEGY_FEATURES: dict[str, frozenset[str]] = {
    "ema_cross_rsi": frozenset({"bar_close", "bar_low", "bar_empty", "macd_12_26", "rsi_14"}),
}


def features_for(strategies: Sequence[str], models: ModelsConfig) -> frozenset[str] | None:
    """What a backtest must compute: the union of its strategies' features, or None (all).

    >>> sorted(features_for(["ema_cross_rsi"], ModelsConfig(models=())))[:2]
    ['bar_close', 'bar_empty']
    >>> features_for(["ema_cross_rsi"], ModelsConfig(models=("logreg",))) is None
    True
    """
    if models.models or any(s not in STRATEGY_FEATURES for s in strategies):
        return None
    return frozenset().union(*(STRATEGY_FEATURES[s] for s in strategies))


@dataclass(frozen=True)
class BacktestConfig:
    """One backtest: the files, the strategy, the account, the bars, the limits."""

    files: tuple[ReplayFile, ...]
    exchange: str = "binance"
    symbols: tuple[str, ...] = ()
    strategies: tuple[str, ...] = ("ema_cross_rsi",)
    account: str = "backtest"
    timeframe: str = "1m"
    bars_from: str = "trades"
    quote_currency: str = "USDT"
    initial_cash: Decimal = Decimal(10_000)
    limits: RiskLimits = field(default_factory=RiskLimits)
    markets_dir: Path = DEFAULT_MARKETS
    batch_size: int = 1000
    mode: Mode = Mode.BACKTEST
    models: ModelsConfig = field(default_factory=lambda: ModelsConfig(models=()))
    #: Replay only events in [start, end) (None: from the first, to the last).
    start: datetime | None = None
    end: datetime | None = None
    #: Trade only from this time (earlier bars warm the features and models up; see walk_forward).
    trade_from: datetime | None = None
    #: The look-ahead check's rerun: every price after this time is moved (see perturb_event).
    perturb_after: datetime | None = None
    #: Replay stored history from PostgreSQL instead of files.
    history: HistoryQuery | None = None
    #: Push every feature vector to this Feast environment (its declarations applied first, see
    #: :func:`flows.feature_store.apply`); the engine then computes every feature, not only the
    #: strategies' (the store serves models too). None: no Feast.
    feast: FeastConfig | None = None

    def effective_limits(self) -> RiskLimits:
        """The limits the gate runs with (see :func:`flows.trading.limits_for_bars`)."""
        return limits_for_bars(self.limits, self.bars_from, self.timeframe)

    def settings_summary(self) -> dict[str, str]:
        """What the report shows of the configuration (stable, text)."""
        limits = self.effective_limits()
        return {
            "bars_from": self.bars_from,
            "fixed_fraction": str(limits.sizing.fixed_fraction),
            "max_position_pct": str(limits.max_position_pct),
            "max_drawdown_pct": str(limits.breakers.max_drawdown_pct),
            "max_market_data_age": str(limits.max_market_data_age),
            "breaker_market_data_max_age": str(limits.breakers.market_data_max_age),
            "initial_cash": str(self.initial_cash),
        }


class Collected:
    """Everything the flow produced, in the order it produced it (thread-safe appends)."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.items: list[Any] = []
        self.events = 0
        self.first_ts: Any = None
        self.last_ts: Any = None


class _CollectPartition(StatelessSinkPartition[Any]):
    def __init__(self, into: Collected) -> None:
        self._into = into

    def write_batch(self, items: list[Any]) -> None:
        with self._into.lock:
            self._into.items.extend(items)


class CollectSink(DynamicSink[Any]):
    """An in-process sink: a backtest's results stay in memory until the report is built."""

    def __init__(self, into: Collected) -> None:
        self._into = into

    def build(self, step_id: str, worker_index: int, worker_count: int) -> _CollectPartition:
        return _CollectPartition(self._into)


class Progress:
    """Events seen, event time reached and the rate, on stderr (rich), at most twice a second."""

    def __init__(self, enabled: bool) -> None:
        self.enabled = enabled
        self.count = 0
        self.event_time: Any = None
        self._started = time.monotonic()
        self._shown = 0.0
        self._live: Any = None
        if enabled:
            from rich.console import Console
            from rich.live import Live

            self._live = Live(console=Console(stderr=True), refresh_per_second=4, transient=False)
            self._live.start()

    def __call__(self, batch: list[Any]) -> list[Any]:
        self.count += len(batch)
        if batch:
            last = batch[-1][1]
            ts = getattr(last, "ts_event", None)
            if ts is not None:
                self.event_time = ts
        now = time.monotonic()
        if self._live is not None and now - self._shown > 0.5:
            self._shown = now
            self._live.update(self._render(now))
        return batch

    def _render(self, now: float) -> str:
        elapsed = max(now - self._started, 1e-9)
        at = self.event_time.isoformat() if self.event_time is not None else "-"
        return f"backtest: {self.count:,} events, event time {at}, {self.count / elapsed:,.0f} events/s"

    def close(self) -> None:
        if self._live is not None:
            self._live.update(self._render(time.monotonic()))
            self._live.stop()
            self._live.console.print()


def backtest_flow(config: BacktestConfig, into: Collected, progress: Progress, clock: Clock) -> Dataflow:
    """The trading flow with a merged replay source and the in-process collector."""
    caps = load_capabilities(config.markets_dir / f"{config.exchange}.json", config.symbols)
    instrument = InstrumentSetup(
        timeframe=config.timeframe,
        bars_from=config.bars_from,
        strategies=strategies_for(config.strategies, config.account),
        known_keys=frozenset(f"{config.exchange}:{s}" for s in config.symbols),
        models=config.models,
        ordered=True,
        trade_from=config.trade_from,
        features=None if config.feast is not None else features_for(config.strategies, config.models),
    )
    account = AccountSetup(
        config.account,
        config.effective_limits(),
        caps,
        {config.quote_currency: config.initial_cash},
        config.quote_currency,
        config.mode,
    )
    flow = Dataflow("bot4_backtest")
    source: ReplaySource | HistorySource
    if config.history is not None:
        source = HistorySource(config.history, batch_size=config.batch_size)
    elif config.files:
        source = ReplaySource(list(config.files), batch_size=config.batch_size, merge_all=True)
    else:
        raise ValueError("a backtest needs recorded files or a PostgreSQL history query")
    events = op.input("replay", flow, source)
    if config.start is not None or config.end is not None or config.perturb_after is not None:
        events = op.flat_map_batch("window", events, lambda batch: _window(batch, config))
    counted = op.flat_map_batch("progress", events, progress)
    out = trading_steps("trading", counted, instrument, [account], clock)
    sink = CollectSink(into)
    op.output("collect_account", out.account, sink)
    op.output("collect_dlq", out.dead_letters, sink)
    op.output("collect_vectors", op.flat_map_batch("closes", out.vectors, _closes), sink)
    op.output("collect_signals", out.signals, sink)
    if config.feast is not None:
        from flows.feature_store import FeastPushSink
        from flows.settings import load_settings

        op.output("feast_push", out.vectors, FeastPushSink(config.feast, load_settings(), min_rows=5000))
    return flow


def _window(batch: list[tuple[str, MarketEvent]], config: BacktestConfig) -> list[tuple[str, MarketEvent]]:
    out = []
    for key, event in batch:
        ts = event.ts_event
        if (config.start is not None and ts < config.start) or (config.end is not None and ts >= config.end):
            continue
        moved = config.perturb_after is not None and ts > config.perturb_after
        out.append((key, perturb_event(event) if moved else event))
    return out


def _factor(ts: datetime) -> Decimal:
    """A deterministic price factor in [0.95, 1.05] that changes every event time."""
    digest = hashlib.sha256(ts.isoformat().encode()).digest()
    return Decimal(950 + int.from_bytes(digest[:4], "big") % 101) / Decimal(1000)


def perturb_event(event: MarketEvent) -> MarketEvent:
    """The same event with every price scaled by a factor of its time (OHLC stay consistent).

    >>> from core.clock import parse_utc
    >>> c = Candle("binance", "BTC/USDT", "1m", Decimal(10), Decimal(12), Decimal(9), Decimal(11), Decimal(1),
    ...            parse_utc("2021-05-01T00:00:00Z"), parse_utc("2021-05-01T00:01:00Z"))
    >>> p = perturb_event(c)
    >>> p.high / c.high == p.low / c.low == p.close / c.close != 1
    True
    """
    f = _factor(event.ts_event)
    if isinstance(event, Candle):
        return replace(event, open=event.open * f, high=event.high * f, low=event.low * f, close=event.close * f)
    if isinstance(event, Trade):
        return replace(event, price=event.price * f)
    if isinstance(event, Quote):
        return replace(event, bid_price=event.bid_price * f, ask_price=event.ask_price * f)
    if isinstance(event, BookSnapshot | BookDelta):
        return replace(
            event,
            bids=tuple((price * f, amount) for price, amount in event.bids),
            asks=tuple((price * f, amount) for price, amount in event.asks),
        )
    return event


class _Close(NamedTuple):
    """A bar's close for the report's price chart (a tuple: one is made per bar)."""

    key: str
    point: PricePoint


def _closes(batch: list[FeatureVector]) -> list[_Close]:
    out = []
    for v in batch:
        values = v.values
        close = values.get("bar_close")
        if isinstance(close, float) and not values.get("bar_empty"):
            out.append(_Close(v.key, PricePoint(v.ts_event, Decimal(repr(close)))))
    return out


@dataclass(frozen=True)
class BacktestRun:
    """What a backtest produced: the results, where they are, and the counts worth printing."""

    results: RunResults
    results_dir: Path
    report_html: Path
    report_json: Path
    counts: dict[str, int]
    wall_s: float
    events: int
    #: CPU time of this process during the flow (on a shared machine, steadier than wall time).
    cpu_s: float = 0.0


def run_id_for(config: BacktestConfig) -> str:
    """A stable id from the configuration and the input files' names and sizes."""
    h = hashlib.sha256()
    for f in config.files:
        p = Path(f.path)
        h.update(f"{p.name}:{p.stat().st_size}".encode())
    if config.history is not None:
        h.update(config.history.describe().encode())
    h.update(json.dumps(config.settings_summary(), sort_keys=True).encode())
    h.update(",".join(config.strategies).encode())
    return "bt-" + h.hexdigest()[:12]


def results_of(config: BacktestConfig, into: Collected, events: int) -> tuple[RunResults, dict[str, int]]:
    """Sort the collected records into the report's inputs."""
    equity: list[ReportEquity] = []
    fills: list[Fill] = []
    decisions: list[RiskDecision] = []
    letters: list[DeadLetter] = []
    prices: dict[str, list[PricePoint]] = {}
    counts = {"signals": 0, "approved": 0, "denied": 0, "fills": 0}
    for item in into.items:
        if isinstance(item, EquitySample):
            if config.trade_from is None or item.ts >= config.trade_from:
                equity.append(ReportEquity(item.ts, item.equity, item.cash, item.gross_exposure))
        elif isinstance(item, Fill):
            fills.append(item)
        elif isinstance(item, RiskDecision):
            decisions.append(item)
            if item.kind.value == "denied":
                counts["denied"] += 1
        elif isinstance(item, ApprovedOrder):
            counts["approved"] += 1
        elif isinstance(item, DeadLetter):
            letters.append(item)
        elif isinstance(item, _Close):
            prices.setdefault(item.key.split(":", 1)[1], []).append(item.point)
        elif isinstance(item, Signal):
            counts["signals"] += 1
    counts["fills"] = len(fills)
    counts["dead_letters"] = len(letters)
    if not equity:
        raise ValueError("the backtest produced no equity samples: no market data of a configured symbol was read")
    symbols = config.symbols or tuple(sorted(prices))
    meta = RunMetadata(
        run_id=run_id_for(config),
        mode=config.mode.value,
        strategies=config.strategies,
        exchange=config.exchange,
        symbols=symbols,
        timeframe=config.timeframe,
        start=equity[0].ts,
        end=equity[-1].ts,
        initial_equity=config.initial_cash,
        quote_currency=config.quote_currency,
        settings=config.settings_summary(),
        data_sources=tuple(Path(f.path).name for f in config.files)
        + (() if config.history is None else (config.history.describe(),)),
        events_processed=events,
    )
    results = RunResults(
        meta,
        tuple(equity),
        tuple(fills),
        tuple(decisions),
        {k: tuple(v) for k, v in sorted(prices.items())},
        dead_letter_counts(letters),
    )
    return results, counts


def run_backtest(config: BacktestConfig, out_dir: Path, *, progress: bool = False) -> BacktestRun:
    """Run the backtest, store its results in ``out_dir`` and build the report there."""
    into = Collected()
    meter = Progress(progress)
    started, cpu_started = time.monotonic(), time.process_time()
    try:
        run_main(backtest_flow(config, into, meter, SystemClock()))
    finally:
        meter.close()
    wall, cpu = time.monotonic() - started, time.process_time() - cpu_started
    results, counts = results_of(config, into, meter.count)
    out_dir.mkdir(parents=True, exist_ok=True)
    results_dir = save_results(results, out_dir / "results")
    from flows.report import build_report

    paths = build_report(results, out_dir)
    (out_dir / "timing.json").write_text(
        json.dumps({"wall_s": round(wall, 3), "events": meter.count, "events_per_s": round(meter.count / wall)}) + "\n"
    )
    return BacktestRun(results, results_dir, paths.html, paths.json, counts, wall, meter.count, cpu)


# ----------------------------------------------------------------------------------------------
# Look-ahead check and walk-forward evaluation


@dataclass(frozen=True)
class LookaheadReport:
    """What changed at or before ``cutoff`` when every price after it was moved (nothing, if sound)."""

    cutoff: datetime
    compared: int
    differences: tuple[str, ...]

    @property
    def clean(self) -> bool:
        return not self.differences


def _decided_records(into: Collected, cutoff: datetime) -> list[Any]:
    """Signals, decisions, fills and equity samples stamped at or before ``cutoff``, in order."""
    out: list[Any] = []
    for item in into.items:
        ts = getattr(item, "ts_event", None) or getattr(item, "ts", None)
        if isinstance(item, Signal | RiskDecision | Fill | EquitySample) and ts is not None and ts <= cutoff:
            out.append(item)
    return out


def lookahead_check(config: BacktestConfig, cutoff: datetime) -> LookaheadReport:
    """Run the backtest twice, the second time with every price after ``cutoff`` moved by up to 5%;
    everything decided at or before ``cutoff`` must be identical (a difference is look-ahead)."""
    clean, moved = Collected(), Collected()
    run_main(backtest_flow(config, clean, Progress(False), SystemClock()))
    run_main(backtest_flow(replace(config, perturb_after=cutoff), moved, Progress(False), SystemClock()))
    a, b = _decided_records(clean, cutoff), _decided_records(moved, cutoff)
    diffs = [f"#{i}: {x!r} != {y!r}" for i, (x, y) in enumerate(zip(a, b, strict=False)) if x != y]
    if len(a) != len(b):
        diffs.append(f"{len(a)} records at or before the cutoff without the change, {len(b)} with it")
    return LookaheadReport(cutoff, len(a), tuple(diffs[:20]))


@dataclass(frozen=True)
class Fold:
    """One walk-forward fold: warm up on [train_start, test_start), trade [test_start, test_end)."""

    index: int
    train_start: datetime
    test_start: datetime
    test_end: datetime


def folds_for(first: datetime, last: datetime, n: int) -> list[Fold]:
    """``n`` rolling folds over [first, last]: the span is cut in ``n + 1`` equal segments; fold k
    trains on segment k and tests on segment k + 1.

    >>> from core.clock import parse_utc
    >>> [f.test_start.day for f in folds_for(parse_utc("2021-05-01T00:00Z"), parse_utc("2021-05-31T00:00Z"), 2)]
    [11, 21]
    """
    if n < 1:
        raise ValueError(f"walk-forward needs at least 1 fold, got {n}")
    step = (last - first) / (n + 1)
    return [Fold(k + 1, first + step * k, first + step * (k + 1), first + step * (k + 2)) for k in range(n)]


def walk_forward(config: BacktestConfig, folds: int, out_dir: Path) -> list[dict[str, Any]]:
    """Rolling train/test evaluation: one backtest per fold (reports in ``out_dir/fold-k``), the
    test windows' metrics side by side in ``out_dir/walk_forward.json``."""
    from flows.replay import replay_files

    if config.history is not None:
        raise ValueError("walk-forward runs on recorded files; export the history range to a file first")
    first = last = None
    for event in replay_files(config.files, merge=True):
        first = first or event.ts_event
        last = event.ts_event
    if first is None or last is None:
        raise ValueError("the files hold no market events")
    rows: list[dict[str, Any]] = []
    for fold in folds_for(first, last, folds):
        fold_config = replace(config, start=fold.train_start, trade_from=fold.test_start, end=fold.test_end)
        run = run_backtest(fold_config, out_dir / f"fold-{fold.index}")
        metrics = json.loads(run.report_json.read_text())["metrics"]
        rows.append(
            {
                "fold": fold.index,
                "train_start": fold.train_start.isoformat(),
                "test_start": fold.test_start.isoformat(),
                "test_end": fold.test_end.isoformat(),
                **{k: metrics.get(k) for k in ("total_return", "sharpe", "max_drawdown_pct", "trades", "win_rate")},
                "buy_and_hold_return": metrics.get("buy_and_hold_return"),
            }
        )
    (out_dir / "walk_forward.json").write_text(json.dumps(rows, indent=2, sort_keys=True) + "\n")
    return rows
