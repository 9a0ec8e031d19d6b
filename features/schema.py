"""The single list of features: name, dtype, version, description and valid range.

Feast views, the features topic, the PostgreSQL table and the models all read :data:`FEATURES`;
nothing repeats the names by hand. The indicator parameters are part of the names (``rsi_14``):
changing one is a new feature, not a silent redefinition. Bump a feature's ``version`` (and
:data:`SCHEMA_VERSION`) when its definition changes.

A value of ``None`` means "not available" (warm-up, an empty bar, a book awaiting resync); the
dtype describes the values that are present. Floats are never NaN in a feature vector.

This module imports nothing from the rest of ``features`` so that Feast definitions and models
can read it without loading the computation (which lives in :mod:`features.engine`).

>>> FEATURES_BY_NAME["rsi_14"].max
100.0
>>> validate({"rsi_14": 101.0, "bar_empty": False}, require_all=False)
['rsi_14=101.0 is above its maximum 100.0']
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Literal

SCHEMA_VERSION = 1

DType = Literal["float64", "int64", "bool"]
FeatureValue = float | int | bool | None

_INF = math.inf


@dataclass(frozen=True, slots=True)
class FeatureSpec:
    """One feature: its name, dtype, definition version, meaning and valid range (inclusive).

    >>> spec = FeatureSpec("x", "float64", 1, "a number", 0.0, 1.0)
    >>> spec.check(0.5) is None, spec.check(None) is None
    (True, True)
    >>> spec.check(float("nan"))
    'x=nan is not finite'
    """

    name: str
    dtype: DType
    version: int
    description: str
    min: float = -_INF
    max: float = _INF

    def check(self, value: object) -> str | None:
        """Why ``value`` is not a valid value of this feature, or ``None`` if it is (or is missing)."""
        if value is None:
            return None
        if self.dtype == "bool":
            return None if isinstance(value, bool) else f"{self.name}={value!r} is not a bool"
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            return f"{self.name}={value!r} is not a number"
        if self.dtype == "int64" and not isinstance(value, int):
            return f"{self.name}={value!r} is not an integer"
        if isinstance(value, float) and not math.isfinite(value):
            return f"{self.name}={value!r} is not finite"
        if value < self.min:
            return f"{self.name}={value!r} is below its minimum {self.min!r}"
        if value > self.max:
            return f"{self.name}={value!r} is above its maximum {self.max!r}"
        return None


def _f(name: str, description: str, lo: float = -_INF, hi: float = _INF) -> FeatureSpec:
    return FeatureSpec(name, "float64", 1, description, lo, hi)


#: |z| of a value against the population std of a 20-value window that contains it is at most sqrt(19).
_Z_MAX_20 = math.sqrt(19.0)

FEATURES: tuple[FeatureSpec, ...] = (
    # the bar itself
    _f("bar_open", "first trade price of the bar", 0.0),
    _f("bar_high", "highest trade price of the bar", 0.0),
    _f("bar_low", "lowest trade price of the bar", 0.0),
    _f("bar_close", "last trade price of the bar", 0.0),
    _f("bar_volume", "base volume traded in the bar", 0.0),
    _f("bar_vwap", "volume-weighted average trade price of the bar", 0.0),
    FeatureSpec("bar_trade_count", "int64", 1, "trades in the bar (None for exchange candles)", 0.0),
    _f("bar_buy_volume", "base volume of buyer-initiated trades in the bar", 0.0),
    _f("bar_sell_volume", "base volume of seller-initiated trades in the bar", 0.0),
    FeatureSpec(
        "bar_empty", "bool", 1, "no trade in the bar: prices and returns are None, indicators as of the last traded bar"
    ),
    # returns and indicators (updated by non-empty bars only)
    _f("return_1", "simple close-to-close return over one bar, (c - c_prev) / c_prev", -1.0),
    _f("log_return_1", "log close-to-close return over one bar, log(c / c_prev)"),
    _f("sma_20", "simple moving average of 20 closes (TA-Lib SMA)", 0.0),
    _f("ema_20", "exponential moving average of closes, k = 2/21, SMA seed (TA-Lib EMA)", 0.0),
    _f("rsi_14", "relative strength index, Wilder smoothing, 14 bars (TA-Lib RSI; flat = 50)", 0.0, 100.0),
    _f("macd_12_26", "MACD line, EMA12 - EMA26 of closes (TA-Lib MACD)"),
    _f("macd_signal_9", "EMA9 of the MACD line (TA-Lib MACD signal)"),
    _f("macd_hist", "MACD line - signal (TA-Lib MACD hist)"),
    _f("bb_upper_20_2", "Bollinger upper band, SMA20 + 2 population std (TA-Lib BBANDS)"),
    _f("bb_middle_20", "Bollinger middle band, SMA20 (TA-Lib BBANDS)", 0.0),
    _f("bb_lower_20_2", "Bollinger lower band, SMA20 - 2 population std (TA-Lib BBANDS)"),
    _f("atr_14", "average true range, Wilder smoothing, 14 bars (TA-Lib ATR)", 0.0),
    _f("vwap_20", "rolling VWAP over 20 bars (bar VWAP, or typical price for candles, weighted by volume)", 0.0),
    _f("stoch_k_14_3", "slow stochastic %K: SMA3 of fast %K over 14 bars (TA-Lib STOCH)", 0.0, 100.0),
    _f("stoch_d_3", "slow stochastic %D: SMA3 of %K (TA-Lib STOCH)", 0.0, 100.0),
    _f("obv", "on-balance volume since the stream started (TA-Lib OBV)"),
    _f("realized_vol_20", "sqrt of the sum of 20 squared one-bar log returns (not annualized)", 0.0),
    _f("zscore_20", "(close - SMA20) / population std of 20 closes; 0 for a flat window", -_Z_MAX_20, _Z_MAX_20),
    # trade flow over the 60 s before the bar end
    _f("flow_buy_volume_60s", "buyer-initiated base volume in the 60 s before the bar end", 0.0),
    _f("flow_sell_volume_60s", "seller-initiated base volume in the 60 s before the bar end", 0.0),
    _f("flow_imbalance_60s", "(buy - sell) / (buy + sell) volume in the 60 s before the bar end", -1.0, 1.0),
    _f("flow_intensity_60s", "trades per second in the 60 s before the bar end", 0.0),
    # order book as of the bar end (events before the bar end only)
    _f("book_mid", "(best bid + best ask) / 2", 0.0),
    _f("book_spread", "best ask - best bid", 0.0),
    _f("book_spread_bps", "spread / mid in basis points", 0.0),
    _f("book_microprice", "size-weighted mid (bid * ask_qty + ask * bid_qty) / (bid_qty + ask_qty)", 0.0),
    _f("book_imbalance_5", "(bid qty - ask qty) / (bid qty + ask qty) over the best 5 levels", -1.0, 1.0),
    _f("book_depth_bid_10bps", "base quantity bid within 10 bps below the mid", 0.0),
    _f("book_depth_ask_10bps", "base quantity offered within 10 bps above the mid", 0.0),
)

FEATURE_NAMES: tuple[str, ...] = tuple(spec.name for spec in FEATURES)
FEATURES_BY_NAME: dict[str, FeatureSpec] = {spec.name: spec for spec in FEATURES}


def validate(values: Mapping[str, object], *, require_all: bool = True) -> list[str]:
    """Every problem with a feature dict: unknown or missing names, wrong types, out-of-range values.

    >>> validate({"no_such_feature": 1.0}, require_all=False)
    ["unknown feature 'no_such_feature'"]
    """
    problems = [f"unknown feature {name!r}" for name in values if name not in FEATURES_BY_NAME]
    for spec in FEATURES:
        if spec.name not in values:
            if require_all:
                problems.append(f"missing feature {spec.name!r}")
            continue
        problem = spec.check(values[spec.name])
        if problem is not None:
            problems.append(problem)
    return problems


@dataclass(frozen=True, slots=True)
class FeatureVector:
    """The features of one instrument for one bar, as known at the bar's end.

    ``ts_event`` is the bar end, the first moment every value is known (the event timestamp for
    point-in-time joins); ``values`` has exactly the names of :data:`FEATURES`.

    >>> from datetime import UTC
    >>> v = FeatureVector("binance:BTC/USDT", "1m", datetime(2024, 1, 1, 0, 1, tzinfo=UTC),
    ...                   datetime(2024, 1, 1, tzinfo=UTC), {"rsi_14": 55.0})
    >>> v.as_row()["symbol"], v.as_row()["rsi_14"]
    ('binance:BTC/USDT', 55.0)
    """

    key: str
    timeframe: str
    ts_event: datetime
    bar_start: datetime
    values: Mapping[str, FeatureValue]
    schema_version: int = SCHEMA_VERSION

    def as_row(self) -> dict[str, object]:
        """Flat row for a table or a Feast push: entity, timestamps, then every feature."""
        row: dict[str, object] = {
            "symbol": self.key,
            "timeframe": self.timeframe,
            "event_timestamp": self.ts_event,
            "bar_start": self.bar_start,
            "schema_version": self.schema_version,
        }
        row.update(self.values)
        return row
