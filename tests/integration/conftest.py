"""Helpers for integration tests that run flows against the real local services: settings
pointing at a test's own topic prefix and database, and readers for what the flows wrote."""

from __future__ import annotations

import time
import uuid
from pathlib import Path
from typing import Any

import psycopg
import pytest
from confluent_kafka import Consumer, TopicPartition

from flows.settings import Bot4Settings, load_settings
from tests.support.topics import watermarks

ROOT = Path(__file__).resolve().parents[2]
BTC_CAPTURE = ROOT / "data" / "sample" / "binance-spot-ws" / "btcusdt_20240808.gz"


@pytest.fixture(scope="session")
def btc_capture() -> Path:
    """The bundled real Binance BTC/USDT websocket capture (9757 trades, hftbacktest, MIT)."""
    if not BTC_CAPTURE.is_file():
        pytest.fail(f"bundled capture {BTC_CAPTURE} not found; expected it in the checkout")
    return BTC_CAPTURE


def make_settings(topic_prefix: str, database: str, data_dir: Path) -> Bot4Settings:
    """Settings for one test: its own topic prefix, its own database and data folder."""
    return load_settings(kafka={"topic_prefix": topic_prefix}, postgres={"dbname": database}, data_dir=data_dir)


def scalar(settings: Bot4Settings, sql: str) -> Any:
    """The single value a query returns, from the test's database."""
    with psycopg.connect(settings.postgres.conninfo()) as conn:
        row = conn.execute(sql).fetchone()
    assert row is not None, f"query returned no row: {sql}"
    return row[0]


def _watermarks(consumer: Consumer, topic: str) -> list[tuple[int, int, int]]:
    """(partition, low, high) of each partition; a partition still electing its leader is asked again."""
    metadata = consumer.list_topics(topic, timeout=10).topics[topic]
    if metadata.error is not None:
        raise AssertionError(f"topic {topic}: {metadata.error}")
    return [(p, *watermarks(consumer, TopicPartition(topic, p))) for p in sorted(metadata.partitions)]


def _consumer(bootstrap: str) -> Consumer:
    return Consumer(
        {
            "bootstrap.servers": bootstrap,
            "group.id": f"test-read-{uuid.uuid4().hex[:8]}",
            "enable.auto.commit": False,
            "enable.partition.eof": False,
        }
    )


def topic_message_count(bootstrap: str, topic: str) -> int:
    """Records in the topic (high minus low watermark, summed over partitions)."""
    consumer = _consumer(bootstrap)
    try:
        return sum(high - low for _, low, high in _watermarks(consumer, topic))
    finally:
        consumer.close()


def read_topic(bootstrap: str, topic: str, timeout: float = 30.0) -> list[tuple[bytes | None, bytes | None]]:
    """Every record now in the topic, as (key, value), partition by partition."""
    consumer = _consumer(bootstrap)
    try:
        marks = [(p, low, high) for p, low, high in _watermarks(consumer, topic) if high > low]
        consumer.assign([TopicPartition(topic, p, low) for p, low, _ in marks])
        next_offset = {p: low for p, low, _ in marks}
        end = {p: high for p, _, high in marks}
        records: dict[int, list[tuple[bytes | None, bytes | None]]] = {p: [] for p in end}
        deadline = time.monotonic() + timeout
        while any(next_offset[p] < end[p] for p in end):
            if time.monotonic() > deadline:
                raise AssertionError(f"reading {topic}: not every record arrived within {timeout:.0f}s")
            message = consumer.poll(0.5)
            if message is None:
                continue
            if message.error():
                raise AssertionError(f"reading {topic}: {message.error()}")
            partition, offset = message.partition(), message.offset()
            assert partition is not None and offset is not None
            records[partition].append((message.key(), message.value()))
            next_offset[partition] = offset + 1
        return [record for p, _, _ in marks for record in records[p]]
    finally:
        consumer.close()
