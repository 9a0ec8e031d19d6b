"""Replaying recorded files: a Bytewax source (one partition per file) and a plain iterator.

:class:`ReplaySource` emits ``(event.key, event)`` in batches (batch size 1 costs ~7x in
throughput, see NOTES.md). A partition's snapshot is the number of events it has emitted, so a
resumed run re-reads its input and skips exactly that many: no event twice, none missing. With
``speed`` set, events are held back to their event time scaled by the speed.

Bytewax orders nothing between partitions, so files of the same instrument (``btcusdt_20240808``
and ``btcusdt_20240809``, or one symbol's trades and quotes) share one partition, merged by event
time; otherwise the second day's book deltas could reach the book before the first day's end.
"""

from __future__ import annotations

import heapq
import itertools
import os
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from bytewax.inputs import FixedPartitionedSource, StatefulSourcePartition

from core.errors import QuarantineRecord
from core.events import MarketEvent
from flows.replay._common import ReplayStats
from flows.replay.formats import OnError, read_events
from flows.replay.pacing import DUE_TOLERANCE_S, Pacer

KeyedEvent = tuple[str, MarketEvent]


@dataclass(frozen=True, slots=True)
class ReplayFile:
    """One file to replay, with the overrides :func:`read_events` takes."""

    path: str | os.PathLike[str]
    fmt: str | None = None
    exchange: str | None = None
    symbol: str | None = None
    timeframe: str | None = None

    def events(self, on_error: OnError | None = None, stats: ReplayStats | None = None) -> Iterator[MarketEvent]:
        return read_events(
            self.path,
            fmt=self.fmt,
            exchange=self.exchange,
            symbol=self.symbol,
            timeframe=self.timeframe,
            on_error=on_error,
            stats=stats,
        )


def _as_file(item: str | os.PathLike[str] | ReplayFile) -> ReplayFile:
    return item if isinstance(item, ReplayFile) else ReplayFile(item)


def _ts_event(event: MarketEvent) -> datetime:
    return event.ts_event


def _close(stream: Iterator[MarketEvent]) -> None:
    close = getattr(stream, "close", None)
    if close is not None:
        close()


def replay_files(
    paths: Iterable[str | os.PathLike[str] | ReplayFile],
    *,
    merge: bool = False,
    speed: float | None = None,
    clock: Callable[[], float] = time.monotonic,
    sleep: Callable[[float], None] = time.sleep,
    on_error: OnError | None = None,
    stats: ReplayStats | None = None,
) -> Iterator[MarketEvent]:
    """Events of several files for callers without Bytewax: one file after another, or merged.

    ``merge=True`` interleaves the files by ``ts_event`` (``heapq.merge``; ties keep the order of
    ``paths``). The merge never reorders a file's own events: a raw capture is in receive order,
    not quite event-time order, and stays so. ``speed`` paces the output like
    :class:`ReplaySource`, blocking in the injected ``sleep``.
    """
    streams = [_as_file(p).events(on_error, stats) for p in paths]
    events = heapq.merge(*streams, key=_ts_event) if merge else itertools.chain.from_iterable(streams)
    if speed is None:
        return events
    return _paced(events, Pacer(speed, clock=clock, sleep=sleep))


def _paced(events: Iterator[MarketEvent], pacer: Pacer) -> Iterator[MarketEvent]:
    for event in events:
        pacer.wait(event.ts_event)
        yield event


class _ReplayPartition(StatefulSourcePartition[KeyedEvent, int]):
    """One file, or the files of one instrument merged by event time.

    The snapshot is how many events were emitted; resuming skips exactly those (the merge is
    deterministic, so the same prefix comes back).
    """

    def __init__(
        self,
        name: str,
        files: tuple[ReplayFile, ...],
        *,
        resume_from: int,
        batch_size: int,
        pacer: Pacer | None,
        max_block_s: float,
        on_error: OnError | None,
    ) -> None:
        self._batch_size = batch_size
        self._pacer = pacer
        self._max_block_s = max_block_s
        self._on_error = on_error
        self._replaying_prefix = resume_from > 0
        route = self._route_error if on_error is not None else None
        self._streams = [f.events(route) for f in files]
        self._events: Iterator[MarketEvent] = (
            heapq.merge(*self._streams, key=_ts_event) if len(self._streams) > 1 else self._streams[0]
        )
        skipped = sum(1 for _ in itertools.islice(self._events, resume_from))
        if skipped != resume_from:
            self.close()
            raise ValueError(
                f"resume state of {name} says {resume_from} events were emitted, but it has only {skipped}: "
                "the input changed since the snapshot; clear the recovery store or restore the files"
            )
        self._replaying_prefix = False
        self._emitted = resume_from
        self._pending: MarketEvent | None = None
        if pacer is not None:
            self._pending = next(self._events, None)
            if self._pending is not None:
                pacer.propose_origin(self._pending.ts_event)

    def _route_error(self, raw: bytes, err: QuarantineRecord) -> None:
        # Records before the resume point were routed by the run that emitted them.
        if not self._replaying_prefix and self._on_error is not None:
            self._on_error(raw, err)

    def next_batch(self) -> list[KeyedEvent]:
        if self._pacer is None:
            batch = [(e.key, e) for e in itertools.islice(self._events, self._batch_size)]
            if not batch:
                raise StopIteration
            self._emitted += len(batch)
            return batch
        event = self._pending
        if event is None:
            raise StopIteration
        # Block at most max_block_s so other partitions on this worker keep their own pace.
        if not self._pacer.wait(event.ts_event, max_s=self._max_block_s):
            return []
        batch = []
        while event is not None:
            batch.append((event.key, event))
            event = next(self._events, None)
            if len(batch) >= self._batch_size or (
                event is not None and self._pacer.delay_s(event.ts_event) > DUE_TOLERANCE_S
            ):
                break
        self._pending = event
        self._emitted += len(batch)
        return batch

    def snapshot(self) -> int:
        return self._emitted

    def close(self) -> None:
        for stream in self._streams:
            _close(stream)


class ReplaySource(FixedPartitionedSource[KeyedEvent, int]):
    """Bytewax input replaying recorded files, one partition per file, ``(key, event)`` items.

    Files whose first events share an instrument key form one partition instead, merged by
    ``ts_event``, so that instrument's events keep their order (see the module docstring).

    - ``batch_size``: events handed to Bytewax per call (default 1000).
    - ``speed``: ``None`` replays as fast as possible; ``k`` paces by event time, ``k`` times
      faster than real time. Partitions in one process share one origin (the earliest first
      event), so files covering different hours play in their real order. ``clock``/``sleep``
      are injected for tests; a partition blocks at most ``max_block_s`` per call so the others
      on its worker keep their pace.
    - ``on_error``: where refused records go (e.g. the DLQ producer); by default they raise and
      stop the run, loudly.
    - ``merge_all``: one partition for every file, merged by ``ts_event``: the whole replay in
      event-time order, as a backtest needs (its account sees every instrument in time order).

    Recovery: each partition snapshots how many events it emitted; a resumed run skips exactly
    those. Records refused before the resume point are not routed again.
    """

    def __init__(
        self,
        paths: Iterable[str | os.PathLike[str] | ReplayFile],
        *,
        batch_size: int = 1000,
        speed: float | None = None,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
        max_block_s: float = 0.01,
        on_error: OnError | None = None,
        merge_all: bool = False,
    ) -> None:
        if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
            raise ValueError(f"batch_size must be an integer >= 1, got {batch_size!r}")
        if not max_block_s > 0:
            raise ValueError(f"max_block_s must be > 0 seconds, got {max_block_s!r}")
        if speed is not None:
            Pacer(speed)  # validates the speed now rather than at the first build
        files: list[ReplayFile] = []
        seen: set[Path] = set()
        for item in paths:
            file = _as_file(item)
            resolved = Path(file.path).resolve()
            if resolved in seen:
                raise ValueError(f"file {file.path} is listed twice; each file is read once")
            seen.add(resolved)
            files.append(file)
        if not files:
            raise ValueError("ReplaySource needs at least one file, got none")
        self._parts = (
            {" + ".join(str(Path(f.path).resolve()) for f in files): tuple(files)}
            if merge_all
            else _partition_by_instrument(files)
        )
        self._batch_size = batch_size
        self._speed = speed
        self._clock = clock
        self._sleep = sleep
        self._max_block_s = max_block_s
        self._on_error = on_error
        self._lock = threading.Lock()
        self._pacer: Pacer | None = None
        self._built: set[str] = set()

    def list_parts(self) -> list[str]:
        return list(self._parts)

    def _pacer_for(self, part: str) -> Pacer | None:
        """The pacer shared by this execution's partitions; a partition built again means a new run."""
        if self._speed is None:
            return None
        with self._lock:
            if self._pacer is None or part in self._built:
                self._pacer = Pacer(self._speed, clock=self._clock, sleep=self._sleep)
                self._built = set()
            self._built.add(part)
            return self._pacer

    def build_part(self, step_id: str, for_part: str, resume_state: int | None) -> _ReplayPartition:
        files = self._parts.get(for_part)
        if files is None:
            raise ValueError(f"partition {for_part!r} is not one of this source's {sorted(self._parts)}")
        return _ReplayPartition(
            for_part,
            files,
            resume_from=resume_state or 0,
            batch_size=self._batch_size,
            pacer=self._pacer_for(for_part),
            max_block_s=self._max_block_s,
            on_error=self._on_error,
        )


def _first_key(file: ReplayFile) -> str | None:
    """The instrument key of a file's first event (refused records skipped), or None if it has none."""
    events = file.events(on_error=lambda raw, err: None)
    try:
        first = next(events, None)
    finally:
        _close(events)
    return None if first is None else first.key


def _partition_by_instrument(files: list[ReplayFile]) -> dict[str, tuple[ReplayFile, ...]]:
    """Partition name -> files: one partition per file, except that one instrument's files share one.

    The name is the resolved path(s): stable across runs, which is what recovery keys state by.
    """
    groups: dict[str, list[ReplayFile]] = {}
    for file in files:
        key = _first_key(file)
        groups.setdefault(key if key is not None else f"file:{Path(file.path).resolve()}", []).append(file)
    return {" + ".join(str(Path(f.path).resolve()) for f in members): tuple(members) for members in groups.values()}
