"""Model inputs: the scale-free numbers a model learns from, derived from one feature vector.

Raw price levels (``bar_close`` ~ 50,000, ``sma_20``, ``obv``) are not stationary: a model fed
them learns the price of a month, not a pattern. The inputs are therefore returns, oscillators and
distances to the price scaled by the close. Their definition is versioned (:data:`INPUTS_VERSION`)
and is part of every catalog model's version.

Defined behaviour for odd values (the conformance tests check each one):

- a feature that is missing, ``None``, a non-number or not finite (NaN, inf) gives no input: the
  key is absent from the dict, and River models treat an absent key as unknown for that event;
- an input whose formula divides by a missing or non-positive close is absent too;
- an input beyond +-:data:`INPUT_LIMIT` (a finite but absurd value such as an ATR of 1e300) is
  clipped to the limit, so no model's arithmetic overflows;
- features not named here (a newer schema's additions) are ignored, so a model never sees a key
  it cannot have been trained on by accident.

>>> x = model_inputs({"bar_close": 100.0, "ema_20": 99.0, "rsi_14": 60.0, "return_1": float("nan")})
>>> sorted(x.items())
[('close_vs_ema_20', -0.01), ('rsi_14', 0.1)]
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from math import isfinite

from features.schema import FeatureValue

INPUTS_VERSION = 1

#: Features used as they are (already scale-free); rescaled to roughly unit range where cheap.
_AS_IS: tuple[tuple[str, float, float], ...] = (
    # name, offset, scale: input = (value - offset) / scale
    ("return_1", 0.0, 1.0),
    ("log_return_1", 0.0, 1.0),
    ("rsi_14", 50.0, 100.0),
    ("stoch_k_14_3", 50.0, 100.0),
    ("stoch_d_3", 50.0, 100.0),
    ("realized_vol_20", 0.0, 1.0),
    ("zscore_20", 0.0, 1.0),
    ("flow_imbalance_60s", 0.0, 1.0),
    ("book_imbalance_5", 0.0, 1.0),
    ("book_spread_bps", 0.0, 1.0),
)

#: Price-like features turned into a distance to the close: (value - close) / close, or value / close.
_VS_CLOSE: tuple[tuple[str, str, bool], ...] = (
    # input name, feature, True: (feature - close) / close; False: feature / close
    ("close_vs_ema_20", "ema_20", True),
    ("close_vs_sma_20", "sma_20", True),
    ("close_vs_vwap_20", "vwap_20", True),
    ("bb_upper_vs_close", "bb_upper_20_2", True),
    ("bb_lower_vs_close", "bb_lower_20_2", True),
    ("macd_rel", "macd_12_26", False),
    ("macd_signal_rel", "macd_signal_9", False),
    ("macd_hist_rel", "macd_hist", False),
    ("atr_rel", "atr_14", False),
    ("bar_range_rel", "_range", False),
)

#: Inputs are clipped to [-INPUT_LIMIT, INPUT_LIMIT]; real inputs are within +-100 by far.
INPUT_LIMIT = 1e6

#: Every input name a model can see (for documentation and the conformance tests).
INPUT_NAMES: tuple[str, ...] = tuple(n for n, _, _ in _AS_IS) + tuple(n for n, _, _ in _VS_CLOSE)


def finite(value: FeatureValue | object) -> float | None:
    """``value`` as a finite float, or ``None`` (missing, bool, not a number, NaN or inf).

    >>> finite(3), finite(True), finite(float("inf")), finite("2")
    (3.0, None, None, None)
    """
    if value is None or isinstance(value, bool) or not isinstance(value, int | float):
        return None
    as_float = float(value)
    return as_float if math.isfinite(as_float) else None


def model_inputs(values: Mapping[str, FeatureValue]) -> dict[str, float]:
    """The model input dict of one feature vector's values (see the module docstring for odd values).

    >>> model_inputs({})
    {}
    >>> model_inputs({"book_spread_bps": 1e300})
    {'book_spread_bps': 1000000.0}
    >>> model_inputs({"bar_close": 200.0, "bar_high": 202.0, "bar_low": 198.0})
    {'bar_range_rel': 0.02}
    """
    x: dict[str, float] = {}
    get = values.get
    for name, offset, scale in _AS_IS:
        v = get(name)
        if v is None:
            continue
        if type(v) is not float:  # the rare path: ints, bools, strings...
            v = finite(v)
            if v is None:
                continue
        elif not isfinite(v):
            continue
        y = (v - offset) / scale
        x[name] = y if -INPUT_LIMIT <= y <= INPUT_LIMIT else _clip(y)
    close = finite(get("bar_close"))
    if close is None or close <= 0.0:
        return x
    for input_name, feature, relative in _VS_CLOSE:
        if feature == "_range":
            high, low = finite(get("bar_high")), finite(get("bar_low"))
            v = None if high is None or low is None else high - low
        else:
            v = get(feature)
            if type(v) is not float or not isfinite(v):
                v = finite(v)
        if v is None:
            continue
        out = (v - close) / close if relative else v / close
        if isfinite(out):
            x[input_name] = out if -INPUT_LIMIT <= out <= INPUT_LIMIT else _clip(out)
    return x


def _clip(value: float) -> float:
    return INPUT_LIMIT if value > INPUT_LIMIT else -INPUT_LIMIT if value < -INPUT_LIMIT else value
