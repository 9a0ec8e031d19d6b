"""Features flow: ``md.*`` topics -> contracts -> per-instrument feature engine -> ``features.v1``,
the ``feature_rows`` table and the Feast online store; engine refusals -> ``dlq.v1``.

Run it with ``python -m bytewax.run "flows.features:features_flow()"`` (follows the topics; add
``-r DIR -s 1 -b 1`` for recovery). The md topics are merged into event-time order per partition
index (:class:`flows.aligned_source.AlignedKafkaSource`), so a bar's book features do not depend on
which topic the consumer happened to read first. Decoding and contracts are the storage flow's own
(:func:`flows.store.apply_contracts`), so both flows accept and refuse exactly the same records.

Delivery: Kafka input is exactly-once with recovery; every output is at-least-once and idempotent
downstream (``feature_rows`` on its natural key, Feast online by entity and timestamp,
``features.v1`` keyed by instrument with a deterministic value, so a consumer can drop repeats).

Wire format of ``features.v1`` (version 1): one JSON object per bar and instrument, the
:meth:`FeatureVector.as_row` with times as integer microseconds since the epoch (UTC)::

    {"type": "feature_vector", "v": 1, "symbol": "binance:BTC/USDT", "timeframe": "1m",
     "event_timestamp": 1723161300000000, "bar_start": 1723161240000000, "schema_version": 1,
     "bar_open": 61837.63, ..., "book_depth_ask_10bps": 1.23}
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterable
from datetime import timedelta
from typing import TYPE_CHECKING, Literal

import bytewax.operators as op
import orjson
import psycopg
from bytewax.dataflow import Dataflow, Stream
from bytewax.inputs import Source
from bytewax.outputs import DynamicSink, StatelessSinkPartition
from prometheus_client import Counter

from core.clock import Clock, SystemClock, from_epoch_us, to_epoch_us
from core.deadletter import DLQ_TOPIC, DeadLetter
from core.errors import WireFormatError
from core.events import MarketEvent
from core.wire import encode, topic_for
from features.bars import InvalidTrade, LateTrade
from features.book import ResyncRequired
from features.operators import EngineReject, compute_features
from features.schema import FEATURE_NAMES, FeatureVector
from flows.aligned_source import AlignedKafkaSource
from flows.dlq import Inbound, to_kafka
from flows.kafka_io import CheckedKafkaSink, OutMessage
from flows.metrics import DEAD_LETTERS, EVENTS, ROWS_WRITTEN
from flows.settings import Bot4Settings, load_settings
from flows.storage.sink import copy_payload
from flows.store import apply_contracts

if TYPE_CHECKING:
    from flows.feature_store import FeastConfig

log = logging.getLogger(__name__)

STAGE = "features"
FEATURES_TOPIC = "features.v1"
FEATURE_WIRE_VERSION = 1
TRADE_TOPICS = ("md.trades.v1", "md.book.v1")
CANDLE_TOPICS = ("md.candles.v1", "md.trades.v1", "md.book.v1")

BOOK_RESYNCS = Counter(
    "bot4_feature_book_resyncs_total",
    "Order books the feature engine stopped trusting until a new snapshot, by instrument and reason.",
    ["key", "reason"],
)
IGNORED = Counter(
    "bot4_feature_ignored_events_total",
    "Valid events the feature engine does not use in its configuration (e.g. candles while bars come "
    "from trades), by reason.",
    ["reason"],
)

#: Columns of ``feature_rows`` (sql/0004_feature_rows.sql) in table order.
ROW_COLUMNS: tuple[str, ...] = ("symbol", "timeframe", "schema_version", "event_timestamp", "bar_start", *FEATURE_NAMES)


# -- features.v1 wire format ------------------------------------------------------------------------


def encode_feature_vector(vector: FeatureVector) -> bytes:
    """One vector as its ``features.v1`` bytes (deterministic: a recomputation gives equal bytes)."""
    row = vector.as_row()
    row["event_timestamp"] = to_epoch_us(vector.ts_event)
    row["bar_start"] = to_epoch_us(vector.bar_start)
    return orjson.dumps({"type": "feature_vector", "v": FEATURE_WIRE_VERSION, **row})


def decode_feature_vector(data: bytes) -> FeatureVector:
    """Read ``features.v1`` bytes back; an unknown type, version or feature name is refused.

    >>> from core.clock import from_epoch_us
    >>> v = FeatureVector("binance:BTC/USDT", "1m", from_epoch_us(60_000_000), from_epoch_us(0),
    ...                   {name: None for name in FEATURE_NAMES})
    >>> decode_feature_vector(encode_feature_vector(v)) == v
    True
    """
    try:
        obj = orjson.loads(data)
        if obj.get("type") != "feature_vector" or obj.get("v") != FEATURE_WIRE_VERSION:
            raise WireFormatError(
                "unknown_feature_wire", f"type {obj.get('type')!r} v {obj.get('v')!r} is not feature_vector v1"
            )
        values = {name: obj[name] for name in FEATURE_NAMES}
        return FeatureVector(
            obj["symbol"],
            obj["timeframe"],
            from_epoch_us(obj["event_timestamp"]),
            from_epoch_us(obj["bar_start"]),
            values,
            obj["schema_version"],
        )
    except (orjson.JSONDecodeError, KeyError, TypeError, AttributeError) as exc:
        raise WireFormatError("malformed_feature_vector", f"not a features.v1 record: {exc!r}") from None


def vectors_to_kafka(batch: list[FeatureVector], topic: str) -> list[OutMessage]:
    EVENTS.labels(STAGE, "ok").inc(len(batch))
    return [OutMessage(topic, v.key.encode(), encode_feature_vector(v)) for v in batch]


# -- engine refusals ---------------------------------------------------------------------------------


def rejects_to_dead_letters(batch: list[EngineReject], prefix: str, clock: Clock) -> list[DeadLetter]:
    """Late, invalid or unusable records become dead letters citing the event's v1 bytes; a book
    resync is an event, not a bad record: logged and counted, not dead-lettered.

    The Kafka partition and offset are not known here (the contracts step passes events on without
    them), so the letter cites the topic and the instrument key.
    """
    out: list[DeadLetter] = []
    for reject in batch:
        if isinstance(reject, ResyncRequired):
            BOOK_RESYNCS.labels(reject.key, reject.reason).inc()
            log.warning(
                "book of %s needs a resync (%s, last update id %s): %s",
                reject.key,
                reject.reason,
                reject.last_update_id,
                reject.detail,
            )
            continue
        event: MarketEvent
        if isinstance(reject, LateTrade | InvalidTrade):
            event = reject.trade
        else:
            event = reject.candle
            if reject.reason == "bars_from_trades":
                IGNORED.labels(reject.reason).inc()
                continue
        DEAD_LETTERS.labels(STAGE, reject.reason).inc()
        EVENTS.labels(STAGE, "dead_letter").inc()
        out.append(
            DeadLetter(
                stage=STAGE,
                reason=reject.reason,
                detail=reject.detail,
                original=encode(event),
                ts_recv=clock.now(),
                source_topic=prefix + topic_for(event),
                key=event.key.encode(),
            )
        )
    return out


# -- feature_rows ------------------------------------------------------------------------------------


def feature_row(vector: FeatureVector) -> tuple[object, ...]:
    """The ``feature_rows`` row of a vector, in :data:`ROW_COLUMNS` order."""
    row = vector.as_row()
    return tuple(row[column] for column in ROW_COLUMNS)


class FeatureRowWriter:
    """Idempotent batched writes into ``feature_rows``: COPY straight in, and on a duplicate key
    COPY into a temp table and move with ``ON CONFLICT DO NOTHING`` (as the market-data sink does).

    A lost connection is retried with backoff; retrying is safe because the insert is idempotent.
    """

    def __init__(
        self,
        conninfo: str,
        *,
        max_attempts: int = 8,
        backoff_s: float = 0.5,
        max_backoff_s: float = 15.0,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self._conninfo = conninfo
        self._max_attempts = max_attempts
        self._backoff_s = backoff_s
        self._max_backoff_s = max_backoff_s
        self._sleep = sleep
        self._conn: psycopg.Connection | None = None
        self.rows_inserted = 0

    def _connection(self) -> psycopg.Connection:
        if self._conn is None or self._conn.closed:
            self._conn = psycopg.connect(self._conninfo, autocommit=False)
            self._conn.execute(
                f"CREATE TEMP TABLE IF NOT EXISTS tmp_feature_rows AS "
                f"SELECT {', '.join(ROW_COLUMNS)} FROM feature_rows WITH NO DATA"
            )
            self._conn.commit()
        return self._conn

    def write(self, vectors: Iterable[FeatureVector]) -> int:
        """Store the vectors; return how many rows were new."""
        payload = copy_payload(feature_row(v) for v in vectors)
        if not payload:
            return 0
        delay = self._backoff_s
        for attempt in range(1, self._max_attempts + 1):
            try:
                inserted = self._write_once(payload)
            except psycopg.OperationalError as exc:
                self.close()
                if attempt == self._max_attempts:
                    raise
                log.warning("feature_rows write failed (attempt %d): %s; retrying in %.1fs", attempt, exc, delay)
                self._sleep(delay)
                delay = min(delay * 2, self._max_backoff_s)
                continue
            self.rows_inserted += inserted
            ROWS_WRITTEN.labels("feature_rows", "new").inc(inserted)
            return inserted
        raise AssertionError("unreachable: the loop returns or raises")

    def _write_once(self, payload: bytes) -> int:
        conn = self._connection()
        cols = ", ".join(ROW_COLUMNS)
        rows = payload.count(b"\n")
        with conn.transaction(), conn.cursor() as cur:
            try:
                with conn.transaction(), cur.copy(f"COPY feature_rows ({cols}) FROM STDIN") as copy:
                    copy.write(payload)
                return rows
            except psycopg.errors.UniqueViolation:
                pass  # a repeat (at-least-once output): take the slow idempotent path below
            with cur.copy(f"COPY tmp_feature_rows ({cols}) FROM STDIN") as copy:
                copy.write(payload)
            cur.execute(
                f"INSERT INTO feature_rows ({cols}) SELECT {cols} FROM tmp_feature_rows "
                "ON CONFLICT (symbol, timeframe, schema_version, event_timestamp) DO NOTHING"
            )
            inserted = max(cur.rowcount, 0)
            cur.execute("TRUNCATE tmp_feature_rows")
        return inserted

    def close(self) -> None:
        if self._conn is not None:
            try:
                self._conn.close()
            finally:
                self._conn = None


class _FeatureRowPartition(StatelessSinkPartition[FeatureVector]):
    def __init__(self, writer: FeatureRowWriter) -> None:
        self._writer = writer

    def write_batch(self, items: list[FeatureVector]) -> None:
        self._writer.write(items)

    def close(self) -> None:
        self._writer.close()


class FeatureRowSink(DynamicSink[FeatureVector]):
    """Bytewax sink into ``feature_rows``: one connection per worker."""

    def __init__(self, conninfo: str) -> None:
        self._conninfo = conninfo

    def build(self, step_id: str, worker_index: int, worker_count: int) -> _FeatureRowPartition:
        return _FeatureRowPartition(FeatureRowWriter(self._conninfo))


# -- the flow ----------------------------------------------------------------------------------------


def _keyed_events(batch: list[MarketEvent | DeadLetter]) -> list[tuple[str, MarketEvent]]:
    return [(item.key, item) for item in batch if not isinstance(item, DeadLetter)]


def _contract_dead_letters(batch: list[MarketEvent | DeadLetter]) -> list[DeadLetter]:
    return [item for item in batch if isinstance(item, DeadLetter)]


def features_flow(
    settings: Bot4Settings | None = None,
    *,
    tail: bool = True,
    timeframe: str = "1m",
    allowed_lateness: timedelta = timedelta(seconds=2),
    bars_from: Literal["trades", "candles"] = "trades",
    feast: FeastConfig | None = None,
    clock: Clock | None = None,
    batch_size: int = 5000,
    source: Source[Inbound | DeadLetter] | None = None,
) -> Dataflow:
    """Build the features dataflow.

    ``tail=False`` stops at the end of every partition (drain); bars still open then stay open in
    the recovery state, so the next run continues them instead of closing them early. ``feast`` is a
    :class:`flows.feature_store.FeastConfig` to push each batch of vectors to the online store
    (``None``: read ``BOT4_FEAST_*`` from the environment; push only if ``BOT4_FEAST_PUSH`` is
    true). ``source`` replaces the Kafka input with any source of :class:`Inbound` records (tests
    use it to abort mid-stream).
    """
    from flows.feature_store import FeastConfig, FeastPushSink  # feast loads lazily, only when pushing

    settings = settings or load_settings()
    clock = clock or SystemClock()
    feast_config = feast if feast is not None else FeastConfig.from_env()
    flow = Dataflow("bot4_features")
    if source is None:
        topics = [settings.kafka.topic(t) for t in (TRADE_TOPICS if bars_from == "trades" else CANDLE_TOPICS)]
        source = AlignedKafkaSource(settings.kafka, topics, tail=tail, batch_size=batch_size, clock=clock)
    inbound = op.input("md_in", flow, source)
    checked = apply_contracts(inbound, settings.quality, clock)
    events = op.flat_map_batch("key_by_instrument", checked, _keyed_events)
    out = compute_features(
        "features", events, timeframe=timeframe, allowed_lateness=allowed_lateness, bars_from=bars_from
    )

    features_topic = settings.kafka.topic(FEATURES_TOPIC)
    dlq_topic = settings.kafka.topic(DLQ_TOPIC)
    prefix = settings.kafka.topic_prefix
    messages = op.flat_map_batch("encode_vectors", out.vectors, lambda b: vectors_to_kafka(b, features_topic))
    letters: Stream[DeadLetter] = op.merge(
        "dead_letters",
        op.flat_map_batch("contract_refusals", checked, _contract_dead_letters),
        op.flat_map_batch("engine_refusals", out.rejects, lambda b: rejects_to_dead_letters(b, prefix, clock)),
    )
    dlq = op.flat_map_batch("encode_dead_letters", letters, lambda b: [OutMessage(*to_kafka(x, dlq_topic)) for x in b])
    op.output("kafka_out", op.merge("to_kafka", messages, dlq), CheckedKafkaSink(settings.kafka))
    op.output("feature_rows", out.vectors, FeatureRowSink(settings.postgres.conninfo()))
    if feast_config.push:
        op.output("feast_push", out.vectors, FeastPushSink(feast_config, settings))
    return flow
