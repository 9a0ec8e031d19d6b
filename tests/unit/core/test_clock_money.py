from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone
from decimal import Decimal

import pytest

from core.clock import ManualClock, SystemClock, from_epoch_ns, parse_utc, require_utc, to_epoch_us
from core.money import float_to_decimal, quantize_down, round_half_even, to_decimal


def test_manual_clock_moves_only_forward():
    clock = ManualClock(parse_utc("2024-01-01T00:00:00Z"))
    clock.set(parse_utc("2023-12-31T00:00:00Z"))
    assert clock.now() == parse_utc("2024-01-01T00:00:00Z")
    with pytest.raises(ValueError, match="backwards"):
        clock.advance(timedelta(seconds=-1))


def test_naive_and_non_utc_times_are_refused_or_converted():
    with pytest.raises(ValueError, match="aware UTC"):
        require_utc(datetime(2024, 1, 1), "ts_event")
    with pytest.raises(ValueError, match="aware UTC"):
        parse_utc("2024-01-01T00:00:00+02:00")
    assert SystemClock().now().tzinfo is UTC
    assert require_utc(datetime(2024, 1, 1, tzinfo=timezone(timedelta(0))), "x").tzinfo is UTC


def test_epoch_conversions_are_exact():
    ts = from_epoch_ns(1_723_161_253_937_085_768)
    assert to_epoch_us(ts) == 1_723_161_253_937_085


def test_money_refuses_floats_and_non_finite():
    with pytest.raises(TypeError):
        to_decimal(0.1)
    with pytest.raises(ValueError, match="not finite"):
        to_decimal("NaN")
    with pytest.raises(ValueError, match="not a decimal"):
        to_decimal("1,5")
    with pytest.raises(TypeError):
        to_decimal(True)
    assert float_to_decimal(61837.63) == Decimal("61837.63")
    with pytest.raises(ValueError):
        float_to_decimal(float("inf"))


def test_rounding_helpers():
    assert quantize_down(Decimal("1.23456"), Decimal("0.01")) == Decimal("1.23")
    with pytest.raises(ValueError):
        quantize_down(Decimal(1), Decimal(0))
    assert round_half_even(Decimal("2.345"), 2) == Decimal("2.34")
