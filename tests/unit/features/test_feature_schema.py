"""The feature schema is one consistent list, and its checks catch what they promise."""

from __future__ import annotations

import math
import re

import pytest

from features.schema import FEATURE_NAMES, FEATURES, FEATURES_BY_NAME, SCHEMA_VERSION, FeatureSpec, validate


def test_schema_names_are_unique_snake_case_with_types_ranges_and_descriptions() -> None:
    assert len(set(FEATURE_NAMES)) == len(FEATURES) == len(FEATURES_BY_NAME)
    assert SCHEMA_VERSION >= 1
    for spec in FEATURES:
        assert re.fullmatch(r"[a-z][a-z0-9_]*", spec.name), spec.name
        assert spec.dtype in ("float64", "int64", "bool")
        assert spec.version >= 1 and spec.description
        assert spec.min <= spec.max
    assert FEATURES_BY_NAME["zscore_20"].max == pytest.approx(math.sqrt(19))
    assert {s.dtype for s in FEATURES} == {"float64", "int64", "bool"}


@pytest.mark.parametrize(
    ("name", "value", "problem"),
    [
        ("rsi_14", 50.0, None),
        ("rsi_14", None, None),
        ("rsi_14", -0.1, "below its minimum"),
        ("rsi_14", math.inf, "not finite"),
        ("rsi_14", "50", "not a number"),
        ("rsi_14", True, "not a number"),
        ("bar_trade_count", 3, None),
        ("bar_trade_count", 3.0, "not an integer"),
        ("bar_empty", False, None),
        ("bar_empty", 0, "not a bool"),
        ("flow_imbalance_60s", 1.5, "above its maximum"),
        ("log_return_1", -3.0, None),
    ],
)
def test_feature_check_names_the_problem(name: str, value: object, problem: str | None) -> None:
    result = FEATURES_BY_NAME[name].check(value)
    if problem is None:
        assert result is None
    else:
        assert result is not None and problem in result and name in result


def test_validate_reports_unknown_and_missing_names() -> None:
    values: dict[str, object] = dict.fromkeys(FEATURE_NAMES)
    assert validate(values) == []
    del values["rsi_14"]
    values["rsi_15"] = 1.0
    assert validate(values) == ["unknown feature 'rsi_15'", "missing feature 'rsi_14'"]
    assert validate({}, require_all=False) == []
    assert FeatureSpec("x", "float64", 1, "d").check(1) is None
