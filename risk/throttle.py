"""Order rate limit: a token bucket that reads time from the injected clock.

>>> from datetime import timedelta
>>> from core.clock import ManualClock, parse_utc
>>> clock = ManualClock(parse_utc("2024-01-01T00:00:00Z"))
>>> bucket = TokenBucket(rate_per_s=1.0, burst=2, clock=clock)
>>> bucket.try_take(), bucket.try_take(), bucket.try_take()
(True, True, False)
>>> _ = clock.advance(timedelta(seconds=1))
>>> bucket.try_take()
True
"""

from __future__ import annotations

from datetime import datetime

from core.clock import Clock


class TokenBucket:
    """``burst`` tokens, refilled at ``rate_per_s``; one order takes one token.

    Time comes only from ``clock``, so a backtest's event-time clock throttles exactly like live.
    A clock that steps backwards refills nothing (it never creates tokens). The bucket starts full
    at the first time it is asked, not when it is built: a clock may have no meaningful time yet
    at construction (an account whose event clock has seen no market event reads the wall clock,
    and a replay's market time then lies years before it; a bucket started there would never
    refill).
    """

    __slots__ = ("_burst", "_clock", "_last", "_rate", "_tokens")

    def __init__(self, rate_per_s: float, burst: int, clock: Clock) -> None:
        if not rate_per_s > 0 or burst < 1:
            raise ValueError(f"token bucket needs rate_per_s > 0 and burst >= 1, got {rate_per_s}, {burst}")
        self._rate = rate_per_s
        self._burst = float(burst)
        self._clock = clock
        self._tokens = float(burst)
        self._last: datetime | None = None  # set at the first time the bucket is asked

    def available(self) -> float:
        """Tokens available now (refilled up to the burst)."""
        return self.available_at(self._clock.now())

    def available_at(self, now: datetime) -> float:
        """Tokens available at ``now``, a time the caller read from this bucket's clock (the gate
        reads the clock once per order and judges everything at that one instant)."""
        last = self._last
        if last is None:
            self._last = now  # the first question: a full bucket from here on
        elif now != last:  # skips the timedelta arithmetic while the clock stands still
            elapsed = (now - last).total_seconds()
            if elapsed > 0:
                self._tokens = min(self._burst, self._tokens + elapsed * self._rate)
                self._last = now
        return self._tokens

    def can_take(self) -> bool:
        """True when one token is available; takes nothing."""
        return self.available_at(self._clock.now()) >= 1.0

    def try_take(self) -> bool:
        """Take one token if available; False (and nothing taken) otherwise."""
        return self.try_take_at(self._clock.now())

    def try_take_at(self, now: datetime) -> bool:
        """:meth:`try_take` at ``now`` (see :meth:`available_at`)."""
        if self.available_at(now) >= 1.0:
            self._tokens -= 1.0
            return True
        return False
