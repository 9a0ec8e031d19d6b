"""Bytewax operators over :class:`~features.engine.FeatureEngine` (the only Bytewax code in features).

:func:`compute_features` keeps one engine per instrument key in a ``stateful_batch`` step; the
engine's plain-data :meth:`~features.engine.FeatureEngine.snapshot` is the recovery state, so a
flow killed mid-stream resumes exactly where its last snapshot left it.

>>> from datetime import UTC, datetime
>>> from decimal import Decimal
>>> from bytewax.dataflow import Dataflow
>>> from bytewax.testing import TestingSink, TestingSource, run_main
>>> import bytewax.operators as op
>>> from core.events import Side, Trade
>>> def trade(tid, minute, second, price):
...     ts = datetime(2024, 1, 1, 0, minute, second, tzinfo=UTC)
...     return Trade("binance", "BTC/USDT", tid, Decimal(price), Decimal("1"), Side.BUY, ts, ts)
>>> flow = Dataflow("doc")
>>> events = op.key_on("key", op.input("in", flow, TestingSource([trade("1", 0, 10, "100"), trade("2", 1, 5, "101")])),
...                    lambda e: e.key)
>>> out = compute_features("features", events)
>>> vectors, rejects = [], []
>>> op.output("vectors", out.vectors, TestingSink(vectors))
>>> op.output("rejects", out.rejects, TestingSink(rejects))
>>> run_main(flow)
>>> [(v.key, v.ts_event.isoformat(), v.values["bar_close"]) for v in vectors], rejects
([('binance:BTC/USDT', '2024-01-01T00:01:00+00:00', 100.0)], [])
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta
from typing import Literal

import bytewax.operators as op
from bytewax.dataflow import Stream, operator
from bytewax.operators import KeyedStream, StatefulBatchLogic

from core.events import MarketEvent
from features._state import State
from features.bars import InvalidTrade, LateTrade, RejectedCandle
from features.book import ResyncRequired
from features.engine import EngineOutput, FeatureEngine
from features.schema import FeatureVector

#: What the engine hands back that is not a feature vector: records for the DLQ or a book resync.
EngineReject = LateTrade | InvalidTrade | RejectedCandle | ResyncRequired


@dataclass(frozen=True)
class FeaturesOut:
    """The streams of :func:`compute_features`: ``vectors`` (one per closed bar and instrument)
    and ``rejects`` (late or invalid trades, refused candles, book resync requests)."""

    vectors: Stream[FeatureVector]
    rejects: Stream[EngineReject]


class FeatureEngineLogic(StatefulBatchLogic[MarketEvent, EngineOutput, State]):
    """One instrument's :class:`FeatureEngine` inside ``stateful_batch``.

    Lifecycle: built once per key (restored from ``resume`` after a restart), fed every batch of
    that key's events in arrival order, retained for the life of the flow (an instrument's
    indicators never expire). ``snapshot`` returns the engine's plain-data state, which is a
    fresh copy on every call and therefore safe for Bytewax to pickle later.
    """

    def __init__(
        self,
        timeframe: str,
        allowed_lateness: timedelta,
        bars_from: Literal["trades", "candles"],
        flush_on_eof: bool,
        resume: State | None,
    ) -> None:
        self._engine = FeatureEngine(timeframe, allowed_lateness, bars_from)
        if resume is not None:
            self._engine.restore(resume)
        self._flush_on_eof = flush_on_eof

    def on_batch(self, values: list[MarketEvent]) -> tuple[list[EngineOutput], bool]:
        update = self._engine.update
        out: list[EngineOutput] = []
        for event in values:
            produced = update(event)
            if produced:
                out.extend(produced)
        return out, StatefulBatchLogic.RETAIN

    def on_eof(self) -> tuple[list[EngineOutput], bool]:
        # Only a bounded replay closes its open bars at the end; a drain of a live topic must not,
        # or the next drain would find those bars already closed without their later trades.
        if self._flush_on_eof:
            return list(self._engine.flush()), StatefulBatchLogic.RETAIN
        return [], StatefulBatchLogic.RETAIN

    def snapshot(self) -> State:
        return self._engine.snapshot()


def _vectors(batch: list[tuple[str, EngineOutput]]) -> list[FeatureVector]:
    return [out for _, out in batch if isinstance(out, FeatureVector)]


def _rejects(batch: list[tuple[str, EngineOutput]]) -> list[EngineReject]:
    return [out for _, out in batch if not isinstance(out, FeatureVector)]


@operator
def compute_features(
    step_id: str,
    up: KeyedStream[MarketEvent],
    *,
    timeframe: str = "1m",
    allowed_lateness: timedelta = timedelta(seconds=2),
    bars_from: Literal["trades", "candles"] = "trades",
    flush_on_eof: bool = False,
) -> FeaturesOut:
    """Feature vectors per instrument key from its market events, with recovery.

    ``up`` must be keyed by instrument (``exchange:SYMBOL``) so each key's events reach its engine
    in order. ``flush_on_eof`` closes the open bars when the input ends (a bounded replay).
    """

    def build(resume: State | None) -> FeatureEngineLogic:
        return FeatureEngineLogic(timeframe, allowed_lateness, bars_from, flush_on_eof, resume)

    outs = op.stateful_batch("engine", up, build)
    return FeaturesOut(op.flat_map_batch("vectors", outs, _vectors), op.flat_map_batch("rejects", outs, _rejects))
