"""Volume indicators: on-balance volume (TA-Lib) and a rolling VWAP."""

from __future__ import annotations

import math
from collections import deque

from features._state import State, check_state, state_header
from features.indicators._window import check_period


class OBV:
    """On-balance volume as TA-Lib ``OBV``: starts at the first bar's volume, then adds the
    volume on an up close, subtracts it on a down close, keeps it on an unchanged close.

    Its level depends on where the stream started; use its changes, not its level, across
    streams that started at different times.

    >>> obv = OBV()
    >>> [obv.update(c, v) for c, v in ((10.0, 5.0), (11.0, 2.0), (10.5, 4.0), (10.5, 9.0))]
    [5.0, 7.0, 3.0, 3.0]
    """

    def __init__(self) -> None:
        self._prev: float | None = None
        self._value: float | None = None

    def update(self, close: float, volume: float) -> float:
        prev, self._prev = self._prev, close
        value = self._value
        if prev is None or value is None:
            value = volume
        elif close > prev:
            value += volume
        elif close < prev:
            value -= volume
        self._value = value
        return value

    def get(self) -> float | None:
        return self._value

    def snapshot(self) -> State:
        state = state_header("OBV", {})
        state.update(prev=self._prev, value=self._value)
        return state

    def restore(self, state: State) -> None:
        check_state(state, "OBV", {})
        self._prev, self._value = state["prev"], state["value"]


class VWAP:
    """Rolling volume-weighted average price over the last ``period`` bars (not a session VWAP).

    ``update(price, volume)`` takes one bar's representative price (its own VWAP when built from
    trades, else its typical price) and volume; the value is ``sum(price * volume) / sum(volume)``
    over the window, first at the ``period``-th bar, ``None`` while the window has no volume.

    >>> vwap = VWAP(2)
    >>> [vwap.update(p, v) for p, v in ((10.0, 1.0), (13.0, 2.0), (16.0, 1.0))]
    [None, 12.0, 14.0]
    """

    def __init__(self, period: int = 20) -> None:
        self.period = check_period("period", period)
        self._notional: deque[float] = deque(maxlen=period)
        self._volume: deque[float] = deque(maxlen=period)
        self._value: float | None = None

    def update(self, price: float, volume: float) -> float | None:
        self._notional.append(price * volume)
        self._volume.append(volume)
        if len(self._volume) < self.period:
            return None
        total = math.fsum(self._volume)
        self._value = math.fsum(self._notional) / total if total > 0.0 else None
        return self._value

    def get(self) -> float | None:
        return self._value

    def snapshot(self) -> State:
        state = state_header("VWAP", {"period": self.period})
        state.update(notional=list(self._notional), volume=list(self._volume), value=self._value)
        return state

    def restore(self, state: State) -> None:
        check_state(state, "VWAP", {"period": self.period})
        self._notional = deque(state["notional"], maxlen=self.period)
        self._volume = deque(state["volume"], maxlen=self.period)
        self._value = state["value"]
