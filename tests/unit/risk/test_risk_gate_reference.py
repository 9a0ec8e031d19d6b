"""The optimised gate gives exactly the verdicts of the straightforward one (``_reference_gate``).

Same outcome type, same reasons (codes and messages, in order), same approved amount and price
down to the Decimal exponent, same decision id and time, and the same rate-limit bucket afterwards.
Inputs: the wild values of the property tests, realistic books where the limits bind, venue grids
that are and are not one power of ten, every trading state, and sequences on a moving clock.
"""

from __future__ import annotations

import base64
import pickle
from dataclasses import replace
from datetime import timedelta
from decimal import Decimal

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from core.clock import ManualClock
from core.events import Side
from core.orders import ApprovedOrder, OrderDenied, OrderIntent, OrderType, TradingState
from risk.config import RiskLimits
from risk.gate import GateState, decision_id, evaluate
from risk.market import InstrumentRules, MarketView, ceil_to, floor_to
from risk.portfolio import OpenOrder, PortfolioView, Position
from tests.unit.risk import _reference_gate as reference
from tests.unit.risk._risk_builders import ACCOUNT, T0
from tests.unit.risk.test_risk_gate_properties import (
    amounts,
    signed_amounts,
    symbols,
    wild_intents,
    wild_markets,
    wild_portfolios,
)

Outcome = ApprovedOrder | OrderDenied


def assert_same(new: Outcome, old: Outcome) -> None:
    assert type(new) is type(old), (new, old)
    assert new.decision_id == old.decision_id and new.ts_decided == old.ts_decided
    if isinstance(new, OrderDenied):
        assert isinstance(old, OrderDenied)
        assert new.reasons == old.reasons
    else:
        assert isinstance(old, ApprovedOrder)
        assert (str(new.amount), str(new.price)) == (str(old.amount), str(old.price))
        assert new.intent is old.intent


def judge_both(
    intent: OrderIntent,
    book: PortfolioView,
    view: MarketView,
    limits: RiskLimits,
    trading: TradingState = TradingState.ACTIVE,
) -> Outcome:
    clock = ManualClock(T0)
    new_state = GateState.start(limits, clock, trading)
    old_state = GateState.start(limits, clock, trading)
    new = evaluate(intent, book, view, limits, new_state)
    old = reference.evaluate(intent, book, view, limits, old_state)
    assert_same(new, old)
    assert new_state.rate_limiter.available() == old_state.rate_limiter.available()
    return new


tick_sizes = st.sampled_from([Decimal(s) for s in ("0.01", "1", "1E+1", "0.010", "0.5", "0.25", "2.5", "5")])
amount_steps = st.sampled_from([Decimal(s) for s in ("0.00001", "0.001", "0.0010", "0.0003", "0.025", "1")])
some_limits = st.builds(
    RiskLimits,
    max_position_pct=st.none() | st.decimals(min_value="0.005", max_value="1", places=3),
    max_gross_exposure=st.none() | st.decimals(min_value="1000", max_value="1000000", places=0),
    max_net_exposure=st.none() | st.decimals(min_value="1000", max_value="1000000", places=0),
    max_leverage=st.decimals(min_value="0.5", max_value="5", places=2),
    max_order_notional=st.none() | st.decimals(min_value="100", max_value="500000", places=0),
    price_band_pct=st.decimals(min_value="0.01", max_value="0.1", places=3),
    max_open_orders=st.sampled_from([1, 3, 50, 50]),
    allowed_symbols=st.sampled_from([None, None, frozenset({"binance:BTC/USDT"}), frozenset({"ETH/USDT"})]),
)


@st.composite
def books(draw: st.DrawFn, reference_price: Decimal) -> PortfolioView:
    positions = [
        Position("binance", sym, draw(signed_amounts), reference_price if sym == "BTC/USDT" else Decimal(100))
        for sym in draw(st.lists(symbols, max_size=3, unique=True))
    ]
    orders = [
        OpenOrder(
            draw(st.sampled_from(["r-1", "r-2", "r-3", "r-4", "r-5", "new-order"])),
            "binance",
            draw(symbols),
            draw(st.sampled_from(Side)),
            draw(st.sampled_from(OrderType)),
            reference_price * draw(st.decimals(min_value="0.9", max_value="1.1", places=3)),
            draw(st.sampled_from([Decimal(0), Decimal("0.001")]) | amounts),
            draw(st.booleans()),
        )
        for _ in range(draw(st.integers(0, 5)))
    ]
    equity = draw(st.decimals(min_value="1000", max_value="1000000", places=2))
    return PortfolioView(ACCOUNT, equity, positions, orders)


@st.composite
def realistic(
    draw: st.DrawFn, mostly_approved: bool = False
) -> tuple[OrderIntent, PortfolioView, MarketView, RiskLimits, TradingState]:
    ref = draw(st.decimals(min_value="1000", max_value="100000", places=2))
    rules = InstrumentRules(
        draw(tick_sizes),
        draw(amount_steps),
        draw(st.sampled_from([Decimal(0), Decimal(0), Decimal("0.00001"), Decimal("0.5")])),
        draw(st.sampled_from([None, None, Decimal("0.5"), Decimal(2)])),
        draw(st.sampled_from([Decimal(0), Decimal(5), Decimal(5), Decimal(5), Decimal(500)])),
    )
    bid = draw(st.none() | st.just(ref * Decimal("0.999")))
    ask = draw(st.none() | st.just(ref * Decimal("1.02")))
    age = draw(st.sampled_from([0, 0, 0, 0, 3, 6, -6]))
    view = MarketView("binance", "BTC/USDT", ref, rules, T0 - timedelta(seconds=age), bid, ask)
    limit = draw(st.booleans())
    price = ref * draw(st.decimals(min_value="0.96", max_value="1.04", places=5)) if limit else None
    intent = OrderIntent(
        ACCOUNT,
        "s",
        "binance",
        draw(st.sampled_from(["BTC/USDT"] * 5 + ["ETH/USDT"])),
        draw(st.sampled_from(Side)),
        OrderType.LIMIT if limit else OrderType.MARKET,
        draw(
            st.sampled_from([Decimal("0.0123456"), Decimal("0.3"), Decimal("1.23456789")])
            | amounts
            | st.decimals(min_value="0.000001", max_value="0.0001", places=6)
        ),
        price,
        draw(st.sampled_from([False, False, True])),
        "new-order",
        T0,
    )
    trading = draw(st.sampled_from([TradingState.ACTIVE] * 4 + [TradingState.REDUCING, TradingState.HALTED]))
    book, limits = draw(books(ref)), draw(some_limits)
    if mostly_approved:
        # Exercise the approval path (rounding, exposure arithmetic, the bucket) far more often.
        plain_rules = InstrumentRules(rules.price_tick, rules.amount_step)
        view = MarketView("binance", "BTC/USDT", ref, plain_rules, T0, bid, ask)
        intent = replace(intent, reduce_only=False)
        book = PortfolioView(ACCOUNT, Decimal(10) ** 7, book.positions.values(), book.open_orders[:3])
        limits = limits.model_copy(update={"max_open_orders": 50, "allowed_symbols": None, "max_order_notional": None})
        trading = TradingState.ACTIVE
    return intent, book, view, limits, trading


@given(wild_intents(), wild_portfolios(), wild_markets(), st.sampled_from(TradingState))
@settings(max_examples=300)
def test_gate_matches_reference_on_wild_inputs(
    intent: OrderIntent, book: PortfolioView, view: MarketView, trading: TradingState
) -> None:
    judge_both(intent, book, view, RiskLimits(max_position_pct=Decimal(1), max_leverage=Decimal(10)), trading)


@given(realistic())
@settings(max_examples=600)
def test_gate_matches_reference_where_limits_bind(
    case: tuple[OrderIntent, PortfolioView, MarketView, RiskLimits, TradingState],
) -> None:
    judge_both(*case)


@given(realistic(mostly_approved=True))
@settings(max_examples=300)
def test_gate_matches_reference_on_orders_that_are_mostly_approved(
    case: tuple[OrderIntent, PortfolioView, MarketView, RiskLimits, TradingState],
) -> None:
    judge_both(*case)


@given(realistic(), st.lists(st.integers(0, 400_000), min_size=1, max_size=40))
@settings(max_examples=60)
def test_gate_matches_reference_over_a_sequence_on_a_moving_clock(
    case: tuple[OrderIntent, PortfolioView, MarketView, RiskLimits, TradingState], steps_us: list[int]
) -> None:
    intent, book, view, limits, trading = case
    limits = limits.model_copy(update={"max_orders_per_second": 5.0, "order_burst": 3})
    clock = ManualClock(T0)
    new_state = GateState.start(limits, clock, trading)
    old_state = GateState.start(limits, clock, trading)
    for step in steps_us:
        clock.advance(timedelta(microseconds=step))
        assert_same(
            evaluate(intent, book, view, limits, new_state), reference.evaluate(intent, book, view, limits, old_state)
        )
        assert new_state.rate_limiter.available() == old_state.rate_limiter.available()


def test_the_reference_comparison_notices_a_different_verdict() -> None:
    # Guards the guard: a tighter limit on one side must make judge_both fail.
    ref = Decimal(60000)
    rules = InstrumentRules(Decimal("0.01"), Decimal("0.00001"))
    view = MarketView("binance", "BTC/USDT", ref, rules, T0)
    intent = OrderIntent(
        ACCOUNT, "s", "binance", "BTC/USDT", Side.BUY, OrderType.MARKET, Decimal("0.02"), None, False, "x", T0
    )
    book = PortfolioView(ACCOUNT, Decimal(100000))
    loose, tight = RiskLimits(max_position_pct=Decimal("0.5")), RiskLimits(max_position_pct=Decimal("0.001"))
    new = evaluate(intent, book, view, loose, GateState.start(loose, ManualClock(T0)))
    old = reference.evaluate(intent, book, view, tight, GateState.start(tight, ManualClock(T0)))
    try:
        assert_same(new, old)
    except AssertionError:
        return
    raise AssertionError("assert_same accepted an approval against a denial")


@given(
    st.decimals(min_value="0.000000000000000001", max_value="1e18", allow_nan=False, allow_infinity=False),
    st.integers(-18, 18),
)
@settings(max_examples=500)
def test_unit_step_rounding_equals_the_general_grid_rounding(value: Decimal, exponent: int) -> None:
    step = Decimal((0, (1,), exponent))
    rules = InstrumentRules(step, step)
    assert str(rules.floor_amount(value)) == str(floor_to(value, step))
    assert str(rules.floor_price(value)) == str(floor_to(value, step))
    assert str(rules.ceil_price(value)) == str(ceil_to(value, step))


def test_decision_id_is_unchanged() -> None:
    assert decision_id("b4-bench-order", T0) == reference.decision_id("b4-bench-order", T0)


@given(st.lists(realistic(mostly_approved=True) | realistic(), min_size=2, max_size=6))
@settings(max_examples=80)
def test_one_gate_state_judging_changing_views_matches_the_reference(
    cases: list[tuple[OrderIntent, PortfolioView, MarketView, RiskLimits, TradingState]],
) -> None:
    # The gate keeps values derived from the last (portfolio, market, limits) per instrument; a new
    # view or new limits for the same instrument must be judged on their own numbers.
    clock = ManualClock(T0)
    first_limits = cases[0][3]
    new_state, old_state = GateState.start(first_limits, clock), GateState.start(first_limits, clock)
    for intent, book, view, limits, trading in cases:
        new_state.trading_state = old_state.trading_state = trading
        assert_same(
            evaluate(intent, book, view, limits, new_state), reference.evaluate(intent, book, view, limits, old_state)
        )


@given(
    realistic(mostly_approved=True) | realistic(),
    st.lists(
        st.tuples(
            st.sampled_from(["same objects", "equal price written longer", "new price", "new bid", "new rules"]),
            st.decimals(min_value="0.99", max_value="1.01", places=4),
        ),
        min_size=1,
        max_size=6,
    ),
)
@settings(max_examples=80, suppress_health_check=[HealthCheck.too_slow])  # slow draws on a loaded machine
def test_market_views_rebuilt_per_order_from_the_same_or_new_values_match_the_reference(
    case: tuple[OrderIntent, PortfolioView, MarketView, RiskLimits, TradingState],
    rebuilds: list[tuple[str, Decimal]],
) -> None:
    # The trading flow builds a new MarketView for every signal; the gate reuses what it derived
    # only when the new view carries the very same price, bid, ask and rules objects.
    intent, book, view, limits, trading = case
    clock = ManualClock(T0)
    new_state, old_state = GateState.start(limits, clock, trading), GateState.start(limits, clock, trading)
    assert_same(
        evaluate(intent, book, view, limits, new_state), reference.evaluate(intent, book, view, limits, old_state)
    )
    for how, factor in rebuilds:
        ref, rules, bid = view.reference_price, view.rules, view.best_bid
        if how == "equal price written longer":
            ref = Decimal(f"{ref:f}0") if "." in f"{ref:f}" else Decimal(f"{ref:f}.0")
        elif how == "new price":
            ref = (ref * factor).quantize(Decimal("0.01"))
        elif how == "new bid":
            bid = (ref * factor).quantize(Decimal("0.01"))
        elif how == "new rules":
            rules = InstrumentRules(rules.price_tick, rules.amount_step, rules.min_amount, rules.max_amount)
        view = MarketView(view.exchange, view.symbol, ref, rules, view.ts_event, bid, view.best_ask)
        intent = replace(intent, client_order_id=f"o-{len(how)}-{factor}")
        assert_same(
            evaluate(intent, book, view, limits, new_state), reference.evaluate(intent, book, view, limits, old_state)
        )


def test_gate_state_snapshot_leaves_out_the_derived_values() -> None:
    limits = RiskLimits()
    view = MarketView("binance", "BTC/USDT", Decimal(60000), InstrumentRules(Decimal("0.01"), Decimal("0.00001")), T0)
    order = OrderIntent(
        ACCOUNT, "s", "binance", "BTC/USDT", Side.BUY, OrderType.MARKET, Decimal("0.01"), None, False, "x", T0
    )
    state = GateState.start(limits, ManualClock(T0))
    first = evaluate(order, PortfolioView(ACCOUNT, Decimal(100000)), view, limits, state)
    assert state.derived
    restored = pickle.loads(pickle.dumps(state))
    assert restored.derived == {} and restored.trading_state is state.trading_state
    assert restored.rate_limiter.available() == state.rate_limiter.available()
    again = evaluate(order, PortfolioView(ACCOUNT, Decimal(100000)), view, limits, restored)
    assert isinstance(first, ApprovedOrder) and isinstance(again, ApprovedOrder) and again.amount == first.amount


# A GateState pickled by the code before the derived-values cache (commit 32f0e74), one token taken.
OLD_GATE_STATE_PICKLE = (
    "gAWVcAEAAAAAAACMCXJpc2suZ2F0ZZSMCUdhdGVTdGF0ZZSTlCmBlE59lCiMBWNsb2NrlIwKY29yZS5jbG9ja5SMC01hbnVhbENsb2NrlJOU"
    "KYGUfZSMBF9ub3eUjAhkYXRldGltZZSMCGRhdGV0aW1llJOUQwoH6AgIFzYPAAAAlGgMjAh0aW1lem9uZZSTlGgMjAl0aW1lZGVsdGGUk5RL"
    "AEsASwCHlFKUhZRSlIaUUpRzYowMcmF0ZV9saW1pdGVylIwNcmlzay50aHJvdHRsZZSMC1Rva2VuQnVja2V0lJOUKYGUTn2UKIwGX2J1cnN0"
    "lEdANAAAAAAAAIwGX2Nsb2NrlGgJjAVfbGFzdJRoGYwFX3JhdGWUR0AkAAAAAAAAjAdfdG9rZW5zlEdAMwAAAAAAAHWGlGKMDXRyYWRpbmdf"
    "c3RhdGWUjAtjb3JlLm9yZGVyc5SMDFRyYWRpbmdTdGF0ZZSTlIwGYWN0aXZllIWUUpR1hpRiLg=="
)


def test_gate_state_snapshot_from_before_the_cache_restores_and_judges() -> None:
    state = pickle.loads(base64.b64decode(OLD_GATE_STATE_PICKLE))
    assert isinstance(state, GateState) and state.derived == {}
    assert state.trading_state is TradingState.ACTIVE and state.rate_limiter.available() == 19.0
    limits = RiskLimits()
    view = MarketView("binance", "BTC/USDT", Decimal(60000), InstrumentRules(Decimal("0.01"), Decimal("0.00001")), T0)
    order = OrderIntent(
        ACCOUNT, "s", "binance", "BTC/USDT", Side.BUY, OrderType.MARKET, Decimal("0.01"), None, False, "x", T0
    )
    assert isinstance(evaluate(order, PortfolioView(ACCOUNT, Decimal(100000)), view, limits, state), ApprovedOrder)
    assert state.rate_limiter.available() == 18.0
