"""Position sizing: fixed fraction, ATR volatility target, fractional Kelly, VaR / CVaR limit."""

from __future__ import annotations

import math
from decimal import Decimal

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from core.events import Side
from core.orders import OrderType, Signal, client_order_id
from risk.config import SizingLimits
from risk.sizing import (
    VarMethod,
    average_true_range,
    cap_by_var,
    fixed_fraction,
    historical_var,
    kelly_fraction,
    parametric_var,
    portfolio_var,
    propose,
    propose_amount,
    volatility_target,
)
from tests.unit.risk._risk_builders import T0

RETURNS = [0.012, -0.031, 0.004, -0.008, 0.021, -0.045, 0.017, 0.002, -0.012, 0.009]


def test_fixed_fraction_sizes_the_notional_as_a_share_of_equity() -> None:
    amount = fixed_fraction(Decimal(100_000), Decimal(40_000), Decimal("0.02"))
    assert amount * Decimal(40_000) == Decimal(2_000)


@pytest.mark.parametrize(("equity", "price"), [("0", "1"), ("1", "0"), ("NaN", "1"), ("-5", "1")])
def test_fixed_fraction_when_inputs_unusable_then_proposes_nothing(equity: str, price: str) -> None:
    assert fixed_fraction(Decimal(equity), Decimal(price), Decimal("0.01")) == 0


def test_volatility_target_when_atr_doubles_then_size_halves() -> None:
    calm = volatility_target(Decimal(100_000), Decimal(500), Decimal("0.01"), Decimal(2))
    wild = volatility_target(Decimal(100_000), Decimal(1000), Decimal("0.01"), Decimal(2))
    assert calm == 2 * wild
    assert wild * 2 * Decimal(1000) == Decimal(1000)  # a 2-ATR move loses 1% of equity


def test_average_true_range_matches_a_direct_wilder_computation() -> None:
    highs = [Decimal(x) for x in ("10", "11", "12", "11", "13", "12.5")]
    lows = [Decimal(x) for x in ("9", "10", "10", "9", "11", "11.5")]
    closes = [Decimal(x) for x in ("9.5", "10.5", "11", "10", "12.5", "12")]
    trs = [Decimal("1.5"), Decimal(2), Decimal(2), Decimal(3), Decimal("1")]
    expected = sum(trs[:3], Decimal(0)) / 3
    for tr in trs[3:]:
        expected = (expected * 2 + tr) / 3
    assert average_true_range(highs, lows, closes, period=3) == expected


def test_average_true_range_refuses_short_or_misaligned_series() -> None:
    one = [Decimal(1)]
    with pytest.raises(ValueError, match="at least 15 bars"):
        average_true_range(one, one, one)
    with pytest.raises(ValueError, match="differ in length"):
        average_true_range(one, one * 2, one)


@given(
    st.floats(allow_nan=True, allow_infinity=True),
    st.floats(allow_nan=True, allow_infinity=True),
    st.decimals(min_value="0.01", max_value="1", places=2),
    st.decimals(min_value="0.001", max_value="1", places=3),
)
def test_kelly_never_exceeds_its_cap_and_is_never_negative(
    p: float, payoff: float, fraction: Decimal, cap: Decimal
) -> None:
    size = kelly_fraction(p, payoff, fraction=fraction, cap=cap)
    assert Decimal(0) <= size <= cap


def test_kelly_is_the_fraction_of_full_kelly_below_the_cap() -> None:
    # p=0.6, b=2: full Kelly 0.6 - 0.4/2 = 0.4; half Kelly 0.2
    assert kelly_fraction(0.6, 2.0, fraction=Decimal("0.5"), cap=Decimal(1)) == Decimal("0.2")
    assert kelly_fraction(0.6, 2.0, fraction=Decimal("0.5"), cap=Decimal("0.05")) == Decimal("0.05")
    assert kelly_fraction(0.3, 2.0, fraction=Decimal("0.5"), cap=Decimal("0.05")) == 0


def test_historical_var_and_cvar_are_the_tail_quantile_and_tail_mean() -> None:
    est = historical_var(RETURNS, confidence=0.8)
    losses = sorted(-r for r in RETURNS)  # rank ceil(0.8*10)-1 = 7
    assert est.var == losses[7]
    assert est.cvar == pytest.approx(sum(losses[7:]) / 3)
    assert est.cvar >= est.var


def test_parametric_var_matches_the_normal_formula() -> None:
    est = parametric_var(RETURNS, confidence=0.99)
    mu, sigma = float(np.mean(RETURNS)), float(np.std(RETURNS, ddof=1))
    assert est.var == pytest.approx(2.3263478740 * sigma - mu)
    assert est.cvar == pytest.approx(sigma * math.exp(-(2.3263478740**2) / 2) / math.sqrt(2 * math.pi) / 0.01 - mu)


def test_var_refuses_bad_confidence_or_series() -> None:
    with pytest.raises(ValueError, match="confidence"):
        historical_var(RETURNS, 1.0)
    with pytest.raises(ValueError, match="finite"):
        parametric_var([0.1, float("nan")], 0.99)
    with pytest.raises(ValueError, match="finite"):
        historical_var([], 0.99)


def test_parametric_portfolio_var_equals_the_covariance_formula() -> None:
    other = [0.5 * r + 0.01 * ((i % 3) - 1) for i, r in enumerate(RETURNS)]
    exposures = {"a": Decimal(1000), "b": Decimal(-400)}
    est = portfolio_var(exposures, {"a": RETURNS, "b": other}, 0.99, method="parametric")
    w = np.array([1000.0, -400.0])
    cov = np.cov(np.array([RETURNS, other]), ddof=1)
    mean = float(w @ np.array([np.mean(RETURNS), np.mean(other)]))
    assert est.var == pytest.approx(2.3263478740 * math.sqrt(w @ cov @ w) - mean)


def test_portfolio_var_of_an_empty_book_is_zero_and_windows_must_align() -> None:
    assert portfolio_var({"a": Decimal(0)}, {}, 0.99).var == 0
    with pytest.raises(ValueError, match="no returns window"):
        portfolio_var({"a": Decimal(1)}, {}, 0.99)
    with pytest.raises(ValueError, match="aligned"):
        portfolio_var({"a": Decimal(1), "b": Decimal(1)}, {"a": [0.1], "b": [0.1, 0.2]}, 0.99)


def capped(
    amount: str,
    *,
    side: Side = Side.BUY,
    held: str = "0",
    max_var_pct: str = "0.01",
    method: VarMethod = "historical",
    use_cvar: bool = True,
) -> Decimal:
    return cap_by_var(
        Decimal(amount),
        key="a",
        side=side,
        price=Decimal(100),
        exposures={"a": Decimal(held)},
        returns={"a": RETURNS},
        equity=Decimal(10_000),
        max_var_pct=Decimal(max_var_pct),
        confidence=0.9,
        method=method,
        use_cvar=use_cvar,
    )


def test_cap_by_var_shrinks_an_order_until_portfolio_cvar_fits_the_limit() -> None:
    amount = capped("100")
    assert 0 < amount < 100
    assert portfolio_var({"a": amount * 100}, {"a": RETURNS}, 0.9).cvar <= 100 + 1e-6
    assert capped("1") == Decimal(1)
    assert 0 < capped("100", method="parametric", use_cvar=False) < 100


def test_cap_by_var_keeps_a_hedge_and_proposes_nothing_when_already_over() -> None:
    assert capped("10", side=Side.SELL, held="5000", max_var_pct="0.001") == Decimal(10)
    assert capped("10", side=Side.BUY, held="5000", max_var_pct="0.001") == 0
    assert capped("NaN") == 0


def test_propose_builds_an_intent_with_the_deterministic_client_id() -> None:
    signal = Signal("trend", "acct", "binance", "ETH/USDT", Side.SELL, 0.5, 0.9, ("rsi>70",), "m7", T0)
    intent = propose(signal, Decimal("0.3"), order_type=OrderType.LIMIT, limit_price=Decimal(3000), reduce_only=True)
    assert intent.client_order_id == client_order_id("trend", "ETH/USDT", T0)
    assert (intent.side, intent.amount, intent.limit_price, intent.reduce_only) == (
        Side.SELL,
        Decimal("0.3"),
        Decimal(3000),
        True,
    )
    assert intent.key == "binance:ETH/USDT" and signal.key == intent.key


def test_sizer_takes_the_smallest_applicable_method_scaled_by_strength() -> None:
    signal = Signal("trend", "acct", "x", "A", Side.BUY, 0.5, 0.9, (), "m", T0)
    limits = SizingLimits(fixed_fraction=Decimal("0.1"), kelly_cap=Decimal("0.02"))
    equity, price = Decimal(10_000), Decimal(100)
    assert propose_amount(signal, equity=equity, price=price, limits=limits) == Decimal(5)  # 10% x 0.5
    with_atr = propose_amount(signal, equity=equity, price=price, limits=limits, atr=Decimal(10))
    assert with_atr == Decimal("1.25")  # 10,000 x 0.5% / (2 x 10) = 2.5, x 0.5
    kelly = propose_amount(signal, equity=equity, price=price, limits=limits, win_probability=0.9, payoff_ratio=2.0)
    assert kelly == Decimal(1)  # capped at 2% of equity = 2 units, x 0.5
    no_edge = propose_amount(signal, equity=equity, price=price, limits=limits, win_probability=0.1, payoff_ratio=1.0)
    assert no_edge == 0


def test_sizer_caps_the_proposal_by_portfolio_cvar() -> None:
    signal = Signal("trend", "acct", "x", "A", Side.BUY, 1.0, 0.9, (), "m", T0)
    limits = SizingLimits(fixed_fraction=Decimal(1), max_var_pct=Decimal("0.005"), var_confidence=Decimal("0.9"))
    amount = propose_amount(
        signal, equity=Decimal(10_000), price=Decimal(100), limits=limits, returns={"x:A": RETURNS}, exposures={}
    )
    assert 0 < amount < 100
    assert portfolio_var({"x:A": amount * 100}, {"x:A": RETURNS}, 0.9).cvar <= 50 + 1e-6
