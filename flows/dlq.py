"""Turning a refused record into a dead letter for ``dlq.v1`` and the ``dead_letters`` table."""

from __future__ import annotations

from dataclasses import dataclass

from core.clock import Clock
from core.deadletter import DLQ_TOPIC, DeadLetter, encode_dead_letter
from flows.metrics import DEAD_LETTERS, EVENTS


@dataclass(slots=True)  # short-lived carrier on the hot path: frozen costs 2 us a record
class Inbound:
    """A consumed Kafka record with where it came from, kept so a refusal can cite its origin."""

    topic: str
    partition: int
    offset: int
    key: bytes | None
    value: bytes


def dead_letter(stage: str, reason: str, detail: str, origin: Inbound, clock: Clock) -> DeadLetter:
    """Build the dead letter and count it (``bot4_dead_letters_total{stage,reason}``)."""
    DEAD_LETTERS.labels(stage, reason).inc()
    EVENTS.labels(stage, "dead_letter").inc()
    return DeadLetter(
        stage=stage,
        reason=reason,
        detail=detail,
        original=origin.value,
        ts_recv=clock.now(),
        source_topic=origin.topic,
        source_partition=origin.partition,
        source_offset=origin.offset,
        key=origin.key,
    )


def to_kafka(dl: DeadLetter, topic: str = DLQ_TOPIC) -> tuple[str, bytes | None, bytes]:
    """(topic, key, value) of the dead letter's Kafka message."""
    return topic, dl.key, encode_dead_letter(dl)
