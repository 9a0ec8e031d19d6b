"""The order manager: approved orders in, orders on a venue, order events and fills out, portfolio kept.

One manager per account (execution is keyed by account). It

- refuses a client order id it already has: the same intent replayed (restart, redelivered
  ``orders.v1`` message) gives no second submit;
- records ``SUBMIT`` before the request leaves (write-ahead), so a crash between submit and ack
  leaves an order in ``SUBMITTED`` that :meth:`OrderManager.reconcile` resolves by client id;
- tracks every order through ``execution.orders.ORDER_TRANSITIONS``, applies each fill once (by
  fill id) to the :class:`~execution.portfolio.Portfolio`, and queues one
  :class:`~core.fills.OrderEvent` per status change and one :class:`~core.fills.Fill` per execution
  for ``fills.v1`` (:meth:`OrderManager.drain`);
- answers a venue's "duplicate client order id" reject by adopting the venue's order, never by
  resending;
- looks an order whose submit outcome was unknown (:class:`~execution.venue.SubmitOutcomeUnknown`:
  timeout, reset, and the lookup failed too) up again by client order id on the following
  :meth:`OrderManager.pump` calls, at most every ``UNKNOWN_RECHECK``, until the venue has it
  (brought to the venue's status, fills booked) or ``unknown_outcome_timeout`` has passed with the
  venue still not having it (REJECTED ``not_found_at_venue``: a venue refuses a request that
  arrives after its receive window, Binance's ``recvWindow`` being 10 s in ccxt); never resent;
- records how every call to the venue ended (:class:`~risk.venue_calls.VenueCallOutcome`: ok, error
  class or disconnect, round trip) for the venue breakers (:meth:`OrderManager.drain_outcomes`);
- keeps the risk gate's :class:`~risk.portfolio.PortfolioView` until a fill, an order change or a
  mark changes it (:meth:`OrderManager.view`).

>>> from decimal import Decimal as D
>>> from core.clock import from_epoch_ms
>>> from core.events import BookSnapshot
>>> from execution.paper import PaperVenue, _EXAMPLE_CAPS, _example_order
>>> venue = PaperVenue(_EXAMPLE_CAPS, {"USDT": D("10000")})
>>> t = from_epoch_ms(1_000)
>>> venue.on_book_snapshot(BookSnapshot("binance", "BTC/USDT", 1, ((D("99"), D("1")),), ((D("100"), D("5")),), t, t))
>>> manager = OrderManager(venue, Portfolio("acct", D("10000")), clock=venue)
>>> manager.submit(_example_order("b4-1", "1")).status
<OrderStatus.FILLED: 'filled'>
>>> manager.submit(_example_order("b4-1", "1")).duplicate
True
>>> [type(r).__name__ for r in manager.drain()]
['OrderEvent', 'OrderEvent', 'OrderEvent', 'Fill']
>>> manager.portfolio.cash
Decimal('9899.800')
>>> [(o.call.value, o.result.value) for o in manager.drain_outcomes()]
[('submit', 'ok'), ('poll', 'ok')]
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any, TypeVar

from core.clock import Clock
from core.errors import HaltAndAlert, RetryLater
from core.fills import Fill, OrderEvent, OrderEventKind, OrderStatus
from core.orders import ApprovedOrder, CancelAllOrders
from execution.orders import ORDER_TRANSITIONS, StateMachine
from execution.portfolio import Portfolio
from execution.venue import DUPLICATE_CLIENT_ORDER_ID, SubmitOutcomeUnknown, Venue, VenueOrder, VenueReport
from risk.portfolio import OpenOrder, PortfolioView
from risk.venue_calls import CallResult, VenueCall, VenueCallOutcome

_ZERO = Decimal(0)
_Kind = OrderEventKind
_UNACKED = (OrderStatus.PENDING_SUBMIT, OrderStatus.SUBMITTED)
ExecutionRecord = OrderEvent | Fill
T = TypeVar("T")
#: How often an order whose submit outcome is unknown is looked up again.
UNKNOWN_RECHECK = timedelta(seconds=1)

#: Reject reasons that mean the venue did not process the order for reasons of its own (it was
#: rate limited, or answered 5xx and has no such order): errors of the venue, not verdicts on the
#: order. The prefixes ``execution.ccxt_venue`` puts on those REJECT reports.
VENUE_FAILURE_REJECTS = {"rate_limited": "rate_limited", "not_accepted": "unavailable"}
#: Error classes that, with no HTTP answer at all, mean the connection failed (ccxt raises
#: ExchangeNotAvailable for a refused or reset connection: ``unavailable``; other socket errors
#: are ``network``).
_CONNECTION_FAILURES = frozenset({"unavailable", "network"})


def classify_failure(exc: BaseException) -> tuple[CallResult, str]:
    """How a venue call that raised ``exc`` ended, and the error class the breakers record.

    A failure translated by ``execution.ccxt_errors`` carries its ``reason``; with no HTTP answer
    (``http_status`` None) an ``unavailable`` or ``network`` failure is a disconnect. An unknown
    submit outcome is judged by the failure behind it.

    >>> from execution.venue import SubmitOutcomeUnknown
    >>> classify_failure(ConnectionResetError("reset by peer"))
    (<CallResult.DISCONNECTED: 'disconnected'>, 'network')
    >>> classify_failure(SubmitOutcomeUnknown("no result within 10s"))
    (<CallResult.ERROR: 'error'>, 'outcome_unknown')
    >>> classify_failure(KeyError("x"))
    (<CallResult.ERROR: 'error'>, 'KeyError')
    """
    cause: BaseException = exc
    if isinstance(exc, SubmitOutcomeUnknown):
        # ``raise ... from err`` sets the cause; the venue's own deadline (``raise ... from None``)
        # leaves the TimeoutError as the context.
        behind = exc.__cause__ or exc.__context__
        if behind is None:
            return CallResult.ERROR, "outcome_unknown"
        cause = behind
    if isinstance(cause, RetryLater):
        reason = getattr(cause, "reason", None)
        if isinstance(reason, str):
            no_answer = getattr(cause, "http_status", None) is None
            disconnected = no_answer and reason in _CONNECTION_FAILURES
            return (CallResult.DISCONNECTED if disconnected else CallResult.ERROR), reason
    if isinstance(cause, ConnectionError):
        return CallResult.DISCONNECTED, "network"
    if isinstance(cause, TimeoutError):
        return CallResult.ERROR, "timeout"
    return CallResult.ERROR, type(cause).__name__


def _reject_failure(report: object) -> str | None:
    """The error class of a REJECT that is the venue's failure, None for any other answer."""
    if not isinstance(report, VenueReport) or report.kind is not _Kind.REJECT:
        return None
    return VENUE_FAILURE_REJECTS.get(report.reason.partition(":")[0])


class ReconciliationMismatch(HaltAndAlert):
    """The venue's record of an order cannot be reached from ours by any allowed sequence of events."""

    def __init__(self, message: str) -> None:
        super().__init__(
            message,
            "Keep the account halted; compare the order at the venue (by client id) with the fills.v1 "
            "history, correct the position by hand if needed, then reset the halt.",
        )


class ManagedOrder:
    """One order as the manager tracks it: the approved order, its state machine, fills so far."""

    __slots__ = ("approved", "events", "filled", "last_ts", "machine", "reason", "venue_order_id")

    def __init__(self, approved: ApprovedOrder) -> None:
        self.approved = approved
        self.machine: StateMachine[OrderStatus, OrderEventKind] = StateMachine(
            ORDER_TRANSITIONS, OrderStatus.PENDING_SUBMIT
        )
        self.filled = _ZERO
        self.venue_order_id: str | None = None
        self.reason = ""
        self.events = 0  # order events published so far (their seq)
        self.last_ts: datetime | None = None  # time of the newest event published

    @property
    def client_order_id(self) -> str:
        """The deterministic id the order carries at the venue."""
        return self.approved.client_order_id

    @property
    def status(self) -> OrderStatus:
        """Where the order's state machine stands."""
        return self.machine.status

    @property
    def remaining(self) -> Decimal:
        """Approved amount not filled yet."""
        return self.approved.amount - self.filled

    def __getstate__(self) -> dict[str, Any]:
        # The transition table is module data: a snapshot keeps only where the machine stands.
        return {
            "approved": self.approved,
            "filled": self.filled,
            "status": self.machine.status,
            "resume": self.machine.resume,
            "reason": self.reason,
            "venue_order_id": self.venue_order_id,
            "events": self.events,
            "last_ts": self.last_ts,
        }

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.approved = state["approved"]
        self.filled = state["filled"]
        self.machine = StateMachine.restore(ORDER_TRANSITIONS, state["status"], state["resume"])
        self.reason = state["reason"]
        self.venue_order_id = state["venue_order_id"]
        self.events = state["events"]
        self.last_ts = state.get("last_ts")


@dataclass(frozen=True, slots=True)
class SubmitResult:
    """What :meth:`OrderManager.submit` did: the order's status now, and whether it was a replay."""

    client_order_id: str
    status: OrderStatus
    duplicate: bool = False
    reason: str = ""


@dataclass(frozen=True, slots=True)
class ReconcileReport:
    """What :meth:`OrderManager.reconcile` found and fixed."""

    checked: int
    changed: tuple[str, ...]
    not_found: tuple[str, ...]
    unknown_at_venue: tuple[str, ...]
    fills_applied: int


class OrderManager:
    """Submits approved orders to ``venue`` and keeps their state and the portfolio (example in the
    module docstring).

    ``clock`` stamps what the manager itself decides (the SUBMIT and CANCEL_REQUEST events); in a
    backtest it is the paper venue (its event clock), live it is the system clock.
    """

    def __init__(
        self,
        venue: Venue,
        portfolio: Portfolio,
        *,
        clock: Clock,
        orders: Iterable[ManagedOrder] = (),
        fill_ids: Iterable[str] = (),
        timer: Callable[[], float] | None = None,
        unknown_outcome_timeout: timedelta = timedelta(seconds=60),
    ) -> None:
        self.venue = venue
        self._unknown_timeout = unknown_outcome_timeout
        # Orders whose submit outcome is unknown: client id -> (when it was sent, next lookup).
        self._unknown: dict[str, tuple[datetime, datetime]] = {}
        self.portfolio = portfolio
        self._clock = clock
        # Round trips of venue calls, in seconds: ``timer`` (a monotonic counter) when given, else
        # the clock (live: the system clock; in a replay the paper venue's event time, which does
        # not move during a call, so replays stay deterministic).
        self._timer = timer
        self._outcomes: list[VenueCallOutcome] = []
        # The gate's view, kept while nothing it reads changed: (portfolio, its version, orders
        # version, view). Orders change only in _transition, which bumps the version.
        self._orders_version = 0
        self._view: tuple[Portfolio, int, int, PortfolioView] | None = None
        self._orders: dict[str, ManagedOrder] = {o.client_order_id: o for o in orders}
        # Orders that may still be open (pruned when read): keeps open-order reads O(open), not O(history).
        self._maybe_open: dict[str, ManagedOrder] = {
            cid: o for cid, o in self._orders.items() if not o.status.is_terminal
        }
        self._fill_ids: set[str] = set(fill_ids)
        self._outbox: list[ExecutionRecord] = []
        self.unmatched_reports: list[VenueReport] = []

    # -- commands --------------------------------------------------------------------------------

    def submit(self, order: ApprovedOrder) -> SubmitResult:
        """Send ``order`` unless its client order id is already known; apply the venue's answer."""
        cid = order.client_order_id
        known = self._orders.get(cid)
        if known is not None:
            return SubmitResult(cid, known.status, duplicate=True, reason=known.reason)
        if order.intent.account != self.portfolio.account:
            raise ValueError(
                f"order {cid} is for account {order.intent.account!r}; this manager keeps {self.portfolio.account!r}"
            )
        managed = ManagedOrder(order)
        self._orders[cid] = managed
        self._maybe_open[cid] = managed
        self._transition(managed, _Kind.SUBMIT, self._clock.now())
        try:
            report = self._call(VenueCall.SUBMIT, cid, self.venue.submit, order)
        except SubmitOutcomeUnknown as err:
            managed.reason = f"submit outcome unknown: {err.args[0] if err.args else err}"
            now = self._clock.now()
            self._unknown[cid] = (now, now + UNKNOWN_RECHECK)
            return SubmitResult(cid, managed.status, reason=managed.reason)
        if report.kind is _Kind.REJECT and report.reason == DUPLICATE_CLIENT_ORDER_ID:
            # Sent before a crash that lost our record of it: adopt the venue's order.
            remote = self._call(VenueCall.FETCH_ORDER, cid, self.venue.fetch_order, cid)
            if remote is not None:
                self._sync(managed, remote)
                self.pump()
                return SubmitResult(cid, managed.status, reason=managed.reason)
        self._apply(report)
        self.pump()
        return SubmitResult(cid, managed.status, reason=managed.reason)

    def cancel(self, client_order_id: str) -> OrderStatus:
        """Ask the venue to cancel; a terminal or unknown order is left alone (cancels are idempotent)."""
        managed = self._orders.get(client_order_id)
        if managed is None:
            raise KeyError(f"no order with client order id {client_order_id!r} in account {self.portfolio.account!r}")
        if managed.status.is_terminal or managed.status is OrderStatus.PENDING_CANCEL:
            return managed.status
        self._transition(managed, _Kind.CANCEL_REQUEST, self._clock.now())
        self._apply(self._call(VenueCall.CANCEL, client_order_id, self.venue.cancel, client_order_id))
        self.pump()
        return managed.status

    def cancel_all(self, command: CancelAllOrders) -> list[str]:
        """Cancel the account's open orders (keeping reduce-only ones if the command says so)."""
        canceled = []
        for managed in self._open_managed():
            if not managed.status.is_open or managed.status is OrderStatus.PENDING_CANCEL:
                continue
            if command.keep_reduce_only and managed.approved.intent.reduce_only:
                continue
            self.cancel(managed.client_order_id)
            canceled.append(managed.client_order_id)
        return canceled

    def pump(self) -> int:
        """Apply every report the venue queued since the last call; returns how many."""
        reports = self._call(VenueCall.POLL, "", self.venue.poll)
        for report in reports:
            self._apply(report)
        if self._unknown:
            self._resolve_unknown()
        return len(reports)

    def _resolve_unknown(self) -> None:
        """Look the orders whose submit outcome is unknown up by client order id (module docstring)."""
        now = self._clock.now()
        for cid, (sent, due) in list(self._unknown.items()):
            managed = self._orders[cid]
            if managed.status not in _UNACKED:
                del self._unknown[cid]  # a report or a reconciliation settled it meanwhile
                continue
            if now < due:
                continue
            try:
                remote = self._call(VenueCall.FETCH_ORDER, cid, self.venue.fetch_order, cid)
            except (RetryLater, SubmitOutcomeUnknown, OSError):
                self._unknown[cid] = (sent, now + UNKNOWN_RECHECK)  # recorded for the breakers; next time
                continue
            if remote is not None:
                del self._unknown[cid]
                self._sync(managed, remote)
            elif now - sent >= self._unknown_timeout:
                del self._unknown[cid]
                self._transition(managed, _Kind.REJECT, now, reason="not_found_at_venue")
            else:
                self._unknown[cid] = (sent, now + UNKNOWN_RECHECK)

    def reconcile(self) -> ReconcileReport:
        """Align our orders with the venue's: run on start, and after any submit with an unknown result.

        An order the venue lists as open but we hold as SUBMITTED becomes ACCEPTED; one we think open
        but the venue does not list is fetched by client id and brought to the venue's status (fills
        included); one the venue does not know at all never reached it and is REJECTED (it is not
        resent: the strategy sends a new intent). Open orders at the venue that are not ours are
        reported, not touched.
        """
        self.pump()
        remote_open = {
            o.client_order_id: o for o in self._call(VenueCall.FETCH_OPEN_ORDERS, "", self.venue.fetch_open_orders)
        }
        changed: list[str] = []
        not_found: list[str] = []
        fills_before = len(self._fill_ids)
        checked = 0
        for cid, managed in list(self._orders.items()):
            if managed.status.is_terminal:
                continue
            checked += 1
            before = (managed.status, managed.filled)
            remote = remote_open.pop(cid, None) or self._call(VenueCall.FETCH_ORDER, cid, self.venue.fetch_order, cid)
            if remote is None:
                not_found.append(cid)
                # Never acknowledged: it never reached the venue. Acknowledged once: the venue dropped it.
                unacked = managed.status in _UNACKED or (
                    managed.status is OrderStatus.PENDING_CANCEL and managed.machine.resume in _UNACKED
                )
                kind = _Kind.REJECT if unacked else _Kind.CANCEL
                self._transition(managed, kind, self._clock.now(), reason="not_found_at_venue")
            else:
                self._sync(managed, remote)
            if (managed.status, managed.filled) != before:
                changed.append(cid)
        dead_here = [cid for cid in remote_open if cid in self._orders]
        if dead_here:
            statuses = ", ".join(f"{cid} ({self._orders[cid].status})" for cid in dead_here)
            raise ReconciliationMismatch(f"orders open at the venue that we hold as finished: {statuses}")
        return ReconcileReport(
            checked,
            tuple(changed),
            tuple(not_found),
            tuple(remote_open),
            len(self._fill_ids) - fills_before,
        )

    # -- reads -----------------------------------------------------------------------------------

    def order(self, client_order_id: str) -> ManagedOrder | None:
        """The order with this client id, or None when the manager never saw it."""
        return self._orders.get(client_order_id)

    def orders(self) -> list[ManagedOrder]:
        """Every order the manager knows, in submission order."""
        return list(self._orders.values())

    @property
    def fill_ids(self) -> frozenset[str]:
        """Ids of every fill applied (persist them with the orders: they make fills idempotent)."""
        return frozenset(self._fill_ids)

    def open_orders(self) -> list[OpenOrder]:
        """Open orders as the risk gate counts them. A market order is valued at the instrument's mark
        (left out while the instrument has none)."""
        holdings = self.portfolio.holdings()
        out = []
        for managed in self._open_managed():
            if not managed.status.is_open:
                continue
            intent = managed.approved.intent
            price = managed.approved.price
            if price is None:
                holding = holdings.get(intent.key)
                if holding is None or not holding.mark:
                    continue
                price = holding.mark
            out.append(
                OpenOrder(
                    managed.client_order_id,
                    intent.exchange,
                    intent.symbol,
                    intent.side,
                    intent.order_type,
                    price,
                    managed.remaining,
                    intent.reduce_only,
                )
            )
        return out

    def _open_managed(self) -> list[ManagedOrder]:
        """Orders not terminal yet, in submission order (terminal ones leave the index here)."""
        index = self._maybe_open
        for cid in [cid for cid, m in index.items() if m.status.is_terminal]:
            del index[cid]
        return list(index.values())

    def view(self) -> PortfolioView:
        """The account as the risk gate reads it (portfolio plus open orders).

        The same immutable view is returned until a fill, an order change (submit, ack, cancel,
        reject, expiry) or a mark changes what it shows, so the gate's values derived from it are
        reused between signals; building one costs more than judging an order.
        """
        portfolio = self.portfolio
        kept = self._view
        if (
            kept is not None
            and kept[0] is portfolio
            and kept[1] == portfolio.version
            and kept[2] == self._orders_version
        ):
            return kept[3]
        version = portfolio.version
        view = portfolio.view(self.open_orders())
        self._view = (portfolio, version, self._orders_version, view)
        return view

    def drain(self) -> list[ExecutionRecord]:
        """Order events and fills produced since the last call, in order (for ``fills.v1``)."""
        out, self._outbox = self._outbox, []
        return out

    def drain_outcomes(self) -> list[VenueCallOutcome]:
        """How every venue call since the last call ended, in order: feed them to
        ``RiskStateMachine.on_venue_outcomes`` (venue error rate, round-trip latency, disconnect)."""
        out, self._outcomes = self._outcomes, []
        return out

    # -- snapshots -------------------------------------------------------------------------------

    def __getstate__(self) -> dict[str, Any]:
        # The kept view is derived (and its read-only mappings do not pickle): rebuilt on demand.
        state = dict(self.__dict__)
        state["_view"] = None
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        # Snapshots from before outcomes and the kept view existed restore with empty ones.
        self.__dict__.update(state)
        self.__dict__.setdefault("_timer", None)
        self.__dict__.setdefault("_outcomes", [])
        self.__dict__.setdefault("_orders_version", 0)
        self.__dict__.setdefault("_unknown_timeout", timedelta(seconds=60))
        self.__dict__.setdefault("_unknown", {})
        self._view = None

    # -- internals -------------------------------------------------------------------------------

    def _seconds(self) -> float:
        timer = self._timer
        if timer is not None:
            return timer()
        return self._clock.now().timestamp()

    def _call(self, kind: VenueCall, cid: str, fn: Callable[..., T], *args: Any) -> T:
        """``fn(*args)`` on the venue, its outcome recorded; whatever it raises is raised again."""
        start = self._seconds()
        try:
            answer = fn(*args)
        except Exception as exc:
            result, error = classify_failure(exc)
            self._record(kind, cid, start, result, error)
            raise
        error_class = _reject_failure(answer)
        if error_class is None:
            self._record(kind, cid, start, CallResult.OK, "")
        else:
            self._record(kind, cid, start, CallResult.ERROR, error_class)
        return answer

    def _record(self, kind: VenueCall, cid: str, start: float, result: CallResult, error: str) -> None:
        elapsed = max(self._seconds() - start, 0.0)
        self._outcomes.append(VenueCallOutcome(kind, result, timedelta(seconds=elapsed), self._clock.now(), error, cid))

    def _apply(self, report: VenueReport) -> None:
        managed = self._orders.get(report.client_order_id)
        if managed is None:
            self.unmatched_reports.append(report)
            return
        if report.venue_order_id is not None:
            managed.venue_order_id = report.venue_order_id
        fill = report.fill
        if fill is None:
            self._transition(managed, report.kind, report.ts_event, reason=report.reason)
        elif fill.fill_id not in self._fill_ids:
            self._book_fill(managed, report.kind, fill)

    def _book_fill(self, managed: ManagedOrder, kind: OrderEventKind, fill: Fill) -> None:
        self._transition(managed, kind, fill.ts_event, filled=managed.filled + fill.amount)
        self._fill_ids.add(fill.fill_id)
        self.portfolio.apply_fill(fill)
        self._outbox.append(fill)

    def _sync(self, managed: ManagedOrder, remote: VenueOrder) -> None:
        """Bring ``managed`` to the venue's record ``remote`` through allowed transitions."""
        now = self._clock.now()
        managed.venue_order_id = remote.venue_order_id
        if managed.status is OrderStatus.PENDING_SUBMIT:
            self._transition(managed, _Kind.SUBMIT, now)
        if remote.status is OrderStatus.REJECTED:
            self._transition(managed, _Kind.REJECT, now, reason="rejected_at_venue")
            return
        machine = managed.machine
        if machine.status is OrderStatus.SUBMITTED or (
            machine.status is OrderStatus.PENDING_CANCEL and machine.resume is OrderStatus.SUBMITTED
        ):
            # Accepted at the latest when it first filled: stamped so, the order's events stay in
            # time order (the fills below carry the venue's times; the orders table keeps the newest).
            first_fill = min((f.ts_event for f in remote.fills), default=now)
            self._transition(managed, _Kind.ACCEPT, min(now, first_fill))
        for fill in remote.fills:
            if fill.fill_id in self._fill_ids:
                continue
            done = managed.filled + fill.amount >= managed.approved.amount
            self._book_fill(managed, _Kind.FILL if done else _Kind.PARTIAL_FILL, fill)
        if remote.status is OrderStatus.CANCELED and managed.status is not OrderStatus.CANCELED:
            self._transition(managed, _Kind.CANCEL, now, reason="canceled_at_venue")
        elif remote.status is OrderStatus.EXPIRED and managed.status is not OrderStatus.EXPIRED:
            self._transition(managed, _Kind.EXPIRE, now, reason="expired_at_venue")
        elif managed.status is OrderStatus.PENDING_CANCEL and remote.status.is_open:
            # Reconciliation runs with no request in flight: a cancel the venue has not applied was
            # lost. The order is working again; the caller may cancel it anew.
            self._transition(managed, _Kind.CANCEL_REJECT, now, reason="cancel_not_applied_at_venue")
        if remote.filled != managed.filled or (remote.status is OrderStatus.FILLED) != (
            managed.status is OrderStatus.FILLED
        ):
            raise ReconciliationMismatch(
                f"order {managed.client_order_id}: venue says {remote.status} with {remote.filled} filled, "
                f"we have {managed.status} with {managed.filled} after applying the venue's fills"
            )

    def _transition(
        self,
        managed: ManagedOrder,
        kind: OrderEventKind,
        ts: datetime,
        *,
        reason: str = "",
        filled: Decimal | None = None,
    ) -> None:
        before = managed.status
        self._orders_version += 1  # the gate's view shows this order: rebuild it on next read
        status = managed.machine.apply(kind, managed.client_order_id)
        if filled is not None:
            managed.filled = filled
        if reason:
            managed.reason = reason
        if status is before and filled is None:
            return  # a duplicate or late report that changes nothing: no event
        intent = managed.approved.intent
        if managed.last_ts is not None and ts < managed.last_ts:
            # A venue's time can be earlier than an event we stamped ourselves (a fill found by a
            # lookup after our cancel request): an order's events stay in time order, as the
            # orders table (newest event wins) reads them.
            ts = managed.last_ts
        managed.last_ts = ts
        managed.events += 1
        self._outbox.append(
            OrderEvent(
                intent.exchange,
                intent.account,
                managed.client_order_id,
                intent.symbol,
                kind,
                status,
                managed.filled,
                managed.remaining,
                ts,
                managed.venue_order_id,
                reason,
                before,
                managed.events,
            )
        )
