"""The venue breakers (error rate, order round trip, disconnect) and the stale features / model
breaker, fed the way the trading flow feeds them: the outcomes a real OrderManager recorded on the
real PaperVenue (``OrderManager.drain_outcomes``), and the newest feature and prediction times.

Failures a paper venue cannot produce (5xx answers, dropped connections, slow answers) are driven
through the real ccxt client against the local recorded exchange in
``tests/integration/test_venue_breakers.py``.
"""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal

from core.clock import ManualClock
from core.events import BookSnapshot
from core.orders import TradingState, TradingStateChanged
from execution.manager import OrderManager
from execution.paper import PaperVenue
from execution.portfolio import Portfolio
from risk.breakers import BreakerStatus, RiskEvent, RiskStateMachine
from risk.config import BreakerLimits
from risk.venue_calls import CallResult, VenueCall, VenueCallOutcome
from tests.unit.execution._exec_builders import ACCOUNT, approved, paper
from tests.unit.risk._risk_builders import T0

ACTIVE, REDUCING, HALTED = TradingState.ACTIVE, TradingState.REDUCING, TradingState.HALTED
KEY = "binance:BTC/USDT"


class SteppingTimer:
    """A monotonic timer for tests: each reading is ``step`` seconds after the previous one, so a
    venue call (two readings) takes exactly ``step``."""

    def __init__(self, step: float) -> None:
        self.step = step
        self.now = 0.0

    def __call__(self) -> float:
        self.now += self.step
        return self.now


def machine(**limits: object) -> tuple[RiskStateMachine, ManualClock]:
    clock = ManualClock(T0)
    return RiskStateMachine(ACCOUNT, BreakerLimits(**limits), clock), clock  # type: ignore[arg-type]


def changes(events: tuple[RiskEvent, ...]) -> list[tuple[TradingState, TradingState]]:
    return [(e.old, e.new) for e in events if isinstance(e, TradingStateChanged)]


def manager_on_paper(timer: SteppingTimer | None = None) -> tuple[OrderManager, PaperVenue]:
    venue = paper()
    t = T0
    venue.on_book_snapshot(
        BookSnapshot(
            "binance",
            "BTC/USDT",
            1,
            ((Decimal(99), Decimal(2)),),
            ((Decimal(100), Decimal(1)), (Decimal(101), Decimal(5))),
            t,
            t,
        )
    )
    return OrderManager(venue, Portfolio(ACCOUNT, Decimal(1_000_000)), clock=venue, timer=timer), venue


def trade_a_while(manager: OrderManager, start: int, orders: int) -> None:
    """Resting limit orders, each canceled again: a submit, a cancel and two polls per order."""
    for i in range(start, start + orders):
        cid = f"b4-{i}"
        manager.submit(approved(cid, "0.1", "95"))
        manager.cancel(cid)


def test_venue_breakers_stay_closed_while_a_paper_venue_answers_every_call() -> None:
    m, clock = machine(venue_min_calls=2)
    manager, _ = manager_on_paper(SteppingTimer(0.05))
    for batch in range(5):
        trade_a_while(manager, batch * 10, 10)
        outcomes = manager.drain_outcomes()
        assert len(outcomes) == 40
        assert m.on_venue_outcomes(outcomes) == ()
        clock.advance(timedelta(seconds=1))
    for name in ("venue_errors", "latency", "venue_disconnect"):
        assert m.breakers[name].status is BreakerStatus.CLOSED
    assert m.state is ACTIVE


def test_slow_order_round_trips_on_the_manager_then_reducing_and_a_fast_probe_after_cooldown_closes() -> None:
    m, clock = machine(max_round_trip=timedelta(seconds=2), latency_samples=10, latency_cooldown=timedelta(seconds=30))
    timer = SteppingTimer(3.0)  # every venue call takes 3 s
    manager, _ = manager_on_paper(timer)
    trade_a_while(manager, 0, 9)
    assert m.on_venue_outcomes(manager.drain_outcomes()) == ()  # 9 round trips: not enough samples yet
    trade_a_while(manager, 9, 1)
    events = m.on_venue_outcomes(manager.drain_outcomes())
    assert changes(events) == [(ACTIVE, REDUCING)]
    assert "median order round trip 3.000s over the last 10 orders exceeds 2.000s" in events[0].reason  # type: ignore[union-attr]
    timer.step = 0.1
    clock.advance(timedelta(seconds=29))
    trade_a_while(manager, 10, 1)
    assert m.on_venue_outcomes(manager.drain_outcomes()) == ()  # inside the cooldown: ignored
    clock.advance(timedelta(seconds=1))
    assert changes(m.tick()) == [(REDUCING, ACTIVE)]
    assert m.breakers["latency"].status is BreakerStatus.HALF_OPEN
    timer.step = 2.5  # the probe is slow: straight back to REDUCING
    trade_a_while(manager, 11, 1)
    assert changes(m.on_venue_outcomes(manager.drain_outcomes())) == [(ACTIVE, REDUCING)]
    clock.advance(timedelta(seconds=30))
    m.tick()
    timer.step = 0.2
    trade_a_while(manager, 12, 1)
    assert m.on_venue_outcomes(manager.drain_outcomes()) == ()
    assert m.breakers["latency"].status is BreakerStatus.CLOSED


def test_only_answered_submits_are_round_trip_samples() -> None:
    m, _ = machine(max_round_trip=timedelta(seconds=1), latency_samples=2)
    manager, _ = manager_on_paper(SteppingTimer(5.0))
    manager.reconcile()  # a poll and a fetch of open orders, 5 s each: not order round trips
    manager.submit(approved("b4-1", "0.1", "95"))
    assert m.on_venue_outcomes(manager.drain_outcomes()) == ()
    assert list(m.breakers["latency"].latencies) == [timedelta(seconds=5)]  # type: ignore[attr-defined]


def test_returned_polls_neither_dilute_the_error_rate_nor_pass_for_a_connection() -> None:
    m, clock = machine(
        venue_min_calls=2, venue_max_error_rate=Decimal("0.5"), disconnect_cooldown=timedelta(seconds=10)
    )
    manager, _ = manager_on_paper()
    lost = VenueCallOutcome(VenueCall.CANCEL, CallResult.DISCONNECTED, timedelta(seconds=3), T0, "unavailable")
    assert changes(m.on_venue_outcomes([lost])) == [(ACTIVE, HALTED)]
    for _ in range(20):
        manager.pump()  # the paper venue answers polls from its queue
    polls = manager.drain_outcomes()
    assert {(o.call, o.result) for o in polls} == {(VenueCall.POLL, CallResult.OK)}
    m.on_venue_outcomes(polls)
    clock.advance(timedelta(minutes=5))
    assert m.tick() == () and m.state is HALTED  # no real call has shown the venue reachable
    manager.submit(approved("b4-1", "0.1", "95"))
    m.on_venue_outcomes(manager.drain_outcomes())
    clock.advance(timedelta(seconds=10))
    assert changes(m.tick()) == [(HALTED, ACTIVE)]


def test_stale_model_output_while_features_still_flow_then_reducing_until_both_are_fresh() -> None:
    m, clock = machine(features_max_age=timedelta(minutes=5), features_cooldown=timedelta(seconds=30))
    assert m.on_model_inputs({KEY: T0}, {KEY: T0}) == ()
    for _ in range(5):
        clock.advance(timedelta(minutes=1))
        assert m.on_model_inputs(features={KEY: clock.now()}) == ()  # the model stopped predicting
    clock.advance(timedelta(seconds=1))
    events = m.on_model_inputs(features={KEY: clock.now()})
    assert changes(events) == [(ACTIVE, REDUCING)]
    assert f"model {KEY} is 301.0s old" in events[0].reason  # type: ignore[union-attr]
    clock.advance(timedelta(seconds=30))
    assert changes(m.on_model_inputs({KEY: clock.now()}, {KEY: clock.now()})) == [(REDUCING, ACTIVE)]


def test_stale_features_of_one_instrument_reduce_even_when_another_is_fresh() -> None:
    m, clock = machine(features_max_age=timedelta(seconds=90))
    other = "binance:ETH/USDT"
    m.on_model_inputs({KEY: T0, other: T0}, {KEY: T0, other: T0})
    clock.advance(timedelta(seconds=91))
    events = m.on_model_inputs({other: clock.now()}, {KEY: clock.now(), other: clock.now()})
    assert changes(events) == [(ACTIVE, REDUCING)]
    assert f"features {KEY} is 91.0s old" in events[0].reason  # type: ignore[union-attr]
