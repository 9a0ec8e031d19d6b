"""A submit whose outcome is unknown (the answer was lost and the lookup failed too) is resolved by the
running order manager itself, by client order id, never by sending the order again.

Found by the exchange-fault chaos test (tests/chaos/test_exchange_faults.py): before, such an order
stayed SUBMITTED until the process restarted and reconciled, so a fill the venue made was never
booked and the order counted as open for ever.
"""

from __future__ import annotations

from datetime import timedelta

from core.clock import ManualClock
from core.errors import RetryLater
from core.fills import OrderStatus
from core.orders import ApprovedOrder
from execution.manager import UNKNOWN_RECHECK, OrderManager
from execution.portfolio import Portfolio
from execution.venue import SubmitOutcomeUnknown, VenueOrder, VenueReport
from risk.venue_calls import CallResult, VenueCall
from tests.unit.execution._exec_builders import ACCOUNT, T0, approved, d
from tests.unit.execution.test_execution_manager import FlakyVenue, venue_with_book


class UnreachableLookups(FlakyVenue):
    """Lookups by client id fail while ``down`` (as when the venue answers 503 to reads); an answer
    lost after the venue got the order loses the reports that came with it too (the ccxt venue queues
    an order's fills only from an answer it received)."""

    down = False

    def submit(self, order: ApprovedOrder) -> VenueReport:
        try:
            return super().submit(order)
        except SubmitOutcomeUnknown:
            if self.drop == "after":
                self.inner.poll()  # the fills that came with the lost answer are lost with it
            raise

    def fetch_order(self, client_order_id: str) -> VenueOrder | None:
        if self.down:
            raise RetryLater("fetch_order: 503 Service Unavailable")
        return super().fetch_order(client_order_id)


def _manager(venue: FlakyVenue) -> tuple[OrderManager, ManualClock]:
    clock = ManualClock(T0 + timedelta(minutes=1))
    return OrderManager(venue, Portfolio(ACCOUNT, d(1_000_000)), clock=clock), clock


def test_order_accepted_whose_answer_was_lost_is_found_by_client_id_on_a_later_pump_and_never_resent() -> None:
    flaky = UnreachableLookups(venue_with_book())
    manager, clock = _manager(flaky)
    flaky.drop, flaky.down = "after", True  # the venue has it; its answer and the lookups are lost
    assert manager.submit(approved("b4-1", "0.5")).status is OrderStatus.SUBMITTED
    flaky.drop = None
    manager.pump()
    assert manager.order("b4-1").status is OrderStatus.SUBMITTED  # type: ignore[union-attr]
    clock.advance(UNKNOWN_RECHECK)
    manager.pump()  # the lookup fails: still unknown, and the failure is evidence for the breakers
    assert manager.order("b4-1").status is OrderStatus.SUBMITTED  # type: ignore[union-attr]
    failed = [o for o in manager.drain_outcomes() if o.call is VenueCall.FETCH_ORDER]
    assert [(o.result, o.client_order_id) for o in failed] == [(CallResult.ERROR, "b4-1")]
    flaky.down = False
    clock.advance(UNKNOWN_RECHECK)
    manager.pump()
    managed = manager.order("b4-1")
    assert managed is not None and managed.status is OrderStatus.FILLED and managed.filled == d("0.5")
    assert manager.portfolio.holdings()["binance:BTC/USDT"].amount == d("0.5")  # the venue's fill, booked once
    fills = [r for r in manager.drain() if type(r).__name__ == "Fill"]
    assert len(fills) == 1
    clock.advance(UNKNOWN_RECHECK)
    manager.pump()
    assert manager.drain() == [] and manager.submit(approved("b4-1", "0.5")).duplicate
    assert flaky.submits == ["b4-1"]


def test_order_the_venue_never_got_is_rejected_once_the_outcome_timeout_passed_without_it() -> None:
    flaky = UnreachableLookups(venue_with_book())
    manager, clock = _manager(flaky)
    flaky.drop = "before"
    manager.submit(approved("b4-2", "0.5", "95"))
    flaky.drop = None
    clock.advance(timedelta(seconds=30))
    manager.pump()  # not at the venue yet, but the request may still arrive: keep waiting
    assert manager.order("b4-2").status is OrderStatus.SUBMITTED  # type: ignore[union-attr]
    clock.advance(timedelta(seconds=30))
    manager.pump()
    managed = manager.order("b4-2")
    assert managed is not None and managed.status is OrderStatus.REJECTED and managed.reason == "not_found_at_venue"
    assert flaky.submits == ["b4-2"] and flaky.fetch_open_orders() == []


def test_unknown_orders_survive_a_snapshot_and_are_still_resolved_after_it() -> None:
    import pickle

    flaky = UnreachableLookups(venue_with_book())
    manager, clock = _manager(flaky)
    flaky.drop = "after"
    manager.submit(approved("b4-3", "0.5", "95"))
    flaky.drop = None
    restored = pickle.loads(pickle.dumps(manager.__getstate__()))
    again = OrderManager.__new__(OrderManager)
    again.__setstate__(restored)
    again.venue = flaky
    again._clock = clock  # the pickled ManualClock copy is not the test's
    clock.advance(UNKNOWN_RECHECK)
    again.pump()
    assert again.order("b4-3").status is OrderStatus.ACCEPTED  # type: ignore[union-attr]


def test_a_resolved_order_events_are_in_time_order_accepted_no_later_than_its_first_fill() -> None:
    flaky = UnreachableLookups(venue_with_book())
    manager, clock = _manager(flaky)
    flaky.drop, flaky.down = "after", True
    manager.submit(approved("b4-4", "0.5"))
    flaky.drop, flaky.down = None, False
    clock.advance(UNKNOWN_RECHECK)
    manager.pump()
    events = [r for r in manager.drain() if type(r).__name__ == "OrderEvent"]
    assert [e.status for e in events][-2:] == [OrderStatus.ACCEPTED, OrderStatus.FILLED]
    times = [e.ts_event for e in events[1:]]  # after the SUBMIT (stamped by the manager's own clock)
    assert times == sorted(times) and times[0] <= clock.now()


def test_a_fill_found_after_our_own_later_events_keeps_the_orders_events_in_time_order() -> None:
    # The chaos run's case: the unknown order was asked to be canceled (the breakers halted the
    # account), the cancel was refused, and only then was the fill (stamped by the venue, earlier)
    # found; the orders table keeps the newest event, so a fill stamped before the cancel was lost.
    flaky = UnreachableLookups(venue_with_book())
    manager, clock = _manager(flaky)
    flaky.drop, flaky.down = "after", True
    manager.submit(approved("b4-5", "0.5"))
    flaky.drop = None
    clock.advance(timedelta(seconds=2))
    manager.cancel("b4-5")  # the venue's cancel does not know it: refused, back to SUBMITTED
    flaky.down = False
    clock.advance(UNKNOWN_RECHECK)
    manager.pump()
    events = [r for r in manager.drain() if type(r).__name__ == "OrderEvent"]
    assert events[-1].status is OrderStatus.FILLED
    times = [e.ts_event for e in events]
    assert times == sorted(times)
