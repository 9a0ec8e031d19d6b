"""Execution as a Bytewax step keyed by account: approved orders and market data in, order events,
fills and the account's portfolio out, on the paper venue.

Two ways to feed it (``paced``):

- **one ordered stream** (``paced=False``): orders and market data arrive interleaved exactly as
  they were decided; each is applied on arrival (a replay, or a test);
- **paced by the trading flow** (``paced=True``, the separate execution process of
  :mod:`flows.execution_run`): orders come from ``orders.v1`` and market data from the ``md.*``
  topics, two streams with no order between them. The trading flow publishes, besides its
  approved orders, how far in market time it has decided (:class:`ExecutionProgress`), and this
  step applies an instrument's market data only up to there, and submits an order decided at
  market time ``D`` after every event of its instrument at or before ``D`` and before every event
  after ``D``. A cancel-all carries how far the trading flow had applied each instrument's market
  data when it decided it (:class:`PacedCancelAll`); it waits here, and every instruction behind
  it, until that market has been read, and goes to the venue after exactly that market. So a
  paper order fills against the market that followed its decision, and a cancel-all cancels what
  was open at its decision, as in-process, however far one process runs ahead of the other. Market
  data that runs ahead of the trading flow waits here (counted in ``bot4_execution_held_events``).
  For one instrument the result equals the in-process run; with several, the venue has one clock,
  so an order can become active later than in-process when another instrument's newer data was
  applied first (at most one event of its own instrument later).

Each account has an :class:`~execution.manager.OrderManager` on its own
:class:`~execution.paper.PaperVenue`, fed the same market events as the rest of the flow (market
data is fanned out to every account), so paper fills come from the real book and trades. The
whole manager (venue book, orders, fill ids, portfolio) is the recovery snapshot: a restart resumes
with every order and fill it had, and a redelivered approved order is refused as a duplicate
client order id, never submitted twice.

Outputs, in order per account: :class:`~core.fills.OrderEvent` and :class:`~core.fills.Fill`
records (for ``fills.v1`` and the ``order_events`` / ``fills`` tables), :class:`OrderPlaced` for the
``orders`` table, and a :class:`~flows.risk_step.PortfolioUpdate` whenever the account changed,
which goes back to the risk gate.

Live and testnet venues (ccxt) plug in behind the same Venue interface; this module builds the
paper venue only.
"""

from __future__ import annotations

import logging
from collections import deque
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any

import bytewax.operators as op
import orjson
from bytewax.dataflow import Stream
from bytewax.operators import StatefulBatchLogic
from prometheus_client import Counter, Gauge

from core.clock import Clock, from_epoch_us, to_epoch_us
from core.errors import WireFormatError
from core.events import BookDelta, BookSnapshot, Candle, Quote, Trade
from core.fills import Fill, OrderEvent, fill_record, order_event_record
from core.orders import ApprovedOrder, CancelAllOrders
from core.symbols import timeframe_seconds
from execution.manager import OrderManager
from execution.paper import PaperVenue
from execution.portfolio import Portfolio
from execution.venue import VenueCapabilities
from flows.kafka_io import OutMessage
from flows.metrics import EVENTS, export_venue_calls
from flows.pg_sink import Target, connected
from flows.risk_step import ORDERS_TOPIC, PortfolioUpdate
from flows.snapshots import frozen
from risk.decisions import approved_order_from_record

log = logging.getLogger(__name__)

FILLS_TOPIC = "fills.v1"
STAGE = "execution"

HELD_EVENTS = Gauge(
    "bot4_execution_held_events",
    "Market events the execution step holds until the trading flow has decided up to their time",
    ["account"],
)
BLOCKED = Gauge(
    "bot4_execution_blocked_instructions",
    "orders.v1 records held behind a cancel-all that waits for market data up to its read_to",
    ["account"],
)
CANCEL_WAITS_EXPIRED = Counter(
    "bot4_execution_cancel_waits_expired_total",
    "Cancel-alls executed without all the market data of their read_to, after waiting the longest allowed",
    ["account"],
)
#: The longest (wall time) a cancel-all waits for the market data it names before it cancels anyway:
#: a kill switch must act even when this process's market data stops coming.
CANCEL_WAIT = timedelta(seconds=30)


@dataclass(frozen=True, slots=True)
class ExecutionProgress:
    """The trading flow has decided everything up to market time ``ts`` for ``account``."""

    account: str
    ts: datetime


#: How far an instrument's market data has been read or applied: the newest event's time and how
#: many events of the instrument came at exactly that time (trades share microseconds), so a
#: position names one event of the instrument's stream, ties included.
Position = tuple[datetime, int]


def next_position(position: Position | None, as_of: datetime) -> Position:
    """The position after one more event at ``as_of`` (an older, out-of-order event moves nothing).

    >>> from core.clock import parse_utc
    >>> t = parse_utc("2024-08-08T00:00:00Z")
    >>> next_position(next_position(None, t), t) == (t, 2)
    True
    """
    if position is None or as_of > position[0]:
        return (as_of, 1)
    if as_of == position[0]:
        return (as_of, position[1] + 1)
    return position


@dataclass(frozen=True, slots=True)
class PacedCancelAll:
    """A cancel-all from the trading flow with how far it had applied each instrument's market data
    when it decided it (``read_to``): the separate execution process applies exactly that market
    before canceling, waiting for what it has not read yet, as the in-process venue had it."""

    command: CancelAllOrders
    read_to: Mapping[str, Position]

    @property
    def account(self) -> str:
        return self.command.account

    @property
    def ts(self) -> datetime:
        return self.command.ts


MarketInput = Trade | BookSnapshot | BookDelta | Quote | Candle
Instruction = ApprovedOrder | CancelAllOrders | PacedCancelAll
ExecInput = Instruction | ExecutionProgress | MarketInput


@dataclass(frozen=True, slots=True)
class OrderPlaced:
    """An approved order the manager accepted for submission (one ``orders`` row)."""

    order: ApprovedOrder


ExecOutput = OrderEvent | Fill | OrderPlaced | PortfolioUpdate


@dataclass(frozen=True)
class PaperAccount:
    """How one account trades on paper: its venue's rules and fees, and its starting balances."""

    account: str
    capabilities: VenueCapabilities
    balances: Mapping[str, Decimal]
    quote_currency: str = "USDT"


def route_execution(item: ExecInput, accounts: Sequence[str]) -> list[tuple[str, tuple[str, ExecInput]]]:
    """Key an input by account; market data goes to every account's paper venue."""
    if isinstance(item, ApprovedOrder):
        return [(item.intent.account, (item.intent.account, item))]
    if isinstance(item, CancelAllOrders | PacedCancelAll | ExecutionProgress):
        return [(item.account, (item.account, item))]
    return [(a, (a, item)) for a in accounts]


def _as_of(event: MarketInput) -> datetime:
    """When an event is known: a candle at its close, everything else at its event time."""
    if isinstance(event, Candle):
        return event.ts_event + timedelta(seconds=timeframe_seconds(event.timeframe))
    return event.ts_event


def _decided_at(item: Instruction) -> datetime:
    return item.ts_decided if isinstance(item, ApprovedOrder) else item.ts


#: How many executed cancel-alls a paced account remembers to refuse their re-publication.
CANCELS_KEPT = 1000


@dataclass
class _Pacing:
    """What a paced account holds back: market data per instrument, orders per instrument, and the
    instructions behind a cancel-all still waiting for its market data."""

    upto: datetime | None = None
    held: dict[str, deque[tuple[datetime, MarketInput]]] = field(default_factory=dict)
    waiting: dict[str, deque[ApprovedOrder]] = field(default_factory=dict)
    newest: dict[str, datetime] = field(default_factory=dict)
    #: Per instrument, the position of the newest event read (held or applied) and applied.
    read: dict[str, Position] = field(default_factory=dict)
    applied: dict[str, Position] = field(default_factory=dict)
    #: A cancel-all waiting for market data up to its ``read_to``, and every instruction and
    #: progress that came after it, in order.
    blocked: deque[Instruction | ExecutionProgress] = field(default_factory=deque)
    #: Since when (wall time) the cancel-all at the head of ``blocked`` has waited.
    blocked_since: datetime | None = None
    #: The newest cancel-alls executed (time, reason, keep_reduce_only): a restarted trading flow
    #: publishes again what it had published after its snapshot, and a cancel-all executed twice
    #: would cancel the orders placed between the two.
    canceled: deque[tuple[datetime, str, bool]] = field(default_factory=lambda: deque(maxlen=CANCELS_KEPT))

    def count(self) -> int:
        return sum(len(q) for q in self.held.values())

    def has_read(self, read_to: Mapping[str, Position]) -> bool:
        """Has every instrument's market data been read as far as ``read_to``?"""
        read = self.read
        for key, position in read_to.items():
            have = read.get(key)
            if have is None or have < position:
                return False
        return True

    def __setstate__(self, state: dict[str, Any]) -> None:
        # Snapshots written before the positions and the blocked queue existed.
        state.setdefault("read", {})
        state.setdefault("applied", {})
        state.setdefault("blocked", deque())
        state.setdefault("blocked_since", None)
        state.setdefault("canceled", deque(maxlen=CANCELS_KEPT))
        self.__dict__.update(state)


@dataclass
class ExecutionState:
    """One account's order manager (venue, orders, fills, portfolio) and its pacing (the snapshot)."""

    manager: OrderManager
    pacing: _Pacing = field(default_factory=_Pacing)


class PaperExecution(StatefulBatchLogic[tuple[str, ExecInput], ExecOutput, ExecutionState]):
    """One account's order manager on its paper venue; see the module docstring for ``paced``."""

    def __init__(
        self,
        accounts: Mapping[str, PaperAccount],
        resume: ExecutionState | None,
        *,
        paced: bool = False,
        wall: Clock | None = None,
        cancel_wait: timedelta = CANCEL_WAIT,
    ) -> None:
        """``wall`` (paced only): the wall clock that bounds a cancel-all's wait for its market data
        to ``cancel_wait``; without it a cancel-all waits for as long as it takes (replays, tests)."""
        self._accounts = accounts
        self._state = resume
        self._paced = paced
        self._wall = wall
        self._cancel_wait = cancel_wait

    def _state_for(self, account: str) -> ExecutionState:
        if self._state is None:
            setup = self._accounts[account]
            cash = setup.balances.get(setup.quote_currency, Decimal(0))
            venue = PaperVenue(setup.capabilities, setup.balances)
            manager = OrderManager(venue, Portfolio(account, cash, setup.quote_currency, curve=0), clock=venue)
            self._state = ExecutionState(manager)
        return self._state

    def on_batch(self, values: list[tuple[str, ExecInput]]) -> tuple[list[ExecOutput], bool]:
        out: list[ExecOutput] = []
        changed = False
        state: ExecutionState | None = None
        for account, item in values:
            state = self._state_for(account)
            if self._paced:
                self._pace(state, item, out)
            elif isinstance(item, ApprovedOrder | CancelAllOrders | PacedCancelAll):
                self._instruct(state.manager, item, out)
            elif not isinstance(item, ExecutionProgress):
                self._market(state.manager, item)
            records = state.manager.drain()
            if records:
                out.extend(records)
            changed = changed or bool(records)
        if state is not None:
            self._finish(state, out, changed=changed)
        EVENTS.labels(STAGE, "ok").inc(len(values))
        return out, StatefulBatchLogic.RETAIN

    def _finish(self, state: ExecutionState, out: list[ExecOutput], *, changed: bool) -> None:
        """The end of a batch or a wake-up: the portfolio when an order record changed it, the venue
        calls' outcomes, and (paced) what is held and blocked."""
        if changed:
            out.append(PortfolioUpdate(state.manager.view()))
        self._export_outcomes(state)
        if self._paced:
            account = state.manager.portfolio.account
            HELD_EVENTS.labels(account).set(state.pacing.count())
            BLOCKED.labels(account).set(len(state.pacing.blocked))

    @staticmethod
    def _export_outcomes(state: ExecutionState) -> None:
        """The venue calls' outcomes, as the trading flow exports them (errors, ack latency). Taken
        from the manager at every batch: it keeps them until asked, one per call (a poll on every
        market event included), and a list that grew for the whole run was deep-copied into every
        epoch's snapshot."""
        outcomes = [o for o in state.manager.drain_outcomes() if o.is_evidence]
        if outcomes:
            export_venue_calls(state.manager.venue.capabilities.exchange, outcomes)

    # -- applying one input ---------------------------------------------------------------------

    @staticmethod
    def _instruct(manager: OrderManager, item: Instruction, out: list[ExecOutput]) -> None:
        if isinstance(item, ApprovedOrder):
            if not manager.submit(item).duplicate:
                out.append(OrderPlaced(item))
        elif isinstance(item, PacedCancelAll):
            manager.cancel_all(item.command)
        else:
            manager.cancel_all(item)

    @staticmethod
    def _market(manager: OrderManager, item: MarketInput) -> None:
        venue = manager.venue
        assert isinstance(venue, PaperVenue)
        if isinstance(item, Trade):
            venue.on_trade(item)
            manager.portfolio.mark(item.exchange, item.symbol, item.price, item.ts_event)
        elif isinstance(item, Candle):
            if not item.closed:
                return
            venue.on_candle(item)
            manager.portfolio.mark(item.exchange, item.symbol, item.close, _as_of(item))
        elif isinstance(item, BookSnapshot):
            venue.on_book_snapshot(item)
        elif isinstance(item, BookDelta):
            venue.on_book_delta(item)
        else:
            venue.on_quote(item)
        manager.pump()

    # -- pacing (the separate execution process) ----------------------------------------------

    def _pace(self, state: ExecutionState, item: ExecInput, out: list[ExecOutput]) -> None:
        pacing = state.pacing
        if isinstance(item, ApprovedOrder | CancelAllOrders | PacedCancelAll | ExecutionProgress):
            # In orders.v1's order: nothing passes a cancel-all still waiting for its market data.
            pacing.blocked.append(item)
        elif isinstance(item, Candle) and not item.closed:
            return  # a bar still forming: the venue fills on closed bars only, the trading flow decides on them
        else:
            as_of = _as_of(item)
            key = item.key
            pacing.held.setdefault(key, deque()).append((as_of, item))
            newest = pacing.newest.get(key)
            if newest is None or as_of > newest:
                pacing.newest[key] = as_of
            pacing.read[key] = next_position(pacing.read.get(key), as_of)
            self._advance(state, key, out)
        self._release_blocked(state, out)

    def _release_blocked(self, state: ExecutionState, out: list[ExecOutput]) -> None:
        """Go on with what waits behind a cancel-all once it has its market data, or once it has
        waited ``cancel_wait`` on the wall clock (counted and logged: it cancels with what is here)."""
        pacing = state.pacing
        while pacing.blocked:
            head = pacing.blocked[0]
            if isinstance(head, PacedCancelAll) and not pacing.has_read(head.read_to):
                if self._wall is None:
                    return
                now = self._wall.now()
                if pacing.blocked_since is None:
                    pacing.blocked_since = now
                if now - pacing.blocked_since < self._cancel_wait:
                    return
                account = state.manager.portfolio.account
                CANCEL_WAITS_EXPIRED.labels(account).inc()
                log.warning(
                    "account %s: cancel-all %r waited %s for market data up to %s and has read %s; canceling now",
                    account,
                    head.command.reason,
                    now - pacing.blocked_since,
                    dict(head.read_to),
                    dict(pacing.read),
                )
            pacing.blocked_since = None
            pacing.blocked.popleft()
            self._instruction(state, head, out)

    def notify_at(self) -> datetime | None:
        """When a cancel-all waiting for its market data stops waiting (paced, with a wall clock)."""
        state = self._state
        if state is None or self._wall is None or state.pacing.blocked_since is None:
            return None
        return state.pacing.blocked_since + self._cancel_wait

    def on_notify(self) -> tuple[list[ExecOutput], bool]:
        out: list[ExecOutput] = []
        state = self._state
        if state is not None:
            self._release_blocked(state, out)
            records = state.manager.drain()
            out.extend(records)
            self._finish(state, out, changed=bool(records))
        return out, StatefulBatchLogic.RETAIN

    def _instruction(self, state: ExecutionState, item: Instruction | ExecutionProgress, out: list[ExecOutput]) -> None:
        pacing = state.pacing
        if isinstance(item, ExecutionProgress):
            self._raise_upto(pacing, item.ts)
            keys = list(pacing.held)
        elif isinstance(item, CancelAllOrders | PacedCancelAll):
            command = item.command if isinstance(item, PacedCancelAll) else item
            identity = (command.ts, command.reason, command.keep_reduce_only)
            if identity in pacing.canceled:
                return  # published again by a restarted trading flow: executed already
            pacing.canceled.append(identity)
            # A cancel-all decided at market time T reaches the venue after the market the trading
            # flow had applied when it decided it, as in-process: with ``read_to`` (PacedCancelAll)
            # exactly that market of each instrument, read before the cancel went ahead (see
            # _pace); without it (records from before read_to existed) what is held here up to T,
            # not waiting for what has not arrived. The orders decided in between are submitted in
            # their place, so an order that market filled is filled, not canceled. Then the orders
            # still waiting for their market are submitted, and everything open is canceled.
            self._raise_upto(pacing, item.ts)
            read_to = item.read_to if isinstance(item, PacedCancelAll) else None
            for key in dict.fromkeys([*pacing.held, *pacing.waiting]):  # a set's order varies by process
                if read_to is None:
                    self._advance(state, key, out, until=item.ts)
                else:
                    self._advance_to(state, key, out, read_to.get(key))
            # All of that happens at T, as in-process, where the venue's clock is T when the
            # cancel-all runs. When the market up to T has not been applied (an instrument the
            # trading flow had not seen, or a legacy cancel-all ahead of its md backlog), the
            # venue's clock is still behind T, and behind the waiting orders' decisions: their
            # submit, accept and cancel would be stamped before the order was decided (and the
            # orders table, which starts a row at its decision time, kept them pending_submit).
            venue = state.manager.venue
            assert isinstance(venue, PaperVenue)
            venue.on_time(item.ts)
            for queue in pacing.waiting.values():
                while queue:
                    self._instruct(state.manager, queue.popleft(), out)
            self._instruct(state.manager, item, out)
            keys = list(pacing.held)
        else:
            self._raise_upto(pacing, item.ts_decided)
            pacing.waiting.setdefault(item.key, deque()).append(item)
            keys = list(pacing.held) if item.key in pacing.held else [*pacing.held, item.key]
        for key in keys:
            self._advance(state, key, out)

    @staticmethod
    def _raise_upto(pacing: _Pacing, ts: datetime) -> None:
        if pacing.upto is None or ts > pacing.upto:
            pacing.upto = ts

    def _advance(
        self, state: ExecutionState, key: str, out: list[ExecOutput], *, until: datetime | None = None
    ) -> None:
        """Apply ``key``'s held market data up to the trading flow's progress (or ``until``, when
        earlier) and submit its waiting orders, in decision order: an order goes once every event
        of the instrument up to its decision has been applied and one after it has arrived (before
        then no fill could happen anyway). An event after a waiting order's decision is never
        applied before that order: the order is submitted first."""
        pacing = state.pacing
        bound = pacing.upto
        if until is not None and (bound is None or until < bound):
            bound = until
        held = pacing.held.get(key)
        waiting = pacing.waiting.get(key)
        newest = pacing.newest.get(key)
        while True:
            if waiting and newest is not None:
                decided = _decided_at(waiting[0])
                if newest > decided and (not held or held[0][0] > decided):
                    self._instruct(state.manager, waiting.popleft(), out)
                    continue
            if held and bound is not None and held[0][0] <= bound:
                self._apply_held(state, key)
                continue
            return

    def _advance_to(self, state: ExecutionState, key: str, out: list[ExecOutput], stop: Position | None) -> None:
        """For a cancel-all with ``read_to``: apply exactly ``key``'s events up to ``stop``, its
        position there (None: the trading flow had applied none of it), all of them already read,
        and submit a waiting order decided by then once the events up to its decision are applied,
        whether or not a later event has arrived yet."""
        if stop is None:
            return
        pacing = state.pacing
        held = pacing.held.get(key)
        waiting = pacing.waiting.get(key)
        while True:
            first = held[0][0] if held else None
            go = first is not None and next_position(pacing.applied.get(key), first) <= stop
            if waiting:
                decided = _decided_at(waiting[0])
                # The order goes once no held event at or before its decision is still to be applied.
                if decided <= stop[0] and not (go and first is not None and first <= decided):
                    self._instruct(state.manager, waiting.popleft(), out)
                    continue
            if go:
                self._apply_held(state, key)
                continue
            return

    def _apply_held(self, state: ExecutionState, key: str) -> None:
        """Apply the oldest market event held for ``key`` and move its applied position."""
        pacing = state.pacing
        as_of, item = pacing.held[key].popleft()
        self._market(state.manager, item)
        pacing.applied[key] = next_position(pacing.applied.get(key), as_of)

    @property
    def state(self) -> ExecutionState | None:
        """The live execution state (tests read it; recovery gets :meth:`snapshot`)."""
        return self._state

    def snapshot(self) -> ExecutionState:
        assert self._state is not None, "snapshot is only taken after a batch"
        return frozen(self._state)  # pickled later by Bytewax: see flows.snapshots


def paper_execution(
    step_id: str,
    inputs: Stream[ExecInput],
    accounts: Sequence[PaperAccount],
    *,
    paced: bool = False,
    wall: Clock | None = None,
) -> Stream[ExecOutput]:
    """Route inputs to their accounts and execute them on paper; see the module docstring."""
    by_name = {a.account: a for a in accounts}
    names = list(by_name)
    keyed = op.flat_map_batch(
        f"{step_id}_route", inputs, lambda batch: [kv for item in batch for kv in route_execution(item, names)]
    )
    executed = op.stateful_batch(
        f"{step_id}_paper", keyed, lambda resume: PaperExecution(by_name, resume, paced=paced, wall=wall)
    )
    return op.flat_map_batch(f"{step_id}_unkey", executed, lambda batch: [v for _, v in batch])


def instruction_message(item: CancelAllOrders | PacedCancelAll | ExecutionProgress, prefix: str = "") -> OutMessage:
    """``orders.v1`` carries, besides approved orders (no ``type`` field, see
    :func:`risk.decisions.approved_order_record`), the trading flow's cancel-alls and progress, in
    order on the account's partition. A cancel-all's ``read_to`` maps each instrument to
    ``[time in epoch us, events at that time]`` (absent in records written before it existed)."""
    if isinstance(item, ExecutionProgress):
        body: dict[str, Any] = {"type": "progress", "v": 1, "account": item.account, "ts": to_epoch_us(item.ts)}
    else:
        command = item.command if isinstance(item, PacedCancelAll) else item
        body = {
            "type": "cancel_all",
            "v": 1,
            "account": command.account,
            "reason": command.reason,
            "keep_reduce_only": command.keep_reduce_only,
            "ts": to_epoch_us(command.ts),
        }
        if isinstance(item, PacedCancelAll):
            body["read_to"] = {key: [to_epoch_us(ts), n] for key, (ts, n) in sorted(item.read_to.items())}
    return OutMessage(prefix + ORDERS_TOPIC, item.account.encode(), orjson.dumps(body))


def decode_instruction(data: bytes) -> ApprovedOrder | CancelAllOrders | PacedCancelAll | ExecutionProgress:
    """One ``orders.v1`` message, or :class:`WireFormatError` saying what is wrong with it.

    >>> from core.clock import parse_utc
    >>> progress = ExecutionProgress("paper", parse_utc("2021-05-19T13:00:00Z"))
    >>> decode_instruction(instruction_message(progress).value) == progress
    True
    >>> decode_instruction(b'{"type": "progress"}')
    Traceback (most recent call last):
    ...
    core.errors.WireFormatError: malformed_order: orders.v1 record lacks 'account'
    """
    try:
        rec = orjson.loads(data)
    except orjson.JSONDecodeError as exc:
        raise WireFormatError("malformed_json", f"orders.v1 record is not valid JSON: {exc}") from None
    if not isinstance(rec, dict):
        raise WireFormatError("malformed_order", f"orders.v1 record is not an object: {str(rec)[:80]}")
    kind = rec.get("type")
    try:
        if kind == "progress":
            return ExecutionProgress(str(rec["account"]), from_epoch_us(int(rec["ts"])))
        if kind == "cancel_all":
            command = CancelAllOrders(
                str(rec["account"]), str(rec["reason"]), from_epoch_us(int(rec["ts"])), bool(rec["keep_reduce_only"])
            )
            read_to = rec.get("read_to")
            if read_to is None:
                return command
            if not isinstance(read_to, dict):
                raise ValueError(f"read_to is not an object: {str(read_to)[:80]}")
            positions: dict[str, Position] = {}
            for key, value in read_to.items():
                ts_us, count = value  # ValueError/TypeError when not a pair
                if int(count) < 1:
                    raise ValueError(f"read_to[{key!r}] counts {count} events")
                positions[str(key)] = (from_epoch_us(int(ts_us)), int(count))
            return PacedCancelAll(command, positions)
        if kind is not None:
            raise WireFormatError("unknown_type", f"orders.v1 record type {kind!r} is not progress or cancel_all")
        return approved_order_from_record(rec)
    except KeyError as exc:
        raise WireFormatError("malformed_order", f"orders.v1 record lacks {exc.args[0]!r}") from None
    except (ValueError, TypeError) as exc:
        raise WireFormatError("malformed_order", f"orders.v1 record is invalid: {exc}") from None


def execution_message(record: OrderEvent | Fill, prefix: str = "") -> OutMessage:
    """``fills.v1`` carries both order events and fills, keyed by account, tagged by ``type``."""
    if isinstance(record, Fill):
        body = {"type": "fill", **fill_record(record)}
    else:
        body = {"type": "order_event", **order_event_record(record)}
    return OutMessage(prefix + FILLS_TOPIC, record.account.encode(), orjson.dumps(body))


def write_execution(target: Target, items: Sequence[ExecOutput]) -> None:
    """Store orders, order events and fills idempotently (natural keys; replays add nothing)."""
    placed = [i.order for i in items if isinstance(i, OrderPlaced)]
    events = [i for i in items if isinstance(i, OrderEvent)]
    fills = [i for i in items if isinstance(i, Fill)]
    with connected(target) as conn, conn.cursor() as cur:
        if placed:
            cur.executemany(
                "INSERT INTO orders (client_order_id, account, strategy, exchange, symbol, side, order_type, amount,"
                " limit_price, status, ts_created, ts_updated) VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s,"
                " 'pending_submit', %s, %s) ON CONFLICT (client_order_id) DO NOTHING",
                [_order_row(o) for o in placed],
            )
        if events:
            cur.executemany(
                "INSERT INTO order_events (client_order_id, seq, event, status_before, status_after, detail, ts_event)"
                " VALUES (%s, %s, %s, %s, %s, %s, %s) ON CONFLICT DO NOTHING",
                [
                    (
                        e.client_order_id,
                        e.seq,
                        e.kind.value,
                        (e.previous or e.status).value,
                        e.status.value,
                        orjson.dumps(order_event_record(e)).decode(),
                        e.ts_event,
                    )
                    for e in events
                ],
            )
            # The row shows the order after its newest event, newest by the order's own sequence
            # (``seq``): a redelivered older event changes nothing, and no clock decides (times
            # come from our clock and the venue's, which need not agree).
            cur.executemany(
                "UPDATE orders SET status = %s, venue_order_id = coalesce(%s, venue_order_id), ts_updated = %s"
                " WHERE client_order_id = %s"
                " AND %s >= (SELECT max(seq) FROM order_events WHERE client_order_id = %s)",
                [
                    (e.status.value, e.venue_order_id, e.ts_event, e.client_order_id, e.seq, e.client_order_id)
                    for e in events
                ],
            )
        if fills:
            cur.executemany(
                "INSERT INTO fills (exchange, fill_id, client_order_id, account, symbol, side, price, amount, fee,"
                " fee_currency, liquidity, ts_event) VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s)"
                " ON CONFLICT DO NOTHING",
                [
                    (
                        f.exchange,
                        f.fill_id,
                        f.client_order_id,
                        f.account,
                        f.symbol,
                        f.side.value,
                        f.price,
                        f.amount,
                        f.fee,
                        f.fee_currency,
                        f.liquidity.value,
                        f.ts_event,
                    )
                    for f in fills
                ],
            )


def _order_row(order: ApprovedOrder) -> tuple[Any, ...]:
    i = order.intent
    return (
        i.client_order_id,
        i.account,
        i.strategy,
        i.exchange,
        i.symbol,
        i.side.value,
        i.order_type.value,
        order.amount,
        order.price,
        i.ts_event,
        i.ts_event,
    )
