"""Replay pacing: hold events back until their event time, scaled by a speed, has passed.

The clock and the sleep are injected, so a test drives pacing with a clock that only its own
sleep function advances, and nothing sleeps for real.
"""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Callable
from datetime import datetime

#: An event this close to its due time (seconds) is due: float sums of sleeps never land exactly.
DUE_TOLERANCE_S = 1e-6


class Pacer:
    """Maps event time to clock time: ``due = origin_clock + (ts_event - origin_event) / speed``.

    ``speed=1`` is real time, ``speed=10`` ten times faster. The origin is the first event asked
    about, or an earlier one proposed before it (several files replayed together share one
    origin, so a file that starts later also starts later on the clock). Pacing only ever waits:
    an event already due (out of order, or processing fell behind) plays at once.

    >>> from datetime import timedelta
    >>> from core.clock import from_epoch_ms
    >>> now = [0.0]
    >>> pacer = Pacer(10, clock=lambda: now[0], sleep=lambda s: now.__setitem__(0, now[0] + s))
    >>> t0 = from_epoch_ms(1723161255342)
    >>> pacer.wait(t0), pacer.wait(t0 + timedelta(seconds=5)), pacer.slept_s
    (True, True, 0.5)
    """

    def __init__(
        self,
        speed: float,
        *,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        if isinstance(speed, bool) or not isinstance(speed, int | float) or not math.isfinite(speed) or speed <= 0:
            raise ValueError(f"speed must be a finite number > 0 (1 = real time), got {speed!r}")
        self.speed = float(speed)
        self.clock = clock
        self.sleep = sleep
        self.slept_s = 0.0
        self._origin_event: datetime | None = None
        self._origin_clock: float | None = None
        self._lock = threading.Lock()

    def propose_origin(self, ts_event: datetime) -> None:
        """Offer an earlier first event time; ignored once pacing has started."""
        with self._lock:
            if self._origin_clock is None and (self._origin_event is None or ts_event < self._origin_event):
                self._origin_event = ts_event

    def delay_s(self, ts_event: datetime) -> float:
        """Seconds of clock time until ``ts_event`` is due (<= 0: due now). Starts pacing on first call."""
        with self._lock:
            if self._origin_clock is None:
                self._origin_clock = self.clock()
                if self._origin_event is None:
                    self._origin_event = ts_event
            origin_event, origin_clock = self._origin_event, self._origin_clock
        assert origin_event is not None
        due = origin_clock + (ts_event - origin_event).total_seconds() / self.speed
        return due - self.clock()

    def wait(self, ts_event: datetime, max_s: float | None = None) -> bool:
        """Sleep until ``ts_event`` is due, or for at most ``max_s``; True when it is due."""
        remaining = max_s
        while True:
            delay = self.delay_s(ts_event)
            if delay <= DUE_TOLERANCE_S:
                return True
            if remaining is not None:
                if remaining <= 0:
                    return False
                delay = min(delay, remaining)
                remaining -= delay
            self.sleep(delay)
            self.slept_s += delay
