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
from typing import TypeGuard

import bytewax.operators as op
from bytewax.connectors.kafka import KafkaError, KafkaSource, KafkaSourceMessage
from bytewax.dataflow import Dataflow, Stream
from confluent_kafka import OFFSET_BEGINNING

from core.clock import Clock, SystemClock
from core.deadletter import DLQ_TOPIC, DeadLetter
from core.errors import WireFormatError
from core.events import MarketEvent
from core.wire import decode
from flows.dlq import Inbound, dead_letter, to_kafka
from flows.kafka_io import CheckedKafkaSink
from flows.metrics import EVENTS, LAST_EVENT_TIME
from flows.settings import Bot4Settings, QualitySettings, load_settings
from flows.storage.sink import PostgresSink
from quality.contracts import KeyContracts, check_event

STAGE = "storage"
MD_TOPICS = ("md.trades.v1", "md.book.v1", "md.candles.v1")

_RawItem = KafkaSourceMessage[bytes | None, bytes | None] | KafkaError[bytes | None, bytes | None]


@dataclass(frozen=True, slots=True)
class Decoded:
    """A decoded event with its origin, so a later contract failure can still cite the bytes."""

    event: MarketEvent
    origin: Inbound


def from_kafka(item: _RawItem, clock: Clock) -> Inbound | DeadLetter:
    """A consumed Kafka record as an :class:`Inbound`, or a dead letter for a consumer error."""
    if isinstance(item, KafkaError):
        origin = item.msg
        return dead_letter(
            STAGE,
            "kafka_error",
            str(item.err),
            Inbound(origin.topic or "", origin.partition or 0, origin.offset or 0, origin.key, origin.value or b""),
            clock,
        )
    return Inbound(item.topic or "", item.partition or 0, item.offset or 0, item.key, item.value or b"")


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
            STAGE,
            "key_mismatch",
            f"message key {origin.key!r} is not the event's key {event.key!r}",
            origin,
            clock,
        )
    return Decoded(event, origin)


def _is_inbound(x: Inbound | DeadLetter) -> TypeGuard[Inbound]:
    return isinstance(x, Inbound)


def _is_decoded(x: Decoded | DeadLetter) -> TypeGuard[Decoded]:
    return isinstance(x, Decoded)


def _is_event(x: MarketEvent | DeadLetter) -> TypeGuard[MarketEvent]:
    return not isinstance(x, DeadLetter)


def _route_key(item: Decoded) -> str:
    return item.event.key


class ContractStep:
    """The stateful half of the contracts, as a Bytewax ``stateful_map`` mapper."""

    def __init__(self, quality: QualitySettings, clock: Clock) -> None:
        self._max_backwards = timedelta(milliseconds=quality.max_backwards_ms)
        self._window = quality.dedup_window
        self._clock = clock

    def __call__(self, state: KeyContracts | None, item: Decoded) -> tuple[KeyContracts, MarketEvent | DeadLetter]:
        if state is None:
            state = KeyContracts(self._max_backwards, self._window)
        violation = state.check(item.event)
        if violation is not None:
            return state, dead_letter(STAGE, violation.reason, violation.detail, item.origin, self._clock)
        EVENTS.labels(STAGE, "ok").inc()
        LAST_EVENT_TIME.labels(STAGE, item.event.key).set(item.event.ts_event.timestamp())
        return state, item.event


@dataclass(frozen=True)
class ContractsOut:
    """Events that passed every contract, and dead letters for the rest."""

    oks: Stream[MarketEvent]
    refused: Stream[DeadLetter]


def apply_contracts(inbound: Stream[Inbound | DeadLetter], quality: QualitySettings, clock: Clock) -> ContractsOut:
    """Decode, check statelessly, route by instrument key, check order and duplicates per key."""
    known = frozenset(quality.known_symbols)
    arrived = op.branch("arrived_ok", inbound, _is_inbound)
    checked = op.map("decode", arrived.trues, lambda item: decode_record(item, known, clock))
    first = op.branch("decoded_ok", checked, _is_decoded)
    keyed = op.key_on("key", first.trues, _route_key)
    contracted = op.stateful_map("contracts", keyed, ContractStep(quality, clock))
    values = op.key_rm("unkey", contracted)
    second = op.branch("contract_ok", values, _is_event)
    refused = op.merge("refused", arrived.falses, first.falses, second.falses)
    return ContractsOut(second.trues, refused)  # type: ignore[arg-type]


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
    raw = op.input(
        "md_in",
        flow,
        KafkaSource(
            [settings.kafka.bootstrap],
            [settings.kafka.topic(t) for t in MD_TOPICS] if topics is None else list(topics),
            tail=tail,
            starting_offset=OFFSET_BEGINNING,
            batch_size=batch_size,
            raise_on_errors=False,
        ),
    )
    inbound = op.map("from_kafka", raw, lambda item: from_kafka(item, clock))
    out = apply_contracts(inbound, settings.quality, clock)
    op.output("pg", op.merge("to_pg", out.oks, out.refused), PostgresSink(settings.postgres.conninfo()))
    dlq_topic = settings.kafka.topic(DLQ_TOPIC)
    op.output(
        "dlq",
        op.map("dlq_msg", out.refused, lambda dl: to_kafka(dl, dlq_topic)),
        CheckedKafkaSink(settings.kafka),
    )
    return flow
