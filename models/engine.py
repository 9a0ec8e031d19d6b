"""One instrument's models stage: delayed labels, test-then-train learning, scores, drift, strategies.

:class:`InstrumentModels` takes the instrument's feature vectors in event order. For each vector
at bar end ``t`` it, in this order:

1. refuses the vector (a :class:`RejectedVector`, never an exception) if its schema version is not
   the one the models were built for, its key is not the instrument's, its time is naive or not
   after the previous vector's, or its timeframe is unreadable;
2. labels every earlier bar whose horizon has passed (``ts_pending + H * timeframe <= t``) with the
   close known at ``t`` (the last traded close for an empty bar), and lets each model score the
   probability it gave *for that bar, before it knew the label*, then learn the label; a drift
   detector watches each model's squared error;
3. predicts bar ``t`` with every model and stores the inputs and probabilities until bar ``t + H``;
4. runs the strategies on the vector and the active model's prediction.

So a label is learned only once it exists, and nothing at or before ``t`` depends on anything
after ``t`` (the no-look-ahead test alters every later price and checks). If the vector of
``t + H`` is missing (a gap), the bar is labelled by the first vector after it.

The whole object is plain data and pickles (Bytewax snapshots it); a restored copy continues
exactly as the original would have.

>>> from datetime import UTC, datetime, timedelta
>>> from features.schema import FeatureVector
>>> cfg = ModelsConfig(models=("majority",), horizon=1, dead_zone=0.0, scores_every=2)
>>> im = InstrumentModels("binance:BTC/USDT", cfg)
>>> t0 = datetime(2021, 5, 1, tzinfo=UTC)
>>> def vec(i, close):
...     return FeatureVector("binance:BTC/USDT", "1m", t0 + timedelta(minutes=i + 1), t0 + timedelta(minutes=i),
...                          {"bar_close": close, "bar_empty": False})
>>> out = [im.update(vec(i, c)) for i, c in enumerate([100.0, 101.0, 102.0, 101.0])]
>>> [round(o.p_up, 3) for batch in out for o in batch if isinstance(o, Prediction)]
[0.5, 0.667, 0.75, 0.6]
>>> [r.n_labels for batch in out for r in batch if isinstance(r, ScoreRecord)]
[2]
"""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from river import base

from core.errors import QuarantineRecord
from core.orders import Signal
from core.symbols import timeframe_seconds
from features.schema import SCHEMA_VERSION, FeatureVector
from models.catalog import CatalogEntry, RiverClassifier, entry
from models.config import ModelsConfig
from models.inputs import model_inputs
from models.records import DriftEvent, Prediction, ScoreRecord
from models.scoring import PrequentialScores
from models.strategy import Strategy, number
from models.target import Labeler


class FeatureSchemaMismatch(QuarantineRecord):
    """A feature vector of another schema version than the model was built for.

    >>> str(FeatureSchemaMismatch("logreg:v1", 1, 2))
    'schema_version_mismatch: logreg:v1 was built for feature schema v1, got a vector of schema v2'
    """

    def __init__(self, model_version: str, expected: int, got: object) -> None:
        super().__init__(
            "schema_version_mismatch",
            f"{model_version} was built for feature schema v{expected}, got a vector of schema v{got}",
        )
        self.expected = expected
        self.got = got


@dataclass(frozen=True, slots=True)
class RejectedVector:
    """A vector the models stage refused, with a stable ``reason`` code and a ``detail`` in prose."""

    key: str
    reason: str
    detail: str
    vector: object  # the refused input: a FeatureVector, or whatever arrived in its place


#: Everything :meth:`InstrumentModels.update` can emit.
ModelsOutput = Prediction | ScoreRecord | DriftEvent | Signal | RejectedVector


def _detector(config: ModelsConfig) -> base.DriftDetector | None:
    # river.drift imports scipy.stats and River's datasets (seconds): only when a model has a detector.
    from river import drift

    if config.drift_detector == "adwin":
        return drift.ADWIN(delta=config.drift_delta)  # type: ignore[no-untyped-call]
    if config.drift_detector == "page_hinkley":
        return drift.PageHinkley(mode="up")
    return None


class ModelSlot:
    """One catalog model on one instrument: the River model, its scores and its drift detector.

    The slot carries the catalog version and the feature schema version it was built for;
    :meth:`check` refuses a vector of another schema version.

    >>> slot = ModelSlot(entry("majority"), ModelsConfig())
    >>> slot.model_version, slot.schema_version, slot.predict({})
    ('majority:v1', 1, 0.5)
    """

    def __init__(self, catalog_entry: CatalogEntry, config: ModelsConfig, schema_version: int = SCHEMA_VERSION):
        self.entry = catalog_entry
        self.name = catalog_entry.name
        self.model_version = catalog_entry.model_version
        self.schema_version = schema_version
        self._config = config
        self.model: RiverClassifier = catalog_entry.build()
        self.detector = _detector(config)
        self.scores = PrequentialScores(config.rolling_window)
        self.labels_since_reset = 0
        self.resets = 0

    def check(self, vector: FeatureVector) -> None:
        """Raise :class:`FeatureSchemaMismatch` unless ``vector`` has this model's schema version."""
        if vector.schema_version != self.schema_version:
            raise FeatureSchemaMismatch(self.model_version, self.schema_version, vector.schema_version)

    def predict(self, x: dict[str, float]) -> float:
        """P(up) for inputs ``x``; 0.5 while the model knows nothing (River returns no classes yet)."""
        proba = self.model.predict_proba_one(x)
        if not proba:
            return 0.5
        p = float(proba.get(True, 0.0))
        total = float(sum(proba.values()))
        # Trees can return unnormalised votes; a total of 0 (or NaN) is left for the caller to refuse.
        return p / total if total > 0 and abs(total - 1.0) > 1e-9 else p

    def learn(self, x: dict[str, float], y: bool, p: float) -> bool:
        """Score ``p`` against ``y``, learn ``(x, y)``; True when the drift detector fires."""
        self.scores.update(p, y)
        self.model.learn_one(x, y)
        self.labels_since_reset += 1
        if self.detector is None:
            return False
        self.detector.update((p - (1.0 if y else 0.0)) ** 2)
        return bool(self.detector.drift_detected)

    def reset(self) -> None:
        """Start the model (and its detector) over; the scores keep running across resets."""
        self.model = self.entry.build()
        self.detector = _detector(self._config)
        self.labels_since_reset = 0
        self.resets += 1

    def score_record(self, key: str, ts_event: datetime) -> ScoreRecord:
        """This slot's cumulative and rolling scores as of ``ts_event``."""
        s = self.scores
        return ScoreRecord(
            self.name, self.model_version, key, ts_event, s.n, s.window,
            s.log_loss(), s.roc_auc(), s.accuracy(), s.brier(),
            s.rolling_log_loss(), s.rolling_roc_auc(), s.rolling_accuracy(), s.rolling_brier(),
        )  # fmt: skip


class _Pending:
    """A predicted bar awaiting its label: when it is due, its close, inputs and each model's p."""

    __slots__ = ("close", "due", "probs", "ts_event", "x")

    def __init__(self, ts_event: datetime, due: datetime, close: float, x: dict[str, float], probs: list[float | None]):
        self.ts_event = ts_event
        self.due = due
        self.close = close
        self.x = x
        self.probs = probs


class InstrumentModels:
    """The models stage for one instrument (see the module docstring for the order of work)."""

    def __init__(
        self,
        key: str,
        config: ModelsConfig,
        strategies: Sequence[Strategy] = (),
        schema_version: int = SCHEMA_VERSION,
    ) -> None:
        self.key = key
        self.config = config
        self.schema_version = schema_version
        self.slots = [ModelSlot(entry(name), config, schema_version) for name in config.models]
        self.strategies = list(strategies)
        self.labeler = Labeler(config)
        self._primary = config.models.index(config.primary_model) if config.primary_model else None
        self._fallback = config.models.index(config.fallback) if config.fallback else None
        self.on_fallback = False
        self._pending: deque[_Pending] = deque()
        self._last_ts: datetime | None = None
        self._last_close: float | None = None
        self._step_cache: tuple[str, timedelta] | None = None
        self.labels_skipped = 0

    # -- lifecycle helpers --------------------------------------------------------------------------

    def on_position(self, strategy: str, is_long: bool, entry_price: float | None = None) -> None:
        """Tell strategy ``strategy`` its real position on this instrument (the gate may have denied)."""
        for s in self.strategies:
            if s.name == strategy:
                s.on_position(self.key, is_long, entry_price)

    def scores(self, ts_event: datetime) -> list[ScoreRecord]:
        """Every model's current scores, stamped ``ts_event``."""
        return [slot.score_record(self.key, ts_event) for slot in self.slots]

    @property
    def has_seen_vectors(self) -> bool:
        """Whether a live vector has been accepted (warm start must come before)."""
        return self._last_ts is not None

    @property
    def active(self) -> ModelSlot | None:
        """The slot whose predictions the strategies get (primary, or fallback after a drift)."""
        index = self._fallback if self.on_fallback else self._primary
        return None if index is None else self.slots[index]

    # -- the step -----------------------------------------------------------------------------------

    def _refusal(self, vector: FeatureVector) -> RejectedVector | None:
        if not isinstance(vector, FeatureVector) or not isinstance(vector.values, Mapping):
            return RejectedVector(
                self.key,
                "malformed_vector",
                f"expected a FeatureVector with a mapping of values, got {type(vector).__name__}",
                vector,
            )
        try:
            for slot in self.slots:
                slot.check(vector)
            if vector.schema_version != self.schema_version:
                raise FeatureSchemaMismatch(f"the strategies of {self.key}", self.schema_version, vector.schema_version)
        except FeatureSchemaMismatch as exc:
            return RejectedVector(self.key, exc.reason, exc.detail, vector)
        if vector.key != self.key:
            return RejectedVector(self.key, "wrong_key", f"vector of {vector.key!r} sent to {self.key!r}", vector)
        ts = vector.ts_event
        if not isinstance(ts, datetime) or ts.utcoffset() != timedelta(0):
            return RejectedVector(self.key, "naive_timestamp", f"ts_event {ts!r} is not aware UTC", vector)
        if self._last_ts is not None and ts <= self._last_ts:
            return RejectedVector(
                self.key, "stale_vector", f"ts_event {ts.isoformat()} is not after {self._last_ts.isoformat()}", vector
            )
        return None

    def _step(self, timeframe: str) -> timedelta:
        cached = self._step_cache
        if cached is not None and cached[0] == timeframe:
            return cached[1]
        step = timedelta(seconds=timeframe_seconds(timeframe) * self.config.horizon)
        self._step_cache = (timeframe, step)
        return step

    def update(self, vector: FeatureVector) -> list[ModelsOutput]:
        """Everything the stage emits for one vector: predictions, scores, drift, signals, or a refusal."""
        refusal = self._refusal(vector)
        if refusal is not None:
            return [refusal]
        try:
            step = self._step(vector.timeframe)
        except (ValueError, TypeError) as exc:
            return [RejectedVector(self.key, "bad_timeframe", str(exc), vector)]
        ts = vector.ts_event
        self._last_ts = ts
        out: list[ModelsOutput] = []
        prediction: Prediction | None = None
        if self.slots:
            prediction = self._models_step(vector, ts, step, out)
        for strategy in self.strategies:
            signal = strategy.on_features(vector, prediction)
            if signal is not None:
                out.append(signal)
        return out

    def _models_step(
        self, vector: FeatureVector, ts: datetime, step: timedelta, out: list[ModelsOutput]
    ) -> Prediction | None:
        close = number(vector.values, "bar_close")
        if close is not None and close > 0.0:
            self._last_close = close
        ref_close = self._last_close
        pending = self._pending
        while pending and pending[0].due <= ts and ref_close is not None:
            self._learn(pending.popleft(), ref_close, ts, out)
        x = model_inputs(vector.values)
        probs: list[float | None] = []
        active = self.active
        chosen: Prediction | None = None
        for slot in self.slots:
            try:
                p = slot.predict(x)
            except (ArithmeticError, ValueError) as exc:  # a River model's numerics, e.g. an overflow
                p, failure = math.nan, f"{type(exc).__name__}: {exc}"
            else:
                failure = f"p={p!r}"
            if not (0.0 <= p <= 1.0):  # also catches NaN
                out.append(
                    RejectedVector(
                        self.key, "model_output_invalid", f"{slot.model_version} gave {failure}; model reset", vector
                    )
                )
                slot.reset()
                probs.append(None)
                continue
            probs.append(p)
            pred = Prediction(
                slot.name, slot.model_version, self.key, ts, p, self.config.horizon, vector.schema_version
            )
            out.append(pred)
            if slot is active:
                chosen = pred
        if ref_close is not None:
            pending.append(_Pending(ts, ts + step, ref_close, x, probs))
        return chosen

    def _learn(self, done: _Pending, close_now: float, ts: datetime, out: list[ModelsOutput]) -> None:
        label = self.labeler.label(done.close, close_now)
        if label is None:
            self.labels_skipped += 1
            return
        every = self.config.scores_every
        for index, slot in enumerate(self.slots):
            p = done.probs[index]
            if p is None:
                continue
            try:
                fired = slot.learn(done.x, label, p)
            except (ArithmeticError, ValueError) as exc:  # a River model's numerics, e.g. an overflow
                slot.reset()
                out.append(
                    DriftEvent(
                        slot.name, slot.model_version, self.key, ts, "model_error", slot.scores.n, "reset",
                        f"learning raised {type(exc).__name__}: {exc}; model reset",
                    )
                )  # fmt: skip
                continue
            if slot.scores.n % every == 0:
                out.append(slot.score_record(self.key, ts))
            if fired:
                out.append(self._on_drift(index, slot, ts))
        if self.on_fallback and self._primary is not None:
            primary = self.slots[self._primary]
            if primary.labels_since_reset >= self.config.fallback_min_labels:
                self.on_fallback = False
                out.append(
                    DriftEvent(
                        primary.name, primary.model_version, self.key, ts, self.config.drift_detector,
                        primary.scores.n, "restored",
                        f"{primary.model_version} learned {primary.labels_since_reset} labels since its reset; "
                        "strategies get its predictions again",
                    )
                )  # fmt: skip

    def _on_drift(self, index: int, slot: ModelSlot, ts: datetime) -> DriftEvent:
        action = self.config.drift_action
        detail = f"{self.config.drift_detector} fired on the squared error after {slot.labels_since_reset} labels"
        if action == "fallback" and index == self._primary and self._fallback is not None:
            slot.reset()
            self.on_fallback = True
            detail += f"; model reset, strategies get {self.slots[self._fallback].model_version} meanwhile"
        elif action in ("reset", "fallback"):
            slot.reset()
            action = "reset"
            detail += "; model reset"
        return DriftEvent(
            slot.name, slot.model_version, self.key, ts, self.config.drift_detector, slot.scores.n, action, detail
        )


def finite_or_none(value: float | None) -> float | None:
    """``value`` if it is a finite float, else ``None`` (for writing scores to a database).

    >>> finite_or_none(float("nan")), finite_or_none(0.5)
    (None, 0.5)
    """
    return value if value is not None and math.isfinite(value) else None
