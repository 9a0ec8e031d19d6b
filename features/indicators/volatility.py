"""Volatility: Bollinger bands, ATR (Wilder), realized volatility, rolling z-score."""

from __future__ import annotations

import math
import operator
from collections import deque
from itertools import repeat
from typing import NamedTuple

from features._state import State, check_state, state_header
from features.indicators._window import check_period, sequential_sum


def _mean_pstd(window: deque[float]) -> tuple[float, float]:
    """Mean and population standard deviation of a window, two-pass and correctly rounded sums.

    Two passes over the window (instead of a running Welford update with revert): nothing drifts
    over a long run. A constant window is answered exactly (its value, deviation 0): ``fsum / n``
    can land one ulp off the value and turn a zero deviation into rounding noise.
    """
    first = window[0]
    if min(window) == max(window):
        return first, 0.0
    n = len(window)
    mean = math.fsum(window) / n
    deviations = list(map(operator.sub, window, repeat(mean, n)))
    var = math.fsum(map(operator.mul, deviations, deviations)) / n
    return mean, math.sqrt(var)


class BollingerValue(NamedTuple):
    """Bollinger bands: middle = SMA, upper / lower = middle +/- nbdev * population std.

    >>> BollingerValue(12.0, 10.0, 8.0).upper
    12.0
    """

    upper: float
    middle: float
    lower: float


class BollingerBands:
    """Bollinger bands as TA-Lib ``BBANDS(period, nbdev, nbdev, matype=SMA)``.

    The deviation is the *population* standard deviation (divide by ``period``), as TA-Lib.

    >>> bb = BollingerBands(3, 2.0)
    >>> [round(v, 6) for v in [bb.update(x) for x in (1.0, 2.0, 3.0)][-1]]
    [3.632993, 2.0, 0.367007]
    """

    def __init__(self, period: int = 20, nbdev: float = 2.0) -> None:
        self.period = check_period("period", period)
        if not (math.isfinite(nbdev) and nbdev > 0):
            raise ValueError(f"nbdev must be a finite number > 0, got {nbdev!r}")
        self.nbdev = float(nbdev)
        self._window: deque[float] = deque(maxlen=period)
        self._value: BollingerValue | None = None

    def update(self, x: float) -> BollingerValue | None:
        window = self._window
        window.append(x)
        if len(window) < self.period:
            return None
        mean, std = _mean_pstd(window)
        width = self.nbdev * std
        self._value = BollingerValue(mean + width, mean, mean - width)
        return self._value

    def get(self) -> BollingerValue | None:
        return self._value

    def snapshot(self) -> State:
        state = state_header("BollingerBands", {"period": self.period, "nbdev": self.nbdev})
        state.update(window=list(self._window), value=None if self._value is None else tuple(self._value))
        return state

    def restore(self, state: State) -> None:
        check_state(state, "BollingerBands", {"period": self.period, "nbdev": self.nbdev})
        self._window = deque(state["window"], maxlen=self.period)
        self._value = None if state["value"] is None else BollingerValue(*state["value"])


class ATR:
    """Average true range with Wilder's smoothing, as TA-Lib ``ATR`` (default period 14).

    ``TR = max(high - low, |high - prev close|, |low - prev close|)`` from the second bar on; the
    first ATR is the mean of the first ``period`` TRs (bar ``period + 1``), then
    ``atr = (atr * (period - 1) + TR) / period``.

    >>> atr = ATR(2)
    >>> [atr.update(*bar) for bar in ((10.0, 8.0, 9.0), (11.0, 9.0, 10.0), (12.0, 10.0, 11.5), (11.0, 7.0, 8.0))]
    [None, None, 2.0, 3.25]
    """

    def __init__(self, period: int = 14) -> None:
        self.period = check_period("period", period)
        self._prev_close: float | None = None
        self._seed: list[float] = []
        self._value: float | None = None

    def update(self, high: float, low: float, close: float) -> float | None:
        prev_close, self._prev_close = self._prev_close, close
        if prev_close is None:
            return None
        # Same comparisons as TA-Lib's TRANGE.
        true_range = max(high - low, abs(prev_close - high), abs(prev_close - low))
        value = self._value
        if value is None:
            self._seed.append(true_range)
            if len(self._seed) < self.period:
                return None
            self._value = sequential_sum(self._seed) / self.period
            self._seed = []
        else:
            self._value = (value * (self.period - 1) + true_range) / self.period
        return self._value

    def get(self) -> float | None:
        return self._value

    def snapshot(self) -> State:
        state = state_header("ATR", {"period": self.period})
        state.update(prev_close=self._prev_close, seed=list(self._seed), value=self._value)
        return state

    def restore(self, state: State) -> None:
        check_state(state, "ATR", {"period": self.period})
        self._prev_close = state["prev_close"]
        self._seed = list(state["seed"])
        self._value = state["value"]


class RealizedVolatility:
    """Realized volatility: ``sqrt(sum of squared log returns)`` over the last ``period`` returns.

    Not annualized and not demeaned; it is the volatility of one ``period``-bar horizon. Takes
    prices; the first value comes with the ``period + 1``-th price.

    >>> rv = RealizedVolatility(2)
    >>> round([rv.update(x) for x in (100.0, 101.0, 100.0)][-1], 9)
    0.014071893
    """

    def __init__(self, period: int = 20) -> None:
        self.period = check_period("period", period)
        self._prev: float | None = None
        self._squares: deque[float] = deque(maxlen=period)
        self._value: float | None = None

    def update(self, x: float) -> float | None:
        prev, self._prev = self._prev, x
        if prev is None:
            return None
        r = math.log(x / prev)
        self._squares.append(r * r)
        if len(self._squares) == self.period:
            self._value = math.sqrt(math.fsum(self._squares))
        return self._value

    def get(self) -> float | None:
        return self._value

    def snapshot(self) -> State:
        state = state_header("RealizedVolatility", {"period": self.period})
        state.update(prev=self._prev, squares=list(self._squares), value=self._value)
        return state

    def restore(self, state: State) -> None:
        check_state(state, "RealizedVolatility", {"period": self.period})
        self._prev = state["prev"]
        self._squares = deque(state["squares"], maxlen=self.period)
        self._value = state["value"]


class RollingZScore:
    """``(x - mean) / std`` over the last ``period`` values, population std (like the bands).

    With the same period, ``z = 2`` is exactly the upper Bollinger band at ``nbdev = 2``. A flat
    window (std 0, so x equals the mean) gives 0. ``|z| <= sqrt(period - 1)`` always.

    >>> z = RollingZScore(3)
    >>> [z.update(x) for x in (1.0, 2.0, 3.0, 3.0)]
    [None, None, 1.224744871391589, 0.7071067811865478]
    """

    def __init__(self, period: int = 20) -> None:
        self.period = check_period("period", period, minimum=2)
        self._window: deque[float] = deque(maxlen=period)
        self._value: float | None = None

    def update(self, x: float) -> float | None:
        window = self._window
        window.append(x)
        if len(window) < self.period:
            return None
        mean, std = _mean_pstd(window)
        self._value = (x - mean) / std if std > 0.0 else 0.0
        return self._value

    def get(self) -> float | None:
        return self._value

    def snapshot(self) -> State:
        state = state_header("RollingZScore", {"period": self.period})
        state.update(window=list(self._window), value=self._value)
        return state

    def restore(self, state: State) -> None:
        check_state(state, "RollingZScore", {"period": self.period})
        self._window = deque(state["window"], maxlen=self.period)
        self._value = state["value"]
