"""Labels: what "up" means for a bar, decided only when the bar H bars later has closed.

>>> t = Labeler(ModelsConfig(horizon=1, dead_zone=0.001))
>>> t.label(100.0, 100.2), t.label(100.0, 100.05), t.label(100.0, 99.0)
(True, None, False)
>>> Labeler(ModelsConfig(dead_zone=0.001, dead_zone_policy="down")).label(100.0, 100.05)
False
"""

from __future__ import annotations

from river import stats

from models.config import ModelsConfig

#: A quantile target uses 0 as its threshold until this many forward returns have been seen.
QUANTILE_MIN_HISTORY = 30


class Labeler:
    """Turns (close at t, close at t + H) into a label: ``True`` (up), ``False``, or ``None`` (skip).

    The ``quantile`` target keeps a running P-squared quantile (``river.stats.Quantile``) of the
    forward returns labelled so far and compares each new return against the estimate *before*
    adding it, so a label depends on no later return. Plain data: pickles and resumes exactly.

    >>> q = Labeler(ModelsConfig(target="quantile", quantile=0.5))
    >>> [q.label(100.0, 100.0 + r) for r in (1.0, -1.0)]
    [True, False]
    """

    def __init__(self, config: ModelsConfig) -> None:
        self.kind = config.target
        self.dead_zone = config.dead_zone
        self.skip_dead_zone = config.dead_zone_policy == "skip"
        self.quantile = stats.Quantile(config.quantile) if config.target == "quantile" else None
        self.seen = 0

    def label(self, close_then: float, close_now: float) -> bool | None:
        """The label of a bar that closed at ``close_then`` given the close ``close_now`` H bars later."""
        forward = close_now / close_then - 1.0
        if self.quantile is None:
            if abs(forward) <= self.dead_zone and self.skip_dead_zone:
                return None
            return forward > self.dead_zone
        threshold = self.quantile.get() if self.seen >= QUANTILE_MIN_HISTORY else 0.0
        self.quantile.update(forward)
        self.seen += 1
        return forward > (threshold if threshold is not None else 0.0)
