"""Bytewax input from live exchanges: one partition per exchange, each running the asyncio ccxt
client (:class:`~flows.connectors.exchange_md.ExchangeMarketData`) on its own thread.

The thread hands records to the worker through a bounded queue; when the flow falls behind, the
queue fills and the client stops reading (back-pressure, bounded memory). What comes out:

- market events as ``(exchange:SYMBOL, event)``, exactly as the replay source emits them, so the
  same downstream steps serve live and recorded data;
- a malformed item becomes a dead letter through ``on_error`` (its reason and ccxt's raw JSON);
- gaps, backfills, book resyncs and transport changes are logged and counted
  (``bot4_feed_gaps_total``, ``bot4_feed_status_total``), never silently absorbed;
- a condition that needs a person (``HaltAndAlert``, ``ConfigError``) stops the flow with that error.

A live feed cannot be rewound, so the partition keeps no resume state: after a restart the client
starts from "now" and its REST backfill covers what the exchange still has (see exchange_md).
"""

from __future__ import annotations

import asyncio
import logging
import queue
import threading
from collections.abc import Callable, Sequence
from typing import Any

from bytewax.inputs import FixedPartitionedSource, StatefulSourcePartition
from prometheus_client import Counter

from core.clock import Clock, SystemClock
from core.errors import QuarantineRecord
from core.events import BookSnapshot, Candle, MarketEvent, Trade
from flows.connectors.exchange_md import (
    BookResynced,
    ExchangeMarketData,
    ExchangeMarketDataConfig,
    FeedStatus,
    GapBackfilled,
    GapDetected,
    MarketDataRecord,
    Quarantined,
)

log = logging.getLogger(__name__)

FEED_GAPS = Counter("bot4_feed_gaps_total", "Gaps detected in live feeds, by exchange and kind.", ["exchange", "kind"])
FEED_MISSING = Counter(
    "bot4_feed_missing_records_total", "Records a gap left unfilled after REST backfill.", ["exchange", "kind"]
)
FEED_STATUS = Counter(
    "bot4_feed_status_total",
    "Transport changes of live feeds, by exchange, channel and state.",
    ["exchange", "channel", "state"],
)

OnError = Callable[[bytes, QuarantineRecord], None]
KeyedEvent = tuple[str, MarketEvent]


class _Stop:
    """Sentinel: the client thread ended (``error`` set when it failed)."""

    def __init__(self, error: BaseException | None) -> None:
        self.error = error


class _ExchangePartition(StatefulSourcePartition[KeyedEvent, None]):
    def __init__(
        self,
        config: ExchangeMarketDataConfig,
        *,
        clock: Clock,
        on_error: OnError | None,
        batch_size: int,
        max_events: int | None,
        queue_size: int,
        client_kwargs: dict[str, Any],
    ) -> None:
        self._config = config
        self._on_error = on_error
        self._batch_size = batch_size
        self._max_events = max_events
        self._emitted = 0
        self._queue: queue.Queue[MarketDataRecord | _Stop] = queue.Queue(queue_size)
        self._stop = threading.Event()
        self._done = False
        self._thread = threading.Thread(
            target=self._run, args=(clock, client_kwargs), name=f"bot4-md-{config.exchange}", daemon=True
        )
        self._thread.start()

    # -- the client thread -------------------------------------------------------------------

    def _run(self, clock: Clock, client_kwargs: dict[str, Any]) -> None:
        error: BaseException | None = None
        try:
            asyncio.run(self._pump(clock, client_kwargs))
        except BaseException as exc:  # handed to the worker thread, which re-raises it
            error = exc
        self._put_blocking(_Stop(error))

    async def _pump(self, clock: Clock, client_kwargs: dict[str, Any]) -> None:
        async with ExchangeMarketData(self._config, clock=clock, **client_kwargs) as md:
            records = md.records()
            try:
                async for record in records:
                    while not self._stop.is_set():
                        try:
                            self._queue.put_nowait(record)
                            break
                        except queue.Full:
                            await asyncio.sleep(0.01)  # back-pressure without blocking the event loop
                    if self._stop.is_set():
                        return
            finally:
                await records.aclose()  # type: ignore[attr-defined]  # an async generator

    def _put_blocking(self, item: MarketDataRecord | _Stop) -> None:
        while not self._stop.is_set():
            try:
                self._queue.put(item, timeout=0.1)
                return
            except queue.Full:
                continue

    # -- the Bytewax worker ------------------------------------------------------------------

    def next_batch(self) -> list[KeyedEvent]:
        if self._done:
            raise StopIteration
        out: list[KeyedEvent] = []
        try:
            item = self._queue.get(timeout=0.05)
        except queue.Empty:
            return out
        while True:
            if isinstance(item, _Stop):
                self._done = True
                if item.error is not None:
                    raise item.error
                break
            event = self._handle(item)
            if event is not None:
                out.append((event.key, event))
                self._emitted += 1
                if self._max_events is not None and self._emitted >= self._max_events:
                    self._done = True
                    self._stop.set()
                    break
            if len(out) >= self._batch_size:
                break
            try:
                item = self._queue.get_nowait()
            except queue.Empty:
                break
        return out

    def _handle(self, record: MarketDataRecord) -> MarketEvent | None:
        if isinstance(record, Trade | BookSnapshot | Candle):
            return record
        ex = self._config.exchange
        if isinstance(record, Quarantined):
            error = QuarantineRecord(record.reason, f"{record.channel} {record.symbol}: {record.detail}")
            if self._on_error is None:
                raise error
            self._on_error(record.raw, error)
        elif isinstance(record, GapDetected):
            FEED_GAPS.labels(ex, record.kind).inc()
            log.warning(
                "%s %s: gap %s from %s to %s (%s missing)",
                ex,
                record.symbol,
                record.kind,
                record.from_id or record.after,
                record.to_id or record.before,
                record.missing,
            )
        elif isinstance(record, GapBackfilled):
            if record.unfilled:
                FEED_MISSING.labels(ex, record.gap.kind).inc(record.unfilled)
            log.warning(
                "%s %s: backfilled %d, unfilled %s (%s)",
                ex,
                record.gap.symbol,
                record.filled,
                record.unfilled,
                record.reason or "complete",
            )
        elif isinstance(record, FeedStatus):
            FEED_STATUS.labels(ex, record.channel, record.state.value).inc()
            log.info("%s %s %s: %s (%s)", ex, record.channel, record.symbol, record.state.value, record.reason)
        elif isinstance(record, BookResynced):
            log.warning("%s %s: order book resynced (%s)", ex, record.symbol, record.reason)
        return None

    def snapshot(self) -> None:
        return None

    def close(self) -> None:
        self._stop.set()
        self._thread.join(timeout=10)


class ExchangeSource(FixedPartitionedSource[KeyedEvent, None]):
    """Live market data from one or more exchanges (one Bytewax partition per exchange).

    ``max_events`` ends the run after that many events per exchange (bounded runs and tests).
    ``client_kwargs`` reach :class:`ExchangeMarketData` (e.g. an injected ``sleep`` or ``rng``).
    """

    def __init__(
        self,
        configs: Sequence[ExchangeMarketDataConfig],
        *,
        clock: Clock | None = None,
        on_error: OnError | None = None,
        batch_size: int = 1000,
        max_events: int | None = None,
        queue_size: int = 50_000,
        client_kwargs: dict[str, Any] | None = None,
    ) -> None:
        names = [c.exchange for c in configs]
        if not configs or len(set(names)) != len(names):
            raise ValueError(f"need one config per exchange, got {names}")
        self._configs: dict[str, ExchangeMarketDataConfig] = {c.exchange: c for c in configs}
        self._clock = clock or SystemClock()
        self._on_error = on_error
        self._batch_size = batch_size
        self._max_events = max_events
        self._queue_size = queue_size
        self._client_kwargs = client_kwargs or {}

    def list_parts(self) -> list[str]:
        return list(self._configs)

    def build_part(self, step_id: str, for_part: str, resume_state: None) -> _ExchangePartition:
        return _ExchangePartition(
            self._configs[for_part],
            clock=self._clock,
            on_error=self._on_error,
            batch_size=self._batch_size,
            max_events=self._max_events,
            queue_size=self._queue_size,
            client_kwargs=self._client_kwargs,
        )
