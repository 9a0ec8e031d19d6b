"""What the models stage emits besides signals: predictions, prequential scores and drift events.

All three are frozen, picklable and carry the instrument ``key`` ("exchange:SYMBOL"), the model's
catalog name and version, and ``ts_event`` (the bar end the record is about), aware UTC.

>>> from datetime import UTC, datetime
>>> p = Prediction("logreg", "logreg:v1", "binance:BTC/USDT", datetime(2021, 5, 1, tzinfo=UTC), 0.6, 5, 1)
>>> round(p.edge, 3)
0.1
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime


@dataclass(frozen=True, slots=True)
class Prediction:
    """A model's probability that the target is positive (price "up"), made at bar end ``ts_event``.

    ``horizon`` is the number of bars after ``ts_event`` whose close decides the label;
    ``schema_version`` is the feature schema the model was fed.
    """

    model: str
    model_version: str
    key: str
    ts_event: datetime
    p_up: float
    horizon: int
    schema_version: int

    @property
    def edge(self) -> float:
        """``p_up - 0.5``: positive when the model leans up, negative when it leans down.

        >>> from datetime import UTC, datetime
        >>> Prediction("m", "m:v1", "x:Y", datetime(2021, 1, 1, tzinfo=UTC), 0.25, 1, 1).edge
        -0.25
        """
        return self.p_up - 0.5


@dataclass(frozen=True, slots=True)
class ScoreRecord:
    """Prequential scores of one model on one instrument as of ``ts_event`` (a label's arrival).

    Cumulative scores cover every label since the model started on this instrument (drift resets
    included: they score the model *and* its reset policy);
    ``rolling_*`` cover the last ``window`` labels. A score is ``None`` while undefined (no label
    yet; ROC AUC with one class only).
    """

    model: str
    model_version: str
    key: str
    ts_event: datetime
    n_labels: int
    window: int
    log_loss: float | None
    roc_auc: float | None
    accuracy: float | None
    brier: float | None
    rolling_log_loss: float | None
    rolling_roc_auc: float | None
    rolling_accuracy: float | None
    rolling_brier: float | None


@dataclass(frozen=True, slots=True)
class DriftEvent:
    """The drift detector on a model's error stream fired at ``ts_event``.

    ``action`` is what the models stage did about it: ``"reset"`` (the model starts over),
    ``"fallback"`` (reset, and the strategies get the fallback model's predictions meanwhile),
    ``"restored"`` (the reset primary has relearned enough; strategies get it again) or ``"none"``.
    ``detector`` is ``"adwin"`` or ``"page_hinkley"``, or ``"model_error"`` when learning raised
    (a River model's numerics) and the model was reset.
    """

    model: str
    model_version: str
    key: str
    ts_event: datetime
    detector: str
    n_labels: int
    action: str
    detail: str
