"""Storage flow: ``md.*`` topics -> decode -> per-event contracts -> PostgreSQL, refusals -> DLQ.

Run it with ``python -m bytewax.run "flows.store:store_flow()"`` (follows the topics) or
``bot4 store``. Every record ends in exactly one place: its table, or ``dlq.v1`` plus the
``dead_letters`` table with the reason, the stage and the original bytes. A bad record never
stops the flow.

Keys: records are routed by their Kafka key (``exchange:SYMBOL``), so one instrument's contract
state (ordering, duplicate ids) lives on one worker and sees its events in partition order.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import bytewax.operators as op
from bytewax.dataflow import Dataflow, Stream
from bytewax.operators import StatefulBatchLogic

from core.clock import Clock, SystemClock
from core.deadletter import DLQ_TOPIC, DeadLetter
from core.errors import WireFormatError
from core.events import MarketEvent
from core.wire import decode
from flows.dlq import Inbound, dead_letter, to_kafka
from flows.kafka_io import CheckedKafkaSink, InboundKafkaSource, OutMessage
from flows.metrics import EVENTS, LAST_EVENT_TIME, STAGE_LATENCY, instrument_label
from flows.settings import Bot4Settings, QualitySettings, load_settings
from flows.storage.sink import PostgresSink
from quality.contracts import KeyContracts, check_event

STAGE = "storage"
MD_TOPICS = ("md.trades.v1", "md.book.v1", "md.candles.v1")


@dataclass(slots=True)  # short-lived carrier on the hot path: frozen costs 2 us a record
class Decoded:
    """A decoded event with its origin, so a later contract failure can still cite the bytes."""

    event: MarketEvent
    origin: Inbound


def decode_record(origin: Inbound, known: frozenset[str], clock: Clock) -> Decoded | DeadLetter:
    """Decode one record and apply the stateless contract."""
    try:
        event = decode(origin.value)
    except WireFormatError as exc:
        return dead_letter(STAGE, exc.reason, exc.detail, origin, clock)
    violation = check_event(event, known)
    if violation is not None:
        return dead_letter(STAGE, violation.reason, violation.detail, origin, clock)
    if origin.key is not None and origin.key != event.key.encode():
        return dead_letter(
            STAGE, "key_mismatch", f"message key {origin.key!r} is not the event's key {event.key!r}", origin, clock
        )
    return Decoded(event, origin)


#: Routing key of records refused before they had an instrument key; they pass the stateful
#: step untouched.
REFUSED_KEY = "__refused__"


def decode_batch(
    batch: list[Inbound | DeadLetter], known: frozenset[str], clock: Clock
) -> list[tuple[str, Decoded | DeadLetter]]:
    """Decode a batch, keyed by instrument for the stateful step (one Python call per batch)."""
    out: list[tuple[str, Decoded | DeadLetter]] = []
    for item in batch:
        result = item if isinstance(item, DeadLetter) else decode_record(item, known, clock)
        out.append((result.event.key, result) if isinstance(result, Decoded) else (REFUSED_KEY, result))
    return out


class ContractLogic(StatefulBatchLogic[Decoded | DeadLetter, MarketEvent | DeadLetter, dict[str, Any]]):
    """Per-instrument ordering and duplicate-id contracts, a batch at a time, with snapshots."""

    def __init__(self, quality: QualitySettings, clock: Clock, resume: dict[str, Any] | None) -> None:
        self._state = KeyContracts(timedelta(milliseconds=quality.max_backwards_ms), quality.dedup_window)
        if resume is not None:
            self._state.restore(resume)
        self._clock = clock

    def on_batch(self, values: list[Decoded | DeadLetter]) -> tuple[list[MarketEvent | DeadLetter], bool]:
        out: list[MarketEvent | DeadLetter] = []
        ok = 0
        last: MarketEvent | None = None
        for item in values:
            if isinstance(item, DeadLetter):
                out.append(item)
                continue
            violation = self._state.check(item.event)
            if violation is None:
                out.append(item.event)
                ok += 1
                last = item.event
            else:
                out.append(dead_letter(STAGE, violation.reason, violation.detail, item.origin, self._clock))
        if ok:
            EVENTS.labels(STAGE, "ok").inc(ok)
        if last is not None:
            LAST_EVENT_TIME.labels(STAGE, instrument_label(last.key)).set(last.ts_event.timestamp())
            STAGE_LATENCY.labels(STAGE).observe(max(0.0, (self._clock.now() - last.ts_recv).total_seconds()))
        return out, StatefulBatchLogic.RETAIN

    def snapshot(self) -> dict[str, Any]:
        return self._state.snapshot()


def _values(batch: list[tuple[str, MarketEvent | DeadLetter]]) -> list[MarketEvent | DeadLetter]:
    return [value for _, value in batch]


def apply_contracts(
    inbound: Stream[Inbound | DeadLetter], quality: QualitySettings, clock: Clock
) -> Stream[MarketEvent | DeadLetter]:
    """Decode, check statelessly, route by instrument key, check order and duplicates per key.

    Every input comes out exactly once: as an event that passed, or as a dead letter.
    """
    known = frozenset(quality.known_symbols)
    keyed = op.flat_map_batch("decode", inbound, lambda batch: decode_batch(batch, known, clock))
    checked = op.stateful_batch("contracts", keyed, lambda resume: ContractLogic(quality, clock, resume))
    return op.flat_map_batch("unkey", checked, _values)


def dead_letters_to_kafka(step_id: str, checked: Stream[MarketEvent | DeadLetter], topic: str) -> Stream[OutMessage]:
    return op.flat_map_batch(
        step_id, checked, lambda batch: [OutMessage(*to_kafka(x, topic)) for x in batch if isinstance(x, DeadLetter)]
    )


def store_flow(
    settings: Bot4Settings | None = None,
    *,
    tail: bool = True,
    topics: Iterable[str] | None = None,
    clock: Clock | None = None,
    batch_size: int = 5000,
) -> Dataflow:
    """Build the storage dataflow. ``tail=False`` stops at the end of every partition (drain)."""
    settings = settings or load_settings()
    clock = clock or SystemClock()
    flow = Dataflow("bot4_store")
    topic_names = [settings.kafka.topic(t) for t in MD_TOPICS] if topics is None else list(topics)
    inbound = op.input(
        "md_in", flow, InboundKafkaSource(settings.kafka, topic_names, tail=tail, batch_size=batch_size, clock=clock)
    )
    checked = apply_contracts(inbound, settings.quality, clock)
    op.output("pg", checked, PostgresSink(settings.postgres.conninfo()))
    dlq = dead_letters_to_kafka("dlq_msg", checked, settings.kafka.topic(DLQ_TOPIC))
    op.output("dlq", dlq, CheckedKafkaSink(settings.kafka))
    return flow
