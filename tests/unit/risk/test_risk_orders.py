"""core.orders: deterministic client ids, gate-only approvals, the vocabulary's own checks."""

from __future__ import annotations

import dataclasses
import pickle
import re
import subprocess
import sys
from datetime import datetime, timedelta
from decimal import Decimal

import pytest
from hypothesis import given
from hypothesis import strategies as st

from core.clock import UTC
from core.events import Side
from core.orders import (
    ApprovedOrder,
    DenialReason,
    OrderDenied,
    Signal,
    TradingState,
    client_order_id,
)
from risk.config import RiskLimits
from risk.gate import evaluate
from tests.unit.risk._risk_builders import T0, gate_state, intent, market, portfolio

times = st.datetimes(min_value=datetime(2000, 1, 1), max_value=datetime(2100, 1, 1), timezones=st.just(UTC))


@given(st.text(max_size=30), st.text(max_size=20), times)
def test_client_order_id_is_deterministic_and_venue_safe(strategy: str, symbol: str, ts: datetime) -> None:
    first = client_order_id(strategy, symbol, ts)
    assert first == client_order_id(strategy, symbol, ts)
    assert re.fullmatch(r"b4-[0-9a-f]{24}", first)


@given(st.text(max_size=10), times, st.integers(min_value=1, max_value=10**9))
def test_client_order_id_differs_when_the_signal_time_differs(strategy: str, ts: datetime, micros: int) -> None:
    later = ts + timedelta(microseconds=micros)
    assert client_order_id(strategy, "BTC/USDT", ts) != client_order_id(strategy, "BTC/USDT", later)


def test_client_order_id_is_the_same_in_another_process() -> None:
    code = (
        "from core.orders import client_order_id; from core.clock import parse_utc; "
        "print(client_order_id('trend', 'BTC/USDT', parse_utc('2024-08-08T23:54:15Z')))"
    )
    other = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.strip()
    assert other == client_order_id("trend", "BTC/USDT", T0)


def test_client_order_id_refuses_a_naive_time() -> None:
    with pytest.raises(ValueError, match="aware UTC"):
        client_order_id("s", "BTC/USDT", datetime(2024, 1, 1))


def test_approved_order_cannot_be_constructed_outside_the_gate() -> None:
    with pytest.raises(TypeError, match=r"only by risk\.gate\.evaluate"):
        ApprovedOrder(intent(), Decimal("0.01"), None, "rd-forged", T0, token=object())
    with pytest.raises(TypeError):
        ApprovedOrder(intent(), Decimal("0.01"), None, "rd-forged", T0)  # type: ignore[call-arg]


def test_approved_order_cannot_be_altered_with_dataclasses_replace() -> None:
    limits = RiskLimits()
    approved = evaluate(intent(), portfolio(), market(), limits, gate_state(limits))
    assert isinstance(approved, ApprovedOrder)
    with pytest.raises(ValueError, match="token"):
        dataclasses.replace(approved, amount=Decimal(1000))
    with pytest.raises(dataclasses.FrozenInstanceError):
        approved.amount = Decimal(1000)  # type: ignore[misc]
    assert approved.client_order_id == "b4-test-order" and approved.key == "binance:BTC/USDT"


def test_order_denied_needs_a_reason() -> None:
    with pytest.raises(ValueError, match="at least one reason"):
        OrderDenied(intent(), (), "rd-1", T0)
    denied = OrderDenied(intent(), (DenialReason("x", "because"),), "rd-1", T0)
    assert denied.codes == ("x",)


@pytest.mark.parametrize(("strength", "confidence"), [(1.5, 0.5), (0.5, -0.1), (float("nan"), 0.5)])
def test_signal_refuses_strength_or_confidence_outside_zero_to_one(strength: float, confidence: float) -> None:
    with pytest.raises(ValueError, match=r"Signal\.(strength|confidence)"):
        Signal("s", "a", "binance", "BTC/USDT", Side.BUY, strength, confidence, (), "m", T0)


def test_trading_states_order_by_severity() -> None:
    assert [s.severity for s in TradingState] == [0, 1, 2]


def test_approved_order_pickles_for_bytewax_without_the_gate() -> None:
    limits = RiskLimits()
    approved = evaluate(intent(), portfolio(), market(), limits, gate_state(limits))
    assert isinstance(approved, ApprovedOrder)
    assert pickle.loads(pickle.dumps(approved)) == approved
