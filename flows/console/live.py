"""Live updates for the console: one Kafka consumer thread, fanned out to server-sent-event clients.

The consumer is assigned to the end of every partition of the live topics (no consumer group
offsets: a console that restarts shows what happens from then on; the history comes from
PostgreSQL). Each record is decoded by the same functions the flows use and handed to every
subscriber in the shape the REST endpoints return (decimal strings, ISO times in UTC). A topic
that does not exist yet is looked up again every few seconds, so the console can start before the
trading flow.

A subscriber that falls behind by more than its queue is not silently skipped: it receives one
``resync`` event and should reload from the REST endpoints.
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import orjson
from confluent_kafka import OFFSET_END, Consumer, KafkaException, TopicPartition

from core.clock import from_epoch_us
from core.fills import fill_from_record, order_event_from_record
from core.orders import PauseStrategy, ResetBreaker, ResumeStrategy
from flows.console.convert import dec
from flows.control import CONTROL_TOPIC, command_kind, decode_command
from flows.kafka_io import consumer_config
from flows.settings import KafkaSettings

log = logging.getLogger(__name__)

#: Topics the console follows, without the deployment's prefix.
LIVE_TOPICS = ("fills.v1", "orders.v1", "risk.decisions.v1", CONTROL_TOPIC)
QUEUE_SIZE = 2000
RETRY_TOPICS_S = 3.0


def _iso_us(value: Any) -> str:
    return from_epoch_us(int(value)).isoformat().replace("+00:00", "Z")


def normalize(topic: str, value: bytes) -> dict[str, Any]:
    """A live record as the console shows it; ``ValueError``/``KeyError`` when it does not decode.

    >>> rec = {"v": 1, "type": "order", "exchange": "binance", "account": "main", "client_order_id": "b4-1",
    ...        "symbol": "BTC/USDT", "kind": "accept", "status": "accepted", "filled": "0", "remaining": "0.01",
    ...        "ts_event": 1723161255342000, "venue_order_id": "p-1", "reason": "", "previous": "submitted", "seq": 2}
    >>> normalize("fills.v1", orjson.dumps(rec))["ts_event"]
    '2024-08-08T23:54:15.342000Z'
    """
    if topic == CONTROL_TOPIC:
        command = decode_command(value)
        return {
            "type": "command",
            "kind": command_kind(command),
            "account": command.account,
            "breaker": command.breaker if isinstance(command, ResetBreaker) else None,
            "strategy": command.strategy if isinstance(command, PauseStrategy | ResumeStrategy) else None,
            "requested_by": command.requested_by,
            "reason": command.reason,
            "ts": command.ts.isoformat().replace("+00:00", "Z"),
        }
    rec = orjson.loads(value)
    if not isinstance(rec, dict):
        raise ValueError(f"{topic} record is not a JSON object")
    if topic == "fills.v1":
        if rec.get("type") == "fill":
            fill = fill_from_record(rec)
            return {
                "type": "fill",
                "exchange": fill.exchange,
                "fill_id": fill.fill_id,
                "client_order_id": fill.client_order_id,
                "account": fill.account,
                "symbol": fill.symbol,
                "side": fill.side.value,
                "price": dec(fill.price),
                "amount": dec(fill.amount),
                "notional": dec(fill.notional),
                "fee": dec(fill.fee),
                "fee_currency": fill.fee_currency,
                "liquidity": fill.liquidity.value,
                "ts_event": fill.ts_event.isoformat().replace("+00:00", "Z"),
            }
        event = order_event_from_record(rec)
        return {
            "type": "order_event",
            "client_order_id": event.client_order_id,
            "account": event.account,
            "symbol": event.symbol,
            "event": event.kind.value,
            "status_before": (event.previous or event.status).value,
            "status_after": event.status.value,
            "filled": dec(event.filled),
            "remaining": dec(event.remaining),
            "reason": event.reason,
            "seq": event.seq,
            "ts_event": event.ts_event.isoformat().replace("+00:00", "Z"),
        }
    if topic == "risk.decisions.v1":
        return {
            "type": "decision",
            "decision_id": str(rec["decision_id"]),
            "account": str(rec["account"]),
            "client_order_id": rec.get("client_order_id"),
            "kind": str(rec["kind"]),
            "trading_state": str(rec["trading_state"]),
            "reasons": [{"code": str(r["code"]), "message": str(r["message"])} for r in rec["reasons"]],
            "detail": rec,
            "ts_event": _iso_us(rec["ts"]),
        }
    if topic == "orders.v1":
        return {
            "type": "approved_order",
            **{k: v for k, v in rec.items() if k not in {"ts_event", "ts_decided"}},
            "ts_event": _iso_us(rec["ts_event"]),
            "ts_decided": _iso_us(rec["ts_decided"]),
        }
    raise ValueError(f"topic {topic!r} is not one the console follows")


@dataclass(eq=False)
class Subscriber:
    loop: asyncio.AbstractEventLoop
    queue: asyncio.Queue[dict[str, Any]] = field(default_factory=lambda: asyncio.Queue(QUEUE_SIZE))
    overflowed: bool = False

    def offer(self, event: dict[str, Any]) -> None:
        """Runs on the event loop: queue the event, or mark the subscriber for a resync."""
        if self.overflowed:
            return
        try:
            self.queue.put_nowait(event)
        except asyncio.QueueFull:
            self.overflowed = True
            self.queue.get_nowait()
            self.queue.put_nowait({"topic": "resync", "type": "resync"})


class LiveFeed:
    """The consumer thread and its subscribers; :meth:`start` once, :meth:`stop` at shutdown."""

    def __init__(self, kafka: KafkaSettings, topics: Sequence[str] = LIVE_TOPICS) -> None:
        self._kafka = kafka
        self._names = {kafka.topic(t): t for t in topics}
        self._subscribers: set[Subscriber] = set()
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.assigned: set[str] = set()
        self.received = 0
        self.undecodable = 0

    @property
    def topics(self) -> list[str]:
        return sorted(self._names)

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="bot4-console-live", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=10)

    def subscribe(self) -> Subscriber:
        sub = Subscriber(asyncio.get_running_loop())
        with self._lock:
            self._subscribers.add(sub)
        return sub

    def unsubscribe(self, sub: Subscriber) -> None:
        with self._lock:
            self._subscribers.discard(sub)

    def wait_assigned(self, timeout: float) -> bool:
        """True once every live topic is assigned (tests and start-up checks)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.assigned == set(self._names):
                return True
            time.sleep(0.05)
        return False

    def _publish(self, event: dict[str, Any]) -> None:
        with self._lock:
            subscribers = list(self._subscribers)
        for sub in subscribers:
            sub.loop.call_soon_threadsafe(sub.offer, event)

    def _run(self) -> None:
        group = f"bot4-console-{uuid.uuid4().hex[:8]}"
        consumer = Consumer(
            consumer_config(self._kafka, group, **{"auto.offset.reset": "latest", "enable.partition.eof": False})
        )
        next_lookup = 0.0
        try:
            while not self._stop.is_set():
                if self.assigned != set(self._names) and time.monotonic() >= next_lookup:
                    self._assign_missing(consumer)
                    next_lookup = time.monotonic() + RETRY_TOPICS_S
                if not self.assigned:
                    self._stop.wait(0.2)
                    continue
                message = consumer.poll(0.2)
                if message is None:
                    continue
                if message.error():
                    log.warning("live feed: %s", message.error())
                    continue
                self._handle(str(message.topic()), message.value() or b"", message.partition(), message.offset())
        finally:
            consumer.close()

    def _assign_missing(self, consumer: Consumer) -> None:
        added: list[TopicPartition] = []
        for topic in sorted(set(self._names) - self.assigned):
            try:
                meta = consumer.list_topics(topic, timeout=5).topics.get(topic)
            except KafkaException as exc:
                log.warning("live feed: cannot look up %s: %s", topic, exc)
                continue
            if meta is None or meta.error is not None or not meta.partitions:
                continue
            # Start at the partition's current end, resolved now: a record produced after this look-up
            # is delivered, whatever the timing of the first fetch. A partition whose leader is still
            # being elected (a topic just created) does not answer: the topic waits for the next look-up.
            try:
                ends = [
                    (p, consumer.get_watermark_offsets(TopicPartition(topic, p), timeout=5)[1])
                    for p in sorted(meta.partitions)
                ]
            except KafkaException as exc:
                log.warning("live feed: cannot read the end offsets of %s yet: %s", topic, exc)
                continue
            added += [TopicPartition(topic, p, high if high >= 0 else OFFSET_END) for p, high in ends]
            self.assigned.add(topic)
        if added:
            consumer.incremental_assign(added)
            log.info("live feed: following %s", sorted({tp.topic for tp in added}))

    def _handle(self, topic: str, value: bytes, partition: int | None, offset: int | None) -> None:
        self.received += 1
        name = self._names.get(topic, topic)
        try:
            event = normalize(name, value)
        except (ValueError, KeyError, TypeError) as exc:
            # Not the console's to dead-letter (the flows own the topics): count it and say where.
            self.undecodable += 1
            log.warning("live feed: %s[%s]@%s does not decode: %s", topic, partition, offset, exc)
            return
        event["topic"] = name
        self._publish(event)
