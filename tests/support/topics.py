"""Kafka topics a test creates for itself and deletes afterwards (the shared broker serves every
engineer's tests, so each test works under its own topic prefix)."""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from contextlib import contextmanager

from confluent_kafka.admin import AdminClient, NewTopic  # type: ignore[attr-defined]

from flows.control import CONTROL_TOPIC

#: The trading flow's output topics (under a prefix).
OUT_TOPICS = ("features.v1", "signals.v1", "risk.decisions.v1", "orders.v1", "fills.v1", "orders.shadow.v1")


@contextmanager
def topics(bootstrap: str, names: Iterable[str], partitions: int = 3, *, single: Iterable[str] = ()) -> Iterator[None]:
    """``names`` created with ``partitions`` partitions each and ``single`` with one (replication
    factor 1, 30 s per topic); all of them deleted on leaving (30 s each)."""
    many, one = list(names), list(single)
    admin = AdminClient({"bootstrap.servers": bootstrap})
    new = [NewTopic(n, num_partitions=partitions, replication_factor=1) for n in many]
    new += [NewTopic(n, num_partitions=1, replication_factor=1) for n in one]
    for fut in admin.create_topics(new).values():
        fut.result(30)
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
