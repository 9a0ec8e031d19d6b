"""The local services answer as the project expects (run after `infra/services.sh up`).

Why: every integration and end-to-end test builds on these three services; when one of them is
misconfigured (a topic missing or with too few partitions, the database absent, a port taken by
something else) this file says so directly instead of letting a flow test fail obscurely.
"""

from __future__ import annotations

import logging
import re
import socket
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest
import redis
from confluent_kafka import Consumer, KafkaError, Producer
from confluent_kafka.admin import AdminClient, NewTopic  # type: ignore[attr-defined]

from flows.topics import (
    TopicAdminError,
    TopicSpec,
    describe_topics,
    diff_topic,
    ensure_topics,
    load_topics,
    main,
    reconcile_topics,
)

pytestmark = pytest.mark.integration

# The fixed local addresses (infra/README.md). Kafka's comes from the root conftest's
# ``kafka_bootstrap`` (BOT4_KAFKA__BOOTSTRAP, default 127.0.0.1:29092).
PG_HOST, PG_PORT, PG_DB = "127.0.0.1", 25432, "bot4"
REDIS_HOST, REDIS_PORT = "127.0.0.1", 26379


def require_port(service: str, host: str, port: int) -> None:
    """Fail at once, naming the command that starts the service, when nothing listens."""
    try:
        with socket.create_connection((host, port), timeout=2):
            return
    except OSError as exc:
        pytest.fail(
            f"{service} is not reachable at {host}:{port} ({exc}); expected it running: "
            f"start it with `bash infra/services.sh up {service}`",
            pytrace=False,
        )


@pytest.fixture(scope="module")
def live_kafka(kafka_bootstrap: str) -> str:
    host, _, port = kafka_bootstrap.split(",", maxsplit=1)[0].rpartition(":")
    require_port("kafka", host, int(port))
    return kafka_bootstrap


@pytest.fixture(scope="module")
def live_postgres() -> str:
    require_port("postgres", PG_HOST, PG_PORT)
    return f"host={PG_HOST} port={PG_PORT} dbname={PG_DB} user=postgres connect_timeout=5"


@pytest.fixture(scope="module")
def live_redis() -> tuple[str, int]:
    require_port("redis", REDIS_HOST, REDIS_PORT)
    return REDIS_HOST, REDIS_PORT


def test_every_declared_topic_exists_with_at_least_its_partitions(live_kafka: str) -> None:
    specs = load_topics()
    metadata = AdminClient({"bootstrap.servers": live_kafka}).list_topics(timeout=10)
    missing = [s.name for s in specs if s.name not in metadata.topics]
    assert not missing, f"declared topics missing on {live_kafka}: {missing}"
    too_few = {
        s.name: (len(metadata.topics[s.name].partitions), s.partitions)
        for s in specs
        if len(metadata.topics[s.name].partitions) < s.partitions
    }
    assert not too_few, f"topics with fewer partitions than declared (actual, declared): {too_few}"


def test_declared_topic_settings_match_the_broker(live_kafka: str) -> None:
    specs = load_topics()
    observed = describe_topics(live_kafka, [s.name for s in specs])
    problems = [p for s in specs for p in diff_topic(s, observed[s.name])]
    assert problems == []


def test_ensure_topics_again_creates_nothing(live_kafka: str) -> None:
    assert ensure_topics(live_kafka, load_topics()) == []


@pytest.fixture
def scratch_topic(live_kafka: str) -> Iterator[str]:
    """A throwaway topic: the broker does not auto-create, and real topics stay clean."""
    admin = AdminClient({"bootstrap.servers": live_kafka})
    name = f"test.services.{uuid.uuid4().hex[:12]}"
    admin.create_topics([NewTopic(name, num_partitions=1, replication_factor=1)])[name].result(timeout=30)
    yield name
    admin.delete_topics([name], operation_timeout=30)[name].result(timeout=30)


def test_reconcile_creates_grows_and_reports_without_changing_other_settings(
    live_kafka: str, scratch_topic: str, caplog: pytest.LogCaptureFixture
) -> None:
    new_name = f"{scratch_topic}.new"
    declared = [
        # scratch_topic exists with 1 partition and the broker's default retention (7 days).
        TopicSpec(scratch_topic, 2, 3_600_000, "delete", "k", "grown to 2, retention differs"),
        TopicSpec(new_name, 2, 3_600_000, "compact,delete", "k", "created"),
    ]
    try:
        report = reconcile_topics(live_kafka, declared)
        assert report.created == (new_name,)
        assert report.grown == ((scratch_topic, 1, 2),)
        assert report.mismatches == (f"{scratch_topic}: retention.ms='604800000' on the broker, '3600000' declared",)
        observed = describe_topics(live_kafka, [scratch_topic, new_name])
        assert observed[scratch_topic].partitions == 2
        assert observed[scratch_topic].config["retention.ms"] == "604800000"  # reported, not changed
        assert observed[new_name].config["cleanup.policy"] == "compact,delete"
        again = reconcile_topics(live_kafka, declared)
        assert (again.created, again.grown, again.unchanged) == ((), (), (new_name,))
        with caplog.at_level(logging.WARNING, logger="flows.topics"):
            assert ensure_topics(live_kafka, declared) == []
        assert [r.getMessage() for r in caplog.records] == [f"topic mismatch (left unchanged): {report.mismatches[0]}"]
    finally:
        admin = AdminClient({"bootstrap.servers": live_kafka})  # keep a reference until the result
        admin.delete_topics([new_name], operation_timeout=30)[new_name].result(30)


def test_an_impossible_topic_is_refused_naming_it_and_nothing_is_created(live_kafka: str) -> None:
    name = f"test.services.{uuid.uuid4().hex[:12]}.rf3"
    spec = TopicSpec(name, 1, 3_600_000, "delete", "k", "needs 3 brokers", replication_factor=3)
    with pytest.raises(TopicAdminError, match=rf"creating topic '{re.escape(name)}' at .* failed: .*[Rr]eplication"):
        reconcile_topics(live_kafka, [spec], timeout=10)
    assert describe_topics(live_kafka, [name]) == {}


def test_cli_ensure_applies_a_file_and_strict_fails_on_a_mismatch(
    live_kafka: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    name = f"test.services.{uuid.uuid4().hex[:12]}.cli"
    entry = f'name = "{name}"\npartitions = 2\ncleanup_policy = "delete"\nkey = "k"\ndescription = "cli"\n'
    path = tmp_path / "topics.toml"
    try:
        path.write_text(f"[[topic]]\n{entry}retention_ms = 3600000\n")
        assert main(["ensure", "--bootstrap", live_kafka, "--file", str(path)]) == 0
        out = capsys.readouterr().out
        assert f"topics: created {name}" in out
        assert "1 declared at" in out and "1 created, 0 grown, 0 unchanged" in out

        path.write_text(f"[[topic]]\n{entry}retention_ms = 7200000\n")
        assert main(["ensure", "--bootstrap", live_kafka, "--file", str(path)]) == 0
        assert main(["ensure", "--bootstrap", live_kafka, "--file", str(path), "--strict"]) == 2
        captured = capsys.readouterr()
        assert f"mismatch (left unchanged): {name}: retention.ms='3600000' on the broker" in captured.err
        assert "1 mismatch(es)" in captured.out
    finally:
        admin = AdminClient({"bootstrap.servers": live_kafka})
        admin.delete_topics([name], operation_timeout=30)[name].result(30)


def test_idempotent_produce_is_consumed_back(live_kafka: str, scratch_topic: str) -> None:
    producer = Producer({"bootstrap.servers": live_kafka, "enable.idempotence": True})
    acked: list[KafkaError | None] = []
    payload = uuid.uuid4().bytes
    producer.produce(scratch_topic, key=b"binance:BTC/USDT", value=payload, on_delivery=lambda e, m: acked.append(e))
    assert producer.flush(30) == 0, "message still queued after 30 s"
    assert acked == [None], f"delivery failed: {acked}"

    consumer = Consumer(
        {
            "bootstrap.servers": live_kafka,
            "group.id": f"test-services-{uuid.uuid4().hex[:8]}",
            "group.protocol": "consumer",
            "auto.offset.reset": "earliest",
        }
    )
    try:
        consumer.subscribe([scratch_topic])
        deadline = time.monotonic() + 30
        message = None
        while message is None and time.monotonic() < deadline:
            message = consumer.poll(0.5)
            if message is not None and message.error():
                pytest.fail(f"consumer error on {scratch_topic}: {message.error()}")
        assert message is not None, f"no message consumed from {scratch_topic} within 30 s"
        assert message.key() == b"binance:BTC/USDT"
        assert message.value() == payload
    finally:
        consumer.close()


def test_postgres_answers_select_1(live_postgres: str) -> None:
    with psycopg.connect(live_postgres) as conn:
        assert conn.execute("select 1").fetchone() == (1,)
        assert conn.info.dbname == "bot4"


def test_redis_answers_ping(live_redis: tuple[str, int]) -> None:
    host, port = live_redis
    client = redis.Redis(host=host, port=port, socket_timeout=5)
    try:
        assert client.ping() is True
    finally:
        client.close()
