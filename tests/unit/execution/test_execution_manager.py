"""Order manager: no second submit for a known client id, a crash between submit and ack resolved by
reconciliation with exactly one order at the venue, fills applied once to the portfolio, records
for fills.v1, and the risk gate's view."""

from __future__ import annotations

import pickle
from collections.abc import Mapping, Sequence
from datetime import timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from core.clock import ManualClock
from core.events import BookSnapshot, Side, Trade
from core.fills import (
    Fill,
    Liquidity,
    OrderEvent,
    OrderEventKind,
    OrderStatus,
    fill_from_record,
    fill_record,
    order_event_from_record,
    order_event_record,
)
from core.orders import ApprovedOrder, CancelAllOrders
from execution.manager import OrderManager, ReconciliationMismatch
from execution.orders import InvalidOrderTransition
from execution.paper import FixedLatency, PaperVenue
from execution.portfolio import Portfolio
from execution.venue import SubmitOutcomeUnknown, VenueCapabilities, VenueOrder, VenueReport
from tests.unit.execution._exec_builders import ACCOUNT, CAPS, FEES, T0, approved, d, paper

T = T0 + timedelta(minutes=1)


class FlakyVenue:
    """A paper venue behind a connection that can drop a submit before or after it reaches the venue."""

    def __init__(self, inner: PaperVenue) -> None:
        self.inner = inner
        self.submits: list[str] = []
        self.drop: str | None = None  # "before" or "after" the venue got the request

    @property
    def capabilities(self) -> VenueCapabilities:
        return self.inner.capabilities

    def submit(self, order: ApprovedOrder) -> VenueReport:
        self.submits.append(order.client_order_id)
        if self.drop == "before":
            raise SubmitOutcomeUnknown("read timeout after 10 s")
        report = self.inner.submit(order)
        if self.drop == "after":
            raise SubmitOutcomeUnknown("connection reset by peer")
        return report

    def cancel(self, client_order_id: str) -> VenueReport:
        return self.inner.cancel(client_order_id)

    def fetch_order(self, client_order_id: str) -> VenueOrder | None:
        return self.inner.fetch_order(client_order_id)

    def fetch_open_orders(self, symbol: str | None = None) -> Sequence[VenueOrder]:
        return self.inner.fetch_open_orders(symbol)

    def poll(self) -> list[VenueReport]:
        return self.inner.poll()

    def balances(self) -> Mapping[str, Decimal]:
        return self.inner.balances()

    def positions(self) -> Mapping[str, Decimal]:
        return self.inner.positions()


def venue_with_book(**kwargs: Any) -> PaperVenue:
    venue = paper(**kwargs)
    venue.on_book_snapshot(
        BookSnapshot("binance", "BTC/USDT", 1, ((d(99), d(2)),), ((d(100), d(1)), (d(101), d(5))), T, T)
    )
    return venue


def manager_on(venue: PaperVenue | FlakyVenue, cash: str = "1000000") -> OrderManager:
    clock = venue.inner if isinstance(venue, FlakyVenue) else venue
    return OrderManager(venue, Portfolio(ACCOUNT, d(cash)), clock=clock)


def restart(manager: OrderManager, venue: PaperVenue | FlakyVenue) -> OrderManager:
    """A new process: the state the old one persisted (pickled), the same venue."""
    orders, fill_ids, portfolio = pickle.loads(pickle.dumps((manager.orders(), manager.fill_ids, manager.portfolio)))
    clock = venue.inner if isinstance(venue, FlakyVenue) else venue
    return OrderManager(venue, portfolio, clock=clock, orders=orders, fill_ids=fill_ids)


def test_same_client_order_id_replayed_gives_no_second_submit() -> None:
    flaky = FlakyVenue(venue_with_book())
    manager = manager_on(flaky)
    first = manager.submit(approved("b4-1", "0.5", "95"))
    again = manager.submit(approved("b4-1", "0.5", "95"))
    assert (first.status, first.duplicate) == (OrderStatus.ACCEPTED, False)
    assert (again.status, again.duplicate) == (OrderStatus.ACCEPTED, True)
    assert flaky.submits == ["b4-1"]
    assert len(flaky.fetch_open_orders()) == 1


def test_crash_after_the_venue_accepted_but_before_the_ack_leaves_exactly_one_order() -> None:
    flaky = FlakyVenue(venue_with_book())
    manager = manager_on(flaky)
    flaky.drop = "after"
    result = manager.submit(approved("b4-1", "0.5", "95"))
    assert result.status is OrderStatus.SUBMITTED and "unknown" in result.reason
    flaky.drop = None

    restarted = restart(manager, flaky)  # the process died here; the write-ahead SUBMIT survived
    replay = restarted.submit(approved("b4-1", "0.5", "95"))  # orders.v1 redelivered after restart
    assert replay.duplicate and flaky.submits == ["b4-1"]
    report = restarted.reconcile()
    assert report.changed == ("b4-1",) and report.not_found == () and report.unknown_at_venue == ()
    managed = restarted.order("b4-1")
    assert managed is not None and managed.status is OrderStatus.ACCEPTED and managed.venue_order_id == "paper-1"
    assert [o.client_order_id for o in flaky.fetch_open_orders()] == ["b4-1"]


def test_crash_before_the_request_reached_the_venue_rejects_it_and_never_resends() -> None:
    flaky = FlakyVenue(venue_with_book())
    manager = manager_on(flaky)
    flaky.drop = "before"
    manager.submit(approved("b4-1", "0.5", "95"))
    flaky.drop = None
    restarted = restart(manager, flaky)
    report = restarted.reconcile()
    assert report.not_found == ("b4-1",)
    managed = restarted.order("b4-1")
    assert managed is not None and managed.status is OrderStatus.REJECTED and managed.reason == "not_found_at_venue"
    assert restarted.submit(approved("b4-1", "0.5", "95")).duplicate
    assert flaky.submits == ["b4-1"] and flaky.fetch_open_orders() == []


def test_crash_before_the_submit_was_recorded_adopts_the_venues_order_instead_of_a_second_one() -> None:
    flaky = FlakyVenue(venue_with_book())
    lost = manager_on(flaky)
    lost.submit(approved("b4-1", "0.5", "95"))  # accepted, then the process died without persisting
    fresh = manager_on(flaky)
    result = fresh.submit(approved("b4-1", "0.5", "95"))
    assert result.status is OrderStatus.ACCEPTED and not result.duplicate
    assert len(flaky.fetch_open_orders()) == 1
    managed = fresh.order("b4-1")
    assert managed is not None and managed.venue_order_id == "paper-1"


def test_market_order_filled_during_the_crash_is_booked_once_by_reconcile_and_not_again_by_the_stream() -> None:
    venue = venue_with_book()
    flaky = FlakyVenue(venue)
    manager = manager_on(flaky)
    flaky.drop = "after"
    manager.submit(approved("b4-1", "1.5"))  # fills 1 @ 100 and 0.5 @ 101 at the venue; we saw nothing
    flaky.drop = None
    late_stream = flaky.poll()  # the fill stream's messages were in flight when the process died
    restarted = restart(manager, flaky)
    report = restarted.reconcile()
    assert report.fills_applied == 2 and report.changed == ("b4-1",)
    managed = restarted.order("b4-1")
    assert managed is not None and managed.status is OrderStatus.FILLED and managed.filled == d("1.5")
    for late in late_stream:  # ...and are delivered after all: already booked, ignored
        restarted._apply(late)
    assert managed.filled == d("1.5")
    pf = restarted.portfolio
    notional = d(100) + d("50.5")
    assert pf.cash == d(1_000_000) - notional - notional * FEES.taker
    assert pf.holdings()["binance:BTC/USDT"].amount == d("1.5")
    assert venue.balances()["USDT"] == d(1_000_000) - notional - notional * FEES.taker
    kinds = [(r.kind, r.status) for r in restarted.drain() if isinstance(r, OrderEvent)]
    assert kinds == [
        (OrderEventKind.ACCEPT, OrderStatus.ACCEPTED),
        (OrderEventKind.PARTIAL_FILL, OrderStatus.PARTIALLY_FILLED),
        (OrderEventKind.FILL, OrderStatus.FILLED),
    ]


def test_reports_delivered_twice_are_applied_once() -> None:
    venue = venue_with_book()
    manager = manager_on(venue)
    manager.submit(approved("b4-1", "0.5", "99.5"))
    venue.on_trade(Trade("binance", "BTC/USDT", "1", d(99), d(1), Side.SELL, T, T))
    reports = venue.poll()
    assert len(reports) == 1
    for report in reports + reports:
        manager._apply(report)
    manager._apply(VenueReport("b4-1", OrderEventKind.ACCEPT, T))  # duplicate ack after the fill
    managed = manager.order("b4-1")
    assert managed is not None and managed.status is OrderStatus.FILLED and managed.filled == d("0.5")
    assert manager.portfolio.holdings()["binance:BTC/USDT"].amount == d("0.5")
    manager._apply(VenueReport("b4-unknown", OrderEventKind.CANCEL, T))
    assert [r.client_order_id for r in manager.unmatched_reports] == ["b4-unknown"]


def test_every_status_change_and_fill_is_recorded_and_round_trips_through_fills_v1() -> None:
    venue = venue_with_book()
    manager = manager_on(venue)
    manager.submit(approved("b4-1", "1.5"))
    records = manager.drain()
    assert [type(r).__name__ for r in records] == [
        "OrderEvent",
        "OrderEvent",
        "OrderEvent",
        "Fill",
        "OrderEvent",
        "Fill",
    ]
    assert manager.drain() == []
    for rec in records:
        if isinstance(rec, Fill):
            assert fill_from_record(fill_record(rec)) == rec
        else:
            assert order_event_from_record(order_event_record(rec)) == rec
    last = records[-2]
    assert isinstance(last, OrderEvent)
    events = [r for r in records if isinstance(r, OrderEvent)]
    assert [(e.seq, e.previous, e.status) for e in events] == [
        (1, OrderStatus.PENDING_SUBMIT, OrderStatus.SUBMITTED),
        (2, OrderStatus.SUBMITTED, OrderStatus.ACCEPTED),
        (3, OrderStatus.ACCEPTED, OrderStatus.PARTIALLY_FILLED),
        (4, OrderStatus.PARTIALLY_FILLED, OrderStatus.FILLED),
    ]
    assert (last.status, last.filled, last.remaining) == (OrderStatus.FILLED, d("1.5"), d(0))
    assert last.key == ACCOUNT
    with pytest.raises(ValueError, match=r"not a fills\.v1 fill"):
        fill_from_record(order_event_record(last))
    with pytest.raises(ValueError, match=r"not a fills\.v1 order"):
        order_event_from_record({"v": 1, "type": "fill"})


def test_cancel_moves_through_pending_cancel_and_is_idempotent() -> None:
    venue = venue_with_book()
    manager = manager_on(venue)
    manager.submit(approved("b4-1", "0.5", "95"))
    assert manager.cancel("b4-1") is OrderStatus.CANCELED
    assert manager.cancel("b4-1") is OrderStatus.CANCELED
    statuses = [r.status for r in manager.drain() if isinstance(r, OrderEvent)]
    assert statuses[-2:] == [OrderStatus.PENDING_CANCEL, OrderStatus.CANCELED]
    with pytest.raises(KeyError, match="b4-nope"):
        manager.cancel("b4-nope")


def test_cancel_refused_by_the_venue_resumes_the_working_status() -> None:
    venue = venue_with_book()
    flaky = FlakyVenue(venue)
    manager = manager_on(flaky)
    flaky.drop = "before"
    manager.submit(approved("b4-1", "0.5", "95"))  # unknown result; the venue never got it
    assert manager.cancel("b4-1") is OrderStatus.SUBMITTED  # cancel by client id: unknown order
    assert manager.reconcile().not_found == ("b4-1",)


def test_cancel_all_keeps_reduce_only_orders_when_told() -> None:
    caps = VenueCapabilities("binance", FEES, CAPS.rules, reduce_only=True)
    venue = venue_with_book(caps=caps)
    manager = manager_on(venue)
    manager.submit(approved("b4-1", "0.5", "95"))
    manager.submit(approved("b4-2", "0.5", "120", side="sell", reduce_only=True))
    manager.submit(approved("b4-3", "0.1"))  # filled: nothing to cancel
    halt = CancelAllOrders(ACCOUNT, "drawdown", T, keep_reduce_only=True)
    assert manager.cancel_all(halt) == ["b4-1"]
    kill = CancelAllOrders(ACCOUNT, "kill switch", T, keep_reduce_only=False)
    assert manager.cancel_all(kill) == ["b4-2"]
    assert venue.fetch_open_orders() == []


def test_view_feeds_the_risk_gate_with_positions_and_open_orders() -> None:
    venue = venue_with_book(latency=FixedLatency(timedelta(seconds=1)))
    manager = manager_on(venue)
    manager.submit(approved("b4-m", "0.1"))  # market order in flight: no mark yet, left out
    manager.submit(approved("b4-l", "0.5", "95"))
    assert [o.client_order_id for o in manager.open_orders()] == ["b4-l"]
    venue.on_time(T + timedelta(seconds=1))
    manager.pump()
    manager.submit(approved("b4-m2", "0.1"))  # in flight, valued at the mark now
    view = manager.view()
    assert view.problem is None
    assert view.positions["binance:BTC/USDT"].amount == d("0.1")
    assert {o.client_order_id: o.price for o in view.open_orders} == {"b4-l": d(95), "b4-m2": d(100)}
    assert view.exposure("binance:BTC/USDT").long_worst == d("0.7")


def test_order_for_another_account_is_a_wiring_error() -> None:
    manager = manager_on(venue_with_book())
    with pytest.raises(ValueError, match="account 'other'"):
        manager.submit(approved("b4-1", "0.1", account="other"))


def test_venue_rejection_is_recorded_with_its_reason() -> None:
    manager = manager_on(venue_with_book(balances={"USDT": "10"}), cash="10")
    result = manager.submit(approved("b4-1", "1", "95"))
    assert (result.status, result.reason) == (OrderStatus.REJECTED, "insufficient_balance")


def test_impossible_report_raises_invalid_order_transition() -> None:
    manager = manager_on(venue_with_book())
    manager.submit(approved("b4-1", "0.5", "95"))
    manager.cancel("b4-1")
    with pytest.raises(InvalidOrderTransition, match="no transition from canceled on fill"):
        manager._apply(VenueReport("b4-1", OrderEventKind.FILL, T))


def test_reconcile_first_applies_the_reports_the_venue_still_holds() -> None:
    flaky = FlakyVenue(venue_with_book())
    manager = manager_on(flaky)
    flaky.drop = "after"
    manager.submit(approved("b4-1", "0.5"))
    flaky.drop = None
    report = restart(manager, flaky).reconcile()  # the stream delivers the fill: nothing left to check
    assert (report.checked, report.fills_applied) == (0, 0)


class LyingVenue(FlakyVenue):
    """Reports an order as filled without the fills that would make it so."""

    def fetch_order(self, client_order_id: str) -> VenueOrder | None:
        record = self.inner.fetch_order(client_order_id)
        assert record is not None
        return VenueOrder(
            record.client_order_id,
            record.venue_order_id,
            record.symbol,
            record.side,
            record.order_type,
            record.amount,
            record.price,
            OrderStatus.FILLED,
            record.amount,
        )

    def fetch_open_orders(self, symbol: str | None = None) -> Sequence[VenueOrder]:
        return []


def test_venue_record_that_our_fills_cannot_explain_halts_with_a_mismatch() -> None:
    lying = LyingVenue(venue_with_book())
    manager = manager_on(lying)
    lying.drop = "after"
    manager.submit(approved("b4-1", "0.5", "95"))
    with pytest.raises(ReconciliationMismatch, match="venue says filled"):
        manager.reconcile()


def test_reconcile_applies_cancels_and_expiries_it_missed_and_reports_foreign_orders() -> None:
    venue = venue_with_book(latency=FixedLatency(timedelta(seconds=1)))
    manager = manager_on(venue)
    manager.submit(approved("b4-1", "0.5", "95"))
    manager.submit(approved("b4-2", "9"))  # walks 6 BTC then expires for no liquidity
    venue.cancel("b4-1")  # canceled at the venue (e.g. by a person on the web UI)
    venue.submit(approved("manual-1", "0.1", "90"))
    venue.on_time(T + timedelta(seconds=1))
    venue.poll()  # the stream was lost
    report = manager.reconcile()
    assert set(report.changed) == {"b4-1", "b4-2"}
    assert report.unknown_at_venue == ("manual-1",)
    assert report.fills_applied == 2
    one, two = manager.order("b4-1"), manager.order("b4-2")
    assert one is not None and one.status is OrderStatus.CANCELED and one.reason == "canceled_at_venue"
    assert two is not None and two.status is OrderStatus.EXPIRED and two.filled == d(6)


def test_accepted_order_that_vanished_from_the_venue_is_canceled_by_reconcile() -> None:
    venue = venue_with_book()
    manager = manager_on(venue)
    manager.submit(approved("b4-1", "0.5", "95"))
    other = manager_on(venue_with_book())  # its venue never heard of b4-1
    other_orders = pickle.loads(pickle.dumps(manager.orders()))
    vanished = OrderManager(other.venue, other.portfolio, clock=ManualClock(T), orders=other_orders)
    report = vanished.reconcile()
    assert report.not_found == ("b4-1",)
    managed = vanished.order("b4-1")
    assert managed is not None and managed.status is OrderStatus.CANCELED


class CancelDroppingVenue(FlakyVenue):
    """Loses cancel requests on the way (the venue never sees them)."""

    def cancel(self, client_order_id: str) -> VenueReport:
        raise TimeoutError("cancel request timed out")


def test_cancel_lost_on_the_way_is_undone_by_reconcile_and_the_order_works_again() -> None:
    lossy = CancelDroppingVenue(venue_with_book())
    manager = manager_on(lossy)
    lossy.drop = "after"
    manager.submit(approved("b4-1", "0.5", "95"))  # submit result unknown
    lossy.drop = None
    with pytest.raises(TimeoutError):
        manager.cancel("b4-1")
    managed = manager.order("b4-1")
    assert managed is not None and managed.status is OrderStatus.PENDING_CANCEL
    restarted = restart(manager, lossy)
    restarted.reconcile()
    managed = restarted.order("b4-1")
    assert managed is not None and managed.status is OrderStatus.ACCEPTED
    assert managed.reason == "cancel_not_applied_at_venue"


def test_order_open_at_the_venue_that_we_hold_as_finished_halts_reconciliation() -> None:
    venue = venue_with_book()
    manager = manager_on(venue)
    manager.submit(approved("b4-1", "0.5", "95"))
    stale = restart(manager, venue)
    manager.cancel("b4-1")
    resurrected = approved("b4-1", "0.5", "95")
    venue.submit(approved("b4-other", "0.1", "90"))
    # The venue's copy comes back (e.g. a cancel that was reported but not applied); ours is final.
    managed = manager.order("b4-1")
    assert managed is not None and managed.status is OrderStatus.CANCELED
    twin = PaperVenue(CAPS, {"USDT": d(1_000_000)})
    twin.on_book_snapshot(BookSnapshot("binance", "BTC/USDT", 1, ((d(99), d(2)),), ((d(100), d(1)),), T, T))
    twin.submit(resurrected)
    checker = OrderManager(twin, manager.portfolio, clock=twin, orders=manager.orders())
    with pytest.raises(ReconciliationMismatch, match=r"b4-1 \(canceled\)"):
        checker.reconcile()
    assert stale.reconcile().unknown_at_venue == ("b4-other",)


def test_backtest_on_the_real_stream_keeps_portfolio_and_venue_balances_in_agreement(shared_data: Path) -> None:
    """Manager + paper venue + portfolio over the whole real capture, with a fixed order script: the
    portfolio's books (from fills) and the venue's balances (its own ledger) must agree exactly."""
    from tests.unit.execution._exec_builders import feed, real_events

    start_usdt, start_btc = d(1_000_000), d(10)
    venue = paper({"USDT": str(start_usdt), "BTC": str(start_btc)}, latency=FixedLatency(timedelta(milliseconds=5)))
    manager = OrderManager(venue, Portfolio(ACCOUNT, start_usdt), clock=venue)
    for i, event in enumerate(real_events(shared_data)):
        feed(venue, [event])
        manager.pump()
        if i % 1_000 or not venue.book("BTC/USDT").usable:
            continue
        n = i // 1_000
        best = venue.book("BTC/USDT").best_bid() if n % 2 else venue.book("BTC/USDT").best_ask()
        assert best is not None
        manager.submit(approved(f"b4-m{n}", "0.03", side="buy" if n % 3 else "sell"))
        manager.submit(approved(f"b4-l{n}", "0.1", best[0], side="buy" if n % 2 else "sell"))
        if n >= 3 and (old := manager.order(f"b4-l{n - 3}")) is not None and old.status.is_open:
            manager.cancel(old.client_order_id)
        mark = venue.mark_price("BTC/USDT")
        assert mark is not None
        manager.portfolio.mark("binance", "BTC/USDT", mark, venue.now())
    manager.pump()
    pf = manager.portfolio
    balances = venue.balances()
    fills = [r for r in manager.drain() if isinstance(r, Fill)]
    assert len(fills) > 40 and {f.liquidity for f in fills} == {Liquidity.MAKER, Liquidity.TAKER}
    assert pf.cash == balances["USDT"]
    assert start_btc + pf.holdings()["binance:BTC/USDT"].amount == balances["BTC"]
    assert pf.fees == sum(f.fee for f in fills)
    assert pf.equity == pf.starting_cash + pf.realized_pnl + pf.unrealized_pnl - pf.fees
    assert len(pf.equity_curve) > 40 and pf.max_drawdown >= 0
    open_here = {o.client_order_id for o in manager.open_orders()}
    assert open_here == {o.client_order_id for o in venue.fetch_open_orders()}
    assert manager.reconcile().changed == ()
