"""One test per gate check, approve side and deny side; plus reason collection and trading states."""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal

import pytest

from core.clock import ManualClock
from core.events import Side
from core.orders import ApprovedOrder, OrderDenied, OrderIntent, OrderType, TradingState
from risk.config import RiskLimits
from risk.gate import Code, GateState, decision_id, evaluate
from risk.market import InstrumentRules, MarketView
from risk.portfolio import PortfolioView
from tests.unit.risk._risk_builders import (
    RULES,
    T0,
    d,
    gate_state,
    intent,
    market,
    portfolio,
    position,
    resting,
)


def run(
    order: OrderIntent,
    *,
    book: PortfolioView | None = None,
    view: MarketView | None = None,
    limits: RiskLimits | None = None,
    state: GateState | None = None,
) -> ApprovedOrder | OrderDenied:
    limits = limits or RiskLimits()
    return evaluate(order, book or portfolio(), view or market(), limits, state or gate_state(limits))


def approved(outcome: ApprovedOrder | OrderDenied) -> ApprovedOrder:
    assert isinstance(outcome, ApprovedOrder), outcome
    return outcome


def denied_codes(outcome: ApprovedOrder | OrderDenied) -> set[str]:
    assert isinstance(outcome, OrderDenied), outcome
    return set(outcome.codes)


# --- baseline and outcome shape ---------------------------------------------------------------


def test_submit_when_every_check_passes_then_approved_with_decision_id_and_time() -> None:
    order = intent("0.01")
    outcome = approved(run(order))
    assert outcome.intent is order
    assert outcome.amount == d("0.01")
    assert outcome.price is None
    assert outcome.ts_decided == T0
    assert outcome.decision_id == decision_id(order.client_order_id, T0)


def test_submit_when_denied_then_every_reason_has_code_and_human_message() -> None:
    outcome = run(intent("1"))
    assert isinstance(outcome, OrderDenied)
    for reason in outcome.reasons:
        assert reason.code in set(Code)
        assert len(reason.message) > 10
    assert outcome.decision_id == decision_id("b4-test-order", T0)


def test_submit_when_many_checks_fail_then_every_reason_is_collected() -> None:
    limits = RiskLimits(max_order_notional=d(1000), max_open_orders=1)
    clock = ManualClock(T0)
    clock.advance(timedelta(seconds=6))
    book = portfolio(orders=(resting(Side.SELL, "60100", "0.01"),))
    outcome = run(
        intent("2", price="70000"),
        book=book,
        limits=limits,
        state=gate_state(limits, clock=clock),
    )
    assert denied_codes(outcome) == {
        Code.POSITION_LIMIT_EXCEEDED,
        Code.LEVERAGE_EXCEEDED,
        Code.ORDER_NOTIONAL_EXCEEDED,
        Code.PRICE_BAND_EXCEEDED,
        Code.SELF_TRADE,
        Code.MAX_OPEN_ORDERS_EXCEEDED,
        Code.MARKET_DATA_STALE,
    }


def test_submit_when_inputs_unusable_then_early_return_keeps_the_arithmetic_free_reasons() -> None:
    limits = RiskLimits(allowed_symbols=frozenset({"ETH/USDT"}))
    outcome = run(
        intent("NaN", symbol="BTC/USDT"),
        limits=limits,
        state=gate_state(limits, trading_state=TradingState.HALTED),
    )
    assert denied_codes(outcome) == {Code.INVALID_AMOUNT, Code.TRADING_HALTED, Code.SYMBOL_NOT_ALLOWED}


# --- trading state ----------------------------------------------------------------------------


def test_submit_when_halted_then_denied_even_if_reduce_only() -> None:
    book = portfolio(positions=(position("0.01"),))
    limits = RiskLimits()
    state = gate_state(limits, trading_state=TradingState.HALTED)
    assert Code.TRADING_HALTED in denied_codes(run(intent("0.01"), book=book, state=state))
    reduce = intent("0.005", side=Side.SELL, reduce_only=True)
    assert denied_codes(run(reduce, book=book, state=state)) == {Code.TRADING_HALTED}


def test_submit_when_reducing_and_not_reduce_only_then_denied() -> None:
    book = portfolio(positions=(position("0.01"),))
    state = gate_state(trading_state=TradingState.REDUCING)
    # Even an order that would shrink the position needs the reduce-only flag in REDUCING.
    assert denied_codes(run(intent("0.005", side=Side.SELL), book=book, state=state)) == {Code.TRADING_REDUCING}


def test_submit_when_reducing_and_reduce_only_shrinks_position_then_approved() -> None:
    book = portfolio(positions=(position("0.01"),))
    state = gate_state(trading_state=TradingState.REDUCING)
    assert approved(run(intent("0.01", side=Side.SELL, reduce_only=True), book=book, state=state))


def test_submit_when_reducing_and_reduce_only_would_flip_position_then_denied() -> None:
    book = portfolio(positions=(position("0.01"),))
    state = gate_state(trading_state=TradingState.REDUCING)
    outcome = run(intent("0.02", side=Side.SELL, reduce_only=True), book=book, state=state)
    assert denied_codes(outcome) == {Code.REDUCE_ONLY_NOT_REDUCING}


@pytest.mark.parametrize(
    ("position_amount", "side", "amount", "pending"),
    [
        ("0", Side.SELL, "0.01", None),  # nothing to reduce
        ("0.01", Side.BUY, "0.001", None),  # same side as the position grows it
        ("-0.01", Side.BUY, "0.006", "0.005"),  # with resting reduce-only buys it overshoots
    ],
)
def test_submit_when_reduce_only_would_not_shrink_then_denied(
    position_amount: str, side: Side, amount: str, pending: str | None
) -> None:
    orders = () if pending is None else (resting(side, "59000", pending, reduce_only=True),)
    book = portfolio(positions=(position(position_amount),), orders=orders)
    outcome = run(intent(amount, side=side, reduce_only=True), book=book)
    assert Code.REDUCE_ONLY_NOT_REDUCING in denied_codes(outcome)


def test_submit_when_reduce_only_short_cover_fits_then_approved() -> None:
    book = portfolio(positions=(position("-0.01"),), orders=(resting(Side.BUY, "59000", "0.004", reduce_only=True),))
    assert approved(run(intent("0.006", reduce_only=True), book=book))


# --- inputs -----------------------------------------------------------------------------------


@pytest.mark.parametrize("amount", ["NaN", "sNaN", "Infinity", "-0.01", "0", "1e30", "1e-30"])
def test_submit_when_amount_is_bad_then_denied_invalid_amount(amount: str) -> None:
    assert denied_codes(run(intent(d(amount)))) == {Code.INVALID_AMOUNT}


@pytest.mark.parametrize("price", ["NaN", "-1", "0", "Infinity"])
def test_submit_when_limit_price_is_bad_then_denied_invalid_price(price: str) -> None:
    assert denied_codes(run(intent("0.01", price=d(price)))) == {Code.INVALID_PRICE}


def test_submit_when_limit_order_has_no_price_or_market_order_has_one_then_denied() -> None:
    no_price = OrderIntent(
        "acct-1", "s", "binance", "BTC/USDT", Side.BUY, OrderType.LIMIT, d("0.01"), None, False, "b", T0
    )
    assert denied_codes(run(no_price)) == {Code.INVALID_PRICE}
    priced_market = OrderIntent(
        "acct-1", "s", "binance", "BTC/USDT", Side.BUY, OrderType.MARKET, d("0.01"), d("60000"), False, "b", T0
    )
    assert denied_codes(run(priced_market)) == {Code.INVALID_PRICE}


def test_submit_when_limit_price_rounds_to_zero_then_denied() -> None:
    assert Code.INVALID_PRICE in denied_codes(run(intent("0.01", price="0.001")))


def test_submit_when_side_or_type_or_client_id_is_malformed_then_denied_invalid_order() -> None:
    bad = OrderIntent("acct-1", "s", "binance", "BTC/USDT", "hold", "stop", d("0.01"), None, False, "", T0)  # type: ignore[arg-type]
    outcome = run(bad)
    assert isinstance(outcome, OrderDenied)
    assert outcome.codes.count(Code.INVALID_ORDER) == 3


@pytest.mark.parametrize("equity", ["0", "-5", "NaN"])
def test_submit_when_equity_is_not_positive_then_denied_invalid_equity(equity: str) -> None:
    assert denied_codes(run(intent(), book=portfolio(equity))) == {Code.INVALID_EQUITY}


def test_submit_when_portfolio_holds_a_nan_position_then_denied_invalid_portfolio() -> None:
    book = portfolio(positions=(position("NaN"),))
    assert denied_codes(run(intent(), book=book)) == {Code.INVALID_PORTFOLIO}


@pytest.mark.parametrize(
    "view",
    [
        market("NaN"),
        market("-60000"),
        market(rules=InstrumentRules(Decimal("0.01"), Decimal("0"))),
        market(bid="NaN"),
    ],
)
def test_submit_when_market_view_is_unusable_then_denied_invalid_market(view: MarketView) -> None:
    assert denied_codes(run(intent(), view=view)) == {Code.INVALID_MARKET}


def test_submit_when_market_view_is_for_another_instrument_then_denied() -> None:
    outcome = run(intent(), view=market("3000", symbol="ETH/USDT"))
    assert denied_codes(outcome) == {Code.MARKET_MISMATCH}


def test_submit_when_portfolio_is_another_account_then_denied() -> None:
    assert denied_codes(run(intent(), book=portfolio(account="other"))) == {Code.ACCOUNT_MISMATCH}


# --- arithmetic-free account checks ------------------------------------------------------------


@pytest.mark.parametrize("allowed", [{"binance:BTC/USDT"}, {"BTC/USDT"}])
def test_submit_when_symbol_is_allowed_then_approved(allowed: set[str]) -> None:
    assert approved(run(intent(), limits=RiskLimits(allowed_symbols=frozenset(allowed))))


def test_submit_when_symbol_not_allowed_then_denied() -> None:
    limits = RiskLimits(allowed_symbols=frozenset({"binance:ETH/USDT", "kraken:BTC/USDT"}))
    assert denied_codes(run(intent(), limits=limits)) == {Code.SYMBOL_NOT_ALLOWED}


def test_submit_when_client_order_id_already_open_then_denied() -> None:
    book = portfolio(orders=(resting(Side.BUY, "59000", "0.001", coid="b4-test-order"),))
    assert denied_codes(run(intent(), book=book)) == {Code.DUPLICATE_CLIENT_ORDER_ID}


def test_submit_when_open_orders_at_max_then_denied_and_below_max_approved() -> None:
    limits = RiskLimits(max_open_orders=2)
    one = (resting(Side.BUY, "59000", "0.001", coid="a"),)
    two = (*one, resting(Side.BUY, "58000", "0.001", coid="b"))
    assert approved(run(intent(), book=portfolio(orders=one), limits=limits))
    assert denied_codes(run(intent(), book=portfolio(orders=two), limits=limits)) == {Code.MAX_OPEN_ORDERS_EXCEEDED}


def test_submit_when_rate_bucket_is_empty_then_denied_until_the_clock_refills_it() -> None:
    limits = RiskLimits(max_orders_per_second=1.0, order_burst=2)
    clock = ManualClock(T0)
    state = gate_state(limits, clock=clock)
    view = market(ts=T0)
    assert approved(run(intent(coid="a"), view=view, limits=limits, state=state))
    assert approved(run(intent(coid="b"), view=view, limits=limits, state=state))
    assert denied_codes(run(intent(coid="c"), view=view, limits=limits, state=state)) == {Code.RATE_LIMIT_EXCEEDED}
    clock.advance(timedelta(milliseconds=999))
    assert denied_codes(run(intent(coid="c"), view=view, limits=limits, state=state)) == {Code.RATE_LIMIT_EXCEEDED}
    clock.advance(timedelta(milliseconds=1))
    assert approved(run(intent(coid="c"), view=view, limits=limits, state=state))


def test_submit_when_denied_for_another_reason_then_no_rate_token_is_spent() -> None:
    limits = RiskLimits(max_orders_per_second=1.0, order_burst=1)
    state = gate_state(limits)
    for _ in range(5):
        assert isinstance(run(intent("1"), limits=limits, state=state), OrderDenied)
    assert approved(run(intent(), limits=limits, state=state))


def test_submit_when_market_data_older_than_limit_then_denied_stale() -> None:
    clock = ManualClock(T0)
    limits = RiskLimits(max_market_data_age=timedelta(seconds=5))
    clock.advance(timedelta(seconds=5))
    assert approved(run(intent(), limits=limits, state=gate_state(limits, clock=clock)))
    clock.advance(timedelta(microseconds=1))
    outcome = run(intent(), limits=limits, state=gate_state(limits, clock=clock))
    assert denied_codes(outcome) == {Code.MARKET_DATA_STALE}


def test_submit_when_market_data_is_stamped_in_the_future_then_denied_stale() -> None:
    view = market(ts=T0 + timedelta(seconds=30))
    assert denied_codes(run(intent(), view=view)) == {Code.MARKET_DATA_STALE}


# --- venue precision, lot size, notionals, price band --------------------------------------------


def test_submit_when_amount_is_off_the_step_then_approved_rounded_down() -> None:
    outcome = approved(run(intent("0.0123456789")))
    assert outcome.amount == d("0.01234")


def test_submit_when_limit_price_is_off_the_tick_then_rounded_to_the_passive_side() -> None:
    assert approved(run(intent("0.01", price="60000.019"))).price == d("60000.01")
    sell = intent("0.01", side=Side.SELL, price="60000.011")
    assert approved(run(sell, book=portfolio(positions=(position("0.01"),)))).price == d("60000.02")


def test_submit_when_amount_rounds_below_venue_minimum_then_denied() -> None:
    rules = InstrumentRules(d("0.01"), d("0.001"), min_amount=d("0.002"))
    outcome = run(intent("0.0019"), view=market(rules=rules))
    assert denied_codes(outcome) == {Code.AMOUNT_BELOW_MINIMUM}
    assert approved(run(intent("0.0021"), view=market(rules=rules))).amount == d("0.002")


def test_submit_when_amount_rounds_to_zero_then_denied_below_minimum() -> None:
    assert Code.AMOUNT_BELOW_MINIMUM in denied_codes(run(intent("0.000001")))


def test_submit_when_amount_above_venue_maximum_then_denied() -> None:
    rules = InstrumentRules(d("0.01"), d("0.00001"), max_amount=d("0.005"))
    assert denied_codes(run(intent("0.006"), view=market(rules=rules))) == {Code.AMOUNT_ABOVE_MAXIMUM}
    assert approved(run(intent("0.005"), view=market(rules=rules)))


def test_submit_when_notional_below_venue_minimum_then_denied() -> None:
    assert denied_codes(run(intent("0.00008"))) == {Code.BELOW_MIN_NOTIONAL}  # 4.8 < 5
    assert approved(run(intent("0.00009")))  # 5.4


def test_submit_when_order_notional_above_max_then_denied() -> None:
    limits = RiskLimits(max_order_notional=d(1000))
    assert denied_codes(run(intent("0.02"), limits=limits)) == {Code.ORDER_NOTIONAL_EXCEEDED}
    assert approved(run(intent("0.0166"), limits=limits))


def test_submit_when_limit_price_outside_band_then_denied_fat_finger() -> None:
    assert denied_codes(run(intent("0.01", price="63000.01"))) == {Code.PRICE_BAND_EXCEEDED}
    assert approved(run(intent("0.01", price="63000")))
    book = portfolio(positions=(position("0.01"),))
    assert denied_codes(run(intent("0.01", side=Side.SELL, price="56999.99"), book=book)) == {Code.PRICE_BAND_EXCEEDED}


def test_submit_market_order_when_best_ask_far_from_reference_then_denied() -> None:
    assert denied_codes(run(intent("0.01"), view=market(ask="64000"))) == {Code.PRICE_BAND_EXCEEDED}
    assert approved(run(intent("0.01"), view=market(bid="59990", ask="60010")))


# --- exposure ---------------------------------------------------------------------------------


def test_submit_when_position_limit_exceeded_then_denied() -> None:
    # 2% of 100,000 = 2,000 = 0.0333 BTC at 60,000.
    assert approved(run(intent("0.0333")))
    assert denied_codes(run(intent("0.0334"))) == {Code.POSITION_LIMIT_EXCEEDED}


def test_submit_when_existing_position_plus_order_exceeds_limit_then_denied() -> None:
    book = portfolio(positions=(position("0.03"),))
    assert denied_codes(run(intent("0.004"), book=book)) == {Code.POSITION_LIMIT_EXCEEDED}
    assert approved(run(intent("0.003"), book=book))


def test_submit_when_resting_buys_would_fill_over_the_limit_then_denied() -> None:
    book = portfolio(orders=(resting(Side.BUY, "59000", "0.03"),))
    assert denied_codes(run(intent("0.004"), book=book)) == {Code.POSITION_LIMIT_EXCEEDED}


def test_submit_when_position_already_over_limit_and_order_shrinks_it_then_approved() -> None:
    book = portfolio(positions=(position("0.05"),))
    assert approved(run(intent("0.01", side=Side.SELL), book=book))


def test_submit_when_order_flips_a_short_into_a_long_over_limit_then_denied() -> None:
    book = portfolio(positions=(position("-0.01"),))
    assert denied_codes(run(intent("0.05"), book=book)) == {Code.POSITION_LIMIT_EXCEEDED}


def test_submit_when_gross_exposure_cap_exceeded_then_denied() -> None:
    limits = RiskLimits(max_position_pct=d(1), max_gross_exposure=d(5000))
    book = portfolio(positions=(position("-2", "2000", symbol="ETH/USDT"),))  # 4,000 gross
    assert denied_codes(run(intent("0.02"), book=book, limits=limits)) == {Code.GROSS_EXPOSURE_EXCEEDED}
    assert approved(run(intent("0.016"), book=book, limits=limits))


def test_submit_when_gross_already_over_cap_and_order_reduces_it_then_approved() -> None:
    limits = RiskLimits(max_position_pct=d(1), max_gross_exposure=d(5000))
    book = portfolio(positions=(position("0.1"), position("-2", "2000", symbol="ETH/USDT")))  # 10,000
    assert approved(run(intent("0.05", side=Side.SELL), book=book, limits=limits))


def test_submit_when_net_exposure_cap_exceeded_then_denied_but_hedge_approved() -> None:
    limits = RiskLimits(max_net_exposure=d(1000))
    book = portfolio(positions=(position("0.4", "2000", symbol="ETH/USDT"),))  # net long 800
    assert denied_codes(run(intent("0.005"), book=book, limits=limits)) == {Code.NET_EXPOSURE_EXCEEDED}
    assert approved(run(intent("0.005", side=Side.SELL), book=book, limits=limits))


def test_submit_when_leverage_exceeded_then_denied() -> None:
    limits = RiskLimits(max_position_pct=d(1), max_leverage=d(1))
    book = portfolio("10000", positions=(position("4.75", "2000", symbol="ETH/USDT"),))  # 9,500
    assert denied_codes(run(intent("0.01"), book=book, limits=limits)) == {Code.LEVERAGE_EXCEEDED}
    assert approved(run(intent("0.005"), book=book, limits=limits))


def test_submit_when_limits_switched_off_then_only_remaining_limits_apply() -> None:
    limits = RiskLimits(max_position_pct=None, max_leverage=d(3), max_order_notional=None)
    assert approved(run(intent("4"), book=portfolio("100000"), limits=limits))


# --- self trade -------------------------------------------------------------------------------


def test_submit_when_buy_would_cross_our_resting_sell_then_denied_self_trade() -> None:
    book = portfolio(orders=(resting(Side.SELL, "60100", "0.01"),))
    assert denied_codes(run(intent("0.01", price="60100"), book=book)) == {Code.SELF_TRADE}
    assert approved(run(intent("0.01", price="60099.99"), book=book))


def test_submit_when_sell_would_cross_our_resting_buy_then_denied_self_trade() -> None:
    book = portfolio(positions=(position("0.02"),), orders=(resting(Side.BUY, "59900", "0.01"),))
    assert denied_codes(run(intent("0.01", side=Side.SELL, price="59900"), book=book)) == {Code.SELF_TRADE}
    assert approved(run(intent("0.01", side=Side.SELL, price="59900.01"), book=book))


def test_submit_market_order_when_own_resting_order_within_band_then_denied_self_trade() -> None:
    near = portfolio(orders=(resting(Side.SELL, "62999", "0.01"),))
    far = portfolio(orders=(resting(Side.SELL, "63001", "0.01"),))
    assert denied_codes(run(intent("0.01"), book=near)) == {Code.SELF_TRADE}
    assert approved(run(intent("0.01"), book=far))


def test_submit_market_order_without_price_band_then_any_opposite_resting_order_is_self_trade() -> None:
    limits = RiskLimits(price_band_pct=None)
    far = portfolio(orders=(resting(Side.SELL, "90000", "0.01"),))
    assert denied_codes(run(intent("0.01"), book=far, limits=limits)) == {Code.SELF_TRADE}


def test_submit_when_resting_same_side_or_market_orders_then_no_self_trade() -> None:
    book = portfolio(
        orders=(
            resting(Side.BUY, "60100", "0.001", coid="same-side"),
            resting(Side.SELL, "59000", "0.001", coid="mkt", order_type=OrderType.MARKET),
        )
    )
    assert approved(run(intent("0.01", price="60000"), book=book))


def test_gate_rules_on_unusual_steps_never_round_above_the_request() -> None:
    rules = InstrumentRules(d("0.3"), d("0.3"))
    view = MarketView("binance", "BTC/USDT", d("60000"), rules, T0)
    limits = RiskLimits(max_position_pct=d(1), max_leverage=d(100), max_order_notional=None)
    outcome = approved(run(intent("1.0000000000000000000000000001"), view=view, limits=limits, book=portfolio("1e9")))
    assert outcome.amount == d("0.9")
    assert RULES.problem() is None
