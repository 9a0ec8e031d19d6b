"""risk.config: defaults from the issue, strictness, and unsafe combinations refused at start."""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal

import pytest
from pydantic import ValidationError

from risk.config import BreakerLimits, RiskLimits


def test_defaults_are_the_documented_limits() -> None:
    limits = RiskLimits()
    assert limits.max_position_pct == Decimal("0.02")
    assert limits.breakers.max_drawdown_pct == Decimal("0.15")
    assert limits.max_leverage == Decimal(1)
    assert limits.sizing.kelly_cap == Decimal("0.02")


def test_limits_are_frozen_and_refuse_unknown_fields() -> None:
    limits = RiskLimits()
    with pytest.raises(ValidationError):
        limits.max_open_orders = 3  # type: ignore[misc]
    with pytest.raises(ValidationError, match="max_positon_pct"):
        RiskLimits(max_positon_pct=Decimal("0.01"))  # type: ignore[call-arg]


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("max_position_pct", "1.5"),
        ("max_position_pct", "0"),
        ("max_leverage", "-1"),
        ("max_open_orders", 0),
        ("max_market_data_age", timedelta(0)),
        ("max_order_notional", "NaN"),
    ],
)
def test_limit_out_of_range_fails_naming_the_field(field: str, value: object) -> None:
    with pytest.raises(ValidationError, match=field):
        RiskLimits(**{field: value})  # type: ignore[arg-type]


def test_no_position_limit_and_unlimited_leverage_is_refused() -> None:
    with pytest.raises(ValidationError, match="unsafe limits: max_position_pct and max_leverage"):
        RiskLimits(max_position_pct=None, max_leverage=None)


def test_no_price_band_and_no_order_notional_cap_is_refused() -> None:
    with pytest.raises(ValidationError, match="fat-finger"):
        RiskLimits(price_band_pct=None, max_order_notional=None)


def test_empty_allowed_symbols_is_refused() -> None:
    with pytest.raises(ValidationError, match="allowed_symbols is empty"):
        RiskLimits(allowed_symbols=frozenset())


def test_values_from_the_environment_parse_from_text() -> None:
    limits = RiskLimits.model_validate(
        {"max_position_pct": "0.01", "max_market_data_age": "PT2S", "breakers": {"max_drawdown_pct": "0.1"}}
    )
    assert limits.max_position_pct == Decimal("0.01")
    assert limits.max_market_data_age == timedelta(seconds=2)
    assert limits.breakers == BreakerLimits(max_drawdown_pct=Decimal("0.1"))
