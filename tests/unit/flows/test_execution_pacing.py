"""The execution step paced by the trading flow (the separate execution process): orders from
``orders.v1`` and market data from the ``md.*`` topics arrive as two unordered streams, and the
paper venue still fills each order against the market that followed its decision, exactly as the
one ordered stream (in-process) does, on the real Binance capture."""

from __future__ import annotations

import itertools
from datetime import datetime, timedelta
from decimal import Decimal
from pathlib import Path

import bytewax.operators as op
import orjson
import pytest
from bytewax.dataflow import Dataflow
from bytewax.testing import TestingSink, TestingSource, run_main

from core.errors import WireFormatError
from core.fills import Fill, OrderEvent
from core.orders import ApprovedOrder, CancelAllOrders
from flows.execution import (
    ExecutionProgress,
    PacedCancelAll,
    PaperExecution,
    decode_instruction,
    instruction_message,
    next_position,
    paper_execution,
)
from tests.unit.flows.test_execution_step import ACCOUNT, approve, capture_events


@pytest.fixture(scope="module")
def capture(shared_data):
    return capture_events(shared_data)


def run(inputs, *, paced: bool) -> list:
    flow = Dataflow("paced_test")
    out: list = []
    op.output(
        "out",
        paper_execution("exec", op.input("in", flow, TestingSource(inputs, batch_size=97)), [ACCOUNT], paced=paced),
        TestingSink(out),
    )
    run_main(flow)
    return [o for o in out if isinstance(o, Fill | OrderEvent)]


def decision_point(capture, after: int) -> int:
    """An index past ``after`` where the next event is strictly later than the previous one (a
    decision taken there is unambiguous in market time)."""
    i = after
    while capture[i].ts_event >= capture[i + 1].ts_event or type(capture[i]).__name__ != "Trade":
        i += 1
    return i + 1


def orders_at(capture, points):
    return [approve(f"b4-pace-{n}", capture[at - 1].ts_event, capture[at - 1].price) for n, at in enumerate(points)]


def test_paced_execution_gives_the_in_process_fills_whether_market_data_or_orders_run_ahead(capture):
    snap = next(i for i, e in enumerate(capture) if type(e).__name__ == "BookSnapshot")
    points = [decision_point(capture, snap + 200), decision_point(capture, snap + 2500)]
    orders = orders_at(capture, points)
    end = ExecutionProgress("main", capture[-1].ts_event)

    ordered = [*capture[: points[0]], orders[0], *capture[points[0] : points[1]], orders[1], *capture[points[1] :]]
    in_process = run(ordered, paced=False)
    assert sum(1 for r in in_process if isinstance(r, Fill)) >= 2

    # The md topics drained before orders.v1 is read: everything waits for the trading flow's word.
    market_first = [*capture, orders[0], ExecutionProgress("main", capture[points[1] - 1].ts_event), orders[1], end]
    # orders.v1 read before the market data arrives: each order waits for the market after it.
    orders_first = [orders[0], orders[1], end, *capture]
    # Interleaved as a live run would see them: progress every 300 events, orders a little late.
    live = list(capture)
    for at in range(len(capture) - 1, 0, -300):
        live.insert(at, ExecutionProgress("main", capture[at - 1].ts_event))
    live.insert(live.index(capture[points[1] + 40]), orders[1])
    live.insert(live.index(capture[points[0] + 40]), orders[0])
    live.append(end)

    for inputs in (market_first, orders_first, live):
        assert run(inputs, paced=True) == in_process


def limit_buy(coid: str, when, reference: Decimal, limit: Decimal):
    from dataclasses import replace

    from core.clock import ManualClock
    from core.orders import ApprovedOrder, OrderType
    from risk.config import RiskLimits
    from risk.engine import RiskEngine
    from risk.market import MarketView
    from risk.portfolio import PortfolioView
    from tests.unit.flows.test_execution_step import RULES
    from tests.unit.flows.test_risk_step import intent

    order, _ = RiskEngine("main", RiskLimits(), ManualClock(when)).evaluate(
        replace(intent(coid, "0.01"), order_type=OrderType.LIMIT, limit_price=limit),
        PortfolioView("main", Decimal("100000")),
        MarketView("binance", "BTC/USDT", reference, RULES, when),
    )
    assert isinstance(order, ApprovedOrder), order
    return order


def test_market_data_beyond_the_trading_flows_progress_is_held_and_never_fills_an_order(capture):
    snap = next(i for i, e in enumerate(capture) if type(e).__name__ == "BookSnapshot")
    at = decision_point(capture, snap + 200)
    later = [e.price for e in capture[at:] if type(e).__name__ == "Trade"]
    # A buy limit resting below the market that the later trades trade through.
    order = limit_buy("b4-pace-limit", capture[at - 1].ts_event, capture[at - 1].price, min(later) + Decimal("0.01"))
    held = run([*capture, order], paced=True)  # the trading flow has not decided past the order yet
    assert [r.kind.value for r in held if isinstance(r, OrderEvent)] == ["submit", "accept"]
    assert not [r for r in held if isinstance(r, Fill)]
    released = run([*capture, order, ExecutionProgress("main", capture[-1].ts_event)], paced=True)
    fills = [r for r in released if isinstance(r, Fill)]
    assert fills and all(f.ts_event > capture[at - 1].ts_event for f in fills)
    in_process = run([*capture[:at], order, *capture[at:]], paced=False)
    assert released == in_process


def test_a_cancel_all_submits_the_orders_still_waiting_for_their_market_then_cancels_them(capture):
    snap = next(i for i, e in enumerate(capture) if type(e).__name__ == "BookSnapshot")
    at = decision_point(capture, snap + 200)
    order = limit_buy(
        "b4-pace-cancel",
        capture[at - 1].ts_event,
        capture[at - 1].price,
        (capture[at - 1].price * Decimal("0.99")).quantize(Decimal("0.01")),
    )
    cancel = CancelAllOrders("main", "kill switch", capture[at - 1].ts_event, keep_reduce_only=False)
    out = run([*capture[:at], order, cancel], paced=True)  # the market after the order never came
    assert [r.kind.value for r in out if isinstance(r, OrderEvent)] == ["submit", "accept", "cancel_request", "cancel"]
    assert [(r.kind.value, r.status.value) for r in out if isinstance(r, OrderEvent)][-1] == ("cancel", "canceled")
    assert not [r for r in out if isinstance(r, Fill)]


def test_orders_v1_instructions_round_trip_and_bad_ones_are_refused_with_a_reason(capture):
    cancel = CancelAllOrders("main", "drawdown", capture[0].ts_event, keep_reduce_only=True)
    assert decode_instruction(instruction_message(cancel, "p.").value) == cancel
    assert instruction_message(cancel, "p.").topic == "p.orders.v1"
    (order,) = orders_at(capture, [decision_point(capture, 10)])
    from flows.risk_step import order_message

    assert decode_instruction(order_message(order).value) == order
    for bad, reason in (
        (b"{", "malformed_json"),
        (b'{"type": "teleport", "account": "main"}', "unknown_type"),
        (b'{"type": "cancel_all", "account": "main", "ts": 1}', "malformed_order"),
        (b'{"v": 1, "account": "main"}', "malformed_order"),
    ):
        with pytest.raises(Exception) as info:
            decode_instruction(bad)
        assert info.value.reason == reason  # type: ignore[attr-defined]


def test_a_cancel_all_comes_after_the_market_up_to_its_time_so_what_that_market_filled_stays_filled(capture):
    # A resting buy limit that later trades trade through, and a cancel-all decided after them
    # (a breaker, the kill switch) with the trading flow's progress still at the order: in-process
    # the market up to the cancel fills the order first; paced, the held market data up to the
    # cancel's time must go to the venue before the cancel, or the fill is lost.
    snap = next(i for i, e in enumerate(capture) if type(e).__name__ == "BookSnapshot")
    at = decision_point(capture, snap + 200)
    later = [e.price for e in capture[at:] if type(e).__name__ == "Trade"]
    order = limit_buy(
        "b4-pace-late-cancel", capture[at - 1].ts_event, capture[at - 1].price, min(later) + Decimal("0.01")
    )
    cancel = CancelAllOrders("main", "drawdown", capture[-1].ts_event, keep_reduce_only=False)
    in_process = run([*capture[:at], order, *capture[at:], cancel], paced=False)
    assert [r for r in in_process if isinstance(r, Fill)]
    assert run([*capture, order, cancel], paced=True) == in_process  # the market data was here first
    assert run([order, *capture, cancel], paced=True) == in_process  # orders.v1 was read first


BARS_1M = Path(__file__).resolve().parents[3] / "data" / "sample" / "binance-1m-2021" / "BTC_USDT-1m.json"


def cancel_all_ahead_of_market(applied: int) -> tuple[list, datetime]:
    """A market buy decided at the close of bar 20 and a cancel-all decided then (a breaker on the
    same bar) reach a paced step that has applied the first ``applied`` real 1m bars; returns the
    step's outputs and the decision time."""
    from dataclasses import replace

    from core.clock import ManualClock
    from core.events import Candle
    from flows.execution import PaperExecution
    from flows.replay import read_events
    from risk.config import RiskLimits
    from risk.engine import RiskEngine
    from risk.market import MarketView
    from risk.portfolio import PortfolioView
    from tests.unit.flows.test_execution_step import RULES
    from tests.unit.flows.test_risk_step import intent

    bars = [e for e in itertools.islice(read_events(BARS_1M), 40) if isinstance(e, Candle)]
    decided = bars[20].ts_event + timedelta(minutes=1)
    order, _ = RiskEngine("main", RiskLimits(), ManualClock(decided)).evaluate(
        replace(intent("b4-pace-ahead", "0.01"), ts_event=decided),
        PortfolioView("main", Decimal("100000")),
        MarketView("binance", "BTC/USDT", bars[20].close, RULES, decided),
    )
    assert isinstance(order, ApprovedOrder), order
    step = PaperExecution({"main": ACCOUNT}, None, paced=True)
    progress = ExecutionProgress("main", bars[applied - 1].ts_event + timedelta(minutes=1))
    before, _ = step.on_batch([("main", b) for b in bars[:applied]] + [("main", progress)])
    after, _ = step.on_batch([("main", order), ("main", CancelAllOrders("main", "drawdown", decided, False))])
    return [*before, *after], decided


def test_a_cancel_all_ahead_of_its_market_data_stamps_the_waiting_orders_events_as_when_the_data_was_there():
    # A restarted execution process reads orders.v1 faster than its md backlog: the order and the
    # cancel-all arrive while the venue has applied the bars up to 10 only. The order's events must
    # be stamped as when the market had arrived (never before its decision: the orders table
    # starts its row there).
    ahead, decided = cancel_all_ahead_of_market(11)
    in_time, _ = cancel_all_ahead_of_market(21)
    events = [r for r in ahead if isinstance(r, OrderEvent)]
    assert [(e.kind.value, e.status.value) for e in events][-1] == ("cancel", "canceled")
    assert all(e.ts_event >= decided for e in events)
    assert events == [r for r in in_time if isinstance(r, OrderEvent)]


def read_to(events) -> dict:
    """The trading flow's ``read_to`` after applying ``events`` (one instrument): its newest event's
    time and how many events came at exactly that time."""
    position = None
    for event in events:
        position = next_position(position, event.ts_event)
    return {events[0].key: position}


def test_a_cancel_all_waits_for_the_market_the_trading_flow_had_applied_and_holds_what_follows(capture):
    # A resting buy limit, the trades after it trading through it, then a cancel-all decided
    # between two trades of the same microsecond (a breaker judged at the first of them), then a
    # market buy decided later. In-process the market up to the cancel fills the limit, and the
    # market buy after the cancel is not canceled. Paced, orders.v1 may be read before the market
    # data: the cancel-all must wait for the market it names (ties included), and the market buy
    # behind it must wait for the cancel-all, or the limit is canceled unfilled and the market buy
    # with it, depending on which topic was read first.
    snap = next(i for i, e in enumerate(capture) if type(e).__name__ == "BookSnapshot")
    at = decision_point(capture, snap + 200)
    cut = next(
        j
        for j in range(at + 1500, len(capture) - 1)
        if capture[j - 1].ts_event == capture[j].ts_event and type(capture[j]).__name__ == "Trade"
    )
    limit = min(e.price for e in capture[at:cut] if type(e).__name__ == "Trade") + Decimal("0.01")
    order = limit_buy("b4-pace-wait", capture[at - 1].ts_event, capture[at - 1].price, limit)
    command = CancelAllOrders("main", "drawdown", capture[cut - 1].ts_event, keep_reduce_only=False)
    cancel = PacedCancelAll(command, read_to(capture[:cut]))
    assert capture[cut].ts_event == command.ts  # the next event has the cancel-all's time: a tie
    (after,) = orders_at(capture, [decision_point(capture, cut + 300)])
    later = capture.index(next(e for e in capture if e.ts_event > after.ts_decided))
    end = ExecutionProgress("main", capture[-1].ts_event)

    in_process = run(
        [*capture[:at], order, *capture[at:cut], cancel, *capture[cut:later], after, *capture[later:]], paced=False
    )
    kinds = [(r.client_order_id, r.kind.value) for r in in_process if isinstance(r, OrderEvent)]
    assert ("b4-pace-wait", "fill") in kinds and ("b4-pace-wait", "cancel") not in kinds
    assert [f for f in in_process if isinstance(f, Fill) and f.client_order_id == after.client_order_id]

    orders_first = [order, cancel, after, end, *capture]
    market_first = [*capture, order, cancel, after, end]
    cancel_ahead = [*capture[: at + 10], order, ExecutionProgress("main", capture[at + 5].ts_event), cancel, after]
    cancel_ahead += [*capture[at + 10 :], end]
    for inputs in (orders_first, market_first, cancel_ahead):
        assert run(inputs, paced=True) == in_process
    # A cancel-all without read_to (records from before it existed) cannot wait for the market it
    # has not read: read first, it ends the limit order before the market that would have filled it.
    legacy = run([order, command, after, end, *capture], paced=True)
    assert ("b4-pace-wait", "fill") not in [
        (r.client_order_id, r.kind.value) for r in legacy if isinstance(r, OrderEvent)
    ]


def test_a_cancel_all_with_read_to_round_trips_on_orders_v1_and_a_bad_read_to_is_refused(capture):
    command = CancelAllOrders("main", "kill switch", capture[9].ts_event, keep_reduce_only=False)
    cancel = PacedCancelAll(command, read_to(capture[:10]))
    message = instruction_message(cancel, "p.")
    assert message.key == b"main" and decode_instruction(message.value) == cancel
    body = orjson.loads(message.value)
    for bad in ({"binance:BTC/USDT": [1, 0]}, {"binance:BTC/USDT": 5}, ["binance:BTC/USDT"], {"k": ["x", 1]}):
        with pytest.raises(WireFormatError) as info:
            decode_instruction(orjson.dumps({**body, "read_to": bad}))
        assert info.value.reason == "malformed_order"


def test_a_cancel_all_published_again_by_a_restarted_trading_flow_is_not_executed_twice(capture):
    # A restarted trading flow publishes again what it had published after its last snapshot: the
    # approved orders are refused as duplicates by client order id, and the cancel-all must not
    # cancel a second time, or it cancels the order placed after it.
    snap = next(i for i, e in enumerate(capture) if type(e).__name__ == "BookSnapshot")
    first, second = decision_point(capture, snap + 200), decision_point(capture, snap + 1200)

    def resting(coid: str, at: int):
        price = capture[at - 1].price
        return limit_buy(coid, capture[at - 1].ts_event, price, (price * Decimal("0.99")).quantize(Decimal("0.01")))

    early, late = resting("b4-pace-early", first), resting("b4-pace-late", second)
    cut = first + 500
    cancel = PacedCancelAll(
        CancelAllOrders("main", "drawdown", capture[cut - 1].ts_event, keep_reduce_only=True), read_to(capture[:cut])
    )
    end = ExecutionProgress("main", capture[-1].ts_event)
    once = run([early, cancel, late, end, *capture], paced=True)
    again = run([early, cancel, late, cancel, early, late, end, *capture], paced=True)
    assert again == once
    events = [(r.client_order_id, r.kind.value) for r in once if isinstance(r, OrderEvent)]
    assert ("b4-pace-early", "cancel") in events and ("b4-pace-late", "cancel") not in events


def test_a_cancel_all_whose_market_data_never_comes_cancels_after_the_longest_wait_and_says_so(capture, caplog):
    # A kill switch must act even when this process's market data stops: the cancel-all waits for
    # the market it names at most cancel_wait on the wall clock, then cancels with what is here.
    from core.clock import ManualClock
    from flows.execution import PaperExecution

    snap = next(i for i, e in enumerate(capture) if type(e).__name__ == "BookSnapshot")
    at = decision_point(capture, snap + 200)
    price = capture[at - 1].price
    order = limit_buy(
        "b4-pace-stuck", capture[at - 1].ts_event, price, (price * Decimal("0.99")).quantize(Decimal("0.01"))
    )
    command = CancelAllOrders("main", "kill switch", capture[at + 500].ts_event, keep_reduce_only=False)
    cancel = PacedCancelAll(command, read_to(capture[: at + 501]))
    wall = ManualClock(capture[0].ts_recv)
    step = PaperExecution({"main": ACCOUNT}, None, paced=True, wall=wall, cancel_wait=timedelta(seconds=30))
    before, _ = step.on_batch([("main", e) for e in capture[:at]] + [("main", order), ("main", cancel)])
    assert not [r for r in before if isinstance(r, OrderEvent) and r.kind.value == "cancel"]
    assert step.state is not None and len(step.state.pacing.blocked) == 1
    assert step.notify_at() == wall.now() + timedelta(seconds=30)
    wall.advance(timedelta(seconds=29))
    assert not [r for r in step.on_notify()[0] if isinstance(r, OrderEvent)]  # still waiting
    wall.advance(timedelta(seconds=1))
    with caplog.at_level("WARNING", logger="flows.execution"):
        after, _ = step.on_notify()
    kinds = [(r.client_order_id, r.kind.value) for r in after if isinstance(r, OrderEvent)]
    assert ("b4-pace-stuck", "cancel") in kinds
    assert not step.state.pacing.blocked and step.notify_at() is None
    assert any("waited" in r.getMessage() and "kill switch" in r.getMessage() for r in caplog.records)
    # Without a wall clock (replays, tests) it waits for as long as it takes.
    patient = PaperExecution({"main": ACCOUNT}, None, paced=True)
    patient.on_batch([("main", e) for e in capture[:at]] + [("main", order), ("main", cancel)])
    assert patient.notify_at() is None and patient.state is not None and patient.state.pacing.blocked


def test_the_step_takes_the_venue_call_outcomes_so_its_snapshot_does_not_grow_with_the_run(capture):
    # The order manager keeps one outcome per venue call (a poll on every market event included)
    # until asked; the execution step asks at every batch. Before, nobody did: the list grew for the
    # whole run and was deep-copied into every epoch's snapshot (a month's replay crawled at the end).
    for paced in (False, True):
        step = PaperExecution({"main": ACCOUNT}, None, paced=paced)
        events = capture[:300]
        step.on_batch([("main", e) for e in events] + [("main", ExecutionProgress("main", events[-1].ts_event))])
        state = step.state
        assert state is not None
        assert state.manager.drain_outcomes() == [], paced
