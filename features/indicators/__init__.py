"""Streaming indicators: one class each, ``update(...)`` returns the current value (``None`` until
warm), ``get()`` repeats it, ``snapshot()`` / ``restore()`` carry the state as plain data.

Definitions (each equals TA-Lib's function of the same name to 1e-9 relative from TA-Lib's
first output on, checked on real candles in ``tests/unit/features/test_indicator_parity.py``):

==================  ===============================================================================
``Returns``         simple ``(x - prev) / prev`` (TA-Lib ``ROCP``) and log ``log(x / prev)``
``SMA``             mean of the last N (TA-Lib ``SMA``)
``EMA``             ``k = 2/(N+1)``, seeded with the SMA of the first N (TA-Lib ``EMA``)
``MACD``            TA-Lib ``MACD``: fast EMA seeded on the same bar as the slow one, signal EMA
``RSI``             Wilder: SMA seed of N changes, then ``(avg*(N-1) + x)/N`` (TA-Lib ``RSI``)
``Stochastic``      slow stochastic, SMA smoothing (TA-Lib ``STOCH``)
``BollingerBands``  SMA +/- nbdev * population std (TA-Lib ``BBANDS``, ``matype=SMA``)
``ATR``             Wilder-smoothed true range, SMA seed (TA-Lib ``ATR``)
``OBV``             TA-Lib ``OBV`` (starts at the first volume)
``VWAP``            rolling N-bar VWAP (no TA-Lib counterpart; checked against pandas)
``RealizedVolatility``  ``sqrt(sum r^2)`` of N log returns (checked against pandas)
``RollingZScore``   ``(x - mean) / population std`` over N (checked against pandas)
==================  ===============================================================================

Deliberate difference: where a window has no movement at all (0/0), RSI and the stochastic give
the neutral 50; TA-Lib gives 0. Inputs must be finite (the bar builders guarantee it).

River is used where it gives exactly the same numbers (``RollingMax`` / ``RollingMin`` in the
stochastic). River's ``EWMean`` cannot take TA-Lib's SMA seed, and its rolling ``Mean`` / ``Var``
revert accumulate rounding (a flat window does not return to exactly zero variance, so a z-score
of a flat window explodes); the window statistics here are recomputed with ``math.fsum`` instead.

>>> from features.indicators import EMA
>>> EMA(2).update(1.0) is None
True
"""

from features.indicators.momentum import NEUTRAL, RSI, Stochastic, StochValue
from features.indicators.trend import EMA, MACD, SMA, MACDValue, Returns, ReturnValue
from features.indicators.volatility import ATR, BollingerBands, BollingerValue, RealizedVolatility, RollingZScore
from features.indicators.volume import OBV, VWAP

__all__ = [
    "ATR",
    "EMA",
    "MACD",
    "NEUTRAL",
    "OBV",
    "RSI",
    "SMA",
    "VWAP",
    "BollingerBands",
    "BollingerValue",
    "MACDValue",
    "RealizedVolatility",
    "ReturnValue",
    "Returns",
    "RollingZScore",
    "StochValue",
    "Stochastic",
]
