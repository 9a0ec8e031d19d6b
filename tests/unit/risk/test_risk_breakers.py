"""Circuit breakers and the trading state machine, with time moved only by a ManualClock."""

from __future__ import annotations

import pickle
from datetime import timedelta
from decimal import Decimal

import pytest

from core.clock import ManualClock
from core.orders import CancelAllOrders, KillSwitch, ResetBreaker, TradingState, TradingStateChanged
from risk.breakers import BreakerStatus, RiskEvent, RiskStateMachine
from risk.config import BreakerLimits
from tests.unit.risk._risk_builders import T0

ACTIVE, REDUCING, HALTED = TradingState.ACTIVE, TradingState.REDUCING, TradingState.HALTED


def machine(**limits: object) -> tuple[RiskStateMachine, ManualClock]:
    clock = ManualClock(T0)
    return RiskStateMachine("acct", BreakerLimits(**limits), clock), clock  # type: ignore[arg-type]


def changes(events: tuple[RiskEvent, ...]) -> list[tuple[TradingState, TradingState]]:
    return [(e.old, e.new) for e in events if isinstance(e, TradingStateChanged)]


def cancels(events: tuple[RiskEvent, ...]) -> list[CancelAllOrders]:
    return [e for e in events if isinstance(e, CancelAllOrders)]


def reset(m: RiskStateMachine, clock: ManualClock, breaker: str) -> tuple[RiskEvent, ...]:
    return m.reset(ResetBreaker("acct", breaker, "alice", "checked the book", clock.now()))


# --- drawdown ---------------------------------------------------------------------------------


def test_drawdown_when_equity_falls_15_percent_from_peak_then_halted() -> None:
    m, _ = machine(daily_loss_pct=None)
    m.on_equity(Decimal(100_000))
    m.on_equity(Decimal(120_000))  # new peak
    assert m.on_equity(Decimal("102000.01")) == ()  # 14.99...%
    events = m.on_equity(Decimal(102_000))  # exactly 15% from 120,000
    assert changes(events) == [(ACTIVE, HALTED)]
    assert m.state is HALTED
    change = events[0]
    assert isinstance(change, TradingStateChanged)
    assert "drawdown 15.00%" in change.reason and "120000" in change.reason
    assert change.account == "acct" and change.ts == T0
    assert cancels(events)[0].keep_reduce_only


def test_drawdown_halt_stays_until_a_person_resets_it_even_if_equity_recovers() -> None:
    m, clock = machine(daily_loss_pct=None)
    m.on_equity(Decimal(100_000))
    m.on_equity(Decimal(80_000))
    clock.advance(timedelta(days=365))
    assert m.on_equity(Decimal(500_000)) == ()
    assert m.tick() == ()
    assert m.state is HALTED
    events = reset(m, clock, "drawdown")
    assert changes(events) == [(HALTED, ACTIVE)]
    assert not cancels(events)
    assert "reset by alice: checked the book" in events[0].reason  # type: ignore[union-attr]


def test_drawdown_reset_rebases_the_peak_at_current_equity() -> None:
    m, clock = machine(daily_loss_pct=None)
    m.on_equity(Decimal(100_000))
    m.on_equity(Decimal(84_000))
    reset(m, clock, "drawdown")
    assert m.on_equity(Decimal(80_000)) == ()  # 4.8% below the new peak 84,000
    assert changes(m.on_equity(Decimal(71_400))) == [(ACTIVE, HALTED)]  # 15% below 84,000


@pytest.mark.parametrize("equity", ["NaN", "0", "-1"])
def test_drawdown_when_equity_is_broken_then_halted(equity: str) -> None:
    m, _ = machine()
    assert changes(m.on_equity(Decimal(equity))) == [(ACTIVE, HALTED)]


# --- daily loss -------------------------------------------------------------------------------


def test_daily_loss_when_limit_reached_then_reducing_until_next_utc_day() -> None:
    m, clock = machine(daily_loss_pct=Decimal("0.05"), max_drawdown_pct=Decimal("0.5"))
    m.on_equity(Decimal(100_000))
    assert m.on_equity(Decimal(95_001)) == ()
    assert changes(m.on_equity(Decimal(95_000))) == [(ACTIVE, REDUCING)]
    clock.set(T0.replace(hour=23, minute=59, second=59))
    assert m.tick() == ()
    clock.set(T0.replace(hour=0, minute=0, second=0) + timedelta(days=1))
    assert changes(m.tick()) == [(REDUCING, ACTIVE)]
    # the new day's budget starts from its first equity
    m.on_equity(Decimal(90_000))
    assert m.on_equity(Decimal(86_000)) == ()
    assert changes(m.on_equity(Decimal(85_500))) == [(ACTIVE, REDUCING)]


# --- consecutive losses: cooldown and half-open probe ---------------------------------------------


def test_consecutive_losses_when_limit_reached_then_reducing_and_a_win_resets_the_count() -> None:
    m, _ = machine(max_consecutive_losses=3)
    for pnl in ("-1", "-1", "5", "-1", "-1"):
        assert m.on_trade_closed(Decimal(pnl)) == ()
    assert changes(m.on_trade_closed(Decimal(-1))) == [(ACTIVE, REDUCING)]


def test_consecutive_losses_after_cooldown_half_open_probe_decides() -> None:
    m, clock = machine(max_consecutive_losses=2, consecutive_losses_cooldown=timedelta(hours=1))
    m.on_trade_closed(Decimal(-1))
    m.on_trade_closed(Decimal(-1))
    assert m.state is REDUCING
    clock.advance(timedelta(minutes=59))
    assert m.tick() == ()
    clock.advance(timedelta(minutes=1))
    assert changes(m.tick()) == [(REDUCING, ACTIVE)]
    assert m.breakers["consecutive_losses"].status is BreakerStatus.HALF_OPEN
    # a losing probe trips it straight back, without waiting for two losses
    assert changes(m.on_trade_closed(Decimal(-3))) == [(ACTIVE, REDUCING)]
    clock.advance(timedelta(hours=1))
    m.tick()
    assert m.on_trade_closed(Decimal(2)) == ()
    assert m.breakers["consecutive_losses"].status is BreakerStatus.CLOSED
    assert m.on_trade_closed(Decimal(-1)) == ()  # the count restarted


# --- stale market data and features -------------------------------------------------------------


def test_stale_market_data_then_reducing_and_fresh_data_after_cooldown_closes_it() -> None:
    m, clock = machine(market_data_max_age=timedelta(seconds=30), market_data_cooldown=timedelta(seconds=10))
    m.on_market_data("binance:BTC/USDT", T0)
    clock.advance(timedelta(seconds=30))
    assert m.tick() == ()
    clock.advance(timedelta(seconds=1))
    events = m.tick()
    assert changes(events) == [(ACTIVE, REDUCING)]
    assert "binance:BTC/USDT is 31.0s old" in events[0].reason  # type: ignore[union-attr]
    # fresh data inside the cooldown does not flap the state back
    assert m.on_market_data("binance:BTC/USDT", clock.now()) == ()
    clock.advance(timedelta(seconds=10))
    assert changes(m.on_market_data("binance:BTC/USDT", clock.now())) == [(REDUCING, ACTIVE)]


def test_stale_market_data_when_still_stale_after_cooldown_then_probe_trips_again() -> None:
    m, clock = machine(market_data_max_age=timedelta(seconds=30), market_data_cooldown=timedelta(seconds=10))
    m.on_market_data("binance:BTC/USDT", T0)
    clock.advance(timedelta(seconds=31))
    m.tick()
    clock.advance(timedelta(seconds=10))
    assert m.tick() == ()
    assert m.state is REDUCING
    assert m.breakers["stale_market_data"].opened_at == clock.now()


def test_stale_features_or_model_then_reducing() -> None:
    m, clock = machine(features_max_age=timedelta(minutes=5), features_cooldown=timedelta(seconds=30))
    m.on_features("features.v1", T0)
    m.on_features("model:river-logreg-v3", T0)
    clock.advance(timedelta(minutes=4))
    m.on_features("features.v1", clock.now())
    clock.advance(timedelta(minutes=1, seconds=1))
    events = m.tick()
    assert changes(events) == [(ACTIVE, REDUCING)]
    assert "model:river-logreg-v3" in events[0].reason  # type: ignore[union-attr]
    m.on_features("model:river-logreg-v3", T0)  # an older time never moves last_seen back
    clock.advance(timedelta(seconds=30))
    assert changes(m.on_features("model:river-logreg-v3", clock.now())) == [(REDUCING, ACTIVE)]


# --- venue errors, latency, disconnect ----------------------------------------------------------


def test_venue_error_rate_when_threshold_reached_then_halted_and_probe_after_cooldown() -> None:
    m, clock = machine(
        venue_min_calls=4, venue_max_error_rate=Decimal("0.5"), venue_error_cooldown=timedelta(seconds=60)
    )
    for ok in (True, False, True):
        assert m.on_venue_call(ok) == ()
    assert changes(m.on_venue_call(False)) == [(ACTIVE, HALTED)]
    assert m.on_venue_call(True) == ()  # calls while OPEN do not close it
    clock.advance(timedelta(seconds=60))
    assert changes(m.tick()) == [(HALTED, ACTIVE)]
    assert changes(m.on_venue_call(False)) == [(ACTIVE, HALTED)]  # failed probe
    clock.advance(timedelta(seconds=60))
    m.tick()
    assert m.on_venue_call(True) == ()
    assert m.breakers["venue_errors"].status is BreakerStatus.CLOSED


def test_venue_errors_outside_the_window_are_forgotten() -> None:
    m, clock = machine(venue_min_calls=4, venue_error_window=timedelta(seconds=60))
    m.on_venue_call(False)
    m.on_venue_call(False)
    clock.advance(timedelta(seconds=61))
    for ok in (True, True, False):
        m.on_venue_call(ok)
    assert m.state is ACTIVE


def test_order_round_trip_latency_when_median_too_high_then_reducing_and_probe_closes() -> None:
    m, clock = machine(max_round_trip=timedelta(seconds=2), latency_samples=3, latency_cooldown=timedelta(seconds=30))
    for ms in (2500, 100):
        assert m.on_round_trip(timedelta(milliseconds=ms)) == ()
    assert m.on_round_trip(timedelta(milliseconds=1900)) == ()  # median of 2.5, 0.1, 1.9 is 1.9s
    assert m.on_round_trip(timedelta(milliseconds=2600)) == ()  # 0.1, 1.9, 2.6: still 1.9s
    assert changes(m.on_round_trip(timedelta(milliseconds=2700))) == [(ACTIVE, REDUCING)]  # median 2.6s
    clock.advance(timedelta(seconds=30))
    m.tick()
    assert changes(m.on_round_trip(timedelta(seconds=3))) == [(ACTIVE, REDUCING)]
    clock.advance(timedelta(seconds=30))
    m.tick()
    assert m.on_round_trip(timedelta(milliseconds=150)) == ()
    assert m.breakers["latency"].status is BreakerStatus.CLOSED


def test_venue_disconnect_then_halted_until_connected_for_the_cooldown() -> None:
    m, clock = machine(disconnect_cooldown=timedelta(seconds=10))
    assert changes(m.on_connection(False)) == [(ACTIVE, HALTED)]
    clock.advance(timedelta(seconds=20))
    assert m.on_connection(True) == ()
    clock.advance(timedelta(seconds=5))
    assert m.on_connection(False) == ()  # dropped again: the timer restarts
    m.on_connection(True)
    clock.advance(timedelta(seconds=9))
    assert m.tick() == ()
    clock.advance(timedelta(seconds=1))
    assert changes(m.tick()) == [(HALTED, ACTIVE)]


# --- kill switch, reset, combination ------------------------------------------------------------


def test_kill_switch_halts_and_returns_cancel_all_including_reduce_only() -> None:
    m, clock = machine()
    events = m.kill(KillSwitch("acct", "bob", "exchange incident", clock.now()))
    assert changes(events) == [(ACTIVE, HALTED)]
    (cancel,) = cancels(events)
    assert not cancel.keep_reduce_only
    assert cancel.reason == "kill switch by bob: exchange incident"
    # pressing it again while halted still cancels whatever is open
    again = m.kill(KillSwitch("acct", "bob", "again", clock.now()))
    assert changes(again) == [] and len(cancels(again)) == 1
    assert changes(reset(m, clock, "kill_switch")) == [(HALTED, ACTIVE)]


def test_strictest_breaker_wins_and_resetting_one_leaves_the_other() -> None:
    m, clock = machine(daily_loss_pct=None)
    m.on_trade_closed(Decimal(-1))
    for _ in range(4):
        m.on_trade_closed(Decimal(-1))
    assert m.state is REDUCING
    events = m.on_equity(Decimal(100)) + m.on_equity(Decimal(10))
    assert changes(events) == [(REDUCING, HALTED)]
    assert changes(reset(m, clock, "drawdown")) == [(HALTED, REDUCING)]


def test_reset_needs_a_reason_a_known_breaker_and_the_right_account() -> None:
    m, clock = machine()
    with pytest.raises(ValueError, match="needs who asked"):
        m.reset(ResetBreaker("acct", "drawdown", "alice", "  ", clock.now()))
    with pytest.raises(ValueError, match="no breaker named 'nope'"):
        m.reset(ResetBreaker("acct", "nope", "alice", "why", clock.now()))
    with pytest.raises(ValueError, match="account 'other'"):
        m.kill(KillSwitch("other", "alice", "why", clock.now()))


def test_disabled_breakers_are_not_built() -> None:
    m, _ = machine(daily_loss_pct=None, max_consecutive_losses=None)
    assert "daily_loss" not in m.breakers and "consecutive_losses" not in m.breakers
    assert m.on_trade_closed(Decimal(-1)) == ()
    assert m.account == "acct"


def test_state_machine_pickles_and_resumes_with_its_breakers() -> None:
    m, clock = machine(daily_loss_pct=None)
    m.on_equity(Decimal(100_000))
    m.on_equity(Decimal(80_000))
    restored = pickle.loads(pickle.dumps(m))
    assert restored.state is HALTED
    assert restored.breakers["drawdown"].status is BreakerStatus.OPEN
    assert changes(reset(restored, clock, "drawdown")) == [(HALTED, ACTIVE)]


def test_next_due_follows_every_change_of_every_breaker_and_survives_a_snapshot() -> None:
    # next_due() keeps its answer between changes (an event-time flow asks on every market event):
    # after every kind of change it must equal the breakers' own earliest due time.
    m, clock = machine()

    def fresh(sm: RiskStateMachine) -> object:
        times = [t for t in (b.due() for b in sm.breakers.values()) if t is not None]
        return min(times) if times else None

    key = "binance:BTC/USDT"
    assert m.next_due() is None
    steps = [
        lambda: m.on_data({key: clock.now()}, {key: clock.now()}, {key: clock.now()}),  # staleness clocks start
        lambda: clock.advance(timedelta(seconds=10)) and m.on_data({key: clock.now()}),  # market moves on
        lambda: m.on_equity(Decimal("100000")),
        lambda: m.on_equity(Decimal("94000")),  # daily loss: open until the next UTC day
        lambda: clock.advance(timedelta(minutes=10)) and m.tick(),  # everything stale: cooldowns
        lambda: m.kill(KillSwitch("acct", "alice", "test", clock.now())),
        lambda: reset(m, clock, "kill_switch"),
        lambda: m.on_connection(False),
        lambda: m.on_connection(True),  # connected since now: the disconnect cooldown runs
    ]
    seen = []
    for step in steps:
        step()
        assert m.next_due() == fresh(m)
        seen.append(m.next_due())
        restored = pickle.loads(pickle.dumps(m))
        assert restored.next_due() == fresh(restored) == m.next_due()
    assert len(set(seen)) >= 3  # the answer moved with the changes (staleness, cooldowns)
