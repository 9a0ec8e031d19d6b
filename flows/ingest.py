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

from core.clock import Clock, SystemClock
from core.deadletter import DLQ_TOPIC, DeadLetter, encode_dead_letter
from core.errors import QuarantineRecord
from core.events import MarketEvent
from core.wire import encode, topic_for
from flows.kafka_io import CheckedKafkaSink, CheckedProducer, OutMessage, producer_config
from flows.metrics import DEAD_LETTERS, EVENTS
from flows.replay import ReplaySource
from flows.settings import Bot4Settings, KafkaSettings, load_settings

STAGE = "ingest"


class DeadLetterProducer:
    """``on_error`` for sources: a record that does not parse goes to ``dlq.v1`` at once, with its
    reason and original bytes, and is counted; the replay goes on.

    Delivery is confirmed before returning (refusals are rare, so the flush costs nothing that
    matters), which keeps "nothing lost" true even if the process dies right after.
    """

    def __init__(self, kafka: KafkaSettings, source: str, clock: Clock | None = None) -> None:
        self._kafka = kafka
        self._source = source
        self._clock = clock or SystemClock()
        self._producer: CheckedProducer | None = None
        self.sent = 0

    def __call__(self, original: bytes, error: QuarantineRecord) -> None:
        if self._producer is None:
            self._producer = CheckedProducer(producer_config(self._kafka))
        dl = DeadLetter(STAGE, error.reason, error.detail, original, self._clock.now(), source_topic=self._source)
        self._producer.produce(self._kafka.topic(DLQ_TOPIC), None, encode_dead_letter(dl))
        self._producer.flush()
        DEAD_LETTERS.labels(STAGE, error.reason).inc()
        EVENTS.labels(STAGE, "dead_letter").inc()
        self.sent += 1


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


def exchange_flow(
    exchange: str,
    symbols: Sequence[str],
    channels: Sequence[str] = ("trades",),
    settings: Bot4Settings | None = None,
    *,
    api_urls_override: dict[str, str] | None = None,
    max_events: int | None = None,
) -> Dataflow:
    """Live market data from ``exchange`` through ccxt into Kafka (the same encode and sink steps
    as a replay). ``api_urls_override`` points the client at a mirror (tests use a local server
    replaying recorded responses)."""
    from flows.connectors.exchange_md import ExchangeMarketDataConfig
    from flows.connectors.exchange_source import ExchangeSource

    settings = settings or load_settings()
    config = ExchangeMarketDataConfig(
        exchange=exchange,  # type: ignore[arg-type]  # validated by the config model
        symbols=tuple(symbols),
        channels=tuple(channels),  # type: ignore[arg-type]
        api_urls_override=api_urls_override,
    )
    flow = Dataflow("bot4_ingest_exchange")
    source = ExchangeSource(
        [config], on_error=DeadLetterProducer(settings.kafka, f"exchange:{exchange}"), max_events=max_events
    )
    events = op.input("exchange", flow, source)
    to_kafka(events, settings)
    return flow


def replay_flow(
    paths: Sequence[str | Path],
    speed: float | None = None,
    settings: Bot4Settings | None = None,
) -> Dataflow:
    """Replay recorded files into Kafka; ``speed=None`` as fast as possible, else scaled real time."""
    settings = settings or load_settings()
    flow = Dataflow("bot4_ingest_replay")
    source = ReplaySource([Path(p) for p in paths], speed=speed, on_error=DeadLetterProducer(settings.kafka, "replay"))
    events = op.input("replay", flow, source)
    to_kafka(events, settings)
    return flow
