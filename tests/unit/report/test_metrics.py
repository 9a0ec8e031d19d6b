"""Report metrics against values worked out by hand on small series, and their edge cases."""

from __future__ import annotations

import math
from datetime import timedelta
from decimal import Decimal

import pytest

from core.clock import parse_utc
from core.events import Side
from core.fills import Fill, Liquidity
from core.orders import CancelAllOrders, DenialReason, OrderDenied, OrderIntent, OrderType, TradingState
from core.orders import TradingStateChanged as Changed
from flows.report import EquitySample, PricePoint, RunMetadata, RunResults
from flows.report.metrics import (
    buy_and_hold_curve,
    cagr,
    compute,
    daily_returns,
    exposure_time,
    max_drawdown,
    risk_summary,
    round_trips,
    sharpe,
    sortino,
    trade_stats,
)
from risk.decisions import record

D = Decimal
T0 = parse_utc("2024-01-01T00:00:00Z")


def at(hours: float):
    return T0 + timedelta(hours=hours)


def sample(hours: float, equity: str, exposure: str = "0") -> EquitySample:
    return EquitySample(at(hours), D(equity), D(equity), D(exposure))


def fill(n: int, side: Side, price: str, amount: str, fee: str, hours: float, ccy: str = "USDT", sym: str = "BTC/USDT"):
    return Fill(
        "binance", f"f{n}", f"c{n}", "acct", sym, side, D(price), D(amount), D(fee), ccy, Liquidity.TAKER, at(hours)
    )


def meta(symbols=("BTC/USDT",), initial="100", start=0.0, end=96.0) -> RunMetadata:
    return RunMetadata("r", "backtest", ("s",), "binance", symbols, "1h", at(start), at(end), D(initial), "USDT")


# Daily closes 100 -> 110 -> 99 -> 108.9: returns +10%, -10%, +10%.
DAILY = [sample(0, "100"), sample(24, "110"), sample(48, "99"), sample(72, "108.9")]


def test_daily_returns_start_from_the_first_sample_when_it_is_alone_on_its_day():
    assert daily_returns(DAILY) == pytest.approx([0.1, -0.1, 0.1])


def test_sharpe_of_three_daily_returns_matches_the_hand_computation():
    # mean 1/30, sample sd sqrt(((2/30)^2 * 2 + (4/30)^2) / 2) = sqrt(0.013333), times sqrt(365)
    expected = (1 / 30) / math.sqrt(((2 / 30) ** 2 * 2 + (4 / 30) ** 2) / 2) * math.sqrt(365)
    assert sharpe(daily_returns(DAILY)) == pytest.approx(expected)
    assert expected == pytest.approx(5.5151, abs=1e-4)


def test_sortino_uses_the_downside_deviation_over_all_days():
    # downside deviation sqrt(0.1^2 / 3) = 0.057735; mean 1/30
    assert sortino(daily_returns(DAILY)) == pytest.approx((1 / 30) / math.sqrt(0.01 / 3) * math.sqrt(365))


def test_max_drawdown_has_value_pct_peak_trough_and_recovery():
    dd = max_drawdown([*DAILY, sample(96, "110"), sample(120, "80")])
    # peak 110 (day 1) -> 80 (day 5) is deeper than 110 -> 99; not recovered
    assert (dd.pct, dd.value, dd.peak, dd.trough, dd.recovery) == (
        pytest.approx(30 / 110),
        D(30),
        at(24),
        at(120),
        None,
    )
    first = max_drawdown([*DAILY, sample(96, "110")])
    assert (first.pct, first.value, first.trough, first.recovery) == (pytest.approx(0.1), D(11), at(48), at(96))


def test_cagr_and_calmar_follow_the_definitions():
    assert cagr(D(100), D(121), timedelta(days=730.5)) == pytest.approx(0.1)
    results = RunResults(meta(), tuple(DAILY))
    m = compute(results)
    growth = 1.089 ** (365.25 / 3) - 1
    assert m.cagr == pytest.approx(growth)
    assert m.calmar == pytest.approx(growth / 0.1)
    assert m.total_return == pytest.approx(0.089)
    assert m.net_profit == D("8.9")


def test_round_trips_fifo_with_partial_exits_fees_short_and_open_remainder():
    fills = [
        fill(1, Side.BUY, "100", "2", "0.2", 1),
        fill(2, Side.SELL, "110", "1", "0.11", 2),  # closes half of the lot: fees 0.1 + 0.11
        fill(3, Side.SELL, "90", "1.5", "0.135", 3),  # closes the rest (1), opens a short of 0.5
        fill(4, Side.BUY, "80", "0.5", "0.04", 4),  # covers the short
        fill(5, Side.BUY, "50", "1", "0.001", 5, ccy="BTC"),  # fee in base: 0.05 USDT; stays open
    ]
    trades, still_open = round_trips(fills, "USDT")
    assert [(t.side, t.amount, t.net_pnl) for t in trades] == [
        ("long", D(1), D("9.79")),  # +10 - 0.1 - 0.11
        ("long", D(1), D("-10.19")),  # -10 - 0.1 - 0.09
        ("short", D("0.5"), D("4.915")),  # +5 (90 -> 80 on 0.5) - 0.045 - 0.04
    ]
    assert len(still_open) == 1
    assert (still_open[0].amount, still_open[0].avg_entry_price, still_open[0].entry_fees) == (D(1), D(50), D("0.050"))


def test_trade_stats_win_rate_profit_factor_expectancy():
    trades, _ = round_trips(
        [
            fill(1, Side.BUY, "100", "2", "0.2", 1),
            fill(2, Side.SELL, "110", "1", "0.11", 2),
            fill(3, Side.SELL, "90", "1", "0.09", 3),
        ],
        "USDT",
    )
    st = trade_stats(trades)
    assert (st.trades, st.wins, st.losses, st.draws) == (2, 1, 1, 0)
    assert st.win_rate == 0.5
    assert st.profit_factor == pytest.approx(9.79 / 10.19)
    assert (st.avg_win, st.avg_loss, st.expectancy) == (D("9.79"), D("-10.19"), D("-0.2"))
    assert st.avg_duration == timedelta(hours=1.5)


def test_exposure_is_the_share_of_time_with_a_position():
    # flat 0-1h, in the market 1h-2h, flat 2h-4h
    assert exposure_time([sample(0, "100"), sample(1, "100", "50"), sample(2, "100"), sample(4, "100")]) == 0.25


def test_turnover_fees_and_fees_in_a_third_currency():
    fills = (
        fill(1, Side.BUY, "100", "1", "0.1", 1),
        fill(2, Side.SELL, "110", "1", "0.01", 2, ccy="BNB"),
    )
    m = compute(RunResults(meta(), (sample(0, "100"), sample(1, "100", "100"), sample(2, "110")), fills))
    assert m.traded_notional == D(210)
    assert m.turnover == pytest.approx(210 / (310 / 3))
    assert m.fees == D("0.1")
    assert m.fees_other_currencies == (("BNB", D("0.01")),)
    # the BNB fee has no USDT price here, so the trade counts only the entry fee
    assert m.trades[0].net_pnl == D("9.9")


def test_buy_and_hold_equal_weight_and_per_symbol():
    prices = {
        "BTC/USDT": (PricePoint(at(0), D(100)), PricePoint(at(24), D(150))),
        "ETH/USDT": (PricePoint(at(0), D(10)), PricePoint(at(24), D(8))),
    }
    curve = buy_and_hold_curve(prices, D(1000), [at(0), at(12), at(24)])
    assert [v for _, v in curve] == [D(1000), D(1000), D(1150)]  # 500 * 1.5 + 500 * 0.8
    m = compute(
        RunResults(meta(("BTC/USDT", "ETH/USDT"), "1000"), (sample(0, "1000"), sample(24, "1000")), prices=prices)
    )
    assert m.buy_and_hold_return == pytest.approx(0.15)
    assert [(s.symbol, s.buy_and_hold_return) for s in m.per_symbol] == [
        ("BTC/USDT", pytest.approx(0.5)),
        ("ETH/USDT", pytest.approx(-0.2)),
    ]


def test_no_trades_gives_none_not_nan_for_trade_ratios():
    m = compute(RunResults(meta(), tuple(DAILY)))
    st = m.stats
    assert (st.trades, st.win_rate, st.profit_factor, st.expectancy, st.avg_win, st.avg_loss) == (
        0, None, None, None, None, None,
    )  # fmt: skip
    assert m.traded_notional == 0 and m.turnover == 0.0


def test_flat_equity_has_no_sharpe_sortino_or_calmar():
    flat = tuple(sample(h, "100") for h in range(0, 24 * 5, 6))
    m = compute(RunResults(meta(), flat))
    assert (m.sharpe, m.sortino, m.calmar) == (None, None, None)
    assert (m.drawdown.pct, m.drawdown.value, m.drawdown.peak) == (0.0, D(0), None)
    assert m.total_return == 0.0 and m.cagr == 0.0


def test_rising_equity_without_a_losing_day_has_no_sortino():
    rising = [sample(24 * d, str(100 + d)) for d in range(5)]
    assert sortino(daily_returns(rising)) is None
    assert sharpe(daily_returns(rising)) is not None


def test_one_sample_gives_none_for_every_time_based_ratio():
    m = compute(RunResults(meta(), (sample(0, "100"),)))
    assert (m.sharpe, m.sortino, m.cagr, m.calmar, m.exposure_time) == (None, None, None, None, None)
    assert m.days == 0 and m.total_return == 0.0


def test_no_samples_at_all_reports_the_initial_equity():
    m = compute(RunResults(meta(), ()))
    assert (m.final_equity, m.total_return, m.sharpe, m.buy_and_hold_return) == (D(100), 0.0, None, None)


def _intent(n: int) -> OrderIntent:
    return OrderIntent(
        "acct", "s", "binance", "BTC/USDT", Side.BUY, OrderType.MARKET, D(1), None, False, f"c{n}", at(n)
    )


def test_risk_summary_counts_denials_per_reason_and_time_in_each_state():
    two = (DenialReason("position_limit_exceeded", "x"), DenialReason("leverage_exceeded", "y"))
    decisions = [
        record(OrderDenied(_intent(1), two, "d1", at(1)), TradingState.ACTIVE),
        record(OrderDenied(_intent(2), two[:1], "d2", at(2)), TradingState.ACTIVE),
        record(Changed("acct", TradingState.ACTIVE, TradingState.HALTED, "drawdown", at(24)), TradingState.HALTED),
        record(CancelAllOrders("acct", "drawdown", at(24), True), TradingState.HALTED),
        record(Changed("acct", TradingState.HALTED, TradingState.ACTIVE, "reset", at(72)), TradingState.ACTIVE),
    ]
    summary = risk_summary(decisions, at(0), at(96))
    assert summary.denials_by_reason == (("position_limit_exceeded", 2), ("leverage_exceeded", 1))
    assert (summary.approvals, summary.denials, summary.cancel_alls, len(summary.state_changes)) == (0, 2, 1, 2)
    assert dict(summary.time_in_state) == {"active": 0.5, "reducing": 0.0, "halted": 0.5}


def test_metadata_refuses_a_settings_value_that_is_not_a_json_scalar():
    with pytest.raises(TypeError, match=r"settings\['fee'\] is a Decimal"):
        RunMetadata("r", "backtest", ("s",), "binance", (), "1h", at(0), at(1), D(1), "USDT", {"fee": D("0.001")})


def test_metadata_refuses_naive_times_and_a_non_positive_initial_equity():
    naive = at(0).replace(tzinfo=None)
    with pytest.raises(ValueError, match=r"RunMetadata\.start must be an aware UTC datetime"):
        RunMetadata("r", "backtest", ("s",), "binance", (), "1h", naive, at(1), D(1), "USDT")
    with pytest.raises(ValueError, match="initial_equity must be > 0"):
        RunMetadata("r", "backtest", ("s",), "binance", (), "1h", at(0), at(1), D(0), "USDT")
