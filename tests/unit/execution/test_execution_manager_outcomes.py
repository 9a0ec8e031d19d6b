"""Order manager: every venue call's outcome recorded for the venue breakers, and the gate's view kept
until something it shows changes (never a stale one)."""

from __future__ import annotations

import itertools
import pickle
from datetime import timedelta
from decimal import Decimal
from pathlib import Path

import ccxt
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from core.events import BookDelta, BookSnapshot, MarketEvent, Trade
from core.fills import OrderStatus
from execution.ccxt_errors import translate_ccxt_error
from execution.manager import OrderManager, classify_failure
from execution.portfolio import Portfolio
from execution.venue import SubmitOutcomeUnknown
from risk.portfolio import PortfolioView
from risk.venue_calls import CallResult, VenueCall
from tests.unit.execution._exec_builders import ACCOUNT, approved, d, feed, paper, real_events
from tests.unit.execution.test_execution_manager import FlakyVenue, manager_on, venue_with_book


def ticking_manager(step_s: float = 0.25) -> OrderManager:
    """A manager whose injected monotonic timer moves ``step_s`` per reading: every call's round
    trip is exactly ``step_s``."""
    venue = venue_with_book()
    timer = itertools.count(0.0, step_s).__next__
    return OrderManager(venue, Portfolio(ACCOUNT, d(1_000_000)), clock=venue, timer=timer)


# --- outcomes ---------------------------------------------------------------------------------


def test_every_venue_call_is_recorded_with_its_kind_result_and_round_trip() -> None:
    manager = ticking_manager()
    manager.submit(approved("b4-1", "0.5", "95"))  # rests below the book
    manager.cancel("b4-1")
    manager.submit(approved("b4-2", "0.5", "96"))
    manager.reconcile()
    outcomes = manager.drain_outcomes()
    assert [o.call for o in outcomes] == [
        VenueCall.SUBMIT,
        VenueCall.POLL,
        VenueCall.CANCEL,
        VenueCall.POLL,
        VenueCall.SUBMIT,
        VenueCall.POLL,
        VenueCall.POLL,
        VenueCall.FETCH_OPEN_ORDERS,
    ]
    assert all(o.result is CallResult.OK and o.error == "" for o in outcomes)
    assert {o.round_trip for o in outcomes} == {timedelta(seconds=0.25)}
    assert [o.client_order_id for o in outcomes if o.call is not VenueCall.POLL] == ["b4-1", "b4-1", "b4-2", ""]
    assert outcomes[0].ts == manager.venue.now()  # type: ignore[attr-defined]
    assert manager.drain_outcomes() == []


def test_an_order_not_listed_open_at_reconcile_is_looked_up_and_that_call_recorded() -> None:
    flaky = FlakyVenue(venue_with_book())
    manager = manager_on(flaky)
    flaky.drop = "before"  # the request never reached the venue
    manager.submit(approved("b4-1", "0.5", "95"))
    flaky.drop = None
    manager.drain_outcomes()
    manager.reconcile()
    assert [(o.call, o.client_order_id) for o in manager.drain_outcomes()] == [
        (VenueCall.POLL, ""),
        (VenueCall.FETCH_OPEN_ORDERS, ""),
        (VenueCall.FETCH_ORDER, "b4-1"),
    ]


def test_a_business_reject_is_an_answer_of_a_working_venue_not_an_error() -> None:
    venue = venue_with_book(balances={"USDT": "10"})
    manager = OrderManager(venue, Portfolio(ACCOUNT, d(10)), clock=venue)
    result = manager.submit(approved("b4-1", "1", "100"))
    assert result.status is OrderStatus.REJECTED
    submit = manager.drain_outcomes()[0]
    assert (submit.call, submit.result, submit.ok, submit.is_order_round_trip) == (
        VenueCall.SUBMIT,
        CallResult.OK,
        True,
        True,
    )


def test_round_trip_defaults_to_the_manager_clock_so_a_replay_stays_deterministic() -> None:
    manager = manager_on(venue_with_book())  # the clock is the paper venue's event time
    manager.submit(approved("b4-1", "0.5", "95"))
    assert {o.round_trip for o in manager.drain_outcomes()} == {timedelta(0)}


def test_a_call_that_raises_is_recorded_as_an_error_and_the_exception_still_reaches_the_caller() -> None:
    flaky = FlakyVenue(venue_with_book())
    manager = manager_on(flaky)
    flaky.drop = "after"
    result = manager.submit(approved("b4-1", "0.5", "95"))  # the manager keeps it SUBMITTED
    assert result.status is OrderStatus.SUBMITTED
    [submit] = manager.drain_outcomes()
    assert (submit.call, submit.result, submit.error) == (VenueCall.SUBMIT, CallResult.ERROR, "outcome_unknown")
    assert not submit.is_order_round_trip

    class Unreachable(ConnectionRefusedError):
        pass

    def refuse(client_order_id: str) -> object:
        raise Unreachable(f"cancel {client_order_id}: connection refused")

    manager.submit(approved("b4-2", "0.5", "95"))
    manager.drain_outcomes()
    flaky.cancel = refuse  # type: ignore[method-assign]
    with pytest.raises(Unreachable):
        manager.cancel("b4-2")
    [cancel] = manager.drain_outcomes()
    assert (cancel.call, cancel.result, cancel.error, cancel.connected) == (
        VenueCall.CANCEL,
        CallResult.DISCONNECTED,
        "network",
        False,
    )


def _translated(exc: Exception, operation: str = "cancel_order", http_status: int | None = None) -> Exception:
    return translate_ccxt_error(exc, exchange="binance", operation=operation, http_status=http_status)


def _unknown_submit(behind: Exception) -> SubmitOutcomeUnknown:
    try:
        raise SubmitOutcomeUnknown("binance submit of b4-1: the venue does not list the order yet") from behind
    except SubmitOutcomeUnknown as err:
        return err


def _deadline() -> SubmitOutcomeUnknown:
    try:
        try:
            raise TimeoutError
        except TimeoutError:
            raise SubmitOutcomeUnknown("binance submit of b4-1: no result within 10s") from None
    except SubmitOutcomeUnknown as err:
        return err


@pytest.mark.parametrize(
    ("failure", "result", "error"),
    [
        # ccxt raises ExchangeNotAvailable for a refused or reset connection: no HTTP answer.
        (
            _translated(ccxt.ExchangeNotAvailable("binance DELETE /api/v3/order")),
            CallResult.DISCONNECTED,
            "unavailable",
        ),
        (_translated(ccxt.NetworkError("binance GET")), CallResult.DISCONNECTED, "network"),
        # The same class with an answer (a 503) is the venue failing, not the connection.
        (_translated(ccxt.ExchangeNotAvailable("503"), http_status=503), CallResult.ERROR, "unavailable"),
        (_translated(ccxt.RequestTimeout("binance GET")), CallResult.ERROR, "timeout"),
        (_translated(ccxt.DDoSProtection("429"), http_status=429), CallResult.ERROR, "rate_limited"),
        (_translated(ccxt.AuthenticationError("invalid key")), CallResult.ERROR, "HaltAndAlert"),
        (
            _unknown_submit(_translated(ccxt.ExchangeNotAvailable("reset"), "create_order")),
            CallResult.DISCONNECTED,
            "unavailable",
        ),
        (_unknown_submit(_translated(ccxt.RequestTimeout("slow"), "create_order")), CallResult.ERROR, "timeout"),
        (_deadline(), CallResult.ERROR, "timeout"),
    ],
    ids=lambda v: v if isinstance(v, str) else None,
)
def test_failures_translated_from_ccxt_are_classed_as_error_or_disconnect(
    failure: Exception, result: CallResult, error: str
) -> None:
    assert classify_failure(failure) == (result, error)


def test_outcomes_not_drained_yet_survive_a_snapshot_and_an_old_snapshot_restores_without_them() -> None:
    manager = ticking_manager()
    manager.submit(approved("b4-1", "0.5", "95"))
    manager.view()
    restored = pickle.loads(pickle.dumps(manager))
    assert [o.call for o in restored.drain_outcomes()] == [VenueCall.SUBMIT, VenueCall.POLL]
    assert _shown(restored.view()) == _shown(manager.view())
    old = pickle.loads(pickle.dumps(manager))
    for name in ("_outcomes", "_orders_version", "_view", "_timer"):
        del old.__dict__[name]  # a snapshot taken before these existed
    again = pickle.loads(pickle.dumps(old))
    assert again.drain_outcomes() == []
    assert _shown(again.view()) == _shown(manager.view())


# --- the gate's view, kept --------------------------------------------------------------------


def _shown(view: PortfolioView) -> str:
    """Everything the gate reads from a view, exponents included (``repr`` keeps them)."""
    return repr(
        (
            view.account,
            view.equity,
            sorted(view.positions.items()),
            view.open_orders,
            view.gross_exposure,
            view.net_long,
            view.net_short,
            view.problem,
            view.sound,
        )
    )


def _fresh(manager: OrderManager) -> PortfolioView:
    return manager.portfolio.view(manager.open_orders())


def test_view_is_the_same_object_until_a_fill_an_order_change_or_a_new_mark() -> None:
    manager = manager_on(venue_with_book())
    first = manager.view()
    assert manager.view() is first
    manager.submit(approved("b4-1", "0.5", "95"))
    resting = manager.view()
    assert resting is not first and len(resting.open_orders) == 1
    manager.portfolio.mark("binance", "BTC/USDT", d(100))
    marked = manager.view()
    assert marked is not resting
    manager.portfolio.mark("binance", "BTC/USDT", d(100))  # the same mark: nothing changed
    assert manager.view() is marked
    manager.portfolio.mark("binance", "BTC/USDT", Decimal("100.0"))  # same value, shown differently
    assert manager.view() is not marked
    manager.submit(approved("b4-2", "0.5"))  # a market buy: fills at once
    assert manager.view().positions["binance:BTC/USDT"].amount == d("0.5")
    manager.cancel("b4-1")
    assert manager.view().open_orders == ()
    assert _shown(manager.view()) == _shown(_fresh(manager))


_OPS = st.lists(
    st.one_of(
        st.tuples(st.just("feed"), st.integers(1, 400)),
        st.tuples(st.just("limit"), st.sampled_from(["buy", "sell"]), st.integers(-30, 30), st.integers(1, 50)),
        st.tuples(st.just("market"), st.sampled_from(["buy", "sell"]), st.integers(1, 50)),
        st.tuples(st.just("cancel"), st.integers(0, 10)),
        st.tuples(st.just("mark"), st.integers(-500, 500)),
        st.just(("view",)),
    ),
    min_size=1,
    max_size=40,
)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(ops=_OPS)
def test_a_kept_view_is_never_stale_over_real_market_data_orders_fills_cancels_and_marks(
    shared_data: Path, ops: list[tuple[object, ...]]
) -> None:
    events: list[MarketEvent] = [
        e for e in real_events(shared_data) if isinstance(e, Trade | BookDelta | BookSnapshot)
    ][:6000]
    venue = paper()
    start = next(i for i, e in enumerate(events) if isinstance(e, BookSnapshot))
    feed(venue, events[: start + 1])
    position = start + 1
    manager = OrderManager(venue, Portfolio(ACCOUNT, d(1_000_000)), clock=venue)
    sequence = 0
    for op in ops:
        kind = op[0]
        book = venue.book("BTC/USDT")
        mid = venue.mark_price("BTC/USDT") or d(60_000)
        if kind == "feed":
            n = int(op[1])  # type: ignore[call-overload]
            feed(venue, events[position : position + n])
            position = min(position + n, len(events))
            manager.pump()
        elif kind in ("limit", "market"):
            sequence += 1
            side = str(op[1])
            amount = d(int(op[-1])) / 1000  # type: ignore[call-overload]
            if kind == "limit":
                price = (mid + d(int(op[2])) * d("0.5")).quantize(d("0.01"))  # type: ignore[call-overload]
                manager.submit(approved(f"b4-{sequence}", amount, price, side=side))
            elif book.usable:
                manager.submit(approved(f"b4-{sequence}", amount, side=side))
        elif kind == "cancel":
            open_ids = [o.client_order_id for o in manager.open_orders()]
            if open_ids:
                manager.cancel(open_ids[int(op[1]) % len(open_ids)])  # type: ignore[call-overload]
        elif kind == "mark":
            manager.portfolio.mark("binance", "BTC/USDT", mid + d(int(op[1])) / 100)  # type: ignore[call-overload]
        assert _shown(manager.view()) == _shown(_fresh(manager)), op
