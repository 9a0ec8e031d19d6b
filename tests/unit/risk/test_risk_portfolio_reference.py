"""PortfolioView's faster aggregation gives exactly what the straightforward one did
(``_reference_portfolio``): the same problem text, totals and per-instrument exposure, down to the
Decimal exponent, and the same order lookups."""

from __future__ import annotations

from decimal import Decimal

from hypothesis import given, settings
from hypothesis import strategies as st

from core.events import Side
from core.orders import OrderType
from risk.portfolio import OpenOrder, PortfolioView, Position
from tests.unit.risk import _reference_portfolio as reference
from tests.unit.risk.test_risk_gate_properties import amounts, signed_amounts, symbols, wild_decimal

prices = st.decimals(min_value="0.01", max_value="100000", places=2)


@st.composite
def books(draw: st.DrawFn, numbers: st.SearchStrategy[Decimal]) -> tuple[list[Position], list[OpenOrder], Decimal]:
    held = draw(st.lists(symbols, max_size=3, unique=True))
    positions = [Position("binance", sym, draw(numbers), draw(numbers)) for sym in held]
    orders = [
        OpenOrder(
            draw(st.sampled_from(["a", "b", "c", "d"])),
            draw(st.sampled_from(["binance", "kraken"])),
            draw(symbols),
            draw(st.sampled_from(Side)),
            draw(st.sampled_from(OrderType)),
            draw(numbers),
            draw(numbers),
            draw(st.booleans()),
        )
        for _ in range(draw(st.integers(0, 8)))
    ]
    return positions, orders, draw(numbers)


def assert_same(positions: list[Position], orders: list[OpenOrder], equity: Decimal) -> None:
    new = PortfolioView("acct", equity, positions, orders)
    old = reference.PortfolioView("acct", equity, positions, orders)
    assert new.problem == old.problem
    assert (str(new.gross_exposure), str(new.net_long), str(new.net_short)) == (
        str(old.gross_exposure),
        str(old.net_long),
        str(old.net_short),
    )
    keys = {p.key for p in positions} | {o.key for o in orders} | {"binance:NONE/USDT"}
    for key in keys:
        a, b = new.exposure(key), old.exposure(key)
        assert [str(getattr(a, f)) for f in a.__slots__] == [str(getattr(b, f)) for f in b.__slots__]
        assert new.orders_for(key) == old.orders_for(key)
    assert [new.has_order(c) for c in "abcde"] == [old.has_order(c) for c in "abcde"]
    assert dict(new.positions) == dict(old.positions) and new.open_orders == old.open_orders


@given(books(wild_decimal))
@settings(max_examples=300)
def test_portfolio_matches_reference_on_wild_numbers(book: tuple[list[Position], list[OpenOrder], Decimal]) -> None:
    assert_same(*book)


@given(books(st.one_of(amounts, signed_amounts, prices)))
@settings(max_examples=300)
def test_portfolio_matches_reference_on_sane_books(book: tuple[list[Position], list[OpenOrder], Decimal]) -> None:
    assert_same(*book)
