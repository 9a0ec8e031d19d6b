"""Portfolio accounting: the PnL identity holds exactly for any fill sequence (property-based), and
the worked cases (long, short, flip, fees in base, drawdown, the gate's view) come out as by hand."""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal, Inexact, localcontext

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from core.events import Side
from core.fills import Fill, Liquidity
from core.orders import OrderType
from execution.portfolio import Portfolio
from risk.portfolio import OpenOrder
from tests.unit.execution._exec_builders import ACCOUNT, T0, d

SYMBOLS = ("BTC/USDT", "ETH/USDT")


def fill(
    side: Side,
    price: str | Decimal,
    amount: str | Decimal,
    fee: str | Decimal = "0",
    *,
    symbol: str = "BTC/USDT",
    fee_currency: str = "USDT",
    n: int = 1,
) -> Fill:
    return Fill(
        "binance",
        f"f{n}",
        f"b4-{n}",
        ACCOUNT,
        symbol,
        side,
        Decimal(price),
        Decimal(amount),
        Decimal(fee),
        fee_currency,
        Liquidity.TAKER,
        T0 + timedelta(seconds=n),
    )


prices = st.decimals(min_value=Decimal("0.01"), max_value=Decimal("100000"), places=2)
amounts = st.decimals(min_value=Decimal("0.00001"), max_value=Decimal("50"), places=5)
fee_rates = st.sampled_from([Decimal(0), Decimal("0.00075"), Decimal("0.001"), Decimal("-0.0001")])
fills_strategy = st.lists(
    st.tuples(st.sampled_from(SYMBOLS), st.sampled_from([Side.BUY, Side.SELL]), prices, amounts, fee_rates),
    min_size=1,
    max_size=40,
)


@settings(max_examples=300, deadline=None)
@given(fills_strategy, st.lists(prices, min_size=2, max_size=2), st.decimals(0, 10**7, places=2))
def test_cash_plus_positions_at_last_price_equals_start_plus_pnl_minus_fees_exactly(
    steps: list[tuple[str, Side, Decimal, Decimal, Decimal]], marks: list[Decimal], start: Decimal
) -> None:
    pf = Portfolio(ACCOUNT, start)
    last: dict[str, Decimal] = {}
    fees = Decimal(0)
    for n, (symbol, side, price, amount, rate) in enumerate(steps):
        fee = price * amount * rate
        fees += fee
        pf.apply_fill(fill(side, price, amount, fee, symbol=symbol, n=n))
        last[symbol] = price
        # The identity holds after every fill, at the last traded prices.
        with localcontext() as ctx:
            ctx.prec = 100
            ctx.traps[Inexact] = True
            value = pf.cash + sum(h.amount * last[h.symbol] for h in pf.holdings().values())
            assert value == start + pf.realized_pnl + pf.unrealized_pnl - pf.fees
            assert pf.equity == value
    assert pf.fees == fees
    for symbol, mark in zip(SYMBOLS, marks, strict=True):
        if symbol in last:
            pf.mark("binance", symbol, mark)
            last[symbol] = mark
    with localcontext() as ctx:
        ctx.prec = 100
        ctx.traps[Inexact] = True
        value = pf.cash + sum(h.amount * last[h.symbol] for h in pf.holdings().values())
        assert value == start + pf.realized_pnl + pf.unrealized_pnl - pf.fees


@settings(max_examples=200, deadline=None)
@given(st.lists(st.tuples(st.sampled_from([Side.BUY, Side.SELL]), prices, amounts), min_size=1, max_size=30))
def test_position_amount_is_the_signed_sum_of_fills_and_flat_means_no_basis(
    steps: list[tuple[Side, Decimal, Decimal]],
) -> None:
    pf = Portfolio(ACCOUNT, Decimal(0))
    for n, (side, price, amount) in enumerate(steps):
        pf.apply_fill(fill(side, price, amount, n=n))
    holding = pf.holdings()["binance:BTC/USDT"]
    assert holding.amount == sum(a if s is Side.BUY else -a for s, _, a in steps)
    if holding.amount == 0:
        assert holding.cost_basis == 0 and holding.average_price is None and holding.unrealized_pnl == 0


def test_long_then_partial_close_books_realized_pnl_from_the_average_price() -> None:
    pf = Portfolio(ACCOUNT, d(10_000))
    pf.apply_fill(fill(Side.BUY, "100", "1", "0.1", n=1))
    pf.apply_fill(fill(Side.BUY, "110", "1", "0.11", n=2))
    assert pf.holdings()["binance:BTC/USDT"].average_price == d(105)
    pf.apply_fill(fill(Side.SELL, "120", "0.5", "0.06", n=3))
    h = pf.holdings()["binance:BTC/USDT"]
    assert (h.amount, h.cost_basis, h.realized_pnl, h.average_price) == (d("1.5"), d("157.5"), d("7.5"), d(105))
    assert pf.fees == d("0.27")
    assert pf.cash == d(10_000) - 100 - 110 + 60 - d("0.27")
    assert pf.unrealized_pnl == d("1.5") * 120 - d("157.5")


def test_short_then_cover_through_zero_flips_the_position_at_the_fill_price() -> None:
    pf = Portfolio(ACCOUNT, d(1_000))
    pf.apply_fill(fill(Side.SELL, "100", "2", n=1))
    assert pf.holdings()["binance:BTC/USDT"].average_price == d(100)
    pf.apply_fill(fill(Side.BUY, "90", "3", n=2))  # covers 2 at a 20 profit, opens 1 long at 90
    h = pf.holdings()["binance:BTC/USDT"]
    assert (h.amount, h.cost_basis, h.realized_pnl, h.average_price) == (d(1), d(90), d(20), d(90))
    assert pf.equity == d(1_020)


def test_thirds_of_a_position_close_exactly_even_when_the_basis_does_not_divide() -> None:
    pf = Portfolio(ACCOUNT, d(0))
    pf.apply_fill(fill(Side.BUY, "100", "1", n=1))
    pf.apply_fill(fill(Side.BUY, "100.01", "2", n=2))
    for n in range(3, 6):
        pf.apply_fill(fill(Side.SELL, "101", "1", n=n))
    h = pf.holdings()["binance:BTC/USDT"]
    assert h.amount == 0 and h.cost_basis == 0
    assert h.realized_pnl == 303 - d("300.02")


def test_fee_in_the_base_currency_is_valued_at_the_fill_price_and_other_currencies_are_refused() -> None:
    pf = Portfolio(ACCOUNT, d(1_000))
    pf.apply_fill(fill(Side.BUY, "100", "1", "0.001", fee_currency="BTC"))
    assert pf.fees == d("0.1")
    with pytest.raises(ValueError, match="BNB"):
        pf.apply_fill(fill(Side.BUY, "100", "1", "0.01", fee_currency="BNB", n=2))
    with pytest.raises(ValueError, match="settles in EUR"):
        pf.apply_fill(fill(Side.BUY, "100", "1", symbol="BTC/EUR", n=3))


def test_peak_equity_drawdown_and_equity_curve_follow_marks() -> None:
    pf = Portfolio(ACCOUNT, d(1_000))
    pf.apply_fill(fill(Side.BUY, "100", "5", n=1))
    pf.mark("binance", "BTC/USDT", d(120), T0 + timedelta(minutes=1))
    assert pf.peak_equity == d(1_100) and pf.drawdown == 0
    pf.mark("binance", "BTC/USDT", d(78), T0 + timedelta(minutes=2))
    assert pf.equity == d(890)
    assert pf.drawdown == (d(1_100) - d(890)) / d(1_100)
    pf.mark("binance", "BTC/USDT", d(100))
    assert pf.max_drawdown == (d(1_100) - d(890)) / d(1_100) > pf.drawdown
    assert [e for _, e in pf.equity_curve] == [d(1_000), d(1_100), d(890)]
    with pytest.raises(ValueError, match="must be a finite number > 0"):
        pf.mark("binance", "BTC/USDT", d(0))


def test_a_bounded_equity_curve_keeps_its_newest_points_and_the_peak_and_drawdown_of_all() -> None:
    """A long-running flow's portfolio keeps no curve (curve=0): memory and snapshots stay flat
    (the soak run saw the unbounded curve grow by a point per mark), and the drawdown still
    counts every mark."""
    for keep, expected in ((0, []), (2, [d(1_100), d(890)])):
        pf = Portfolio(ACCOUNT, d(1_000), curve=keep)
        pf.apply_fill(fill(Side.BUY, "100", "5", n=1))
        pf.mark("binance", "BTC/USDT", d(120), T0 + timedelta(minutes=1))
        pf.mark("binance", "BTC/USDT", d(78), T0 + timedelta(minutes=2))
        assert [e for _, e in pf.equity_curve] == expected
        assert pf.peak_equity == d(1_100) and pf.max_drawdown == (d(1_100) - d(890)) / d(1_100)


def test_view_gives_the_gate_equity_open_positions_at_marks_and_open_orders() -> None:
    pf = Portfolio(ACCOUNT, d(1_000))
    pf.apply_fill(fill(Side.BUY, "100", "2", n=1))
    pf.apply_fill(fill(Side.BUY, "10", "1", symbol="ETH/USDT", n=2))
    pf.apply_fill(fill(Side.SELL, "12", "1", symbol="ETH/USDT", n=3))  # flat: left out of the view
    pf.mark("binance", "BTC/USDT", d(110))
    order = OpenOrder("b4-9", "binance", "BTC/USDT", Side.BUY, OrderType.LIMIT, d(100), d(1))
    view = pf.view([order])
    assert view.problem is None
    assert view.equity == pf.equity == d(1_000) - 200 + 2 + 220
    assert list(view.positions) == ["binance:BTC/USDT"]
    assert view.exposure("binance:BTC/USDT").long_worst == d(3)
    assert view.has_order("b4-9")


def test_thousands_of_real_partial_closes_keep_the_basis_within_the_quantum_and_never_trap() -> None:
    # Real BTC/USDT 1m closes, about 100 USDT per fill, buy on an up candle and sell on a down one,
    # the day replayed twice: exact quotients by positions made of 2s and 5s once piled up digits in
    # the basis until a sum needed more than 80 (Inexact trapped at fill 7,860; the console's
    # positions then answered 500).
    from pathlib import Path

    from core.events import Candle
    from flows.replay import read_events

    path = Path(__file__).resolve().parents[3] / "data" / "sample" / "binance-1m-2021" / "BTC_USDT-1m.json"
    candles = [e for e in read_events(path) if isinstance(e, Candle)]
    pf = Portfolio(ACCOUNT, d(0))
    n = 0
    for _ in range(2):
        for c in candles:
            side = Side.BUY if c.close >= c.open else Side.SELL
            pf.apply_fill(fill(side, c.close, (100 / c.close).quantize(d("0.00001")), n=n))
            n += 1
    h = pf.holdings()["binance:BTC/USDT"]
    assert n == 2 * len(candles) > 14_000
    assert h.cost_basis.as_tuple().exponent >= -18
    with localcontext() as ctx:
        ctx.prec = 100
        ctx.traps[Inexact] = True
        assert pf.cash + h.amount * candles[-1].close == pf.realized_pnl + pf.unrealized_pnl - pf.fees
