"""Returns and moving averages: Returns, SMA, EMA, MACD (TA-Lib definitions and seeds)."""

from __future__ import annotations

import math
from collections import deque
from typing import NamedTuple

from features._state import State, check_state, state_header
from features.indicators._window import check_period, sequential_sum


class ReturnValue(NamedTuple):
    """Simple return ``(x - prev) / prev`` (TA-Lib ROCP) and log return ``log(x / prev)``.

    >>> ReturnValue(0.1, 0.0953).simple
    0.1
    """

    simple: float
    log: float


class Returns:
    """Bar-to-bar simple and log returns of a positive series (None for the first value).

    >>> r = Returns()
    >>> r.update(100.0) is None
    True
    >>> r.update(110.0)
    ReturnValue(simple=0.1, log=0.09531017980432493)
    """

    def __init__(self) -> None:
        self._prev: float | None = None
        self._value: ReturnValue | None = None

    def update(self, x: float) -> ReturnValue | None:
        prev, self._prev = self._prev, x
        if prev is None:
            return None
        self._value = ReturnValue((x - prev) / prev, math.log(x / prev))
        return self._value

    def get(self) -> ReturnValue | None:
        return self._value

    def snapshot(self) -> State:
        state = state_header("Returns", {})
        state.update(prev=self._prev, value=None if self._value is None else tuple(self._value))
        return state

    def restore(self, state: State) -> None:
        check_state(state, "Returns", {})
        self._prev = state["prev"]
        self._value = None if state["value"] is None else ReturnValue(*state["value"])


class SMA:
    """Simple moving average of the last ``period`` values (TA-Lib ``SMA``).

    Each value is the correctly rounded mean of the window (``math.fsum``), so nothing drifts
    over a long run; TA-Lib's running total agrees to ~1e-15 relative.

    >>> sma = SMA(3)
    >>> [sma.update(x) for x in (1.0, 2.0, 3.0, 4.0)]
    [None, None, 2.0, 3.0]
    """

    def __init__(self, period: int = 20) -> None:
        self.period = check_period("period", period)
        self._window: deque[float] = deque(maxlen=period)
        self._value: float | None = None

    def update(self, x: float) -> float | None:
        window = self._window
        window.append(x)
        if len(window) == self.period:
            self._value = math.fsum(window) / self.period
        return self._value

    def get(self) -> float | None:
        return self._value

    def snapshot(self) -> State:
        state = state_header("SMA", {"period": self.period})
        state.update(window=list(self._window), value=self._value)
        return state

    def restore(self, state: State) -> None:
        check_state(state, "SMA", {"period": self.period})
        self._window = deque(state["window"], maxlen=self.period)
        self._value = state["value"]


class EMA:
    """Exponential moving average, ``k = 2 / (period + 1)``, seeded like TA-Lib.

    TA-Lib's seed is the simple average of the first ``period`` values, emitted at the
    ``period``-th value; afterwards ``ema = (x - ema) * k + ema``. (River's ``EWMean`` starts from
    the first value instead and cannot be seeded, which would differ for hundreds of bars.)

    >>> ema = EMA(3)
    >>> [ema.update(x) for x in (1.0, 2.0, 3.0, 4.0)]
    [None, None, 2.0, 3.0]
    """

    def __init__(self, period: int = 20) -> None:
        self.period = check_period("period", period)
        self.k = 2.0 / (period + 1)
        self._seed: list[float] = []
        self._value: float | None = None

    def update(self, x: float) -> float | None:
        value = self._value
        if value is None:
            self._seed.append(x)
            if len(self._seed) < self.period:
                return None
            self._value = sequential_sum(self._seed) / self.period
            self._seed = []
        else:
            self._value = (x - value) * self.k + value
        return self._value

    def get(self) -> float | None:
        return self._value

    def snapshot(self) -> State:
        state = state_header("EMA", {"period": self.period})
        state.update(seed=list(self._seed), value=self._value)
        return state

    def restore(self, state: State) -> None:
        check_state(state, "EMA", {"period": self.period})
        self._seed = list(state["seed"])
        self._value = state["value"]


class MACDValue(NamedTuple):
    """MACD line (fast EMA - slow EMA), its signal EMA, and the histogram (line - signal).

    >>> MACDValue(1.5, 1.0, 0.5).hist
    0.5
    """

    macd: float
    signal: float
    hist: float


class MACD:
    """Moving average convergence/divergence exactly as TA-Lib ``MACD(12, 26, 9)`` computes it.

    TA-Lib starts both EMAs at the same bar: the slow EMA is seeded with the mean of the first
    ``slow`` values and the *fast* EMA with the mean of the last ``fast`` of those (not of the
    first ``fast`` values). The signal line is an EMA of the MACD line with its own SMA seed, so
    the first value comes at bar ``slow + signal - 1`` (34th bar for 12/26/9).

    >>> macd = MACD(2, 3, 2)
    >>> [macd.update(x) for x in (1.0, 2.0, 4.0)]
    [None, None, None]
    >>> [round(v, 4) for v in macd.update(8.0)]
    [1.1667, 0.9167, 0.25]
    """

    def __init__(self, fast: int = 12, slow: int = 26, signal: int = 9) -> None:
        self.fast = check_period("fast", fast)
        self.slow = check_period("slow", slow)
        if fast >= slow:
            raise ValueError(f"fast period {fast} must be shorter than slow period {slow}")
        self.signal = check_period("signal", signal)
        self._kf = 2.0 / (fast + 1)
        self._ks = 2.0 / (slow + 1)
        self._seed: list[float] = []
        self._fast: float | None = None
        self._slow: float | None = None
        self._signal = EMA(signal)
        self._value: MACDValue | None = None

    def update(self, x: float) -> MACDValue | None:
        fast, slow = self._fast, self._slow
        if fast is None or slow is None:
            self._seed.append(x)
            if len(self._seed) < self.slow:
                return None
            fast = sequential_sum(self._seed[-self.fast :]) / self.fast
            slow = sequential_sum(self._seed) / self.slow
            self._seed = []
        else:
            fast = (x - fast) * self._kf + fast
            slow = (x - slow) * self._ks + slow
        self._fast, self._slow = fast, slow
        line = fast - slow
        signal = self._signal.update(line)
        if signal is None:
            return None
        self._value = MACDValue(line, signal, line - signal)
        return self._value

    def get(self) -> MACDValue | None:
        return self._value

    def _params(self) -> dict[str, int]:
        return {"fast": self.fast, "slow": self.slow, "signal": self.signal}

    def snapshot(self) -> State:
        state = state_header("MACD", self._params())
        state.update(
            seed=list(self._seed),
            fast_ema=self._fast,
            slow_ema=self._slow,
            signal_ema=self._signal.snapshot(),
            value=None if self._value is None else tuple(self._value),
        )
        return state

    def restore(self, state: State) -> None:
        check_state(state, "MACD", self._params())
        self._seed = list(state["seed"])
        self._fast, self._slow = state["fast_ema"], state["slow_ema"]
        self._signal.restore(state["signal_ema"])
        self._value = None if state["value"] is None else MACDValue(*state["value"])
