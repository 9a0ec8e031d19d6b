"""The models stage as a Bytewax step, and the standalone models flow ``features.v1`` -> ``signals.v1``.

:func:`run_models` keeps one :class:`models.engine.InstrumentModels` per instrument key in a
``stateful_batch`` step: the catalog models with their delayed labels, prequential scores and drift
detectors, and the strategies. Its recovery snapshot is the pickled engine (a fresh copy on every
call), so a flow killed mid-stream resumes with exactly the models, pending labels, scores and
strategy positions of its last snapshot.

:func:`models_flow` runs it on its own: ``features.v1`` (decoded by
:func:`flows.features.decode_feature_vector`) -> signals on ``signals.v1``, scores and drift events
to PostgreSQL (``model_scores``, ``model_drift_events``, sql/0006), undecodable or refused vectors
to ``dlq.v1``. Delivery is at-least-once: the tables are keyed naturally, signals carry their bar
time so a consumer can drop repeats.

Prometheus (bounded labels ``model`` and ``symbol``): ``bot4_model_{log_loss, roc_auc, accuracy,
brier}`` and their ``bot4_model_rolling_*`` twins as of the last score record,
``bot4_model_labels`` (labels scored), ``bot4_model_predictions_total`` and
``bot4_model_drift_events_total``.

Wire format of ``signals.v1`` (version 1), times as integer microseconds since the epoch (UTC)::

    {"type": "signal", "v": 1, "strategy": "ema_cross_rsi", "account": "paper", "exchange": "binance",
     "symbol": "BTC/USDT", "side": "buy", "strength": 1.0, "confidence": 1.0,
     "reasons": ["ema_cross_up", "rsi_below_max"], "model_version": "rule:ema_cross_rsi:v1",
     "ts_event": 1620000060000000}
"""

from __future__ import annotations

import logging
import pickle
from collections import Counter as Tally
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from functools import partial
from typing import Any

import bytewax.operators as op
import orjson
from bytewax.dataflow import Dataflow, Stream, operator
from bytewax.inputs import Source
from bytewax.operators import StatefulBatchLogic
from prometheus_client import Counter, Gauge

from core.clock import Clock, SystemClock, from_epoch_us, to_epoch_us
from core.deadletter import DLQ_TOPIC, DeadLetter
from core.errors import WireFormatError
from core.events import Side
from core.orders import Signal
from features.schema import FeatureVector
from flows.dlq import Inbound, dead_letter, to_kafka
from flows.features import FEATURES_TOPIC, decode_feature_vector, encode_feature_vector
from flows.kafka_io import CheckedKafkaSink, InboundKafkaSource, OutMessage
from flows.metrics import DEAD_LETTERS, EVENTS
from flows.pg_sink import RowsSink, Target, connected
from flows.settings import Bot4Settings, load_settings
from models.config import ModelsConfig
from models.engine import InstrumentModels, ModelsOutput, RejectedVector, finite_or_none
from models.records import DriftEvent, Prediction, ScoreRecord
from models.strategy import EmaCrossRsi, ModelStrategy, Strategy

__all__ = [
    "SIGNALS_TOPIC",
    "ModelsConfig",
    "ModelsOut",
    "decode_signal",
    "default_strategies",
    "encode_signal",
    "models_flow",
    "run_models",
]

log = logging.getLogger(__name__)

STAGE = "models"
SIGNALS_TOPIC = "signals.v1"
SIGNAL_WIRE_VERSION = 1

_SCORE_FIELDS = ("log_loss", "roc_auc", "accuracy", "brier")
SCORE_GAUGES: dict[str, Gauge] = {
    **{
        f: Gauge(
            f"bot4_model_{f}", f"Prequential {f} of the model since it started, per instrument.", ["model", "symbol"]
        )
        for f in _SCORE_FIELDS
    },
    **{
        f"rolling_{f}": Gauge(
            f"bot4_model_rolling_{f}",
            f"Prequential {f} of the model over its last rolling window of labels, per instrument.",
            ["model", "symbol"],
        )
        for f in _SCORE_FIELDS
    },
}
LABELS = Gauge("bot4_model_labels", "Labels the model has been scored on, per instrument.", ["model", "symbol"])
PREDICTIONS = Counter(
    "bot4_model_predictions_total", "Predictions made, per model and instrument.", ["model", "symbol"]
)
DRIFTS = Counter(
    "bot4_model_drift_events_total",
    "Drift events (detector firings and primary restorations), per model and instrument.",
    ["model", "symbol"],
)


# -- signals.v1 wire format --------------------------------------------------------------------------


def encode_signal(signal: Signal) -> bytes:
    """One signal as its ``signals.v1`` bytes (deterministic: the same signal gives equal bytes)."""
    return orjson.dumps(
        {
            "type": "signal",
            "v": SIGNAL_WIRE_VERSION,
            "strategy": signal.strategy,
            "account": signal.account,
            "exchange": signal.exchange,
            "symbol": signal.symbol,
            "side": signal.side.value,
            "strength": signal.strength,
            "confidence": signal.confidence,
            "reasons": list(signal.reasons),
            "model_version": signal.model_version,
            "ts_event": to_epoch_us(signal.ts_event),
        }
    )


def decode_signal(data: bytes) -> Signal:
    """Read ``signals.v1`` bytes back; anything else is a :class:`~core.errors.WireFormatError`.

    >>> s = Signal("ema_cross_rsi", "paper", "binance", "BTC/USDT", Side.BUY, 1.0, 0.75, ("ema_cross_up",),
    ...            "rule:ema_cross_rsi:v1", from_epoch_us(1_620_000_060_000_000))
    >>> decode_signal(encode_signal(s)) == s
    True
    >>> decode_signal(b'{"type": "signal", "v": 2}')
    Traceback (most recent call last):
    ...
    core.errors.WireFormatError: unknown_signal_wire: type 'signal' v 2 is not signal v1
    """
    try:
        obj = orjson.loads(data)
        if not isinstance(obj, dict) or obj.get("type") != "signal" or obj.get("v") != SIGNAL_WIRE_VERSION:
            got = (obj.get("type"), obj.get("v")) if isinstance(obj, dict) else (type(obj).__name__, None)
            raise WireFormatError("unknown_signal_wire", f"type {got[0]!r} v {got[1]!r} is not signal v1")
        reasons = obj["reasons"]
        if not isinstance(reasons, list) or not all(isinstance(r, str) for r in reasons):
            raise WireFormatError("malformed_signal", f"reasons {reasons!r} is not a list of strings")
        return Signal(
            strategy=obj["strategy"],
            account=obj["account"],
            exchange=obj["exchange"],
            symbol=obj["symbol"],
            side=Side(obj["side"]),
            strength=obj["strength"],
            confidence=obj["confidence"],
            reasons=tuple(reasons),
            model_version=obj["model_version"],
            ts_event=from_epoch_us(obj["ts_event"]),
        )
    except (orjson.JSONDecodeError, KeyError, TypeError, ValueError, OverflowError) as exc:
        if isinstance(exc, WireFormatError):
            raise
        raise WireFormatError("malformed_signal", f"not a signals.v1 record: {exc!r}") from None


# -- the step ----------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ModelsOut:
    """The streams of :func:`run_models`.

    ``signals``: the strategies' signals; ``predictions``: one per configured model and bar;
    ``scores``: prequential scores every ``scores_every`` labels per model; ``drift``: drift
    detector firings and what was done; ``rejects``: refused vectors as dead letters.
    """

    signals: Stream[Signal]
    predictions: Stream[Prediction]
    scores: Stream[ScoreRecord]
    drift: Stream[DriftEvent]
    rejects: Stream[DeadLetter]


class InstrumentModelsLogic(StatefulBatchLogic[FeatureVector, ModelsOutput, bytes]):
    """One instrument's :class:`InstrumentModels` inside ``stateful_batch``.

    Lifecycle: the engine is created on the key's first vector (Bytewax does not pass the key to the
    builder), warm-started from ``warm_frames[key]`` if given, or restored from the snapshot after
    a restart; it is retained for the life of the flow. ``snapshot`` pickles the engine, a fresh
    copy on every call, so later mutation cannot leak into a stored snapshot.
    """

    def __init__(
        self,
        config: ModelsConfig,
        strategies_factory: Callable[[], Sequence[Strategy]],
        warm_frames: Mapping[str, Any] | None,
        resume: bytes | None,
    ) -> None:
        self._config = config
        self._strategies_factory = strategies_factory
        self._warm_frames = warm_frames
        self.engine: InstrumentModels | None = pickle.loads(resume) if resume is not None else None

    def _engine_for(self, key: str) -> InstrumentModels:
        engine = InstrumentModels(key, self._config, self._strategies_factory())
        frame = self._warm_frames.get(key) if self._warm_frames else None
        if frame is not None:
            from models.warm import warm_start  # pandas loads only when a warm start is asked for

            learned = warm_start(engine, frame)
            log.info("warm start of %s: %d labels learned from %d rows", key, learned, len(frame))
        return engine

    def on_batch(self, values: list[FeatureVector]) -> tuple[list[ModelsOutput], bool]:
        engine = self.engine
        if engine is None:
            first = next((v for v in values if isinstance(v, FeatureVector) and isinstance(v.key, str)), None)
            if first is None:  # nothing usable yet: refuse the batch, build the engine on a real vector
                detail = "expected a FeatureVector with an instrument key before the engine exists"
                return [RejectedVector("unknown", "malformed_vector", detail, v) for v in values], self.RETAIN
            engine = self.engine = self._engine_for(first.key)
        update = engine.update
        out: list[ModelsOutput] = []
        for vector in values:
            out.extend(update(vector))
        return out, StatefulBatchLogic.RETAIN

    def snapshot(self) -> bytes:
        return pickle.dumps(self.engine, protocol=pickle.HIGHEST_PROTOCOL)


def _signals(batch: list[tuple[str, ModelsOutput]]) -> list[Signal]:
    return [o for _, o in batch if isinstance(o, Signal)]


def _predictions(batch: list[tuple[str, ModelsOutput]]) -> list[Prediction]:
    out = [o for _, o in batch if isinstance(o, Prediction)]
    if out:
        for (model, key), n in Tally((p.model, p.key) for p in out).items():
            PREDICTIONS.labels(model, key).inc(n)
    return out


def _scores(batch: list[tuple[str, ModelsOutput]]) -> list[ScoreRecord]:
    out = [o for _, o in batch if isinstance(o, ScoreRecord)]
    for record in out:
        for field, gauge in SCORE_GAUGES.items():
            value = finite_or_none(getattr(record, field))
            if value is not None:
                gauge.labels(record.model, record.key).set(value)
        LABELS.labels(record.model, record.key).set(record.n_labels)
    return out


def _drift(batch: list[tuple[str, ModelsOutput]]) -> list[DriftEvent]:
    out = [o for _, o in batch if isinstance(o, DriftEvent)]
    for event in out:
        DRIFTS.labels(event.model, event.key).inc()
        log.warning("model drift on %s: %s %s (%s)", event.key, event.model_version, event.action, event.detail)
    return out


def _original_bytes(item: object) -> bytes:
    if isinstance(item, FeatureVector):
        try:
            return encode_feature_vector(item)
        except (TypeError, ValueError, OverflowError, orjson.JSONEncodeError):
            pass  # values orjson cannot write: fall back to the repr below
    return repr(item).encode("utf-8", "replace")


def rejects_to_dead_letters(batch: list[RejectedVector], topic: str, clock: Clock) -> list[DeadLetter]:
    """Refused vectors as dead letters citing the vector's ``features.v1`` bytes, counted by reason."""
    out: list[DeadLetter] = []
    for reject in batch:
        DEAD_LETTERS.labels(STAGE, reject.reason).inc()
        EVENTS.labels(STAGE, "dead_letter").inc()
        out.append(
            DeadLetter(
                stage=STAGE,
                reason=reject.reason,
                detail=reject.detail,
                original=_original_bytes(reject.vector),
                ts_recv=clock.now(),
                source_topic=topic,
                key=reject.key.encode(),
            )
        )
    return out


@operator
def run_models(
    step_id: str,
    vectors: Stream[tuple[str, FeatureVector]],
    config: ModelsConfig,
    strategies_factory: Callable[[], Sequence[Strategy]],
    *,
    warm_frames: Mapping[str, Any] | None = None,
    clock: Clock | None = None,
    source_topic: str = FEATURES_TOPIC,
) -> ModelsOut:
    """Models and strategies per instrument key, with recovery.

    ``vectors`` must be keyed by instrument (``exchange:SYMBOL``) so each key's vectors reach its
    engine in event order. ``strategies_factory`` builds a fresh set of strategies for each key.
    ``warm_frames`` maps a key to a point-in-time training frame (see :mod:`models.warm`) learned
    before the key's first vector. ``clock`` stamps dead letters' ``ts_recv``; ``source_topic`` is
    the topic the dead letters cite.
    """
    clock = clock or SystemClock()

    def build(resume: bytes | None) -> InstrumentModelsLogic:
        return InstrumentModelsLogic(config, strategies_factory, warm_frames, resume)

    outs = op.stateful_batch("engine", vectors, build)
    rejected = op.flat_map_batch("rejected", outs, lambda b: [o for _, o in b if isinstance(o, RejectedVector)])
    return ModelsOut(
        signals=op.flat_map_batch("signals", outs, _signals),
        predictions=op.flat_map_batch("predictions", outs, _predictions),
        scores=op.flat_map_batch("scores", outs, _scores),
        drift=op.flat_map_batch("drift", outs, _drift),
        rejects=op.flat_map_batch("dead_letters", rejected, lambda b: rejects_to_dead_letters(b, source_topic, clock)),
    )


# -- PostgreSQL sinks --------------------------------------------------------------------------------

_SCORE_SQL = (
    "INSERT INTO model_scores (model, model_version, symbol, ts_event, n_labels, window_size, log_loss, roc_auc, "
    "accuracy, brier, rolling_log_loss, rolling_roc_auc, rolling_accuracy, rolling_brier) "
    "VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s) ON CONFLICT DO NOTHING"
)
_DRIFT_SQL = (
    "INSERT INTO model_drift_events (model, model_version, symbol, ts_event, detector, n_labels, action, detail) "
    "VALUES (%s, %s, %s, %s, %s, %s, %s, %s) ON CONFLICT DO NOTHING"
)


def score_row(r: ScoreRecord) -> tuple[Any, ...]:
    """The ``model_scores`` row of a score record (non-finite scores stored as NULL)."""
    f = finite_or_none
    return (
        r.model, r.model_version, r.key, r.ts_event, r.n_labels, r.window,
        f(r.log_loss), f(r.roc_auc), f(r.accuracy), f(r.brier),
        f(r.rolling_log_loss), f(r.rolling_roc_auc), f(r.rolling_accuracy), f(r.rolling_brier),
    )  # fmt: skip


def drift_row(e: DriftEvent) -> tuple[Any, ...]:
    """The ``model_drift_events`` row of a drift event."""
    return (e.model, e.model_version, e.key, e.ts_event, e.detector, e.n_labels, e.action, e.detail)


def write_scores(target: Target, scores: Sequence[ScoreRecord]) -> None:
    """``model_scores`` rows, idempotently (natural key; a replay adds nothing)."""
    with connected(target) as conn, conn.cursor() as cur:
        cur.executemany(_SCORE_SQL, [score_row(s) for s in scores])


def write_drift(target: Target, events: Sequence[DriftEvent]) -> None:
    """``model_drift_events`` rows, idempotently."""
    with connected(target) as conn, conn.cursor() as cur:
        cur.executemany(_DRIFT_SQL, [drift_row(e) for e in events])


# -- the standalone flow -----------------------------------------------------------------------------


def decode_vectors(batch: list[Inbound | DeadLetter], clock: Clock) -> list[tuple[str, FeatureVector] | DeadLetter]:
    """Decode ``features.v1`` records into keyed vectors; an undecodable record becomes a dead letter."""
    out: list[tuple[str, FeatureVector] | DeadLetter] = []
    for item in batch:
        if isinstance(item, DeadLetter):
            out.append(item)
            continue
        try:
            vector = decode_feature_vector(item.value)
        except WireFormatError as exc:
            out.append(dead_letter(STAGE, exc.reason, exc.detail, item, clock))
            continue
        out.append((vector.key, vector))
    return out


def default_strategies(account: str) -> Callable[[], list[Strategy]]:
    """Factory of the two built-in strategies side by side: the EMA cross rule and the model fusion.

    >>> [s.name for s in default_strategies("paper")()]
    ['ema_cross_rsi', 'model_fusion']
    """
    return partial(_both_strategies, account)


def _both_strategies(account: str) -> list[Strategy]:
    return [EmaCrossRsi(account), ModelStrategy(account)]


def models_flow(
    settings: Bot4Settings | None = None,
    *,
    config: ModelsConfig | None = None,
    strategies_factory: Callable[[], Sequence[Strategy]] | None = None,
    account: str = "paper",
    tail: bool = True,
    clock: Clock | None = None,
    batch_size: int = 5000,
    source: Source[Inbound | DeadLetter] | None = None,
) -> Dataflow:
    """Build the standalone models dataflow (``features.v1`` -> ``signals.v1``, scores, drift, DLQ).

    ``config`` defaults to :class:`ModelsConfig` defaults; ``strategies_factory`` to
    :func:`default_strategies` for ``account``. ``tail=False`` stops at the end of every partition
    (drain). ``source`` replaces the Kafka input with any source of :class:`Inbound` records (tests
    use it to abort mid-stream).
    """
    settings = settings or load_settings()
    clock = clock or SystemClock()
    config = config or ModelsConfig()
    factory = strategies_factory or default_strategies(account)
    features_topic = settings.kafka.topic(FEATURES_TOPIC)
    signals_topic = settings.kafka.topic(SIGNALS_TOPIC)
    dlq_topic = settings.kafka.topic(DLQ_TOPIC)
    flow = Dataflow("bot4_models")
    if source is None:
        source = InboundKafkaSource(settings.kafka, [features_topic], tail=tail, batch_size=batch_size, clock=clock)
    inbound = op.input("features_in", flow, source)
    decoded = op.flat_map_batch("decode", inbound, lambda b: decode_vectors(b, clock))
    vectors = op.flat_map_batch("vectors", decoded, lambda b: [x for x in b if not isinstance(x, DeadLetter)])
    out = run_models("models", vectors, config, factory, clock=clock, source_topic=features_topic)

    def signal_messages(batch: list[Signal]) -> list[OutMessage]:
        EVENTS.labels(STAGE, "ok").inc(len(batch))
        return [OutMessage(signals_topic, s.key.encode(), encode_signal(s)) for s in batch]

    letters: Stream[DeadLetter] = op.merge(
        "dead_letters",
        op.flat_map_batch("decode_refusals", decoded, lambda b: [x for x in b if isinstance(x, DeadLetter)]),
        out.rejects,
    )
    messages = op.merge(
        "to_kafka",
        op.flat_map_batch("encode_signals", out.signals, signal_messages),
        op.flat_map_batch("encode_dead_letters", letters, lambda b: [OutMessage(*to_kafka(x, dlq_topic)) for x in b]),
    )
    op.output("kafka_out", messages, CheckedKafkaSink(settings.kafka))
    conninfo = settings.postgres.conninfo()
    op.output("model_scores", out.scores, RowsSink(conninfo, write_scores))
    op.output("model_drift", out.drift, RowsSink(conninfo, write_drift))
    return flow
