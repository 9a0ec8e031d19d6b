"""Ingestion flow: market data from recorded files (or exchanges) -> normalized events ->
``md.*`` Kafka topics, keyed ``exchange:SYMBOL``, through an idempotent producer.

Run a replay with ``python -m bytewax.run "flows.ingest:replay_flow(['capture.gz'])"`` or
``bot4 ingest capture.gz``. Encoding is done a whole batch at a time (one Python call per batch,
not per event): the replay source hands over batches of 1000.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import bytewax.operators as op
from bytewax.dataflow import Dataflow, Stream

from core.events import MarketEvent
from core.wire import encode, topic_for
from flows.kafka_io import CheckedKafkaSink, OutMessage
from flows.metrics import EVENTS
from flows.replay import ReplaySource
from flows.settings import Bot4Settings, load_settings

STAGE = "ingest"


def encode_batch(items: list[tuple[str, MarketEvent]], prefix: str = "") -> list[OutMessage]:
    """Wire-encode a batch of keyed events into Kafka messages on their (prefixed) topics."""
    out = [OutMessage(prefix + topic_for(event), key.encode(), encode(event)) for key, event in items]
    EVENTS.labels(STAGE, "ok").inc(len(out))
    return out


def to_kafka(events: Stream[tuple[str, MarketEvent]], settings: Bot4Settings) -> None:
    """Attach the encode + Kafka output steps to a stream of keyed events."""
    prefix = settings.kafka.topic_prefix
    messages = op.flat_map_batch("encode", events, lambda batch: encode_batch(batch, prefix))
    op.output("md_out", messages, CheckedKafkaSink(settings.kafka))


def replay_flow(
    paths: Sequence[str | Path],
    speed: float | None = None,
    settings: Bot4Settings | None = None,
) -> Dataflow:
    """Replay recorded files into Kafka; ``speed=None`` as fast as possible, else scaled real time."""
    settings = settings or load_settings()
    flow = Dataflow("bot4_ingest_replay")
    events = op.input("replay", flow, ReplaySource([Path(p) for p in paths], speed=speed))
    to_kafka(events, settings)
    return flow
