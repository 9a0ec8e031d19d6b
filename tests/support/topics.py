"""Kafka topics a test creates for itself and deletes afterwards (the shared broker serves every
engineer's tests, so each test works under its own topic prefix)."""

from __future__ import annotations

import time
from collections.abc import Iterable, Iterator
from contextlib import contextmanager

from confluent_kafka import Consumer, KafkaError, KafkaException, TopicPartition
from confluent_kafka.admin import AdminClient, NewTopic  # type: ignore[attr-defined]

from flows.control import CONTROL_TOPIC

#: What a broker answers for a partition whose leader it has not yet elected or loaded, and what the
#: client says while its metadata does not list the new partition yet.
ELECTING = frozenset(
    {
        KafkaError.NOT_LEADER_FOR_PARTITION,
        KafkaError.LEADER_NOT_AVAILABLE,
        KafkaError.UNKNOWN_TOPIC_OR_PART,
        KafkaError._UNKNOWN_PARTITION,
        KafkaError._UNKNOWN_TOPIC,
    }
)

#: The trading flow's output topics (under a prefix).
OUT_TOPICS = ("features.v1", "signals.v1", "risk.decisions.v1", "orders.v1", "fills.v1", "orders.shadow.v1")


@contextmanager
def topics(bootstrap: str, names: Iterable[str], partitions: int = 3, *, single: Iterable[str] = ()) -> Iterator[None]:
    """``names`` created with ``partitions`` partitions each and ``single`` with one (replication
    factor 1, 30 s per topic), entered once every partition answers an offsets query; all of them
    deleted on leaving (30 s each)."""
    many, one = list(names), list(single)
    admin = AdminClient({"bootstrap.servers": bootstrap})
    new = [NewTopic(n, num_partitions=partitions, replication_factor=1) for n in many]
    new += [NewTopic(n, num_partitions=1, replication_factor=1) for n in one]
    for fut in admin.create_topics(new).values():
        fut.result(30)
    _await_leaders(bootstrap, [(n, partitions) for n in many] + [(n, 1) for n in one])
    try:
        yield
    finally:
        for fut in admin.delete_topics([*many, *one]).values():
            fut.result(30)


@contextmanager
def flow_topics(bootstrap: str, *prefixes: str) -> Iterator[None]:
    """The trading flow's output topics (3 partitions) and its control topic (1 partition) under each
    prefix, deleted on leaving."""
    with topics(
        bootstrap,
        [f"{p}{t}" for p in prefixes for t in OUT_TOPICS],
        single=[f"{p}{CONTROL_TOPIC}" for p in prefixes],
    ):
        yield


def watermarks(consumer: Consumer, partition: TopicPartition, timeout_s: float = 10.0) -> tuple[int, int]:
    """(low, high) of ``partition``, asked again while its leader is being elected (``ELECTING``),
    for up to ``timeout_s``. The broker acknowledges a topic's creation before its partitions'
    leadership reaches its metadata; an offsets query in between fails with
    NOT_LEADER_FOR_PARTITION (seen in CI: a test's first count of a topic it had just created)."""
    deadline = time.monotonic() + timeout_s
    while True:
        try:
            low, high = consumer.get_watermark_offsets(partition, timeout=10)
            return int(low), int(high)
        except KafkaException as exc:
            if exc.args[0].code() not in ELECTING or time.monotonic() > deadline:
                raise
            time.sleep(0.1)


def _await_leaders(bootstrap: str, created: list[tuple[str, int]], timeout_s: float = 30.0) -> None:
    """Until each partition of ``created`` answers an offsets query (see ``watermarks``)."""
    consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": "test-topics-ready", "log_level": 0})
    try:
        for name, count in created:
            for partition in range(count):
                watermarks(consumer, TopicPartition(name, partition), timeout_s)
    finally:
        consumer.close()
