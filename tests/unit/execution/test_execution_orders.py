"""The order lifecycle table: every listed transition lands where the table says, every pair it does
not list raises InvalidOrderTransition, and the cancel overlay resumes correctly."""

from __future__ import annotations

import itertools

import pytest

from core.errors import HaltAndAlert
from core.fills import OrderEventKind as E
from core.fills import OrderStatus as S
from execution.orders import ORDER_TRANSITIONS, RESUME, InvalidOrderTransition, StateMachine, new_order_machine

LISTED = sorted(ORDER_TRANSITIONS.items(), key=lambda item: (item[0][0].value, item[0][1].value))
UNLISTED = [pair for pair in itertools.product(S, E) if pair not in ORDER_TRANSITIONS]


def test_table_and_its_complement_cover_the_full_product_of_statuses_and_events() -> None:
    assert len(LISTED) + len(UNLISTED) == len(S) * len(E) == 81
    assert len(UNLISTED) > len(LISTED)  # most pairs are errors: the table is a whitelist


@pytest.mark.parametrize(("pair", "target"), LISTED, ids=[f"{s.value}-{e.value}" for (s, e), _ in LISTED])
def test_listed_transition_moves_to_the_tables_target(pair: tuple[S, E], target: object) -> None:
    status, event = pair
    if target is RESUME:
        # RESUME returns to the status the cancel overlay covers: enter it from each working status.
        for underneath in (S.SUBMITTED, S.ACCEPTED, S.PARTIALLY_FILLED):
            sm = StateMachine.restore(ORDER_TRANSITIONS, underneath, None)
            sm.apply(E.CANCEL_REQUEST)
            assert sm.status is status
            assert sm.apply(event) is underneath
        return
    sm = new_order_machine(status)
    assert sm.can_apply(event)
    assert sm.apply(event) is target
    assert sm.status is target


@pytest.mark.parametrize("pair", UNLISTED, ids=[f"{s.value}-{e.value}" for s, e in UNLISTED])
def test_unlisted_transition_raises_invalid_order_transition(pair: tuple[S, E]) -> None:
    status, event = pair
    sm = new_order_machine(status)
    assert not sm.can_apply(event)
    with pytest.raises(InvalidOrderTransition) as info:
        sm.apply(event, "b4-x")
    assert sm.status is status  # a refused event changes nothing
    assert info.value.status is status and info.value.event is event
    assert f"no transition from {status} on {event} (b4-x)" in str(info.value)


def test_invalid_transition_halts_and_carries_its_runbook() -> None:
    err = InvalidOrderTransition(S.FILLED, E.FILL)
    assert isinstance(err, HaltAndAlert)
    assert "Operator action:" in str(err) and "reconcile" in str(err)


def test_fill_after_cancel_request_then_cancel_reject_resumes_partially_filled() -> None:
    sm = new_order_machine()
    for event in (E.SUBMIT, E.ACCEPT, E.CANCEL_REQUEST, E.PARTIAL_FILL):
        sm.apply(event)
    assert sm.status is S.PENDING_CANCEL and sm.resume is S.PARTIALLY_FILLED
    assert sm.apply(E.CANCEL_REJECT) is S.PARTIALLY_FILLED
    assert sm.resume is None


def test_cancel_refused_because_already_filled_ends_filled() -> None:
    sm = new_order_machine()
    for event in (E.SUBMIT, E.ACCEPT, E.CANCEL_REQUEST, E.FILL, E.CANCEL_REJECT):
        sm.apply(event)
    assert sm.status is S.FILLED


def test_late_ack_after_unknown_submit_and_cancel_request_resumes_accepted() -> None:
    sm = new_order_machine()
    for event in (E.SUBMIT, E.CANCEL_REQUEST, E.ACCEPT):
        sm.apply(event)
    assert sm.status is S.PENDING_CANCEL
    assert sm.apply(E.CANCEL_REJECT) is S.ACCEPTED


def test_fill_after_timeout_and_late_ack_after_fill_are_accepted_edges() -> None:
    sm = new_order_machine()
    sm.apply(E.SUBMIT)
    assert sm.apply(E.PARTIAL_FILL) is S.PARTIALLY_FILLED  # the timeout's answer comes as a fill
    assert sm.apply(E.ACCEPT) is S.PARTIALLY_FILLED  # the ack arrives late
    assert sm.apply(E.FILL) is S.FILLED
    assert sm.apply(E.ACCEPT) is S.FILLED


def test_resume_without_an_overlay_raises() -> None:
    sm = StateMachine.restore(ORDER_TRANSITIONS, S.PENDING_CANCEL, None)
    with pytest.raises(InvalidOrderTransition, match="nothing to resume"):
        sm.apply(E.CANCEL_REJECT)


def test_generic_machine_works_on_any_table() -> None:
    sm: StateMachine[str, str] = StateMachine({("a", "go"): "b", ("b", "back"): RESUME, ("a", "hop"): "a"}, "a")
    sm.apply("go")
    assert sm.apply("back") == "a"
    assert sm.apply("hop") == "a"
    with pytest.raises(InvalidOrderTransition):
        sm.apply("back")
