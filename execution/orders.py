"""The order lifecycle as a transition table, and the generic state machine that consumes it.

``ORDER_TRANSITIONS`` maps ``(status, event) -> status``; :class:`StateMachine` applies it and raises
:class:`InvalidOrderTransition` for any pair the table does not list. Odd edges that real venues
produce (a fill after a cancel request, a late ack after a fill, a cancel refused because the order
already filled) are listed with the reason next to them, so an unexpected report is loud and an
expected one is not.

``PENDING_CANCEL`` overlays the status the order had when the cancel was requested: fills that
arrive while the cancel is in flight also move that underlying status, and a refused cancel
returns to it (target :data:`RESUME`).

>>> from core.fills import OrderEventKind as E
>>> sm = StateMachine(ORDER_TRANSITIONS, OrderStatus.PENDING_SUBMIT)
>>> for event in (E.SUBMIT, E.ACCEPT, E.CANCEL_REQUEST, E.PARTIAL_FILL, E.CANCEL_REJECT):
...     _ = sm.apply(event)
>>> sm.status
<OrderStatus.PARTIALLY_FILLED: 'partially_filled'>
>>> try:
...     sm.apply(E.SUBMIT, "b4-1")
... except InvalidOrderTransition as err:
...     print(str(err).splitlines()[0])
no transition from partially_filled on submit (b4-1)
"""

from __future__ import annotations

from collections.abc import Hashable, Mapping
from typing import Any, Final, Generic, TypeVar

from core.errors import HaltAndAlert
from core.fills import OrderEventKind, OrderStatus

S = TypeVar("S", bound=Hashable)
E = TypeVar("E", bound=Hashable)


class _Resume:
    """Marker target: go back to the status the overlay state (``PENDING_CANCEL``) covers."""

    __slots__ = ()

    def __repr__(self) -> str:
        return "RESUME"


RESUME: Final = _Resume()

_P = OrderStatus.PENDING_SUBMIT
_SUB = OrderStatus.SUBMITTED
_ACC = OrderStatus.ACCEPTED
_PF = OrderStatus.PARTIALLY_FILLED
_F = OrderStatus.FILLED
_PC = OrderStatus.PENDING_CANCEL
_C = OrderStatus.CANCELED
_R = OrderStatus.REJECTED
_X = OrderStatus.EXPIRED
_k = OrderEventKind

ORDER_TRANSITIONS: Mapping[tuple[OrderStatus, OrderEventKind], OrderStatus | _Resume] = {
    # Before sending: the manager records SUBMIT before the request goes out (write-ahead), so a
    # crash in between leaves SUBMITTED, which reconciliation resolves by client id.
    (_P, _k.SUBMIT): _SUB,
    (_P, _k.REJECT): _R,  # refused before it left (reconciliation: never reached the venue)
    # Sent, result unknown until the venue answers.
    (_SUB, _k.ACCEPT): _ACC,
    (_SUB, _k.REJECT): _R,
    (_SUB, _k.PARTIAL_FILL): _PF,  # fill report overtakes the ack, or ends an unknown result (timeout)
    (_SUB, _k.FILL): _F,  # market order filled before the ack arrived, or after a submit timeout
    (_SUB, _k.CANCEL_REQUEST): _PC,  # cancel by client id while the submit result is unknown
    (_SUB, _k.CANCEL): _C,  # venue canceled before we saw the ack (self-trade prevention, halt)
    (_SUB, _k.EXPIRE): _X,  # IOC/market order with nothing to match, reported without an ack
    # Working at the venue.
    (_ACC, _k.PARTIAL_FILL): _PF,
    (_ACC, _k.FILL): _F,
    (_ACC, _k.CANCEL_REQUEST): _PC,
    (_ACC, _k.CANCEL): _C,  # unsolicited cancel by the venue (maintenance, delisting, STP)
    (_ACC, _k.EXPIRE): _X,
    (_PF, _k.PARTIAL_FILL): _PF,
    (_PF, _k.FILL): _F,
    (_PF, _k.CANCEL_REQUEST): _PC,
    (_PF, _k.CANCEL): _C,
    (_PF, _k.EXPIRE): _X,  # IOC / market remainder dropped after a partial fill
    (_PF, _k.ACCEPT): _PF,  # late ack: the REST answer arrived after the first fill on the stream
    # Cancel requested, not yet confirmed.
    (_PC, _k.CANCEL): _C,
    (_PC, _k.CANCEL_REJECT): RESUME,  # venue refused the cancel; the order is still working
    (_PC, _k.PARTIAL_FILL): _PC,  # fill after the cancel request: the match won the race
    (_PC, _k.FILL): _F,  # filled before the cancel reached the matching engine; a cancel reject follows
    (_PC, _k.EXPIRE): _X,  # the rest expired while our cancel was in flight
    (_PC, _k.ACCEPT): _PC,  # late ack of an order whose submit was unknown when we asked to cancel
    (_PC, _k.REJECT): _R,  # the unknown submit turns out refused; nothing to cancel
    # Terminal statuses only absorb late reports that cannot change what happened.
    (_F, _k.ACCEPT): _F,  # late ack after the fill (market orders on busy venues)
    (_F, _k.CANCEL_REJECT): _F,  # cancel refused because the order already filled (Binance -2011)
    (_C, _k.PARTIAL_FILL): _C,  # execution before the cancel, reported after it (fill stream lags)
    (_X, _k.PARTIAL_FILL): _X,  # same race for an expiry
    # The same report twice (stream and REST answer, or a report replayed after reconciliation
    # already applied it): idempotent.
    (_ACC, _k.ACCEPT): _ACC,
    (_C, _k.CANCEL): _C,
    (_X, _k.EXPIRE): _X,
    (_R, _k.REJECT): _R,
}


class InvalidOrderTransition(HaltAndAlert):
    """An order report that the lifecycle does not allow: our view of the order is wrong.

    Trading on a wrong view of an order can double positions, so this halts the account.
    """

    def __init__(self, status: object, event: object, context: str = "") -> None:
        where = f" ({context})" if context else ""
        super().__init__(
            f"no transition from {status} on {event}{where}",
            "Keep the account halted, reconcile the order manager with the venue "
            "(OrderManager.reconcile) and compare this order by client id with the venue's record "
            "before resetting the halt.",
        )
        self.status = status
        self.event = event


class StateMachine(Generic[S, E]):
    """Applies a ``(state, event) -> state`` table; an unlisted pair raises :class:`InvalidOrderTransition`.

    A target of :data:`RESUME` returns to the state that was current when the machine entered the
    present one; events seen in between also advance that remembered state when the table allows.

    >>> sm = StateMachine({("idle", "go"): "running", ("running", "stop"): "idle"}, "idle")
    >>> sm.apply("go"), sm.can_apply("go")
    ('running', False)
    """

    __slots__ = ("_overlays", "_resume", "_state", "_table")

    def __init__(self, table: Mapping[tuple[S, E], S | _Resume], initial: S) -> None:
        self._table = table
        self._state = initial
        self._resume: S | None = None
        self._overlays: frozenset[S] = _overlays(table)

    @classmethod
    def restore(cls, table: Mapping[tuple[S, E], S | _Resume], state: S, resume: S | None) -> StateMachine[S, E]:
        """Rebuild a machine from :attr:`status` and :attr:`resume` (a snapshot)."""
        machine = cls(table, state)
        machine._resume = resume
        return machine

    @property
    def status(self) -> S:
        """The current state."""
        return self._state

    @property
    def resume(self) -> S | None:
        """The state a RESUME would return to (None outside an overlay state)."""
        return self._resume

    def can_apply(self, event: E) -> bool:
        """True when ``event`` is allowed in the current state."""
        return (self._state, event) in self._table

    def apply(self, event: E, context: str = "") -> S:
        """Move on ``event`` and return the new state; raise if the table has no such transition."""
        state = self._state
        try:
            target = self._table[(state, event)]
        except KeyError:
            raise InvalidOrderTransition(state, event, context) from None
        if isinstance(target, _Resume):
            if self._resume is None:
                raise InvalidOrderTransition(state, event, f"{context} nothing to resume".strip())
            target, self._resume = self._resume, None
        elif target == state:
            if self._resume is not None:
                # The overlay stays; the state underneath still sees the event.
                underneath = self._table.get((self._resume, event), self._resume)
                if not isinstance(underneath, _Resume):
                    self._resume = underneath
        elif target in self._overlays:
            self._resume = state
        else:
            self._resume = None
        self._state = target
        return target


_OVERLAYS: dict[int, tuple[object, frozenset[Any]]] = {}


def _overlays(table: Mapping[tuple[S, E], S | _Resume]) -> frozenset[S]:
    """States with a RESUME edge (they overlay the state they were entered from), computed once per
    table: one machine is built per order."""
    cached = _OVERLAYS.get(id(table))
    if cached is not None and cached[0] is table:
        return cached[1]
    overlays = frozenset(state for (state, _), target in table.items() if isinstance(target, _Resume))
    _OVERLAYS[id(table)] = (table, overlays)  # holding the table keeps its id from being reused
    return overlays


def new_order_machine(status: OrderStatus = OrderStatus.PENDING_SUBMIT) -> StateMachine[OrderStatus, OrderEventKind]:
    """A state machine over :data:`ORDER_TRANSITIONS` starting at ``status``.

    >>> sm = new_order_machine()
    >>> sm.apply(OrderEventKind.SUBMIT)
    <OrderStatus.SUBMITTED: 'submitted'>
    """
    return StateMachine(ORDER_TRANSITIONS, status)
