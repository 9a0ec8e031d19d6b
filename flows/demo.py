"""The embedded demo: bundled real market data through the same decode and contract operators as
the storage flow, into the embedded SQLite store, then a summary. No servers needed.

What differs from production is only the edges: the replay source stands in for the Kafka
source (each event is wire-encoded exactly as the ingest flow would produce it) and SQLite stands
in for PostgreSQL.
"""

from __future__ import annotations

import itertools
import json
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import bytewax.operators as op
from bytewax.dataflow import Dataflow

from core.clock import Clock, SystemClock
from core.events import MarketEvent
from core.wire import encode, topic_for
from flows.dlq import Inbound
from flows.replay import ReplaySource
from flows.settings import QualitySettings
from flows.storage.embedded import EmbeddedSink, EmbeddedStore
from flows.store import apply_contracts
from risk.config import RiskLimits

if TYPE_CHECKING:
    from datetime import datetime

    from flows.backtest import BacktestRun
    from flows.feature_store import OnlineFeatures

ROOT = Path(__file__).resolve().parents[1]
TRADING_FILES = (
    ROOT / "data" / "sample" / "binance-1m-2021" / "BTC_USDT-1m.json",
    ROOT / "data" / "sample" / "binance-1m-2021" / "ETH_USDT-1m.json",
)
SAMPLE_FILES = (
    ROOT / "data" / "sample" / "binance-spot-ws" / "btcusdt_20240808.gz",
    ROOT / "data" / "sample" / "binance-spot-ws" / "ethusdt_20240808.gz",
)


class _AsInbound:
    """Wire-encode events as the ingest flow does, numbering them like offsets of a topic."""

    def __init__(self) -> None:
        self._offsets = itertools.count()

    def __call__(self, batch: list[tuple[str, MarketEvent]]) -> list[Inbound | Any]:
        return [Inbound(topic_for(event), 0, next(self._offsets), key.encode(), encode(event)) for key, event in batch]


def demo_flow(paths: Sequence[Path], db_path: Path, quality: QualitySettings, clock: Clock) -> Dataflow:
    flow = Dataflow("bot4_demo")
    events = op.input("replay", flow, ReplaySource(list(paths)))
    inbound = op.flat_map_batch("as_inbound", events, _AsInbound())
    checked = apply_contracts(inbound, quality, clock)
    op.output("embedded", checked, EmbeddedSink(db_path))
    return flow


@dataclass(frozen=True)
class SymbolSummary:
    symbol: str
    trades: int
    first_trade: str
    last_trade: str
    open: str
    high: str
    low: str
    close: str
    volume: str
    vwap: str
    minute_bars: int


def summarize(db_path: Path) -> dict[str, Any]:
    """Counts per table, dead letters by reason, and per-symbol trade statistics from the store."""
    from decimal import Decimal

    store = EmbeddedStore(db_path)
    try:
        conn = store.conn
        tables = {
            t: store.count(t)
            for t in ("md_trades", "md_quotes", "md_book_snapshots", "md_book_deltas", "md_candles", "dead_letters")
        }
        dead = dict(conn.execute("SELECT reason, count(*) FROM dead_letters GROUP BY reason").fetchall())
        symbols = []
        for (key,) in conn.execute("SELECT DISTINCT exchange || ':' || symbol FROM md_trades ORDER BY 1").fetchall():
            exchange, symbol = key.split(":", 1)
            rows = conn.execute(
                "SELECT price, amount, ts_event FROM md_trades WHERE exchange = ? AND symbol = ? "
                "ORDER BY ts_event, CAST(trade_id AS INTEGER)",
                (exchange, symbol),
            ).fetchall()
            prices = [Decimal(r[0]) for r in rows]
            amounts = [Decimal(r[1]) for r in rows]
            volume = sum(amounts, Decimal(0))
            notional = sum((p * a for p, a in zip(prices, amounts, strict=True)), Decimal(0))
            minutes = {r[2][:16] for r in rows}
            symbols.append(
                SymbolSummary(
                    key,
                    len(rows),
                    rows[0][2],
                    rows[-1][2],
                    str(prices[0]),
                    str(max(prices)),
                    str(min(prices)),
                    str(prices[-1]),
                    str(volume),
                    str((notional / volume).quantize(Decimal("0.01"))),
                    len(minutes),
                ).__dict__
            )
        return {"tables": tables, "dead_letters_by_reason": dead, "symbols": symbols}
    finally:
        store.close()


def run_demo(out_dir: Path, paths: Sequence[Path] = SAMPLE_FILES) -> dict[str, Any]:
    """Replay ``paths`` into ``out_dir/bot4.sqlite`` and write ``out_dir/summary.json``."""
    from bytewax.testing import run_main

    out_dir.mkdir(parents=True, exist_ok=True)
    db_path = out_dir / "bot4.sqlite"
    db_path.unlink(missing_ok=True)
    started = time.monotonic()
    run_main(demo_flow(paths, db_path, QualitySettings(), SystemClock()))
    elapsed = time.monotonic() - started
    summary = summarize(db_path)
    events = sum(summary["tables"].values())
    summary["run"] = {
        "files": [str(p) for p in paths],
        "seconds": round(elapsed, 3),
        "events_per_second": round(events / elapsed) if elapsed else None,
        "store": str(db_path),
    }
    (out_dir / "summary.json").write_text(json.dumps(summary, indent=2))
    return summary


def run_trading_demo(
    out_dir: Path,
    paths: Sequence[Path] = TRADING_FILES,
    limits: RiskLimits | None = None,
    progress: bool = False,
    feast_dir: Path | None = None,
) -> BacktestRun:
    """The trading flow in paper mode over the bundled candles: features, the EMA-cross strategy,
    the risk gate with its default limits, the paper venue; report in ``out_dir``. With
    ``feast_dir``, every feature vector also goes to Feast's embedded environment there (SQLite
    online store, parquet offline store, file registry; see :func:`demo_online_features`)."""
    from flows.backtest import BacktestConfig, run_backtest
    from flows.replay.source import ReplayFile
    from flows.trading import Mode

    feast = None
    if feast_dir is not None:
        from flows.feature_store import FeastConfig, apply
        from flows.settings import load_settings

        feast = FeastConfig(env="local", project="bot4demo", data_dir=feast_dir, push=True)
        apply(feast, load_settings())

    config = BacktestConfig(
        files=tuple(ReplayFile(p) for p in paths),
        symbols=("BTC/USDT", "ETH/USDT"),
        account="demo",
        timeframe="1m",
        bars_from="candles",
        limits=limits if limits is not None else RiskLimits(),
        mode=Mode.PAPER,
        feast=feast,
    )
    return run_backtest(config, out_dir, progress=progress)


def demo_online_features(feast_dir: Path, symbols: Sequence[str], now: datetime) -> list[OnlineFeatures]:
    """What the demo left in Feast's online store: the newest vector of each instrument, read as
    ``bot4 features online`` reads it (age measured from ``now``, the replay's last bar)."""
    from flows.feature_store import FeastConfig, open_store, read_online
    from flows.settings import load_settings

    store = open_store(FeastConfig(env="local", project="bot4demo", data_dir=feast_dir), load_settings())
    return [read_online(store, symbol, now) for symbol in symbols]
