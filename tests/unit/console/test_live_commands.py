"""Commands on the control topic as the console's live stream shows them."""

from __future__ import annotations

from types import SimpleNamespace

from confluent_kafka import KafkaError, KafkaException, TopicPartition

from core.clock import parse_utc
from core.orders import KillSwitch, PauseStrategy, ResetBreaker, ResumeStrategy
from flows.console.live import LiveFeed, normalize
from flows.control import CONTROL_TOPIC, encode_command
from flows.settings import load_settings

T = parse_utc("2024-08-09T00:00:00.5Z")


def test_every_command_kind_reaches_the_live_stream_with_its_breaker_or_strategy():
    shown = [
        normalize(CONTROL_TOPIC, encode_command(c))
        for c in (
            KillSwitch("main", "alice", "venue incident", T),
            ResetBreaker("main", "kill_switch", "alice", "over", T),
            PauseStrategy("main", "trend-v1", "carol", "fills look wrong", T),
            ResumeStrategy("main", "trend-v1", "carol", "venue fixed", T),
        )
    ]
    assert [(s["kind"], s["breaker"], s["strategy"]) for s in shown] == [
        ("kill_switch", None, None),
        ("reset_breaker", "kill_switch", None),
        ("pause_strategy", None, "trend-v1"),
        ("resume_strategy", None, "trend-v1"),
    ]
    assert {s["type"] for s in shown} == {"command"}
    assert shown[2]["ts"] == "2024-08-09T00:00:00.500000Z" and shown[2]["requested_by"] == "carol"


class _ElectingBroker:
    """A consumer whose broker has created the topic but not yet loaded its partition's leader:
    the first offsets query fails as Kafka answers then (NOT_LEADER_FOR_PARTITION)."""

    def __init__(self, topic: str) -> None:
        self.topic, self.assigned, self.queries = topic, [], 0

    def list_topics(self, topic: str, timeout: float) -> SimpleNamespace:
        return SimpleNamespace(topics={topic: SimpleNamespace(error=None, partitions={0: None})})

    def get_watermark_offsets(self, partition: TopicPartition, timeout: float) -> tuple[int, int]:
        self.queries += 1
        if self.queries == 1:
            raise KafkaException(KafkaError(KafkaError.NOT_LEADER_FOR_PARTITION))
        return 0, 7

    def incremental_assign(self, partitions: list[TopicPartition]) -> None:
        self.assigned += partitions


def test_a_topic_whose_leader_is_being_elected_is_followed_at_the_next_lookup_not_the_end_of_the_feed():
    feed = LiveFeed(load_settings().kafka, topics=[CONTROL_TOPIC])
    consumer = _ElectingBroker(feed.topics[0])
    feed._assign_missing(consumer)  # type: ignore[arg-type]
    assert feed.assigned == set() and consumer.assigned == []
    feed._assign_missing(consumer)  # type: ignore[arg-type]
    assert feed.assigned == {feed.topics[0]}
    assert [(tp.topic, tp.partition, tp.offset) for tp in consumer.assigned] == [(feed.topics[0], 0, 7)]
