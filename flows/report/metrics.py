"""Performance metrics of a run: pure functions of its results, no I/O.

Conventions, stated once:

- Money (PnL, fees, equity, drawdown value, notionals) is ``Decimal`` in the quote currency;
  ratios (returns, Sharpe, win rate, turnover) are ``float``. A ratio that is undefined (no
  trades, flat equity, a single sample) is ``None``, never NaN or infinity.
- Sharpe and Sortino use **daily** returns: equity is resampled to the last sample of each UTC
  calendar day (days without a sample carry the previous close; crypto trades every day), the
  first sample is day 0's opening value, and the ratio is annualised with sqrt(365). Risk-free
  rate 0. Sharpe = mean / sample standard deviation (n - 1); Sortino = mean / downside deviation,
  sqrt(mean(min(r, 0)^2)) over all days (target 0).
- CAGR = (final / initial) ^ (365.25 days / elapsed) - 1 over the first to last sample.
  Calmar = CAGR / max drawdown (as a fraction).
- Max drawdown is the largest fall from a running peak as a fraction of that peak, on every
  sample; its ``value`` is that fall in money, with the peak, trough and recovery times (recovery
  None if equity never got back to the peak).
- Trades are round trips matched FIFO per symbol from the fills (long and short); a trade's PnL is
  net of the entry fee share and the exit fee. Win rate = winners / trades; profit factor = gross
  profit / gross loss (None without a losing trade); expectancy = mean net PnL per trade.
- Exposure = share of the run's time with a non-zero position (each sample's state holds until the
  next sample). Turnover = traded notional / mean equity.
- Buy-and-hold per symbol = last close / first close - 1 within the run; the equal-weight
  buy-and-hold curve puts an equal share of the initial equity in each symbol at its first close.

>>> from core.clock import parse_utc
>>> from flows.report.results import EquitySample
>>> def s(day, eq):
...     return EquitySample(parse_utc(f"2024-01-0{day}T00:00:00Z"), Decimal(eq), Decimal(eq), Decimal(0))
>>> dd = max_drawdown([s(1, 100), s(2, 120), s(3, 90), s(4, 130)])
>>> dd.pct, dd.value, dd.recovery.day
(0.25, Decimal('30'), 4)
"""

from __future__ import annotations

import math
from bisect import bisect_right
from collections import deque
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, time, timedelta
from decimal import Decimal
from itertools import pairwise

from core.events import Side
from core.fills import Fill
from core.orders import TradingState, TradingStateChanged
from flows.report.results import EquitySample, PricePoint, RunResults
from risk.decisions import DecisionKind, RiskDecision

ZERO = Decimal(0)
#: Money that comes out of a division (averages, buy-and-hold values) is rounded to this.
MONEY_STEP = Decimal("1e-8")
DAYS_PER_YEAR = 365  # crypto trades every calendar day
YEAR = timedelta(days=365.25)


def _rounded(value: Decimal) -> Decimal:
    """``value`` with at most 8 decimal places (results of a division would carry 28 digits)."""
    exponent = value.as_tuple().exponent
    return value if isinstance(exponent, int) and exponent >= -8 else value.quantize(MONEY_STEP)


# ---- trades -----------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class ClosedTrade:
    """One round trip: ``amount`` bought (long) or sold (short) at ``entry_price`` and closed at
    ``exit_price``. ``fees`` = the entry fill's fee share + the exit fill's fee share, in quote."""

    symbol: str
    side: str  # "long" or "short"
    entry_ts: datetime
    exit_ts: datetime
    entry_price: Decimal
    exit_price: Decimal
    amount: Decimal
    fees: Decimal

    @property
    def gross_pnl(self) -> Decimal:
        move = self.exit_price - self.entry_price
        return move * self.amount if self.side == "long" else -move * self.amount

    @property
    def net_pnl(self) -> Decimal:
        return self.gross_pnl - self.fees

    @property
    def entry_notional(self) -> Decimal:
        return self.entry_price * self.amount

    @property
    def return_pct(self) -> float:
        """Net PnL as a fraction of the entry notional."""
        return float(self.net_pnl / self.entry_notional) if self.entry_notional else 0.0

    @property
    def duration(self) -> timedelta:
        return self.exit_ts - self.entry_ts


@dataclass(frozen=True, slots=True)
class OpenPosition:
    """What is still held at the end of the run (FIFO lots merged): average entry price and the
    entry fees not yet attributed to a closed trade."""

    symbol: str
    side: str
    amount: Decimal
    avg_entry_price: Decimal
    first_entry_ts: datetime
    entry_fees: Decimal


@dataclass(slots=True)
class _Lot:
    side: Side
    ts: datetime
    price: Decimal
    amount: Decimal  # remaining
    fee: Decimal  # remaining share of the entry fee, in quote


def fee_in_quote(fill: Fill, quote_currency: str) -> Decimal | None:
    """The fill's fee in the quote currency: as is when charged in quote, times the price when
    charged in the base asset, None when charged in a third asset (e.g. BNB) that has no price here.

    >>> from core.clock import parse_utc
    >>> from core.fills import Liquidity
    >>> f = Fill("binance", "1", "c", "a", "BTC/USDT", Side.BUY, Decimal("60000"), Decimal("0.01"),
    ...          Decimal("0.00001"), "BTC", Liquidity.TAKER, parse_utc("2024-01-01T00:00:00Z"))
    >>> fee_in_quote(f, "USDT")
    Decimal('0.60000')
    """
    if fill.fee == 0 or fill.fee_currency == quote_currency:
        return fill.fee
    base = fill.symbol.split("/")[0]
    if fill.fee_currency == base:
        return fill.fee * fill.price
    return None


def round_trips(fills: Iterable[Fill], quote_currency: str) -> tuple[tuple[ClosedTrade, ...], tuple[OpenPosition, ...]]:
    """Match fills into round trips, FIFO per symbol, in fill-time order.

    A fill against the open lots' direction closes them oldest first (one trade per lot it
    touches); what is left of it opens a lot the other way. Fees charged in a third currency
    count as 0 here (:func:`fee_in_quote`; they are listed apart in the report).

    >>> from core.clock import parse_utc
    >>> from core.fills import Liquidity
    >>> def f(side, price, amount, hour):
    ...     return Fill("binance", f"{hour}", "c", "a", "BTC/USDT", side, Decimal(price), Decimal(amount),
    ...                 Decimal("1"), "USDT", Liquidity.TAKER, parse_utc(f"2024-01-01T0{hour}:00:00Z"))
    >>> trades, still_open = round_trips([f(Side.BUY, "100", "2", 1), f(Side.SELL, "110", "1", 2)], "USDT")
    >>> trades[0].net_pnl, still_open[0].amount
    (Decimal('8.5'), Decimal('1'))
    """
    books: dict[str, deque[_Lot]] = {}
    trades: list[ClosedTrade] = []
    for fill in sorted(fills, key=lambda x: x.ts_event):  # stable: ties keep the caller's order
        if fill.amount <= 0:
            continue
        fee = fee_in_quote(fill, quote_currency) or ZERO
        lots = books.setdefault(fill.symbol, deque())
        left = fill.amount
        while left > 0 and lots and lots[0].side is not fill.side:
            lot = lots[0]
            take = min(left, lot.amount)
            entry_fee = lot.fee * take / lot.amount
            exit_fee = fee * take / fill.amount
            trades.append(
                ClosedTrade(
                    fill.symbol,
                    "long" if lot.side is Side.BUY else "short",
                    lot.ts,
                    fill.ts_event,
                    lot.price,
                    fill.price,
                    take,
                    entry_fee + exit_fee,
                )
            )
            lot.amount -= take
            lot.fee -= entry_fee
            left -= take
            if lot.amount == 0:
                lots.popleft()
        if left > 0:
            lots.append(_Lot(fill.side, fill.ts_event, fill.price, left, fee * left / fill.amount))
    still_open = []
    for symbol in sorted(books):
        lots = books[symbol]
        if not lots:
            continue
        amount = sum((lot.amount for lot in lots), ZERO)
        avg = sum((lot.price * lot.amount for lot in lots), ZERO) / amount
        side = "long" if lots[0].side is Side.BUY else "short"
        fees = sum((lot.fee for lot in lots), ZERO)
        still_open.append(OpenPosition(symbol, side, amount, avg, lots[0].ts, fees))
    return tuple(trades), tuple(still_open)


@dataclass(frozen=True, slots=True)
class TradeStats:
    trades: int
    wins: int
    losses: int
    draws: int
    win_rate: float | None
    gross_profit: Decimal
    gross_loss: Decimal  # a positive number
    net_pnl: Decimal
    profit_factor: float | None
    avg_win: Decimal | None
    avg_loss: Decimal | None  # negative
    expectancy: Decimal | None
    best: Decimal | None
    worst: Decimal | None
    avg_duration: timedelta | None


def trade_stats(trades: Sequence[ClosedTrade]) -> TradeStats:
    """Counts and averages of closed trades (see the module docstring for the definitions).

    >>> from core.clock import parse_utc
    >>> t = parse_utc("2024-01-01T00:00:00Z")
    >>> def tr(entry, exit_):
    ...     return ClosedTrade("X/USDT", "long", t, t, Decimal(entry), Decimal(exit_), Decimal(1), Decimal(0))
    >>> st = trade_stats([tr(100, 130), tr(100, 90), tr(100, 95)])
    >>> st.win_rate, st.profit_factor, st.expectancy
    (0.3333333333333333, 2.0, Decimal('5'))
    """
    pnls = [t.net_pnl for t in trades]
    wins = [p for p in pnls if p > 0]
    losses = [p for p in pnls if p < 0]
    n = len(pnls)
    gross_profit = sum(wins, ZERO)
    gross_loss = -sum(losses, ZERO)
    net = sum(pnls, ZERO)
    return TradeStats(
        trades=n,
        wins=len(wins),
        losses=len(losses),
        draws=n - len(wins) - len(losses),
        win_rate=len(wins) / n if n else None,
        gross_profit=gross_profit,
        gross_loss=gross_loss,
        net_pnl=net,
        profit_factor=float(gross_profit / gross_loss) if gross_loss else None,
        avg_win=_rounded(gross_profit / len(wins)) if wins else None,
        avg_loss=_rounded(-gross_loss / len(losses)) if losses else None,
        expectancy=_rounded(net / n) if n else None,
        best=max(pnls) if pnls else None,
        worst=min(pnls) if pnls else None,
        avg_duration=sum((t.duration for t in trades), timedelta(0)) / n if n else None,
    )


# ---- equity -----------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Drawdown:
    """The deepest fall from a running peak: ``pct`` of the peak, ``value`` in money."""

    pct: float
    value: Decimal
    peak: datetime | None
    trough: datetime | None
    recovery: datetime | None


def max_drawdown(samples: Sequence[EquitySample]) -> Drawdown:
    """The largest peak-to-trough fall as a fraction of the peak (0 and no times if equity never falls)."""
    best = Drawdown(0.0, ZERO, None, None, None)
    if not samples:
        return best
    peak, peak_ts = samples[0].equity, samples[0].ts
    worst_pct, worst_value, worst_level = ZERO, ZERO, ZERO
    worst_peak: datetime | None = None
    trough: datetime | None = None
    for s in samples:
        if s.equity > peak:
            peak, peak_ts = s.equity, s.ts
        elif peak > 0:
            fall = (peak - s.equity) / peak
            if fall > worst_pct:
                worst_pct, worst_value, worst_level = fall, peak - s.equity, peak
                worst_peak, trough = peak_ts, s.ts
    if worst_peak is None or trough is None:
        return best
    recovery = next((s.ts for s in samples if s.ts > trough and s.equity >= worst_level), None)
    return Drawdown(float(worst_pct), worst_value, worst_peak, trough, recovery)


def drawdown_series(samples: Sequence[EquitySample]) -> list[tuple[datetime, float]]:
    """Each sample's fall from the running peak as a fraction of that peak (0 at a new high).

    >>> from core.clock import parse_utc
    >>> t = parse_utc("2024-01-01T00:00:00Z")
    >>> [d for _, d in drawdown_series([EquitySample(t, Decimal(v), Decimal(v), ZERO) for v in (10, 8, 12)])]
    [0.0, 0.2, 0.0]
    """
    out: list[tuple[datetime, float]] = []
    peak: Decimal | None = None
    for s in samples:
        peak = s.equity if peak is None or s.equity > peak else peak
        out.append((s.ts, float((peak - s.equity) / peak) if peak > 0 else 0.0))
    return out


def daily_closes(samples: Sequence[EquitySample]) -> list[tuple[datetime, Decimal]]:
    """Equity at the end of each UTC calendar day, from the first sample's day to the last's,
    days without a sample carrying the previous close; preceded by the first sample itself as the
    opening value when its day has later samples (so a first day of data gives a return too).

    >>> from core.clock import parse_utc
    >>> pts = [EquitySample(parse_utc(t), Decimal(v), Decimal(v), ZERO)
    ...        for t, v in (("2024-01-01T09:00:00Z", 100), ("2024-01-01T18:00:00Z", 101), ("2024-01-03T01:00:00Z", 99))]
    >>> [(t.day, str(v)) for t, v in daily_closes(pts)]
    [(1, '100'), (1, '101'), (2, '101'), (3, '99')]
    """
    if not samples:
        return []
    out: list[tuple[datetime, Decimal]] = [(samples[0].ts, samples[0].equity)]
    day = day_one = samples[0].ts.date()
    last_day = samples[-1].ts.date()
    i, last = 0, samples[0].equity
    while day <= last_day:
        end = datetime.combine(day + timedelta(days=1), time(0), tzinfo=samples[0].ts.tzinfo)
        while i < len(samples) and samples[i].ts < end:
            last = samples[i].equity
            i += 1
        out.append((end - timedelta(microseconds=1), last))
        day += timedelta(days=1)
    if len(samples) == 1 or samples[1].ts.date() != day_one:
        del out[0]  # the first day's close is the first sample itself: no separate opening value
    return out


def daily_returns(samples: Sequence[EquitySample]) -> list[float]:
    """Simple returns between consecutive :func:`daily_closes`."""
    closes = [v for _, v in daily_closes(samples)]
    return [float(b / a - 1) if a > 0 else 0.0 for a, b in pairwise(closes)]


def sharpe(returns: Sequence[float], periods_per_year: int = DAYS_PER_YEAR) -> float | None:
    """Annualised Sharpe of periodic returns (risk-free 0); None with < 2 returns or no variation.

    Mean 0.02/3, sample variance (1/9 + 25/9 + 16/9) * 1e-4 / 2 = 7/3 * 1e-4, so per period
    (0.02/3) / sqrt(7/3 * 1e-4) = 0.436436:

    >>> round(sharpe([0.01, -0.01, 0.02], periods_per_year=1), 6)
    0.436436
    >>> round(sharpe([0.01, -0.01, 0.02]) / math.sqrt(365), 6)
    0.436436
    """
    n = len(returns)
    if n < 2:
        return None
    mean = math.fsum(returns) / n
    var = math.fsum((r - mean) ** 2 for r in returns) / (n - 1)
    # A float sum of identical returns can leave ~1e-35 of variance: treat that as flat.
    if var <= 1e-24:
        return None
    return mean / math.sqrt(var) * math.sqrt(periods_per_year)


def sortino(returns: Sequence[float], periods_per_year: int = DAYS_PER_YEAR) -> float | None:
    """Annualised Sortino (target 0); None with < 2 returns or no losing period.

    Downside deviation sqrt(0.01^2 / 3) = 0.0057735, so per period (0.02/3) / 0.0057735 = 1.154701:

    >>> round(sortino([0.01, -0.01, 0.02], periods_per_year=1), 6)
    1.154701
    """
    n = len(returns)
    if n < 2:
        return None
    downside = math.sqrt(math.fsum(min(r, 0.0) ** 2 for r in returns) / n)
    if downside == 0:
        return None
    return math.fsum(returns) / n / downside * math.sqrt(periods_per_year)


def cagr(initial: Decimal, final: Decimal, elapsed: timedelta) -> float | None:
    """Compound annual growth rate; None for no elapsed time or a non-positive start or end.

    >>> round(cagr(Decimal(100), Decimal(121), timedelta(days=730.5)), 10)
    0.1
    """
    if elapsed <= timedelta(0) or initial <= 0 or final <= 0:
        return None
    growth: float = float(final / initial) ** (YEAR / elapsed)
    return growth - 1


def exposure_time(samples: Sequence[EquitySample]) -> float | None:
    """Share of the run's time (first to last sample) with a non-zero position; None with < 2 samples."""
    if len(samples) < 2:
        return None
    total = samples[-1].ts - samples[0].ts
    if total <= timedelta(0):
        return None
    held = sum((b.ts - a.ts for a, b in pairwise(samples) if a.exposure != 0), timedelta(0))
    return held / total


# ---- buy and hold -----------------------------------------------------------------------------


def buy_and_hold_return(points: Sequence[PricePoint]) -> float | None:
    """Last close / first close - 1 (points in time order); None without two points."""
    if len(points) < 2 or points[0].close <= 0:
        return None
    return float(points[-1].close / points[0].close - 1)


def buy_and_hold_curve(
    prices: Mapping[str, Sequence[PricePoint]], initial: Decimal, at: Sequence[datetime]
) -> list[tuple[datetime, Decimal]]:
    """Value at each time of ``at`` of ``initial`` split equally across the symbols at their first
    close; a symbol is worth its allocation until its first close and then follows its last close
    at or before the time.

    >>> from core.clock import parse_utc
    >>> t = [parse_utc(f"2024-01-0{d}T00:00:00Z") for d in (1, 2)]
    >>> p = {"A": [PricePoint(t[0], Decimal(10)), PricePoint(t[1], Decimal(20))],
    ...      "B": [PricePoint(t[0], Decimal(5)), PricePoint(t[1], Decimal(5))]}
    >>> [str(v) for _, v in buy_and_hold_curve(p, Decimal(100), t)]
    ['100', '150']
    """
    usable = {s: sorted(pts, key=lambda p: p.ts) for s, pts in prices.items() if pts and pts[0].close > 0}
    if not usable:
        return [(ts, initial) for ts in at]
    share = initial / len(usable)
    times = {s: [p.ts for p in pts] for s, pts in usable.items()}
    out = []
    for ts in at:
        value = ZERO
        for sym, pts in usable.items():
            i = bisect_right(times[sym], ts) - 1
            value += share if i < 0 else share * pts[i].close / pts[0].close
        out.append((ts, _rounded(value)))
    return out


# ---- risk -------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class StateChange:
    ts: datetime
    old: TradingState
    new: TradingState
    reason: str


@dataclass(frozen=True, slots=True)
class RiskSummary:
    approvals: int
    denials: int
    cancel_alls: int
    denials_by_reason: tuple[tuple[str, int], ...]  # most frequent first, then by code
    state_changes: tuple[StateChange, ...]
    time_in_state: tuple[tuple[str, float], ...]  # share of the run per trading state


def risk_summary(decisions: Sequence[RiskDecision], start: datetime, end: datetime) -> RiskSummary:
    """Counts of the gate's verdicts, denials by reason code (an order denied for two reasons counts
    under both), every state change, and the share of ``start``..``end`` spent in each state."""
    by_reason: dict[str, int] = {}
    changes: list[StateChange] = []
    counts = dict.fromkeys(DecisionKind, 0)
    for d in sorted(decisions, key=lambda x: (x.ts, x.decision_id)):
        counts[d.kind] += 1
        if d.kind is DecisionKind.DENIED:
            for code in {r.code for r in d.reasons}:
                by_reason[code] = by_reason.get(code, 0) + 1
        if isinstance(d.event, TradingStateChanged):
            ev = d.event
            changes.append(StateChange(d.ts, ev.old, ev.new, ev.reason))
    spent = dict.fromkeys(TradingState, timedelta(0))
    state, since = TradingState.ACTIVE, start
    for c in changes:
        at = min(max(c.ts, start), end)
        spent[state] += at - since
        state, since = c.new, at
    spent[state] += end - since
    total = end - start
    shares = tuple(
        (s.value, spent[s] / total if total > timedelta(0) else (1.0 if s is state else 0.0)) for s in TradingState
    )
    return RiskSummary(
        approvals=counts[DecisionKind.APPROVED],
        denials=counts[DecisionKind.DENIED],
        cancel_alls=counts[DecisionKind.CANCEL_ALL],
        denials_by_reason=tuple(sorted(by_reason.items(), key=lambda kv: (-kv[1], kv[0]))),
        state_changes=tuple(changes),
        time_in_state=shares,
    )


# ---- everything ---------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class SymbolMetrics:
    symbol: str
    stats: TradeStats
    fees: Decimal
    traded_notional: Decimal
    fills: int
    buy_and_hold_return: float | None


@dataclass(frozen=True, slots=True)
class ReportMetrics:
    initial_equity: Decimal
    final_equity: Decimal
    net_profit: Decimal
    total_return: float
    cagr: float | None
    sharpe: float | None
    sortino: float | None
    calmar: float | None
    drawdown: Drawdown
    exposure_time: float | None
    avg_gross_exposure: float | None  # mean gross exposure / equity
    turnover: float | None
    traded_notional: Decimal
    fees: Decimal
    fees_other_currencies: tuple[tuple[str, Decimal], ...]
    stats: TradeStats
    trades: tuple[ClosedTrade, ...]
    open_positions: tuple[OpenPosition, ...]
    per_symbol: tuple[SymbolMetrics, ...]
    buy_and_hold_return: float | None  # equal weight
    buy_and_hold: tuple[tuple[datetime, Decimal], ...]  # at the equity samples' times
    days: int
    risk: RiskSummary


def compute(results: RunResults) -> ReportMetrics:
    """Every metric of the report, from the results alone (deterministic: no clock is read)."""
    meta = results.metadata
    samples = sorted(results.equity, key=lambda s: s.ts)
    initial = meta.initial_equity
    final = samples[-1].equity if samples else initial
    quote = meta.quote_currency
    trades, still_open = round_trips(results.fills, quote)
    fees, other = ZERO, dict[str, Decimal]()
    notional = ZERO
    per_fees: dict[str, Decimal] = {}
    per_notional: dict[str, Decimal] = {}
    per_fills: dict[str, int] = {}
    for f in results.fills:
        q = fee_in_quote(f, quote)
        if q is None:
            other[f.fee_currency] = other.get(f.fee_currency, ZERO) + f.fee
        else:
            fees += q
            per_fees[f.symbol] = per_fees.get(f.symbol, ZERO) + q
        notional += f.notional
        per_notional[f.symbol] = per_notional.get(f.symbol, ZERO) + f.notional
        per_fills[f.symbol] = per_fills.get(f.symbol, 0) + 1
    dd = max_drawdown(samples)
    returns = daily_returns(samples)
    elapsed = samples[-1].ts - samples[0].ts if samples else timedelta(0)
    growth = cagr(initial, final, elapsed)
    mean_equity = sum((s.equity for s in samples), ZERO) / len(samples) if samples else ZERO
    positive = [s for s in samples if s.equity > 0]
    prices = {s: sorted(p, key=lambda x: x.ts) for s, p in results.prices.items()}
    symbols = sorted(set(meta.symbols) | {t.symbol for t in trades} | set(per_fills))
    per_symbol = tuple(
        SymbolMetrics(
            sym,
            trade_stats([t for t in trades if t.symbol == sym]),
            per_fees.get(sym, ZERO),
            per_notional.get(sym, ZERO),
            per_fills.get(sym, 0),
            buy_and_hold_return(prices.get(sym, ())),
        )
        for sym in symbols
    )
    # No prices, no benchmark: a flat line at the initial equity would read as a 0% buy-and-hold.
    bh = buy_and_hold_curve(prices, initial, [s.ts for s in samples]) if any(prices.values()) else []
    start = samples[0].ts if samples else meta.start
    end = samples[-1].ts if samples else meta.end
    return ReportMetrics(
        initial_equity=initial,
        final_equity=final,
        net_profit=final - initial,
        total_return=float(final / initial - 1),
        cagr=growth,
        sharpe=sharpe(returns),
        sortino=sortino(returns),
        calmar=growth / dd.pct if growth is not None and dd.pct > 0 else None,
        drawdown=dd,
        exposure_time=exposure_time(samples),
        avg_gross_exposure=math.fsum(float(s.exposure / s.equity) for s in positive) / len(positive)
        if positive
        else None,
        turnover=float(notional / mean_equity) if mean_equity > 0 else None,
        traded_notional=notional,
        fees=fees,
        fees_other_currencies=tuple(sorted(other.items())),
        stats=trade_stats(trades),
        trades=trades,
        open_positions=still_open,
        per_symbol=per_symbol,
        buy_and_hold_return=float(bh[-1][1] / initial - 1) if len(bh) >= 2 else None,
        buy_and_hold=tuple(bh),
        days=max(len(returns), 0),
        risk=risk_summary(results.decisions, min(start, meta.start), max(end, meta.end)),
    )
