"""Position sizing: the sizer proposes an amount, the gate still checks it.

A sizer that cannot size (non-positive or non-finite equity, price or ATR) proposes 0, never an
exception and never an unbounded amount. Amounts and money are Decimal; statistics on return series
(Kelly odds, VaR, CVaR) are computed in float and the results converted back to Decimal.

>>> from decimal import Decimal
>>> fixed_fraction(Decimal("100000"), Decimal("50000"), Decimal("0.01"))
Decimal('0.02')
>>> volatility_target(Decimal("100000"), atr=Decimal("1000"), risk_pct=Decimal("0.005"),
...                   atr_multiple=Decimal("2"))
Decimal('0.250')
>>> kelly_fraction(0.55, 1.0, fraction=Decimal("0.5"), cap=Decimal("0.02"))
Decimal('0.02')
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from decimal import Decimal
from statistics import NormalDist, fmean, stdev
from typing import Literal

from core.events import Side
from core.money import float_to_decimal
from core.orders import OrderIntent, OrderType, Signal, client_order_id
from risk.config import SizingLimits
from risk.market import sane_positive

_ZERO = Decimal(0)

VarMethod = Literal["historical", "parametric"]


def fixed_fraction(equity: Decimal, price: Decimal, fraction: Decimal) -> Decimal:
    """Amount whose value at ``price`` is ``fraction`` of ``equity``.

    >>> fixed_fraction(Decimal("0"), Decimal("50000"), Decimal("0.01"))
    Decimal('0')
    """
    if not (sane_positive(equity) and sane_positive(price) and sane_positive(fraction)):
        return _ZERO
    return equity * fraction / price


def volatility_target(equity: Decimal, atr: Decimal, risk_pct: Decimal, atr_multiple: Decimal) -> Decimal:
    """Amount such that an adverse move of ``atr_multiple`` x ATR loses ``risk_pct`` of equity.

    Volatile markets get smaller positions; a zero ATR proposes nothing rather than infinity.

    >>> volatility_target(Decimal("100000"), Decimal("0"), Decimal("0.005"), Decimal("2"))
    Decimal('0')
    """
    if not all(sane_positive(v) for v in (equity, atr, risk_pct, atr_multiple)):
        return _ZERO
    return equity * risk_pct / (atr * atr_multiple)


def average_true_range(
    highs: Sequence[Decimal], lows: Sequence[Decimal], closes: Sequence[Decimal], period: int = 14
) -> Decimal:
    """Wilder's ATR over aligned high/low/close series (oldest first).

    The first ATR is the mean of the first ``period`` true ranges, then
    ``atr = (atr * (period - 1) + tr) / period``.

    >>> h = [Decimal(x) for x in ("10", "11", "12", "11")]
    >>> l = [Decimal(x) for x in ("9", "10", "10", "9")]
    >>> c = [Decimal(x) for x in ("9.5", "10.5", "11", "10")]
    >>> average_true_range(h, l, c, period=2)
    Decimal('1.875')
    """
    if not len(highs) == len(lows) == len(closes):
        raise ValueError(f"highs, lows and closes differ in length: {len(highs)}, {len(lows)}, {len(closes)}")
    if period < 1 or len(highs) < period + 1:
        raise ValueError(f"ATR({period}) needs at least {period + 1} bars, got {len(highs)}")
    ranges = [
        max(highs[i] - lows[i], abs(highs[i] - closes[i - 1]), abs(lows[i] - closes[i - 1]))
        for i in range(1, len(highs))
    ]
    atr = sum(ranges[:period], _ZERO) / period
    for tr in ranges[period:]:
        atr = (atr * (period - 1) + tr) / period
    return atr


def kelly_fraction(win_probability: float, payoff_ratio: float, *, fraction: Decimal, cap: Decimal) -> Decimal:
    """Fraction of equity to risk: ``fraction`` x full Kelly, clipped to ``[0, cap]``.

    Full Kelly is ``p - (1 - p) / b`` for win probability ``p`` and payoff ratio ``b`` (average
    win / average loss). A negative edge or unusable inputs give 0.

    >>> kelly_fraction(0.4, 1.0, fraction=Decimal("0.5"), cap=Decimal("0.02"))
    Decimal('0')
    >>> kelly_fraction(0.51, 1.0, fraction=Decimal("0.5"), cap=Decimal("0.25"))
    Decimal('0.010')
    """
    usable = (
        math.isfinite(win_probability)
        and math.isfinite(payoff_ratio)
        and 0 <= win_probability <= 1
        and payoff_ratio > 0
        and sane_positive(fraction)
        and sane_positive(cap)
    )
    if not usable:
        return _ZERO
    full = win_probability - (1 - win_probability) / payoff_ratio
    if not math.isfinite(full) or full <= 0:
        return _ZERO
    proposed = float_to_decimal(round(full, 12)) * fraction
    return min(proposed, cap)


@dataclass(frozen=True, slots=True)
class VarEstimate:
    """Value at risk and conditional value at risk (expected shortfall), as positive losses, in the
    unit of the series they come from (return fractions, or money for a P&L series)."""

    var: float
    cvar: float


def historical_var(series: Sequence[float], confidence: float) -> VarEstimate:
    """Empirical VaR / CVaR of a return (or P&L) series at ``confidence`` (e.g. 0.99).

    VaR is the ``confidence`` quantile of losses (``-series``, the smallest loss at or above that
    rank); CVaR is the mean of the losses from that rank up.

    >>> historical_var([0.01, -0.02, 0.005, -0.05, 0.0], confidence=0.8)
    VarEstimate(var=0.02, cvar=0.035)
    """
    losses = sorted(-x for x in _checked(series, confidence))
    rank = max(0, math.ceil(confidence * len(losses)) - 1)
    return VarEstimate(losses[rank], fmean(losses[rank:]))


def parametric_var(series: Sequence[float], confidence: float) -> VarEstimate:
    """Normal (variance-covariance) VaR / CVaR from the series' mean and sample standard deviation.

    >>> est = parametric_var([0.01, -0.01, 0.02, -0.02], confidence=0.99)
    >>> round(est.var, 4), round(est.cvar, 4)
    (0.0425, 0.0487)
    """
    values = _checked(series, confidence)
    mean = fmean(values)
    sigma = stdev(values) if len(values) > 1 else 0.0
    z = NormalDist().inv_cdf(confidence)
    return VarEstimate(z * sigma - mean, sigma * NormalDist().pdf(z) / (1 - confidence) - mean)


def _checked(series: Sequence[float], confidence: float) -> list[float]:
    if not 0 < confidence < 1:
        raise ValueError(f"confidence must be in (0, 1), got {confidence}")
    values = [float(x) for x in series]
    if not values or not all(math.isfinite(x) for x in values):
        raise ValueError("a VaR series needs at least one value and only finite values")
    return values


def portfolio_var(
    exposures: Mapping[str, Decimal],
    returns: Mapping[str, Sequence[float]],
    confidence: float,
    method: VarMethod = "historical",
) -> VarEstimate:
    """VaR / CVaR in money of positions ``exposures`` (signed value by instrument key), from each
    instrument's aligned window of returns: the P&L series ``sum(value_k * r_k,t)`` is measured
    historically or parametrically (the latter equals ``w' Cov w`` on the same window).

    >>> est = portfolio_var({"a": Decimal("1000")}, {"a": [0.01, -0.02, 0.005, -0.05, 0.0]}, 0.8)
    >>> est.var
    20.0
    """
    keys = [k for k, v in exposures.items() if v != 0]
    if not keys:
        return VarEstimate(0.0, 0.0)
    missing = [k for k in keys if k not in returns]
    if missing:
        raise ValueError(f"no returns window for {missing}")
    length = len(returns[keys[0]])
    if any(len(returns[k]) != length for k in keys):
        raise ValueError("return windows must be aligned (the same length for every instrument)")
    weights = [float(exposures[k]) for k in keys]
    pnl = [sum(w * float(returns[k][t]) for w, k in zip(weights, keys, strict=True)) for t in range(length)]
    measure = historical_var if method == "historical" else parametric_var
    return measure(pnl, confidence)


def cap_by_var(
    amount: Decimal,
    *,
    key: str,
    side: Side,
    price: Decimal,
    exposures: Mapping[str, Decimal],
    returns: Mapping[str, Sequence[float]],
    equity: Decimal,
    max_var_pct: Decimal,
    confidence: float,
    method: VarMethod = "historical",
    use_cvar: bool = True,
) -> Decimal:
    """Shrink ``amount`` so the resulting portfolio's CVaR (or VaR) stays within ``max_var_pct`` of
    equity. An order that does not raise the portfolio's risk (a hedge) keeps its amount; when the
    portfolio is already over the limit without it, nothing more is proposed.

    >>> rets = {"x:A": [0.01, -0.02, 0.005, -0.05, 0.0]}
    >>> cap_by_var(Decimal("10"), key="x:A", side=Side.BUY, price=Decimal("100"), exposures={},
    ...            returns=rets, equity=Decimal("10000"), max_var_pct=Decimal("0.001"), confidence=0.8)
    Decimal('2.857142857')
    """
    if not (sane_positive(amount) and sane_positive(price) and sane_positive(equity)):
        return _ZERO
    limit = float(max_var_pct * equity)
    signed = float(price) * (1.0 if side is Side.BUY else -1.0)

    def risk(units: float) -> float:
        book = {k: float(v) for k, v in exposures.items()}
        book[key] = book.get(key, 0.0) + signed * units
        est = portfolio_var({k: float_to_decimal(v) for k, v in book.items()}, returns, confidence, method)
        return max(0.0, est.cvar if use_cvar else est.var)

    full = float(amount)
    at_full, at_zero = risk(full), risk(0.0)
    if at_full <= limit or at_full <= at_zero:
        return amount
    if at_zero > limit:
        return _ZERO
    low, high = 0.0, full
    for _ in range(50):
        mid = (low + high) / 2
        if risk(mid) <= limit:
            low = mid
        else:
            high = mid
    return min(amount, float_to_decimal(math.floor(low * 1e9) / 1e9))


def propose_amount(
    signal: Signal,
    *,
    equity: Decimal,
    price: Decimal,
    limits: SizingLimits,
    atr: Decimal | None = None,
    win_probability: float | None = None,
    payoff_ratio: float | None = None,
    exposures: Mapping[str, Decimal] | None = None,
    returns: Mapping[str, Sequence[float]] | None = None,
) -> Decimal:
    """The sizer: the smallest amount any applicable method allows, scaled by the signal's strength,
    then capped by the portfolio CVaR limit when a returns window is given.

    Fixed fraction always applies; volatility targeting when ``atr`` is given; fractional Kelly when
    the win probability and payoff ratio are given (the Kelly fraction is a share of equity).

    >>> from core.clock import parse_utc
    >>> sig = Signal("trend", "acct", "binance", "BTC/USDT", Side.BUY, 0.5, 0.7, (), "m1",
    ...              parse_utc("2021-05-19T13:00:00Z"))
    >>> propose_amount(sig, equity=Decimal("100000"), price=Decimal("50000"), limits=SizingLimits())
    Decimal('0.010')
    """
    candidates = [fixed_fraction(equity, price, limits.fixed_fraction)]
    if atr is not None:
        candidates.append(volatility_target(equity, atr, limits.risk_per_trade_pct, limits.atr_multiple))
    if win_probability is not None and payoff_ratio is not None:
        kelly = kelly_fraction(win_probability, payoff_ratio, fraction=limits.kelly_fraction, cap=limits.kelly_cap)
        candidates.append(fixed_fraction(equity, price, kelly) if kelly > 0 else _ZERO)
    amount = min(candidates) * float_to_decimal(signal.strength)
    if returns is None or amount <= 0:
        return amount
    return cap_by_var(
        amount,
        key=signal.key,
        side=signal.side,
        price=price,
        exposures=exposures or {},
        returns=returns,
        equity=equity,
        max_var_pct=limits.max_var_pct,
        confidence=float(limits.var_confidence),
    )


def propose(
    signal: Signal,
    amount: Decimal,
    *,
    order_type: OrderType = OrderType.MARKET,
    limit_price: Decimal | None = None,
    reduce_only: bool = False,
) -> OrderIntent:
    """Turn a signal and a sized amount into an order intent with its deterministic client id.

    >>> from core.clock import parse_utc
    >>> sig = Signal("trend", "acct", "binance", "BTC/USDT", Side.BUY, 1.0, 0.7, ("ema cross",),
    ...              "m1", parse_utc("2021-05-19T13:00:00Z"))
    >>> intent = propose(sig, Decimal("0.01"))
    >>> intent.client_order_id == client_order_id("trend", "BTC/USDT", sig.ts_event)
    True
    """
    return OrderIntent(
        account=signal.account,
        strategy=signal.strategy,
        exchange=signal.exchange,
        symbol=signal.symbol,
        side=signal.side,
        order_type=order_type,
        amount=amount,
        limit_price=limit_price,
        reduce_only=reduce_only,
        client_order_id=client_order_id(signal.strategy, signal.symbol, signal.ts_event),
        ts_event=signal.ts_event,
    )
