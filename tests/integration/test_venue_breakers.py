"""The venue breakers fed by real failures: the real async ccxt client (Binance spot) against the
local recorded exchange (``tests/support/exchange_server.py``), through ``execution.ccxt_venue`` and
its error translation, under a real ``OrderManager`` whose ``drain_outcomes()`` goes to
``RiskStateMachine.on_venue_outcomes`` as the trading flow's account step does.

The venue runs on the system clock (its timeouts are real); the state machine runs on a
ManualClock so cooldowns are moved by the test, not waited for. Round trips are measured with a
real monotonic timer (``time.perf_counter``) injected into the manager.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from datetime import timedelta
from decimal import Decimal

import pytest

from core.clock import ManualClock, parse_utc
from core.fills import OrderStatus
from core.orders import TradingState, TradingStateChanged
from execution.manager import OrderManager
from execution.portfolio import Portfolio
from risk.breakers import BreakerStatus, RiskEvent, RiskStateMachine
from risk.config import BreakerLimits
from risk.venue_calls import CallResult, VenueCall
from tests.integration.test_ccxt_venue import CLOCK, Exchange, approved, make_venue, running_exchange

ACTIVE, REDUCING, HALTED = TradingState.ACTIVE, TradingState.REDUCING, TradingState.HALTED
T0 = parse_utc("2026-01-01T00:00:00Z")
ORDER_PATH = "/api/v3/order"


@pytest.fixture
def exchange() -> Iterator[Exchange]:
    with running_exchange(usdt="1000000") as ex:
        yield ex


def machine(**limits: object) -> tuple[RiskStateMachine, ManualClock]:
    clock = ManualClock(T0)
    return RiskStateMachine("acct", BreakerLimits(**limits), clock), clock  # type: ignore[arg-type]


def changes(events: tuple[RiskEvent, ...]) -> list[tuple[TradingState, TradingState]]:
    return [(e.old, e.new) for e in events if isinstance(e, TradingStateChanged)]


def resting(cid: str) -> object:
    return approved(cid, "0.001", "20000.00")  # far below the recorded book: rests


def test_venue_error_rate_from_5xx_answers_halts_and_a_good_call_after_the_cooldown_closes_it(
    exchange: Exchange,
) -> None:
    m, clock = machine(
        venue_min_calls=3,
        venue_max_error_rate=Decimal("0.5"),
        venue_error_window=timedelta(seconds=60),
        venue_error_cooldown=timedelta(seconds=30),
    )
    with make_venue(exchange) as venue:
        manager = OrderManager(venue, Portfolio("acct", Decimal("1000000")), clock=CLOCK, timer=time.perf_counter)
        assert manager.submit(resting("b4-ok-1")).status is OrderStatus.ACCEPTED
        exchange.do(lambda: exchange.server.fail_next(2, 503, path=ORDER_PATH, method="POST"))
        for cid in ("b4-503-1", "b4-503-2"):
            result = manager.submit(resting(cid))
            assert result.status is OrderStatus.REJECTED and result.reason.startswith("not_accepted")
        outcomes = manager.drain_outcomes()
        submits = [(o.result, o.error) for o in outcomes if o.call is VenueCall.SUBMIT]
        assert submits == [(CallResult.OK, ""), (CallResult.ERROR, "unavailable"), (CallResult.ERROR, "unavailable")]
        events = m.on_venue_outcomes(outcomes)
        assert changes(events) == [(ACTIVE, HALTED)]
        assert "2 of 3 venue calls failed" in events[0].reason  # type: ignore[union-attr]
        clock.advance(timedelta(seconds=30))
        assert changes(m.tick()) == [(HALTED, ACTIVE)]
        assert m.breakers["venue_errors"].status is BreakerStatus.HALF_OPEN
        # The probe: a cancel the venue answers closes the breaker.
        assert manager.cancel("b4-ok-1") is OrderStatus.CANCELED
        assert m.on_venue_outcomes(manager.drain_outcomes()) == ()
        assert m.breakers["venue_errors"].status is BreakerStatus.CLOSED


def test_slow_venue_answers_make_order_round_trips_reduce_and_a_fast_probe_after_the_cooldown_closes(
    exchange: Exchange,
) -> None:
    m, clock = machine(
        max_round_trip=timedelta(milliseconds=200), latency_samples=3, latency_cooldown=timedelta(seconds=30)
    )
    with make_venue(exchange) as venue:
        manager = OrderManager(venue, Portfolio("acct", Decimal("1000000")), clock=CLOCK, timer=time.perf_counter)
        exchange.do(lambda: exchange.server.delay_next(3, 0.35, path=ORDER_PATH, method="POST"))
        for i in range(3):
            assert manager.submit(resting(f"b4-slow-{i}")).status is OrderStatus.ACCEPTED
        outcomes = manager.drain_outcomes()
        trips = [o.round_trip for o in outcomes if o.is_order_round_trip]
        assert len(trips) == 3 and min(trips) >= timedelta(milliseconds=350)
        events = m.on_venue_outcomes(outcomes)
        assert changes(events) == [(ACTIVE, REDUCING)]
        assert "median order round trip" in events[0].reason  # type: ignore[union-attr]
        clock.advance(timedelta(seconds=30))
        assert changes(m.tick()) == [(REDUCING, ACTIVE)]
        assert manager.submit(resting("b4-fast-1")).status is OrderStatus.ACCEPTED
        [probe] = [o for o in manager.drain_outcomes() if o.is_order_round_trip]
        assert probe.round_trip < timedelta(milliseconds=200)
        assert m.on_venue_outcomes([probe]) == ()
        assert m.breakers["latency"].status is BreakerStatus.CLOSED


def test_a_connection_dropped_mid_submit_halts_until_the_venue_has_answered_for_the_cooldown(
    exchange: Exchange,
) -> None:
    m, clock = machine(disconnect_cooldown=timedelta(seconds=10))
    with make_venue(exchange, read_max_attempts=2) as venue:
        manager = OrderManager(venue, Portfolio("acct", Decimal("1000000")), clock=CLOCK, timer=time.perf_counter)
        # The order's answer is lost to a reset connection and the venue cannot be asked about it.
        exchange.do(lambda: exchange.server.lose_order_responses(1))
        exchange.do(lambda: exchange.server.fail_next(2, 503, path=ORDER_PATH, method="GET"))
        result = manager.submit(approved("b4-drop-1", "0.001"))
        assert result.status is OrderStatus.SUBMITTED and "submit outcome unknown" in result.reason
        outcomes = manager.drain_outcomes()
        [submit] = [o for o in outcomes if o.call is VenueCall.SUBMIT]
        assert (submit.result, submit.error, submit.connected) == (CallResult.DISCONNECTED, "unavailable", False)
        events = m.on_venue_outcomes(outcomes)
        assert changes(events) == [(ACTIVE, HALTED)]
        assert "venue_disconnect closed->open: venue disconnected" in events[0].reason  # type: ignore[union-attr]
        # Reconnected: reconciliation reaches the venue and finds the order.
        report = manager.reconcile()
        assert report.changed == ("b4-drop-1",)
        assert m.on_venue_outcomes(manager.drain_outcomes()) == ()
        clock.advance(timedelta(seconds=9))
        assert m.tick() == ()
        clock.advance(timedelta(seconds=1))
        assert changes(m.tick()) == [(HALTED, ACTIVE)]
    assert len(exchange.orders("b4-drop-1")) == 1
