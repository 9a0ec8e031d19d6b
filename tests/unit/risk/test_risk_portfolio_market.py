"""risk.portfolio worst-case aggregation and risk.market validation."""

from __future__ import annotations

import base64
import pickle
from datetime import datetime
from decimal import Decimal

import pytest

from core.events import Side
from risk.market import InstrumentRules, MarketView
from risk.portfolio import FLAT
from tests.unit.risk._risk_builders import T0, market, portfolio, position, resting


def test_portfolio_counts_open_orders_on_the_growing_side_as_filled() -> None:
    book = portfolio(
        positions=(position("0.5", "60000"), position("-2", "3000", symbol="ETH/USDT")),
        orders=(
            resting(Side.BUY, "59000", "0.25", coid="b"),
            resting(Side.SELL, "61000", "1", coid="s"),
            resting(Side.BUY, "2900", "1", coid="e", reduce_only=True, symbol="ETH/USDT"),
        ),
    )
    btc = book.exposure("binance:BTC/USDT")
    assert (btc.long_worst, btc.short_worst) == (Decimal("0.75"), Decimal("-0.5"))
    eth = book.exposure("binance:ETH/USDT")
    assert eth.reducing_buys == 1 and eth.long_worst == -1
    assert book.gross_exposure == Decimal("0.75") * 60000 + 2 * 3000
    assert book.net_long == Decimal("0.75") * 60000 - 1 * 3000
    assert book.net_short == Decimal("-0.5") * 60000 - 2 * 3000
    assert book.net_exposure == 42000
    assert len(book.orders_for("binance:BTC/USDT")) == 2 and book.has_order("e")
    assert book.exposure("binance:SOL/USDT") is FLAT
    assert set(book.positions) == {"binance:BTC/USDT", "binance:ETH/USDT"}
    assert len(book.open_orders) == 3


def test_instrument_with_only_orders_is_valued_at_its_highest_order_price() -> None:
    book = portfolio(orders=(resting(Side.BUY, "100", "1", coid="a"), resting(Side.BUY, "120", "1", coid="b")))
    assert book.gross_exposure == 240


@pytest.mark.parametrize(
    ("positions", "orders", "problem"),
    [
        ((position("1", "NaN"),), (), "mark price NaN"),
        ((position("1"), position("2")), (), "two positions"),
        ((), (resting(Side.BUY, "100", "-1"),), "remaining -1"),
        ((), (resting(Side.BUY, "0", "1"),), "price 0"),
    ],
)
def test_portfolio_with_broken_numbers_reports_a_problem_instead_of_raising(
    positions: tuple, orders: tuple, problem: str
) -> None:
    book = portfolio(positions=positions, orders=orders)
    assert book.problem is not None and problem in book.problem
    assert book.gross_exposure == 0


@pytest.mark.parametrize(
    ("rules", "problem"),
    [
        (InstrumentRules(Decimal("NaN"), Decimal("0.1")), "price_tick NaN"),
        (InstrumentRules(Decimal("0.1"), Decimal("0.1" + "0" * 30 + "1")), "more than 18 decimal places"),
        (InstrumentRules(Decimal("0.1"), Decimal("0.1"), min_amount=Decimal(-1)), "min_amount -1"),
        (InstrumentRules(Decimal("0.1"), Decimal("0.1"), min_amount=Decimal(2), max_amount=Decimal(1)), "max_amount 1"),
    ],
)
def test_instrument_rules_name_their_problem(rules: InstrumentRules, problem: str) -> None:
    assert problem in (rules.problem() or "")


def test_market_view_refuses_a_naive_timestamp() -> None:
    with pytest.raises(ValueError, match="aware UTC"):
        MarketView("binance", "BTC/USDT", Decimal(1), market().rules, datetime(2024, 1, 1))
    assert market(ask="60010").problem() is None and market().age(T0).total_seconds() == 0


# A MarketView pickled by the code before InstrumentRules and MarketView derived their rounding
# flags and key at construction (commit 32f0e74): recovery snapshots of that age must still load.
OLD_MARKET_VIEW_PICKLE = (
    "gAWVLQEAAAAAAACMC3Jpc2subWFya2V0lIwKTWFya2V0Vmlld5STlCmBlF2UKIwHYmluYW5jZZSMCEJUQy9VU0RUlIwHZGVjaW1hbJSMB0Rl"
    "Y2ltYWyUk5SMBTYwMDAwlIWUUpRoAIwPSW5zdHJ1bWVudFJ1bGVzlJOUKYGUXZQoaAmMBDAuMDGUhZRSlGgJjAcwLjAwMDAxlIWUUpRoCYwH"
    "MC4wMDAwMZSFlFKUTmgJjAE1lIWUUpROZWKMCGRhdGV0aW1llIwIZGF0ZXRpbWWUk5RDCgfoCAgXNg8AAACUaB2MCHRpbWV6b25llJOUaB2M"
    "CXRpbWVkZWx0YZSTlEsASwBLAIeUUpSFlFKUhpRSlGgJjAg1OTk5OS45OZSFlFKUaAmMCDYwMDAwLjAxlIWUUpROZWIu"
)


def test_market_view_snapshot_from_before_the_derived_fields_restores_complete() -> None:
    view = pickle.loads(base64.b64decode(OLD_MARKET_VIEW_PICKLE))
    assert isinstance(view, MarketView)
    assert view.key == "binance:BTC/USDT" and view.problem() is None
    assert view.rules.unit_amount_step == Decimal("0.00001") and view.rules.unit_price_tick == Decimal("0.01")
    assert view.rules.floor_amount(Decimal("0.0123456")) == Decimal("0.01234")
    again = pickle.loads(pickle.dumps(view))
    assert again == view and again.key == view.key and again.rules.unit_price_tick == Decimal("0.01")


def test_market_view_snapshot_keeps_a_problem_judged_again() -> None:
    broken = MarketView("binance", "BTC/USDT", Decimal("NaN"), InstrumentRules(Decimal("0.5"), Decimal(0)), T0)
    again = pickle.loads(pickle.dumps(broken))
    assert again.problem() == broken.problem() is not None
    assert again.rules.problem() == "amount_step 0 must be a finite number > 0"
    assert again.rules.unit_price_tick is None
