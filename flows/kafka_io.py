"""Kafka plumbing shared by the flows: producer settings, a sink that never loses a message
silently, and the consumer settings for reading topics back.

Bytewax's own ``KafkaSink`` produces without a delivery callback, so a failed delivery would go
unnoticed. :class:`CheckedKafkaSink` waits for every delivery report of a batch and raises if any
failed: the worker stops, and on restart Bytewax resumes from the last snapshot and re-sends
(at-least-once; the idempotent producer and the consumers' natural keys absorb the repeats).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from bytewax.inputs import FixedPartitionedSource, StatefulSourcePartition
from bytewax.outputs import DynamicSink, StatelessSinkPartition
from confluent_kafka import OFFSET_BEGINNING, Consumer, KafkaError, Message, Producer, TopicPartition
from confluent_kafka.admin import AdminClient

from core.clock import Clock, SystemClock
from core.deadletter import DeadLetter
from flows.dlq import Inbound, dead_letter
from flows.metrics import CONSUMER_LAG, expect_ready, mark_ready
from flows.settings import KafkaSettings
from flows.shutdown import EpochStop


@dataclass(frozen=True, slots=True)
class OutMessage:
    """One record to produce: topic, key and value bytes."""

    topic: str
    key: bytes | None
    value: bytes


def producer_config(kafka: KafkaSettings, **extra: Any) -> dict[str, Any]:
    """Idempotent, acks=all producer: retries never duplicate or reorder within a partition."""
    config: dict[str, Any] = {
        "bootstrap.servers": kafka.bootstrap,
        "client.id": kafka.client_id,
        "enable.idempotence": True,
        "acks": "all",
        "linger.ms": kafka.linger_ms,
        "batch.size": kafka.batch_size,
        "compression.type": kafka.compression,
        "queue.buffering.max.messages": 1_000_000,
        "queue.buffering.max.kbytes": 1_048_576,
    }
    config.update(extra)
    return config


def consumer_config(kafka: KafkaSettings, group_id: str, **extra: Any) -> dict[str, Any]:
    """Consumer settings; ``group.protocol=consumer`` (KIP-848) resumes at once after a restart."""
    config: dict[str, Any] = {
        "bootstrap.servers": kafka.bootstrap,
        "group.id": group_id,
        "group.protocol": "consumer",
        "enable.auto.commit": False,
        "auto.offset.reset": "earliest",
    }
    config.update(extra)
    return config


class DeliveryFailed(RuntimeError):
    """At least one message of a batch was not acknowledged by the broker."""


class CheckedProducer:
    """A confluent-kafka producer that counts acknowledgements and surfaces every failure."""

    def __init__(self, config: dict[str, Any], flush_timeout_s: float = 60.0) -> None:
        self._producer = Producer(config)
        self._flush_timeout_s = flush_timeout_s
        self._errors: list[str] = []
        self.delivered = 0

    def _on_delivery(self, err: KafkaError | None, msg: Message) -> None:
        if err is not None:
            self._errors.append(f"{msg.topic()}[{msg.partition()}]: {err}")
        else:
            self.delivered += 1

    def produce(self, topic: str, key: bytes | None, value: bytes) -> None:
        while True:
            try:
                self._producer.produce(topic, value=value, key=key, on_delivery=self._on_delivery)
                return
            except BufferError:
                # Local queue full: serve delivery reports to make room (back-pressure), then retry.
                self._producer.poll(0.05)

    def produce_all(self, messages: Iterable[OutMessage]) -> None:
        for m in messages:
            self.produce(m.topic, m.key, m.value)
        self._producer.poll(0)

    def flush(self) -> None:
        """Block until every queued message is acknowledged; raise if any failed or timed out."""
        remaining = self._producer.flush(self._flush_timeout_s)
        if remaining:
            raise DeliveryFailed(f"{remaining} messages still unacknowledged after {self._flush_timeout_s}s")
        if self._errors:
            errors, self._errors = self._errors, []
            raise DeliveryFailed(f"{len(errors)} messages failed delivery, first: {errors[0]}")


class _CheckedSinkPartition(StatelessSinkPartition[OutMessage]):
    def __init__(self, producer: CheckedProducer) -> None:
        self._producer = producer

    def write_batch(self, items: list[OutMessage]) -> None:
        self._producer.produce_all(items)
        # Flush per batch so a Bytewax snapshot taken after this batch never covers an
        # unacknowledged message.
        self._producer.flush()

    def close(self) -> None:
        self._producer.flush()


class CheckedKafkaSink(DynamicSink[OutMessage]):
    """Bytewax sink producing :class:`OutMessage` items, one idempotent producer per worker."""

    def __init__(self, kafka: KafkaSettings, **extra_config: Any) -> None:
        self._config = producer_config(kafka, **extra_config)

    def build(self, step_id: str, worker_index: int, worker_count: int) -> _CheckedSinkPartition:
        return _CheckedSinkPartition(CheckedProducer(self._config))


class _InboundPartition(StatefulSourcePartition[Inbound | DeadLetter, int]):
    def __init__(
        self,
        config: dict[str, Any],
        where: tuple[str, int, int],
        *,
        batch_size: int,
        tail: bool,
        clock: Clock,
    ) -> None:
        topic, partition, offset = where
        self._consumer = Consumer(config)
        self._consumer.assign([TopicPartition(topic, partition, offset)])
        self._topic, self._partition, self._offset = topic, partition, offset
        self._batch_size, self._tail, self._clock = batch_size, tail, clock
        self._eof = False
        self._component = f"kafka:{topic}[{partition}]"
        self._lag = CONSUMER_LAG.labels(topic, str(partition))
        self._stop = EpochStop()
        expect_ready(self._component)

    def next_batch(self) -> list[Inbound | DeadLetter]:
        if self._eof:
            raise StopIteration
        if self._stop.pending():
            return []
        out: list[Inbound | DeadLetter] = []
        topic, partition = self._topic, self._partition
        messages = self._consumer.consume(self._batch_size, 0.001)
        at_end = False
        mark_ready(self._component)  # the broker answered: this partition is being read
        for msg in messages:
            err = msg.error()
            if err is not None:
                if err.code() == KafkaError._PARTITION_EOF:
                    self._eof = not self._tail
                    at_end = True
                    continue
                origin = Inbound(topic, partition, msg.offset() or self._offset, msg.key(), msg.value() or b"")
                out.append(dead_letter("consume", "kafka_error", str(err), origin, self._clock))
                continue
            offset: int = msg.offset()  # type: ignore[assignment]  # set on every consumed message
            out.append(Inbound(topic, partition, offset, msg.key(), msg.value() or b""))
            self._offset = offset + 1
        self._update_lag(at_end)
        return out

    def _update_lag(self, at_end: bool) -> None:
        if at_end:
            self._lag.set(0)
            return
        # Watermarks of the last fetch response (cached: no broker round trip); negative until
        # the first fetch has answered. Before the first record the position is a logical offset
        # (OFFSET_BEGINNING), so the lag is the whole partition.
        low, high = self._consumer.get_watermark_offsets(TopicPartition(self._topic, self._partition), cached=True)
        start = self._offset if self._offset >= 0 else low
        if high >= 0 and start >= 0:
            self._lag.set(max(0, high - start))

    def snapshot(self) -> int:
        self._stop.snapshotted()
        return self._offset

    def close(self) -> None:
        self._consumer.close()


def partition_counts(kafka: KafkaSettings, topics: Iterable[str]) -> dict[str, int]:
    """Partitions of each topic; a missing topic is an error that says how to create it."""
    meta = AdminClient({"bootstrap.servers": kafka.bootstrap}).list_topics(timeout=30)
    counts: dict[str, int] = {}
    for topic in topics:
        if topic not in meta.topics or meta.topics[topic].error is not None:
            raise RuntimeError(
                f"Kafka topic {topic!r} does not exist at {kafka.bootstrap}; create it with `bot4 topics ensure`"
            )
        counts[topic] = len(meta.topics[topic].partitions)
    return counts


class InboundKafkaSource(FixedPartitionedSource[Inbound | DeadLetter, int]):
    """Kafka topics as :class:`Inbound` records (topic, partition, offset, key, value).

    Like Bytewax's ``KafkaSource`` (one Bytewax partition per Kafka partition, offsets kept in the
    recovery snapshots, no consumer group), but it hands over the lean record the flows use, and a
    consumer error becomes a dead letter instead of stopping the flow. ``tail=False`` ends each
    partition at its current end (drain mode).
    """

    def __init__(
        self,
        kafka: KafkaSettings,
        topics: Iterable[str],
        *,
        tail: bool = True,
        batch_size: int = 5000,
        clock: Clock | None = None,
    ) -> None:
        self._kafka = kafka
        self._topics = list(topics)
        self._tail = tail
        self._batch_size = batch_size
        self._clock = clock or SystemClock()

    def list_parts(self) -> list[str]:
        counts = partition_counts(self._kafka, self._topics)
        return [f"{p}-{topic}" for topic, n in counts.items() for p in range(n)]

    def build_part(self, step_id: str, for_part: str, resume_state: int | None) -> _InboundPartition:
        idx, topic = for_part.split("-", 1)
        config = {
            "bootstrap.servers": self._kafka.bootstrap,
            "group.id": "bot4-bytewax-managed",  # required by librdkafka; offsets live in snapshots
            "enable.auto.commit": False,
            "enable.partition.eof": True,
            "fetch.min.bytes": 1,
            "queued.min.messages": 100_000,
            # Larger fetches: fewer broker round trips per message when catching up (replays,
            # restarts), which is when throughput matters.
            "max.partition.fetch.bytes": 16 * 1024 * 1024,
            "fetch.max.bytes": 64 * 1024 * 1024,
        }
        start = OFFSET_BEGINNING if resume_state is None else resume_state
        return _InboundPartition(
            config, (topic, int(idx), start), batch_size=self._batch_size, tail=self._tail, clock=self._clock
        )
