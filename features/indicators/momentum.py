"""Oscillators: RSI (Wilder) and the stochastic oscillator (TA-Lib definitions)."""

from __future__ import annotations

import math
from collections import deque
from typing import NamedTuple

from river import stats

from features._state import State, check_state, state_header
from features.indicators._window import check_period

#: RSI / stochastic value when the window has no movement at all (0/0). TA-Lib answers 0 there,
#: which reads as "maximally oversold" for a market that did not move; we answer the neutral 50.
NEUTRAL = 50.0


class RSI:
    """Relative strength index with Wilder's smoothing, as TA-Lib ``RSI`` (default period 14).

    Definition: the first average gain / loss is the simple mean of the first ``period``
    changes; after that ``avg = (avg * (period - 1) + change) / period`` (Wilder's RMA, i.e. an EMA
    with ``alpha = 1/period``, not ``2/(period+1)``). ``RSI = 100 * avg_gain / (avg_gain + avg_loss)``.
    The first value comes with the ``period + 1``-th input, the same bar as TA-Lib's first
    output, and is equal to it (TA-Lib's unstable period is 0 by default). Only difference: a window
    with no change at all gives :data:`NEUTRAL` (50) where TA-Lib gives 0.

    >>> rsi = RSI(2)
    >>> [rsi.update(x) for x in (1.0, 2.0, 1.5, 1.5)]
    [None, None, 66.66666666666666, 66.66666666666666]
    """

    def __init__(self, period: int = 14) -> None:
        self.period = check_period("period", period)
        self._prev: float | None = None
        self._count = 0  # changes seen while seeding
        self._gain = 0.0
        self._loss = 0.0
        self._value: float | None = None

    def update(self, x: float) -> float | None:
        prev, self._prev = self._prev, x
        if prev is None:
            return None
        change = x - prev
        n = self.period
        # The operation order mirrors TA-Lib's ta_RSI.c so the values agree to the last bits.
        if self._count < n:
            if change < 0:
                self._loss -= change
            else:
                self._gain += change
            self._count += 1
            if self._count < n:
                return None
            self._loss /= n
            self._gain /= n
        else:
            loss = self._loss * (n - 1)
            gain = self._gain * (n - 1)
            if change < 0:
                loss -= change
            else:
                gain += change
            self._loss = loss / n
            self._gain = gain / n
        total = self._gain + self._loss
        self._value = 100.0 * (self._gain / total) if total > 0.0 else NEUTRAL
        return self._value

    def get(self) -> float | None:
        return self._value

    def snapshot(self) -> State:
        state = state_header("RSI", {"period": self.period})
        state.update(prev=self._prev, count=self._count, gain=self._gain, loss=self._loss, value=self._value)
        return state

    def restore(self, state: State) -> None:
        check_state(state, "RSI", {"period": self.period})
        self._prev, self._count = state["prev"], state["count"]
        self._gain, self._loss, self._value = state["gain"], state["loss"], state["value"]


class StochValue(NamedTuple):
    """Slow stochastic: %K (SMA of fast %K) and %D (SMA of %K), both in [0, 100].

    >>> StochValue(80.0, 75.0).d
    75.0
    """

    k: float
    d: float


class Stochastic:
    """Slow stochastic oscillator as TA-Lib ``STOCH(fastk, slowk, SMA, slowd, SMA)``.

    ``fast %K = 100 * (close - lowest low) / (highest high - lowest low)`` over ``fastk`` bars
    (highest/lowest from River's ``RollingMax`` / ``RollingMin``, exact); ``%K`` is the SMA of fast
    %K over ``slowk``, ``%D`` the SMA of %K over ``slowd``. The first value comes at bar
    ``fastk + slowk + slowd - 2`` like TA-Lib's. A flat window (highest == lowest) gives a fast %K
    of :data:`NEUTRAL` where TA-Lib gives 0.

    >>> st = Stochastic(2, 1, 1)
    >>> st.update(10.0, 8.0, 9.0) is None
    True
    >>> st.update(12.0, 9.0, 11.0)
    StochValue(k=75.0, d=75.0)
    """

    def __init__(self, fastk: int = 14, slowk: int = 3, slowd: int = 3) -> None:
        self.fastk = check_period("fastk", fastk)
        self.slowk = check_period("slowk", slowk)
        self.slowd = check_period("slowd", slowd)
        self._highs = stats.RollingMax(fastk)
        self._lows = stats.RollingMin(fastk)
        self._seen = 0
        self._fast_k: deque[float] = deque(maxlen=slowk)
        self._slow_k: deque[float] = deque(maxlen=slowd)
        self._value: StochValue | None = None

    def update(self, high: float, low: float, close: float) -> StochValue | None:
        self._highs.update(high)
        self._lows.update(low)
        self._seen += 1
        if self._seen < self.fastk:
            return None
        highest = self._highs.get()
        lowest = self._lows.get()
        assert highest is not None and lowest is not None  # the windows are full
        # TA-Lib divides by (range / 100) rather than multiplying by 100: same order here.
        scaled_range = (highest - lowest) / 100.0
        self._fast_k.append((close - lowest) / scaled_range if scaled_range != 0.0 else NEUTRAL)
        if len(self._fast_k) < self.slowk:
            return None
        # Window means are recomputed exactly: a running mean can drift above 100.
        self._slow_k.append(math.fsum(self._fast_k) / self.slowk)
        if len(self._slow_k) < self.slowd:
            return None
        self._value = StochValue(self._slow_k[-1], math.fsum(self._slow_k) / self.slowd)
        return self._value

    def get(self) -> StochValue | None:
        return self._value

    def _params(self) -> dict[str, int]:
        return {"fastk": self.fastk, "slowk": self.slowk, "slowd": self.slowd}

    def snapshot(self) -> State:
        state = state_header("Stochastic", self._params())
        state.update(
            # The arrival-order windows are the whole state of River's rolling max / min.
            highs=list(self._highs.window.unsorted_window),
            lows=list(self._lows.window.unsorted_window),
            seen=self._seen,
            fast_k=list(self._fast_k),
            slow_k=list(self._slow_k),
            value=None if self._value is None else tuple(self._value),
        )
        return state

    def restore(self, state: State) -> None:
        check_state(state, "Stochastic", self._params())
        self._highs = stats.RollingMax(self.fastk)
        self._lows = stats.RollingMin(self.fastk)
        for high in state["highs"]:
            self._highs.update(high)
        for low in state["lows"]:
            self._lows.update(low)
        self._seen = state["seen"]
        self._fast_k = deque(state["fast_k"], maxlen=self.slowk)
        self._slow_k = deque(state["slow_k"], maxlen=self.slowd)
        self._value = None if state["value"] is None else StochValue(*state["value"])
