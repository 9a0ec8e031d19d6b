"""Kafka input that merges several ``md.*`` topics into one event-time order per partition index.

Why: trades and book events of one instrument live on different topics. A consumer that reads
them independently sees them interleaved by fetch timing, so during a catch-up (or a drain) the
trades that close a bar may arrive minutes of event time before the book events of that bar, and
the bar's book features would be read from a stale book. Merging by ``ts_event`` makes the
interleaving a property of the data, not of the consumer: a drain gives the same features as a
batch recomputation over the events in event-time order, and so does every rerun.

How: instruments are keyed ``exchange:SYMBOL`` and produced with Kafka's default partitioner, so
with equal partition counts one instrument lands on the same partition index of every md topic.
Catching up (a restart, a backlog), a source that hands over everything it can read puts the
whole backlog in Bytewax's first epoch, and that epoch, and so its recovery snapshot, completes
only when the backlog is processed: a crash during the catch-up loses all of it. ``max_rate``
(records per second per partition) caps what is handed over, so epochs keep closing and
snapshots keep committing while the flow catches up; set it near the flow's own throughput, so
it costs nothing (the rest waits in Kafka, not in memory).

One Bytewax partition reads index ``i`` of every topic and emits the record with the smallest
``ts_event`` as long as every topic either has a buffered record or is caught up (at its end):
a caught-up topic cannot hold an earlier record, so it never holds the others back. Ties go to
the topic listed first. The snapshot is the next unemitted offset of every topic, so a resume
re-reads what was buffered and not yet emitted.
"""

from __future__ import annotations

import logging
import time
from collections import deque
from collections.abc import Iterable
from datetime import UTC, datetime, timedelta
from typing import Any

from bytewax.inputs import FixedPartitionedSource, StatefulSourcePartition
from confluent_kafka import OFFSET_BEGINNING, Consumer, KafkaError, KafkaException, TopicPartition

from core.clock import Clock, SystemClock
from core.deadletter import DeadLetter
from flows.dlq import Inbound, dead_letter
from flows.kafka_io import partition_counts
from flows.settings import KafkaSettings
from flows.shutdown import EpochStop

log = logging.getLogger(__name__)

_TS_FIELD = b'"ts_event":'
#: Records whose event time cannot be read sort first: the contracts step dead-letters them.
_UNREADABLE_TS = -1
#: How long a partition's build waits for a topic's watermarks before leaving it to the fetches.
_WATERMARK_TIMEOUT_S = 2.0


def event_time_us(value: bytes) -> int:
    """``ts_event`` of a v1 wire record without decoding it all (it is an integer field).

    >>> event_time_us(b'{"type": "trade", "ts_event": 1723161255342000, "ts_recv": 1}')
    1723161255342000
    >>> event_time_us(b"not json")
    -1
    """
    start = value.find(_TS_FIELD)
    if start < 0:
        return _UNREADABLE_TS
    start += len(_TS_FIELD)
    end = start
    size = len(value)
    while end < size and value[end] in b" -0123456789":
        end += 1
    try:
        return int(value[start:end])
    except ValueError:
        return _UNREADABLE_TS


class _AlignedPartition(StatefulSourcePartition[Inbound | DeadLetter, dict[str, int]]):
    def __init__(
        self,
        config: dict[str, Any],
        topics: list[str],
        index: int,
        start: dict[str, int],
        *,
        batch_size: int,
        tail: bool,
        clock: Clock,
        max_rate: float | None = None,
    ) -> None:
        self._max_rate = max_rate
        self._window_start = time.monotonic()
        self._sent = 0
        self._paused: set[str] = set()
        self._consumer = Consumer(config)
        self._topics, self._index = topics, index
        self._rank = {t: i for i, t in enumerate(topics)}
        self._heads: dict[str, deque[tuple[int, Inbound]]] = {t: deque() for t in topics}
        self._next: dict[str, int] = dict(start)
        # Before the assignment: the watermark queries also load the partitions' leaders, so the
        # consumer's own offset lookups (OFFSET_BEGINNING) go out at once instead of on a retry timer.
        self._caught_up: dict[str, bool] = {t: self._at_end(t, start[t]) for t in topics}
        self._consumer.assign([TopicPartition(t, index, start[t]) for t in topics])
        self._batch_size, self._tail, self._clock = batch_size, tail, clock
        self._stop = EpochStop()

    def _at_end(self, topic: str, position: int) -> bool:
        """Whether ``topic`` has nothing at or after ``position`` (OFFSET_BEGINNING: an empty
        partition), from the broker's watermarks: what the first end-of-partition event would
        say, known before any fetch. A restart otherwise held back every record until each empty
        topic's first fetch had answered (over a second: the consumer's offset query and its
        fetch long-polls). If the broker does not answer here, the end-of-partition event decides,
        as it always does later."""
        try:
            low, high = self._consumer.get_watermark_offsets(
                TopicPartition(topic, self._index), timeout=_WATERMARK_TIMEOUT_S, cached=False
            )
        except KafkaException as exc:
            log.debug("watermarks of %s[%d] not read (%s); waiting for its end-of-partition", topic, self._index, exc)
            return False
        return (low if position < 0 else position) >= high

    def _budget(self) -> int | None:
        """Records this partition may still hand over in the current second (None: no cap)."""
        if self._max_rate is None:
            return None
        now = time.monotonic()
        if now - self._window_start >= 1.0:
            self._window_start, self._sent = now, 0
        return max(0, int(self._max_rate) - self._sent)

    def next_awake(self) -> datetime | None:
        """With the cap spent, wake up when the next second's budget starts (not before)."""
        budget = self._budget()
        if budget is None or budget > 0:
            return None
        return datetime.now(UTC) + timedelta(seconds=max(0.0, self._window_start + 1.0 - time.monotonic()))

    def next_batch(self) -> list[Inbound | DeadLetter]:
        out: list[Inbound | DeadLetter] = []
        if self._stop.pending():
            return out
        heads, caught_up, index = self._heads, self._caught_up, self._index
        budget = self._budget()
        if budget == 0:
            return out
        if budget is not None:
            self._hold_full_topics()
        for msg in self._consumer.consume(self._batch_size, 0.001):
            topic: str = msg.topic()  # type: ignore[assignment]  # set on every message
            err = msg.error()
            if err is not None:
                if err.code() == KafkaError._PARTITION_EOF:
                    caught_up[topic] = True
                    continue
                origin = Inbound(topic, index, msg.offset() or 0, msg.key(), msg.value() or b"")
                out.append(dead_letter("consume", "kafka_error", str(err), origin, self._clock))
                continue
            offset: int = msg.offset()  # type: ignore[assignment]  # set on every consumed message
            value = msg.value() or b""
            heads[topic].append((event_time_us(value), Inbound(topic, index, offset, msg.key(), value)))
            caught_up[topic] = False
        self._merge(out, len(out) + budget if budget is not None else None)
        if budget is not None:
            self._sent += len(out)
        if not self._tail and all(caught_up.values()) and not any(heads.values()) and not out:
            raise StopIteration
        return out

    def _hold_full_topics(self) -> None:
        """Stop fetching a topic while a couple of seconds' worth of it waits here (the cap leaves
        the rest in Kafka, not in memory); the other topics go on being read, so their end is
        still noticed. The margin keeps fetching ahead of the cap: a paused fetch costs a broker
        round trip to restart."""
        assert self._max_rate is not None
        limit = max(10 * self._batch_size, 2 * int(self._max_rate))
        for topic, queue in self._heads.items():
            full = len(queue) >= limit
            if full != (topic in self._paused):
                partition = [TopicPartition(topic, self._index)]
                if full:
                    self._consumer.pause(partition)
                    self._paused.add(topic)
                else:
                    self._consumer.resume(partition)
                    self._paused.discard(topic)

    def _merge(self, out: list[Inbound | DeadLetter], limit: int | None) -> None:
        heads, caught_up, rank, nxt = self._heads, self._caught_up, self._rank, self._next
        while limit is None or len(out) < limit:
            best: str | None = None
            best_key: tuple[int, int] | None = None
            for topic, queue in heads.items():
                if not queue:
                    if not caught_up[topic]:
                        return  # this topic may still hold an earlier record
                    continue
                key = (queue[0][0], rank[topic])
                if best_key is None or key < best_key:
                    best, best_key = topic, key
            if best is None:
                return
            _, record = heads[best].popleft()
            out.append(record)
            nxt[best] = record.offset + 1

    def snapshot(self) -> dict[str, int]:
        self._stop.snapshotted()
        # Buffered records are not emitted yet: resume from the first of them.
        return {t: (q[0][1].offset if q else self._next[t]) for t, q in self._heads.items()}

    def close(self) -> None:
        self._consumer.close()


class AlignedKafkaSource(FixedPartitionedSource[Inbound | DeadLetter, dict[str, int]]):
    """Several topics as one event-time-ordered stream of :class:`Inbound` records per partition
    index (offsets in the recovery snapshots, no consumer group). ``tail=False`` drains."""

    def __init__(
        self,
        kafka: KafkaSettings,
        topics: Iterable[str],
        *,
        tail: bool = True,
        batch_size: int = 5000,
        clock: Clock | None = None,
        max_rate: float | None = None,
    ) -> None:
        self._kafka = kafka
        self._topics = list(topics)
        self._tail = tail
        self._batch_size = batch_size
        self._clock = clock or SystemClock()
        self._max_rate = max_rate

    def list_parts(self) -> list[str]:
        counts = partition_counts(self._kafka, self._topics)
        if len(set(counts.values())) != 1:
            raise RuntimeError(
                f"topics merged by event time need equal partition counts (one instrument on one "
                f"index), got {counts}; fix infra/topics.toml"
            )
        return [str(i) for i in range(next(iter(counts.values())))]

    def build_part(self, step_id: str, for_part: str, resume_state: dict[str, int] | None) -> _AlignedPartition:
        config = {
            "bootstrap.servers": self._kafka.bootstrap,
            "group.id": "bot4-bytewax-managed",  # required by librdkafka; offsets live in snapshots
            "enable.auto.commit": False,
            "enable.partition.eof": True,
            "fetch.min.bytes": 1,
            "queued.min.messages": 100_000,
        }
        start = {t: OFFSET_BEGINNING for t in self._topics}
        if resume_state is not None:
            start.update(resume_state)
        return _AlignedPartition(
            config,
            self._topics,
            int(for_part),
            start,
            batch_size=self._batch_size,
            tail=self._tail,
            clock=self._clock,
            max_rate=self._max_rate,
        )
