"""The order-rate token bucket (risk/throttle.py): time only from the injected clock."""

from __future__ import annotations

from datetime import timedelta

from core.clock import ManualClock, parse_utc
from risk.throttle import TokenBucket


def test_a_bucket_built_while_its_clock_reads_a_later_time_refills_from_the_first_time_it_is_asked() -> None:
    # An account whose clock reads the wall time until its first market event, then a replay's
    # market time years earlier (the gate reads its clock once per order and asks at that time).
    bucket = TokenBucket(rate_per_s=1.0, burst=2, clock=ManualClock(parse_utc("2026-11-26T03:00:00Z")))
    start = parse_utc("2021-05-16T00:00:00Z")
    assert [bucket.try_take_at(start) for _ in range(3)] == [True, True, False]
    assert bucket.try_take_at(start + timedelta(seconds=1))
    assert bucket.available_at(start + timedelta(minutes=1)) == 2.0


def test_a_time_stepping_backwards_creates_no_tokens() -> None:
    bucket = TokenBucket(rate_per_s=1.0, burst=1, clock=ManualClock(parse_utc("2024-01-01T00:00:00Z")))
    ten = parse_utc("2024-01-01T00:00:10Z")
    assert bucket.try_take_at(ten)
    assert not bucket.try_take_at(ten - timedelta(seconds=10))
    assert not bucket.try_take_at(ten + timedelta(seconds=0.5))  # half a token since 00:00:10
    assert bucket.try_take_at(ten + timedelta(seconds=1))
