"""One conformance suite run against every stateful feature class (STYLE item 5).

For each class, on real data: run uninterrupted; then, at several cut points, snapshot, pickle,
restore into a fresh instance and continue. The outputs after the cut must equal the
uninterrupted run's exactly, the snapshot must be plain data, restoring it and snapshotting again
must give the same state, and a snapshot must refuse to load into an instance built with other
parameters.
"""

from __future__ import annotations

import pickle
import random
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

import pandas as pd
import pytest

from core.clock import to_epoch_us
from core.events import BookDelta, BookSnapshot, Candle, MarketEvent, Quote, Trade
from features.bars import CandleBars, TimeBarBuilder, VolumeBarBuilder
from features.book import OrderBook
from features.engine import FeatureEngine
from features.flow import TradeFlow
from features.indicators import (
    ATR,
    EMA,
    MACD,
    OBV,
    RSI,
    SMA,
    VWAP,
    BollingerBands,
    RealizedVolatility,
    Returns,
    RollingZScore,
    Stochastic,
)

PLAIN = (str, int, float, bool, type(None))


def assert_plain(value: Any, path: str = "state") -> None:
    if isinstance(value, PLAIN):
        return
    if isinstance(value, dict):
        for key, item in value.items():
            assert isinstance(key, str), f"{path}: key {key!r} is not a str"
            assert_plain(item, f"{path}.{key}")
        return
    assert isinstance(value, list | tuple) and type(value) in (list, tuple), f"{path} is a {type(value).__name__}"
    for i, item in enumerate(value):
        assert_plain(item, f"{path}[{i}]")


@dataclass
class Case:
    factory: Callable[[], Any]
    events: list[Any]
    step: Callable[[Any, Any], Any] = lambda obj, event: obj.update(event)
    finish: Callable[[Any], Any] = lambda obj: None
    other: Callable[[], Any] | None = None  # same class, other parameters
    cuts: list[int] = field(default_factory=list)  # default: during warm-up (25) and halfway


def close(row: tuple[float, ...]) -> float:
    return row[3]


def build_case(name: str, data: dict[str, Any]) -> Case:
    ws: list[MarketEvent] = data["ws"]
    trades: list[Trade] = [e for e in ws if isinstance(e, Trade)]
    rows: list[tuple[float, ...]] = data["rows"]
    book = [e for e in ws if isinstance(e, BookSnapshot | BookDelta | Quote)]
    hl_c = lambda obj, r: obj.update(r[1], r[2], r[3])  # noqa: E731
    cases: dict[str, Callable[[], Case]] = {
        "TimeBarBuilder": lambda: Case(
            lambda: TimeBarBuilder("5s", timedelta(seconds=2)),
            data["shuffled_trades"],
            finish=lambda obj: obj.flush(),
            other=lambda: TimeBarBuilder("5s", timedelta(seconds=3)),
        ),
        "CandleBars": lambda: Case(lambda: CandleBars("1h"), data["candles"], other=lambda: CandleBars("1m")),
        "VolumeBarBuilder": lambda: Case(
            lambda: VolumeBarBuilder("3"), trades, other=lambda: VolumeBarBuilder("3", "dollar")
        ),
        "DollarBarBuilder": lambda: Case(lambda: VolumeBarBuilder("200000", "dollar"), trades),
        "Returns": lambda: Case(Returns, rows, lambda obj, r: obj.update(close(r))),
        "SMA": lambda: Case(lambda: SMA(20), rows, lambda obj, r: obj.update(close(r)), other=lambda: SMA(21)),
        "EMA": lambda: Case(lambda: EMA(20), rows, lambda obj, r: obj.update(close(r)), other=lambda: EMA(21)),
        "RSI": lambda: Case(lambda: RSI(14), rows, lambda obj, r: obj.update(close(r)), other=lambda: RSI(2)),
        "MACD": lambda: Case(MACD, rows, lambda obj, r: obj.update(close(r)), other=lambda: MACD(5, 35, 5)),
        "BollingerBands": lambda: Case(
            BollingerBands, rows, lambda obj, r: obj.update(close(r)), other=lambda: BollingerBands(20, 3.0)
        ),
        "ATR": lambda: Case(ATR, rows, hl_c, other=lambda: ATR(7)),
        "Stochastic": lambda: Case(Stochastic, rows, hl_c, other=lambda: Stochastic(5, 3, 3)),
        "OBV": lambda: Case(OBV, rows, lambda obj, r: obj.update(close(r), r[4])),
        "VWAP": lambda: Case(VWAP, rows, lambda obj, r: obj.update(close(r), r[4]), other=lambda: VWAP(5)),
        "RealizedVolatility": lambda: Case(RealizedVolatility, rows, lambda obj, r: obj.update(close(r))),
        "RollingZScore": lambda: Case(RollingZScore, rows, lambda obj, r: obj.update(close(r))),
        "TradeFlow": lambda: Case(
            lambda: TradeFlow(timedelta(seconds=5), retention=timedelta(seconds=7)),
            data["shuffled_trades"],
            lambda obj, t: (obj.update(t), obj.get(), obj.forgotten),
            cuts=[len(data["shuffled_trades"]) // 2],
            other=lambda: TradeFlow(timedelta(seconds=5)),
        ),
        "OrderBook": lambda: Case(
            OrderBook,
            book[:12_000],
            lambda obj, e: (obj.update(e), obj.best_bid(), obj.best_ask(), obj.last_update_id, obj.verified_quotes),
            finish=lambda obj: (obj.features(), obj.bids(1000), obj.asks(1000), obj.skipped_deltas),
            other=lambda: OrderBook(max_buffer=10),
            # Before the snapshot (deltas buffered, resync requested) and in the middle.
            cuts=[5, 6_000],
        ),
        "FeatureEngine(trades)": lambda: Case(
            lambda: FeatureEngine("5s", timedelta(seconds=2)),
            ws[:20_000],
            cuts=[10_000],
            finish=lambda obj: obj.flush(),
            other=lambda: FeatureEngine("1m", timedelta(seconds=2)),
        ),
        "FeatureEngine(candles)": lambda: Case(
            lambda: FeatureEngine("1h", bars_from="candles"),
            data["candles"],
            other=lambda: FeatureEngine("1h", bars_from="trades"),
        ),
    }
    return cases[name]()


CASE_NAMES = [
    "TimeBarBuilder",
    "CandleBars",
    "VolumeBarBuilder",
    "DollarBarBuilder",
    "Returns",
    "SMA",
    "EMA",
    "RSI",
    "MACD",
    "BollingerBands",
    "ATR",
    "Stochastic",
    "OBV",
    "VWAP",
    "RealizedVolatility",
    "RollingZScore",
    "TradeFlow",
    "OrderBook",
    "FeatureEngine(trades)",
    "FeatureEngine(candles)",
]


@pytest.fixture(scope="module")
def data(btc_ws_day1: list[MarketEvent], btc_1h: pd.DataFrame, btc_1h_candles: list[Candle]) -> dict[str, Any]:
    trades = [e for e in btc_ws_day1 if isinstance(e, Trade)]
    # Real trades arriving up to 3 s late (some beyond the 2 s lateness): open bars, late trades
    # and out-of-order inserts are all part of the state at the cut points.
    rng = random.Random(20240808)
    delays = [rng.randint(0, 3_000_000) for _ in trades]
    shuffled = [
        t
        for _, t in sorted(
            zip((to_epoch_us(t.ts_event) + d for t, d in zip(trades, delays, strict=True)), trades, strict=True),
            key=lambda p: p[0],
        )
    ]
    dates = btc_1h["date"]
    first_gap = int((dates.diff() != pd.Timedelta(hours=1)).to_numpy()[1:].argmax()) + 1
    window = slice(max(0, first_gap - 400), first_gap + 400)
    return {
        "ws": btc_ws_day1,
        "shuffled_trades": shuffled,
        "candles": btc_1h_candles[window],
        "rows": list(btc_1h[["open", "high", "low", "close", "volume"]].iloc[:2000].itertuples(index=False, name=None)),
    }


def observe(case: Case, obj: Any, event: Any) -> Any:
    """The step's output, plus ``get()`` where the class has one (indicators, flow)."""
    out = case.step(obj, event)
    get = getattr(obj, "get", None)
    return (out, get()) if get is not None else out


@pytest.mark.parametrize("name", CASE_NAMES)
def test_snapshot_restore_continue_equals_never_stopped(name: str, data: dict[str, Any]) -> None:
    case = build_case(name, data)
    events = case.events
    n = len(events)
    uninterrupted = case.factory()
    full = [observe(case, uninterrupted, e) for e in events]
    full_finish = case.finish(uninterrupted)
    assert any(o not in (None, ()) for o in full), "the case must produce outputs"

    for cut in case.cuts or [25, n // 2]:
        first = case.factory()
        head = [observe(case, first, e) for e in events[:cut]]
        assert head == full[:cut]
        state = first.snapshot()
        assert_plain(state)
        blob = pickle.dumps(state)

        resumed = case.factory()
        resumed.restore(pickle.loads(blob))
        assert resumed.snapshot() == state, "restore then snapshot must give the same state"
        tail = [observe(case, resumed, e) for e in events[cut:]]
        assert tail == full[cut:], f"outputs after the cut at {cut}/{n} differ"
        assert case.finish(resumed) == full_finish

        if case.other is not None:
            with pytest.raises(ValueError, match="snapshot"):
                case.other().restore(state)


def test_a_snapshot_of_another_class_is_refused() -> None:
    with pytest.raises(ValueError, match="snapshot is of 'SMA'"):
        EMA(20).restore(SMA(20).snapshot())
    state = SMA(20).snapshot()
    state["state_version"] = 99
    with pytest.raises(ValueError, match="state_version"):
        SMA(20).restore(state)
