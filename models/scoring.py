"""Prequential (test-then-train) scores of a probabilistic binary classifier, cumulative and rolling.

Each label arrives with the probability the model gave *before* it learned that label, so every
score is out of sample. Log loss clips probabilities to [1e-15, 1 - 1e-15] (as River's
``metrics.LogLoss``); accuracy predicts "up" when p > 0.5; Brier is the mean of (p - y)^2.

ROC AUC is the Mann-Whitney statistic over probabilities binned into ``bins`` equal bins (pairs
in the same bin count one half). It is exact for models whose probabilities fall in distinct
bins or repeat exactly (the baselines), and within one bin's width otherwise; updates are O(1)
and can be reverted, which is what a rolling window needs. A test checks it against the exact
rank statistic on real predictions.

>>> s = PrequentialScores(window=2)
>>> for p, y in [(0.9, True), (0.2, False), (0.6, False)]:
...     s.update(p, y)
>>> s.n, round(s.accuracy(), 3), round(s.rolling_accuracy(), 3), s.roc_auc(), s.rolling_roc_auc()
(3, 0.667, 0.5, 1.0, None)
"""

from __future__ import annotations

import math
from collections import deque

_EPS = 1e-15


class BinnedAUC:
    """ROC AUC from per-bin counts of positives and negatives; ``update`` and ``revert`` are O(1).

    >>> auc = BinnedAUC()
    >>> for p, y in [(0.1, False), (0.4, False), (0.35, True), (0.8, True)]:
    ...     auc.update(p, y)
    >>> auc.get()
    0.75
    """

    __slots__ = ("bins", "neg", "pos")

    def __init__(self, bins: int = 1000) -> None:
        self.bins = bins
        self.pos = [0] * bins
        self.neg = [0] * bins

    def _bin(self, p: float) -> int:
        b = int(p * self.bins)
        return b if 0 <= b < self.bins else (0 if b < 0 else self.bins - 1)

    def update(self, p: float, y: bool) -> None:
        """Count one (probability, label) pair."""
        (self.pos if y else self.neg)[self._bin(p)] += 1

    def revert(self, p: float, y: bool) -> None:
        """Remove a pair counted earlier (the oldest of a rolling window)."""
        (self.pos if y else self.neg)[self._bin(p)] -= 1

    def get(self) -> float | None:
        """The AUC, or ``None`` while only one class has been seen."""
        n_pos, n_neg = sum(self.pos), sum(self.neg)
        if n_pos == 0 or n_neg == 0:
            return None
        below = 0
        total = 0.0
        for pos, neg in zip(self.pos, self.neg, strict=True):
            if pos:
                total += pos * (below + 0.5 * neg)
            below += neg
        return total / (n_pos * n_neg)


class PrequentialScores:
    """Cumulative and rolling log loss, ROC AUC, accuracy and Brier score of one model.

    Plain data: pickles with everything needed to continue exactly.
    """

    def __init__(self, window: int = 1000, auc_bins: int = 1000) -> None:
        self.window = window
        self.n = 0
        self._log_loss = 0.0
        self._correct = 0
        self._brier = 0.0
        self._auc = BinnedAUC(auc_bins)
        self._recent: deque[tuple[float, bool, float, int, float]] = deque()
        self._r_log_loss = 0.0
        self._r_correct = 0
        self._r_brier = 0.0
        self._r_auc = BinnedAUC(auc_bins)

    def update(self, p: float, y: bool) -> None:
        """Score probability ``p`` (of "up", given before the label was known) against label ``y``."""
        q = 1.0 - _EPS if p > 1.0 - _EPS else _EPS if p < _EPS else p
        loss = -math.log(q) if y else -math.log(1.0 - q)
        correct = 1 if (p > 0.5) == y else 0
        sq = (p - 1.0) ** 2 if y else p * p
        self.n += 1
        self._log_loss += loss
        self._correct += correct
        self._brier += sq
        self._auc.update(p, y)
        self._recent.append((p, y, loss, correct, sq))
        self._r_log_loss += loss
        self._r_correct += correct
        self._r_brier += sq
        self._r_auc.update(p, y)
        if len(self._recent) > self.window:
            old_p, old_y, old_loss, old_correct, old_sq = self._recent.popleft()
            self._r_log_loss -= old_loss
            self._r_correct -= old_correct
            self._r_brier -= old_sq
            self._r_auc.revert(old_p, old_y)

    def log_loss(self) -> float | None:
        """Mean log loss since the start, ``None`` before the first label."""
        return self._log_loss / self.n if self.n else None

    def accuracy(self) -> float | None:
        """Share of labels on the side of 0.5 the model chose."""
        return self._correct / self.n if self.n else None

    def brier(self) -> float | None:
        """Mean squared error of the probability."""
        return self._brier / self.n if self.n else None

    def roc_auc(self) -> float | None:
        """ROC AUC since the start (``None`` until both classes are seen)."""
        return self._auc.get()

    def rolling_log_loss(self) -> float | None:
        """Log loss over the last ``window`` labels."""
        k = len(self._recent)
        return self._r_log_loss / k if k else None

    def rolling_accuracy(self) -> float | None:
        """Accuracy over the last ``window`` labels."""
        k = len(self._recent)
        return self._r_correct / k if k else None

    def rolling_brier(self) -> float | None:
        """Brier score over the last ``window`` labels."""
        k = len(self._recent)
        return self._r_brier / k if k else None

    def rolling_roc_auc(self) -> float | None:
        """ROC AUC over the last ``window`` labels."""
        return self._r_auc.get()
