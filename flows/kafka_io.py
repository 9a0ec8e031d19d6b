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

from bytewax.outputs import DynamicSink, StatelessSinkPartition
from confluent_kafka import KafkaError, Message, Producer

from flows.settings import KafkaSettings


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
