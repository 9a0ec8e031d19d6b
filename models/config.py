"""Configuration of the models stage: which catalog models run, the target, scoring and drift.

>>> ModelsConfig().models
('logreg', 'majority', 'persistence', 'ta_rule')
>>> ModelsConfig(models=()).primary_model is None
True
>>> from pydantic import ValidationError
>>> try:
...     ModelsConfig(models=("logreg",), fallback="majority")
... except ValidationError as exc:
...     print(exc.errors()[0]["msg"])
Value error, fallback 'majority' must also be listed in models ('logreg',)
"""

from __future__ import annotations

from typing import Literal

from pydantic import Field, model_validator

from core.config import StrictConfig
from models.catalog import CATALOG


class ModelsConfig(StrictConfig):
    """What the models stage runs. ``models`` may be empty: then only the strategies run.

    Target ``direction``: the label of bar t is "up" when the close H bars later is more than
    ``dead_zone`` (a fraction, e.g. 0.001 = 10 bps: the round-trip fees) above the close of t; a
    move within the dead zone is skipped (``dead_zone_policy="skip"``: neither learned nor scored)
    or counted as "not up" (``"down"``). Target ``quantile``: "up" when the forward return is above
    the running ``quantile`` of the forward returns labelled before it (no dead zone).

    ``primary`` (default: the first model) is the model whose predictions the strategies get;
    after a drift with ``drift_action="fallback"`` they get ``fallback``'s until the reset primary
    has learned ``fallback_min_labels`` labels again. A ScoreRecord per model is emitted every
    ``scores_every`` labels; rolling scores cover the last ``rolling_window`` labels.
    """

    models: tuple[str, ...] = ("logreg", "majority", "persistence", "ta_rule")
    primary: str | None = None
    fallback: str | None = None
    target: Literal["direction", "quantile"] = "direction"
    horizon: int = Field(default=5, ge=1, le=10_000)
    dead_zone: float = Field(default=0.001, ge=0.0, lt=0.5)
    dead_zone_policy: Literal["skip", "down"] = "skip"
    quantile: float = Field(default=0.5, gt=0.0, lt=1.0)
    drift_detector: Literal["adwin", "page_hinkley", "none"] = "adwin"
    drift_delta: float = Field(default=0.002, gt=0.0, lt=1.0)
    drift_action: Literal["none", "reset", "fallback"] = "reset"
    fallback_min_labels: int = Field(default=500, ge=0)
    scores_every: int = Field(default=500, ge=1)
    rolling_window: int = Field(default=1000, ge=10)

    @model_validator(mode="after")
    def _consistent(self) -> ModelsConfig:
        unknown = [m for m in self.models if m not in CATALOG]
        if unknown:
            raise ValueError(f"unknown models {unknown}; the catalog has {sorted(CATALOG)}")
        if len(set(self.models)) != len(self.models):
            raise ValueError(f"models lists a name twice: {self.models}")
        if self.primary is not None and self.primary not in self.models:
            raise ValueError(f"primary {self.primary!r} must also be listed in models {self.models}")
        if self.fallback is not None:
            if self.fallback not in self.models:
                raise ValueError(f"fallback {self.fallback!r} must also be listed in models {self.models}")
            if self.fallback == self.primary_model:
                raise ValueError(f"fallback {self.fallback!r} must differ from the primary model")
        if self.drift_action == "fallback" and self.fallback is None:
            raise ValueError("drift_action 'fallback' needs a fallback model")
        return self

    @property
    def primary_model(self) -> str | None:
        """The model whose predictions the strategies get (``primary``, else the first model, else None)."""
        if self.primary is not None:
            return self.primary
        return self.models[0] if self.models else None
