"""The trading dataflow: market data in, orders out, through every stage, the same in every mode.

Two stateful steps carry the whole decision path, each a plain class Bytewax snapshots:

- :class:`InstrumentLogic`, keyed by ``exchange:SYMBOL``: the per-event contracts (ordering,
  duplicates; bad records become dead letters citing their bytes), the feature engine, then every
  strategy on each closed bar. It emits, in order, the market event itself, the feature vectors
  it closed and the signals they raised.
- :class:`AccountLogic`, keyed by account: the risk engine and the order manager on its venue.
  Market events move the venue and the marks (and feed the staleness, equity and drawdown
  breakers); a signal is sized into an intent, judged by the gate, and only an approved order is
  submitted; fills go straight back into the portfolio the next intent is judged against.

Why one account step holds both the gate and the manager: the gate must judge every intent
against the portfolio as it stands after every earlier fill, and a paper fill must come from the
market data that follows the order, not the data that happened to be batched with it. Keeping
market events and signals on one ordered stream into one step makes both true by construction,
so a backtest is deterministic and a paper run over the same events gives the same orders.

Modes (:class:`Mode`) change only the edges: ``backtest`` (replayed files, event-time clock, paper
venue), ``paper`` (live data, paper venue), ``shadow`` (live data; approved orders are published to
the shadow topic and never submitted), ``live`` (the ccxt venue, refused without the explicit
setting and keys; see :mod:`execution.ccxt_venue`).
"""

from __future__ import annotations

import copy
import logging
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from enum import StrEnum
from typing import Any

import bytewax.operators as op
from bytewax.dataflow import Stream
from bytewax.operators import StatefulBatchLogic

from core.clock import Clock, ManualClock
from core.deadletter import DeadLetter
from core.events import BookDelta, BookSnapshot, Candle, MarketEvent, Quote, Side, Trade
from core.fills import Fill, OrderEvent
from core.money import quantize_down
from core.orders import (
    ApprovedOrder,
    CancelAllOrders,
    DenialReason,
    KillSwitch,
    OrderDenied,
    OrderIntent,
    PauseStrategy,
    ResetBreaker,
    ResumeStrategy,
    Signal,
    TradingState,
)
from core.symbols import timeframe_seconds
from core.wire import encode, topic_for
from execution.manager import OrderManager
from execution.paper import PaperVenue
from execution.portfolio import Portfolio
from execution.remote import RemoteExecution
from execution.venue import Venue, VenueCapabilities
from features.engine import FeatureEngine
from features.operators import EngineReject
from features.schema import FeatureVector
from flows.control import ALL_ACCOUNTS
from flows.dlq import Inbound, dead_letter
from flows.event_merge import EventTimeMerge
from flows.execution import ExecutionProgress, OrderPlaced, PacedCancelAll, Position, next_position
from flows.features import FEATURES_TOPIC, rejects_to_dead_letters
from flows.metrics import (
    BREAKER_OPEN,
    DRAWDOWN,
    DRAWDOWN_LIMIT,
    EQUITY,
    EVENTS,
    EXPOSURE,
    FILL_NOTIONAL,
    FILLS,
    LAST_EVENT_TIME,
    ORDER_TRANSITIONS,
    PNL,
    RISK_DECISIONS,
    RISK_STATE,
    STAGE_LATENCY,
    export_venue_calls,
    instrument_label,
)
from flows.models import rejects_to_dead_letters as models_dead_letters
from flows.risk_step import route_to_accounts as risk_routes
from flows.snapshots import frozen
from flows.store import Decoded
from models.config import ModelsConfig
from models.engine import InstrumentModels, RejectedVector
from models.records import DriftEvent, Prediction, ScoreRecord
from models.strategy import Strategy
from quality.contracts import KeyContracts, check_event
from risk.config import RiskLimits
from risk.decisions import DecisionKind, RiskDecision, record
from risk.engine import RiskEngine
from risk.gate import decision_id
from risk.market import InstrumentRules, MarketView
from risk.sizing import propose, propose_amount

log = logging.getLogger(__name__)

EPOCH_START = datetime(1970, 1, 1, tzinfo=UTC)
#: The routing key of the instrument step when it runs every instrument in input order.
ORDERED_KEY = "__all_instruments__"
#: How often (event time) an account's equity is sampled when bars do not set the pace.
EQUITY_SAMPLE_EVERY = timedelta(minutes=1)


class Mode(StrEnum):
    """How the flow trades; only the source, the clock and the venue differ."""

    BACKTEST = "backtest"
    PAPER = "paper"
    SHADOW = "shadow"
    TESTNET = "testnet"
    LIVE = "live"


@dataclass(frozen=True, slots=True)
class EquitySample:
    """One account's equity at one moment of event time (the report's equity curve)."""

    account: str
    ts: datetime
    equity: Decimal
    cash: Decimal
    gross_exposure: Decimal
    net_exposure: Decimal
    realized_pnl: Decimal
    unrealized_pnl: Decimal
    peak_equity: Decimal
    drawdown: Decimal


@dataclass(frozen=True, slots=True)
class ShadowOrder:
    """An approved order that shadow mode published instead of submitting."""

    order: ApprovedOrder


InstrumentOut = (
    MarketEvent
    | FeatureVector
    | Signal
    | Prediction
    | ScoreRecord
    | DriftEvent
    | DeadLetter
    | KillSwitch
    | ResetBreaker
    | PauseStrategy
    | ResumeStrategy
)
StrategyCommand = PauseStrategy | ResumeStrategy
AccountIn = (
    MarketEvent | Signal | KillSwitch | ResetBreaker | StrategyCommand | Fill | OrderEvent | FeatureVector | Prediction
)
AccountOut = (
    RiskDecision
    | ApprovedOrder
    | OrderPlaced
    | OrderEvent
    | Fill
    | EquitySample
    | ShadowOrder
    | PacedCancelAll
    | ExecutionProgress
)


# ----------------------------------------------------------------------------------------------
# Per instrument: contracts, features, strategies


@dataclass(frozen=True)
class InstrumentSetup:
    """What every instrument's step is built with."""

    timeframe: str
    bars_from: str
    strategies: Callable[[], Sequence[Strategy]]
    known_keys: frozenset[str] = frozenset()
    #: The online models (delayed labels, prequential scores, drift) whose predictions the
    #: strategies read; ``models=()`` runs the strategies alone (the cheap path backtests use).
    models: ModelsConfig = field(default_factory=lambda: ModelsConfig(models=()))
    #: Signals before this time are not traded (a walk-forward fold's training window: the
    #: features, models and strategies warm up on it, the account does not trade it).
    trade_from: datetime | None = None
    #: The features to compute (None: all 39). Backtests name only what their strategies read;
    #: flows that publish vectors compute them all.
    features: frozenset[str] | None = None
    max_backwards: timedelta = timedelta(0)
    dedup_window: int = 10_000
    #: ``True``: every instrument in one step, in input order (a backtest's merged replay: the
    #: account then sees all instruments in event time). ``False``: one step per instrument, spread
    #: over workers (live data, where each instrument's order is all that is defined).
    ordered: bool = False


class InstrumentState:
    """Everything one instrument's step remembers (part of the recovery snapshot)."""

    def __init__(self, key: str, setup: InstrumentSetup) -> None:
        self.contracts = KeyContracts(setup.max_backwards, setup.dedup_window)
        self.engine = FeatureEngine(
            setup.timeframe,
            bars_from=setup.bars_from,  # type: ignore[arg-type]
            features=setup.features,
        )
        self.models = InstrumentModels(key, setup.models, setup.strategies())


def _origin(event: MarketEvent) -> Inbound:
    """The v1 bytes a replayed event would have had on its topic (cited by its dead letter)."""
    return Inbound(topic_for(event), -1, -1, event.key.encode(), encode(event))


class InstrumentLogic(StatefulBatchLogic[Any, InstrumentOut, "InstrumentStates"]):
    """Contracts, then the feature engine, then the strategies, in input order; one state per
    instrument (one instrument per key, or all of them under one key when ``ordered``)."""

    def __init__(
        self, setup: InstrumentSetup, resume: InstrumentStates | None, wall_clock: Clock | None = None
    ) -> None:
        self._setup = setup
        self._wall = wall_clock
        self._states: InstrumentStates = resume if resume is not None else {}
        # Dead letters are stamped with event time (the newest ts_recv seen), so replays are repeatable.
        self._clock = ManualClock(EPOCH_START)

    def _state(self, key: str) -> InstrumentState:
        state = self._states.get(key)
        if state is None:
            state = self._states[key] = InstrumentState(key, self._setup)
        return state

    def on_batch(self, values: list[MarketEvent | Decoded | DeadLetter]) -> tuple[list[InstrumentOut], bool]:
        out: list[InstrumentOut] = []
        known = self._setup.known_keys
        clock = self._clock
        for item in values:
            if isinstance(item, DeadLetter | KillSwitch | ResetBreaker | PauseStrategy | ResumeStrategy):
                out.append(item)  # commands scripted into a replay keep their place in it
                continue
            if isinstance(item, Decoded):
                event, origin = item.event, item.origin
            else:
                event, origin = item, None
                problem = check_event(event, known)
                if problem is not None:
                    out.append(dead_letter("contracts", problem.reason, problem.detail, _origin(event), clock))
                    continue
            clock.set(event.ts_recv)
            state = self._state(event.key)
            violation = state.contracts.check(event)
            if violation is not None:
                cited = origin if origin is not None else _origin(event)
                out.append(dead_letter("contracts", violation.reason, violation.detail, cited, clock))
                continue
            out.append(event)
            rejects: list[EngineReject] = []
            refused: list[RejectedVector] = []
            for result in state.engine.update(event):
                if isinstance(result, FeatureVector):
                    out.append(result)
                    _models(state, result, out, refused, self._setup.trade_from)
                else:
                    rejects.append(result)
            if rejects:
                out.extend(rejects_to_dead_letters(rejects, "", clock))
            if refused:
                out.extend(models_dead_letters(refused, FEATURES_TOPIC, clock))
        EVENTS.labels("instrument", "ok").inc(len(values))
        self._freshness(values)
        return out, StatefulBatchLogic.RETAIN

    def _freshness(self, values: list[Any]) -> None:
        """Data freshness per instrument and the receive-to-decision latency, once per batch."""
        newest: dict[str, datetime] = {}
        last: MarketEvent | None = None
        for item in values:
            event = item.event if isinstance(item, Decoded) else item
            if isinstance(event, Trade | Candle | Quote | BookSnapshot | BookDelta):
                newest[event.key] = event.ts_event
                last = event
        for key, ts in newest.items():
            LAST_EVENT_TIME.labels("trading", instrument_label(key)).set(ts.timestamp())
        if last is not None and self._wall is not None:
            STAGE_LATENCY.labels("trading").observe(max(0.0, (self._wall.now() - last.ts_recv).total_seconds()))

    def on_eof(self) -> tuple[list[InstrumentOut], bool]:
        out: list[InstrumentOut] = []
        refused: list[RejectedVector] = []
        for state in self._states.values():
            for vector in state.engine.flush():
                out.append(vector)
                _models(state, vector, out, refused, self._setup.trade_from)
        if refused:
            out.extend(models_dead_letters(refused, FEATURES_TOPIC, self._clock))
        return out, StatefulBatchLogic.RETAIN

    def snapshot(self) -> InstrumentStates:
        return frozen(self._states)  # pickled later by Bytewax: see flows.snapshots


InstrumentStates = dict[str, InstrumentState]


def _models(
    state: InstrumentState,
    vector: FeatureVector,
    out: list[Any],
    refused: list[RejectedVector],
    trade_from: datetime | None,
) -> None:
    """The models and strategies on one vector: predictions, scores, drift events and signals out."""
    for result in state.models.update(vector):
        if isinstance(result, RejectedVector):
            refused.append(result)
        elif not (trade_from is not None and isinstance(result, Signal) and result.ts_event < trade_from):
            out.append(result)


# ----------------------------------------------------------------------------------------------
# Per account: sizing, the risk gate, the order manager


@dataclass(frozen=True)
class AccountSetup:
    """One trading account: its limits, its venue's rules and its starting balances."""

    account: str
    limits: RiskLimits
    capabilities: VenueCapabilities
    balances: dict[str, Decimal]
    quote_currency: str = "USDT"
    mode: Mode = Mode.BACKTEST
    #: Builds the venue for live mode (a ccxt venue); paper, shadow and backtest use the paper venue.
    live_venue: Callable[[], Venue] | None = None
    #: Instruments whose records the account takes in event-time order across instruments (see
    #: :mod:`flows.event_merge`): the flow's instruments when they arrive on separate streams
    #: (Kafka partitions, workers, processes); empty when one ordered stream already gives the
    #: order (backtests) or there is one instrument.
    merge_keys: frozenset[str] = frozenset()
    #: The longest a record waits for the other instruments (wall time) before it goes anyway.
    merge_hold: timedelta = timedelta(milliseconds=250)
    #: Execution runs in its own process (``flows.execution_run``): approved orders, cancel-alls and
    #: the account's progress go out on ``orders.v1``, and the portfolio is kept from the order
    #: events and fills that come back on ``fills.v1`` (:class:`~execution.remote.RemoteExecution`).
    remote_execution: bool = False


class _VenueClock:
    """The account's clock: the paper venue's event time in replays, the wall clock live."""

    def __init__(self, venue: PaperVenue | None, wall: Clock | None) -> None:
        self._venue = venue
        self._wall = wall

    def now(self) -> datetime:
        if self._venue is not None:
            return self._venue.now()
        assert self._wall is not None
        return self._wall.now()


class _EventClock:
    """The account's clock when execution runs elsewhere: the time of the newest market event the
    account applied (the wall clock before the first), as the paper venue's clock is in-process. An
    order's decision time is then the market time it was decided at, which is what the execution
    process paces its market data by."""

    def __init__(self, wall: Clock) -> None:
        self._wall = wall
        self.newest: datetime | None = None

    def now(self) -> datetime:
        return self.newest if self.newest is not None else self._wall.now()

    def advance(self, ts: datetime) -> None:
        if self.newest is None or ts > self.newest:
            self.newest = ts


class AccountState:
    """One account's gate, order manager, venue and market views (the recovery snapshot)."""

    def __init__(self, setup: AccountSetup, wall_clock: Clock) -> None:
        cash = setup.balances.get(setup.quote_currency, Decimal(0))
        self.venue_name = setup.capabilities.exchange
        self.remote: RemoteExecution | None = None
        self.event_clock: _EventClock | None = None
        #: The newest market time already published as progress on ``orders.v1`` (remote execution).
        self.progress_sent: datetime | None = None
        if setup.remote_execution:
            self.paper: PaperVenue | None = None
            self.event_clock = _EventClock(wall_clock)
            self.clock: _VenueClock | _EventClock = self.event_clock
            self.remote = RemoteExecution(Portfolio(setup.account, cash, setup.quote_currency, curve=0))
            self.engine = RiskEngine(setup.account, setup.limits, self.clock)
            self.manager: OrderManager | RemoteExecution = self.remote
            self._init_views()
            return
        if setup.mode in (Mode.LIVE, Mode.TESTNET):
            if setup.live_venue is None:
                raise ValueError("live mode needs a live venue factory (execution.ccxt_venue.LiveCcxtVenue)")
            venue: Venue = setup.live_venue()
            self.paper = None
            self.clock = _VenueClock(None, wall_clock)
            timer: Callable[[], float] | None = time.monotonic  # venue round trips, in wall seconds
        else:
            self.paper = PaperVenue(setup.capabilities, setup.balances)
            venue = self.paper
            self.clock = _VenueClock(self.paper, None)
            timer = None  # the paper venue answers in event time: round trips of zero
        self.engine = RiskEngine(setup.account, setup.limits, self.clock)
        # Equity is recorded as samples (EquitySample, one per bar), not as the portfolio's own curve.
        self.manager = OrderManager(venue, Portfolio(setup.account, cash, curve=0), clock=self.clock, timer=timer)
        self._init_views()

    def _init_views(self) -> None:
        # The newest market of each instrument, as (exchange, symbol, price, rules, as_of); the gate's
        # MarketView is built from it when a signal needs one (most events never meet a signal).
        self.markets: dict[str, tuple[str, str, Decimal, InstrumentRules, datetime]] = {}
        self.next_sample: datetime | None = None
        self.realized = Decimal(0)
        # Market-data times not yet shown to the staleness breaker, and the equity it saw last:
        # the breakers are settled before every decision and at the end of each batch, not on
        # every event (see AccountLogic._settle).
        self.pending_md: dict[str, datetime] = {}
        # Likewise the newest feature-vector and prediction times per instrument, for the
        # stale-features/model breaker.
        self.pending_features: dict[str, datetime] = {}
        self.pending_predictions: dict[str, datetime] = {}
        self.observed_equity: Decimal | None = None
        self.merge: EventTimeMerge | None = None
        #: Time of the newest market event of each instrument put into the merge (the time of the
        #: records derived from it).
        self.merge_time: dict[str, datetime] = {}
        #: Strategies an operator paused (``bot4 pause``, the console), with the command that did it.
        self.paused: dict[str, PauseStrategy] = {}
        #: Remote execution: how far each instrument's market data has been applied (the position
        #: of its newest event), sent with every cancel-all so execution cancels after that market.
        self.applied_md: dict[str, Position] = {}

    @property
    def live(self) -> bool:
        """True when the order manager works on an exchange (not the paper venue, not remote)."""
        return self.paper is None and self.remote is None

    def __getstate__(self) -> dict[str, Any]:
        state = dict(self.__dict__)
        if isinstance(self.manager, OrderManager) and self.live:
            # An exchange connection is not state: it holds a client, locks and the API keys,
            # none of which belongs in a recovery file. The snapshot keeps the manager's orders,
            # fills and portfolio; a restored account reconnects and reconciles (AccountLogic).
            manager = copy.copy(self.manager)
            manager.venue = None  # type: ignore[assignment]
            state["manager"] = manager
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        # Snapshots written before an attribute existed restore with its empty default.
        for name, default in _STATE_DEFAULTS.items():
            state.setdefault(name, default())
        self.__dict__.update(state)


#: Attributes added to AccountState over time and their defaults for older snapshots.
_STATE_DEFAULTS: dict[str, Callable[[], Any]] = {
    "remote": lambda: None,
    "event_clock": lambda: None,
    "progress_sent": lambda: None,
    "pending_features": dict,
    "pending_predictions": dict,
    "merge": lambda: None,
    "merge_time": dict,
    "paused": dict,
    "applied_md": dict,
    "venue_name": lambda: "unknown",
}


def _bar_end(candle: Candle) -> datetime:
    return candle.ts_event + timedelta(seconds=timeframe_seconds(candle.timeframe))


class AccountLogic(StatefulBatchLogic[tuple[str, AccountIn], AccountOut, AccountState]):
    """One account's decisions and executions; see the module docstring."""

    def __init__(self, setups: dict[str, AccountSetup], wall_clock: Clock, resume: AccountState | None) -> None:
        self._next_gauges = 0.0
        self._setups = setups
        self._wall = wall_clock
        self._state = resume

    def _state_for(self, account: str) -> AccountState:
        if self._state is None:
            setup = self._setups[account]
            self._state = AccountState(setup, self._wall)
            if setup.merge_keys:
                self._state.merge = EventTimeMerge(setup.merge_keys, setup.merge_hold)
            DRAWDOWN_LIMIT.labels(account).set(float(setup.limits.breakers.max_drawdown_pct))
        elif isinstance(self._state.manager, OrderManager) and self._state.live and self._state.manager.venue is None:
            self._reconnect(self._state, self._setups[account])
        return self._state

    @staticmethod
    def _reconnect(state: AccountState, setup: AccountSetup) -> None:
        """After a restart from a snapshot: a new exchange connection, then the manager's orders
        reconciled with the exchange's (what filled or was canceled while we were away)."""
        if setup.live_venue is None:
            raise ValueError("live mode needs a live venue factory (execution.ccxt_venue.LiveCcxtVenue)")
        manager = state.manager
        assert isinstance(manager, OrderManager)
        manager.venue = setup.live_venue()
        report = manager.reconcile()
        log.warning(
            "account %s reconnected to %s after a restart: %d orders checked, changed %s, unknown at the venue %s,"
            " %d fills applied",
            setup.account,
            setup.capabilities.exchange,
            report.checked,
            list(report.changed),
            list(report.unknown_at_venue),
            report.fills_applied,
        )

    def on_batch(self, values: list[tuple[str, AccountIn]]) -> tuple[list[AccountOut], bool]:
        out: list[AccountOut] = []
        for account, item in values:
            state = self._state_for(account)
            merge = state.merge
            if merge is not None and isinstance(item, MarketEvent | FeatureVector | Prediction | Signal):
                key = item.key
                if key in merge.keys:
                    if isinstance(item, MarketEvent):
                        ts = _bar_end(item) if isinstance(item, Candle) else item.ts_event
                        state.merge_time[key] = ts
                    else:
                        ts = state.merge_time.get(key, item.ts_event)
                    merge.push(key, ts, item, self._wall.now())
                    continue
            self._one(state, self._setups[account], item, out)
        EVENTS.labels("account", "ok").inc(len(values))
        return self._release(out, everything=False), StatefulBatchLogic.RETAIN

    def _release(self, out: list[AccountOut], *, everything: bool) -> list[AccountOut]:
        """Process what the merge lets go, then the end-of-batch work (breakers, progress, metrics)."""
        state = self._state
        if state is None:
            return out
        if state.merge is not None:
            setup = self._setups[state.manager.portfolio.account]
            for item in state.merge.ready(self._wall.now(), everything=everything):
                self._one(state, setup, item, out)
        if state.live or everything:
            # On the wall clock the breakers are judged at every batch (and tick) as time passes.
            # In event time they are judged where the records put them (every decision, command
            # and equity change, and the first market event once time alone has made a change
            # due, see _one), and at the end of a drain: a batch's end falls wherever the source's
            # fetches did, and a cooldown or a staleness judged there made the state_changed
            # records differ between two runs of the same data (the scale-out and outage chaos tests).
            self._settle(state, out)
        self._progress(state, out)
        _export_counters(out)
        now = time.monotonic()
        if now >= self._next_gauges:
            _export_gauges(state)
            self._next_gauges = now + GAUGE_REFRESH_S
        return out

    def notify_at(self) -> datetime | None:
        """When a record held for the other instruments must go anyway (see :mod:`flows.event_merge`),
        and, for an account on an exchange (wall clock), the next breaker tick: a feed that stops
        sends no record, and its staleness must still make the account REDUCING (and cooldowns end)
        without waiting for the next record."""
        state = self._state
        if state is None:
            return None
        deadline = state.merge.next_deadline() if state.merge is not None else None
        if state.live:
            tick = self._wall.now() + LIVE_BREAKER_TICK
            if deadline is None or tick < deadline:
                deadline = tick
        return deadline

    def on_notify(self) -> tuple[list[AccountOut], bool]:
        return self._release([], everything=False), StatefulBatchLogic.RETAIN

    def _one(self, state: AccountState, setup: AccountSetup, item: AccountIn, out: list[AccountOut]) -> None:
        """Apply one record to the account."""
        account = setup.account
        if isinstance(item, Signal):
            self._settle(state, out)
            self._on_signal(state, setup, item, out)
        elif isinstance(item, KillSwitch):
            self._settle(state, out)
            self._apply(state, state.engine.kill(item), out)
        elif isinstance(item, ResetBreaker):
            self._settle(state, out)
            try:
                self._apply(state, state.engine.reset(item), out)
            except ValueError as exc:
                log.warning("account %s: reset of %r refused: %s", account, item.breaker, exc)
        elif isinstance(item, PauseStrategy):
            state.paused[item.strategy] = item
            log.info("account %s: strategy %s paused by %s: %s", account, item.strategy, item.requested_by, item.reason)
        elif isinstance(item, ResumeStrategy):
            if state.paused.pop(item.strategy, None) is None:
                log.warning("account %s: resume of %s, which is not paused", account, item.strategy)
            else:
                log.info(
                    "account %s: strategy %s resumed by %s: %s",
                    account,
                    item.strategy,
                    item.requested_by,
                    item.reason,
                )
        elif isinstance(item, Fill | OrderEvent):
            self._on_report(state, item, out)
        elif isinstance(item, FeatureVector):
            state.pending_features[item.key] = item.ts_event
        elif isinstance(item, Prediction):
            state.pending_predictions[item.key] = item.ts_event
        else:
            if not state.live:
                # The previous market event's records (its vectors, predictions, signals) are all
                # in: judge what time alone has made due by then, at that event's time, so an
                # event-time run's breakers move at the same records however its batches fall.
                due = state.engine.machine.next_due()
                if due is not None and state.clock.now() >= due:
                    self._settle(state, out)
            self._on_market(state, setup, item, out)
        self._drain(state, out)

    # -- market data ---------------------------------------------------------------------------

    def _on_market(self, state: AccountState, setup: AccountSetup, event: MarketEvent, out: list[AccountOut]) -> None:
        paper = state.paper
        symbol = event.symbol
        as_of = event.ts_event
        if isinstance(event, Candle):
            if not event.closed:
                return
            as_of = _bar_end(event)
            if paper is not None:
                paper.on_candle(event)
        if state.event_clock is not None:
            state.event_clock.advance(as_of)
            state.applied_md[event.key] = next_position(state.applied_md.get(event.key), as_of)
        elif paper is not None:
            if isinstance(event, Trade):
                paper.on_trade(event)
            elif isinstance(event, BookSnapshot):
                paper.on_book_snapshot(event)
            elif isinstance(event, BookDelta):
                paper.on_book_delta(event)
            elif isinstance(event, Quote):
                paper.on_quote(event)
        state.manager.pump()
        rules = setup.capabilities.rules_for(symbol)
        if rules is None or event.exchange != setup.capabilities.exchange:
            return
        price = paper.mark_price(symbol) if paper is not None else _price_of(event)
        if price is None:
            return
        state.manager.portfolio.mark(event.exchange, symbol, price, as_of)
        state.markets[event.key] = (event.exchange, symbol, price, rules, as_of)
        state.pending_md[event.key] = as_of
        if isinstance(event, Candle) or state.next_sample is None or as_of >= state.next_sample:
            self._sample(state, setup, as_of, out)

    def _settle(self, state: AccountState, out: list[AccountOut]) -> None:
        """Bring the breakers up to date: the newest market-data time of every instrument seen since
        the last call, then the clock (cooldowns end, staleness is judged). Runs before every
        decision and command, on every equity change and, on the wall clock, at the end of each
        batch, so no decision sees a stale state; the
        staleness breaker keeps only the newest time per instrument, so nothing is lost by not
        calling it on every event."""
        machine = state.engine.machine
        engine = state.engine
        settled = False
        if state.pending_md or state.pending_features or state.pending_predictions:
            market, features, predictions = state.pending_md, state.pending_features, state.pending_predictions
            state.pending_md, state.pending_features, state.pending_predictions = {}, {}, {}
            self._apply(state, engine.observe(machine.on_data(market, features, predictions)), out)
            settled = True
        # Venue error rate, round trips, disconnects: only calls that tell something (a returned
        # poll, made on every market event, does not; see VenueCallOutcome.is_evidence).
        outcomes = [o for o in state.manager.drain_outcomes() if o.is_evidence]
        if outcomes:
            self._apply(state, engine.observe(machine.on_venue_outcomes(outcomes)), out)
            export_venue_calls(state.venue_name, outcomes)
            settled = True
        if not settled:
            self._apply(state, engine.observe(machine.tick()), out)

    def _sample(self, state: AccountState, setup: AccountSetup, ts: datetime, out: list[AccountOut]) -> None:
        portfolio = state.manager.portfolio
        equity = portfolio.equity
        if equity != state.observed_equity:  # the drawdown and daily-loss breakers see every change
            self._settle(state, out)
            self._apply(state, state.engine.observe(state.engine.machine.on_equity(equity)), out)
            state.observed_equity = equity
        out.append(
            EquitySample(
                setup.account,
                ts,
                equity,
                portfolio.cash,
                portfolio.gross_exposure,
                portfolio.market_value,
                portfolio.realized_pnl,
                portfolio.unrealized_pnl,
                portfolio.peak_equity,
                portfolio.drawdown,
            )
        )
        state.next_sample = ts + EQUITY_SAMPLE_EVERY

    # -- signals -------------------------------------------------------------------------------

    def _on_signal(self, state: AccountState, setup: AccountSetup, signal: Signal, out: list[AccountOut]) -> None:
        """Every signal ends in a risk decision: judged by the gate, or denied here when it cannot
        become an order (no market yet, nothing to sell, sized to nothing)."""
        paused = state.paused.get(signal.strategy)
        if paused is not None and signal.side is Side.BUY:
            # Paused: no new position. Exits still go to the gate, so a paused strategy's open
            # positions can be closed rather than left without their exit.
            detail = f"strategy {signal.strategy} paused by {paused.requested_by}: {paused.reason}"
            out.append(record(_denied(signal, state, "strategy_paused", detail), state.engine.state))
            return
        market = _market_view(state, signal.key)
        intent = self._intent(state, setup, signal, market)
        if isinstance(intent, OrderDenied):
            out.append(record(intent, state.engine.state))
            return
        assert market is not None
        outcome, decision = state.engine.evaluate(intent, state.manager.view(), market)
        out.append(decision)
        if not isinstance(outcome, ApprovedOrder):
            return
        out.append(outcome)
        if setup.mode is Mode.SHADOW:
            out.append(ShadowOrder(outcome))
            return
        result = state.manager.submit(outcome)
        if not result.duplicate and state.remote is None:  # remote: the execution process stores it
            out.append(OrderPlaced(outcome))

    def _intent(
        self, state: AccountState, setup: AccountSetup, signal: Signal, market: MarketView | None
    ) -> OrderIntent | OrderDenied:
        portfolio = state.manager.portfolio
        if market is None:
            return _denied(signal, state, "market_unknown", f"no market data for {signal.key} yet")
        rules = market.rules
        if signal.side is Side.SELL:
            holding = portfolio.holdings().get(signal.key)
            held = Decimal(0) if holding is None else holding.amount
            amount = quantize_down(held, rules.amount_step)
            if amount <= 0:
                return _denied(signal, state, "nothing_to_sell", f"exit signal while holding {held} of {signal.key}")
            return propose(signal, amount)
        equity = portfolio.equity
        amount = propose_amount(signal, equity=equity, price=market.reference_price, limits=setup.limits.sizing)
        amount = quantize_down(amount, rules.amount_step)
        if amount <= 0:
            return _denied(signal, state, "sized_to_zero", f"sizing gave less than one step at equity {equity:.2f}")
        return propose(signal, amount)

    # -- records -------------------------------------------------------------------------------

    def _apply(self, state: AccountState, decisions: Iterable[RiskDecision], out: list[AccountOut]) -> None:
        for decision in decisions:
            out.append(decision)
            if decision.kind is DecisionKind.CANCEL_ALL and isinstance(decision.event, CancelAllOrders):
                state.manager.cancel_all(decision.event)
                if state.remote is not None:  # the instruction travels to execution on orders.v1
                    out.append(PacedCancelAll(decision.event, dict(state.applied_md)))

    # -- remote execution ----------------------------------------------------------------------

    def _on_report(self, state: AccountState, report: Fill | OrderEvent, out: list[AccountOut]) -> None:
        """An order event or fill back from the execution process (``fills.v1``)."""
        remote = state.remote
        if remote is None:
            log.warning("account %s: ignoring %s from fills.v1: execution runs in-process", report.account, report)
            return
        if isinstance(report, OrderEvent):
            remote.on_order_event(report)
        elif remote.on_fill(report):
            self._observe_realized(state, out)

    def _progress(self, state: AccountState, out: list[AccountOut]) -> None:
        """Tell execution how far in market time this account has decided, once per batch when it
        moved: execution applies market data to its venue only up to here, so a paper order is
        filled by the market that followed its decision, never by the market before it."""
        clock = state.event_clock
        if clock is None or clock.newest is None or clock.newest == state.progress_sent:
            return
        state.progress_sent = clock.newest
        out.append(ExecutionProgress(state.manager.portfolio.account, clock.newest))

    def _drain(self, state: AccountState, out: list[AccountOut]) -> None:
        records = state.manager.drain()
        if not records:
            return
        out.extend(records)
        self._observe_realized(state, out)

    def _observe_realized(self, state: AccountState, out: list[AccountOut]) -> None:
        """Feed the consecutive-losses and daily-loss breakers each realized PnL step."""
        realized = state.manager.portfolio.realized_pnl
        if realized != state.realized:
            closed = realized - state.realized
            state.realized = realized
            self._apply(state, state.engine.observe(state.engine.machine.on_trade_closed(closed)), out)

    def on_eof(self) -> tuple[list[AccountOut], bool]:
        out: list[AccountOut] = []
        if self._state is not None:
            if self._state.merge is not None and len(self._state.merge):
                out = self._release(out, everything=True)  # the input ended: nothing earlier can come
            _export_gauges(self._state)  # the final figures, whatever the refresh interval skipped
        return out, StatefulBatchLogic.RETAIN

    @property
    def state(self) -> AccountState | None:
        """The live account state (tests and metrics read it; recovery gets :meth:`snapshot`)."""
        return self._state

    def snapshot(self) -> AccountState:
        assert self._state is not None, "snapshot is only taken after a batch"
        return frozen(self._state)  # pickled later by Bytewax: see flows.snapshots


def _market_view(state: AccountState, key: str) -> MarketView | None:
    """The gate's view of ``key``: the newest price, and the book's best levels when it is usable."""
    newest = state.markets.get(key)
    if newest is None:
        return None
    exchange, symbol, price, rules, as_of = newest
    bid = ask = None
    if state.paper is not None:
        book = state.paper.book(symbol)
        if book.usable:
            bid, ask = book.bids.best(), book.asks.best()
    return MarketView(
        exchange, symbol, price, rules, as_of, None if bid is None else bid[0], None if ask is None else ask[0]
    )


#: How often an account trading on an exchange judges its breakers when no record arrives (wall time).
LIVE_BREAKER_TICK = timedelta(seconds=1)
#: Gauges are refreshed at most this often (wall time); Prometheus scrapes every few seconds, and a
#: live flow's batches are small, so refreshing them per batch would cost more than the decision.
GAUGE_REFRESH_S = 0.25


def _export_counters(records: list[AccountOut]) -> None:
    """Decisions by outcome and reason, order transitions and fills (per record: they are rare)."""
    for record_ in records:
        if isinstance(record_, RiskDecision):
            if record_.kind is DecisionKind.APPROVED:
                RISK_DECISIONS.labels("approved", "none").inc()
            elif record_.kind is DecisionKind.DENIED:
                for reason in record_.reasons:
                    RISK_DECISIONS.labels("denied", reason.code).inc()
        elif isinstance(record_, OrderEvent):
            ORDER_TRANSITIONS.labels(record_.exchange, record_.status.value).inc()
        elif isinstance(record_, Fill):
            FILLS.labels(record_.exchange, record_.side.value).inc()
            FILL_NOTIONAL.labels(record_.exchange).inc(float(record_.price * record_.amount))


def _export_gauges(state: AccountState) -> None:
    """Risk state, breakers, equity, drawdown, PnL and exposure of the account."""
    account = state.manager.portfolio.account
    current = state.engine.state
    for trading_state in TradingState:
        RISK_STATE.labels(account, trading_state.value).set(1 if trading_state is current else 0)
    for name, breaker in state.engine.machine.breakers.items():
        BREAKER_OPEN.labels(account, name).set(0 if breaker.status.value == "closed" else 1)
    portfolio = state.manager.portfolio
    EQUITY.labels(account).set(float(portfolio.equity))
    DRAWDOWN.labels(account).set(float(portfolio.drawdown))
    PNL.labels(account, "realized").set(float(portfolio.realized_pnl))
    PNL.labels(account, "unrealized").set(float(portfolio.unrealized_pnl))
    for key, holding in portfolio.holdings().items():
        EXPOSURE.labels(account, instrument_label(key)).set(float(holding.amount * holding.mark))


def _denied(signal: Signal, state: AccountState, code: str, detail: str) -> OrderDenied:
    """A signal that cannot become an order, denied with its reason (a zero-amount intent cites it)."""
    intent = propose(signal, Decimal(0))
    now = state.clock.now()
    return OrderDenied(intent, (DenialReason(code, detail),), decision_id(intent.client_order_id, now), now)


def _price_of(event: MarketEvent) -> Decimal | None:
    if isinstance(event, Trade):
        return event.price
    if isinstance(event, Candle):
        return event.close
    if isinstance(event, Quote):
        return (event.bid_price + event.ask_price) / 2
    return None


def limits_for_bars(limits: RiskLimits, bars_from: str, timeframe: str) -> RiskLimits:
    """The limits the gate runs with. A candle feed is only as fresh as its timeframe, so with bars
    from candles the market-data age limits are raised to two bars where they are lower (limits of
    seconds, right for ticks, would halt every candle feed at its first bar).

    Features and model predictions come once per bar whatever the bars are built from, so their
    age limit is raised to two bars too.

    >>> limits_for_bars(RiskLimits(), "candles", "1h").max_market_data_age
    datetime.timedelta(seconds=7200)
    >>> limits_for_bars(RiskLimits(), "trades", "1h").breakers.features_max_age
    datetime.timedelta(seconds=7200)
    >>> limits_for_bars(RiskLimits(), "trades", "1m") == RiskLimits()
    True
    """
    two_bars = timedelta(seconds=2 * timeframe_seconds(timeframe))
    features_age = max(limits.breakers.features_max_age, two_bars)
    if bars_from != "candles":
        if features_age == limits.breakers.features_max_age:
            return limits
        return limits.model_copy(
            update={"breakers": limits.breakers.model_copy(update={"features_max_age": features_age})}
        )
    breakers = limits.breakers.model_copy(
        update={
            "market_data_max_age": max(limits.breakers.market_data_max_age, two_bars),
            "features_max_age": features_age,
        }
    )
    return limits.model_copy(
        update={"max_market_data_age": max(limits.max_market_data_age, two_bars), "breakers": breakers}
    )


# ----------------------------------------------------------------------------------------------
# The dataflow steps


def route_to_accounts(item: InstrumentOut, accounts: Sequence[str]) -> list[tuple[str, tuple[str, AccountIn]]]:
    """Signals and commands go to their account (``"*"`` commands to all); market events to every
    account (each has its own venue); vectors and dead letters to none."""
    if isinstance(item, Signal):
        return [(item.account, (item.account, item))] if item.account in accounts else []
    if isinstance(item, FeatureVector | Prediction):
        # Only their times matter to an account (the stale-features/model breaker).
        return [(a, (a, item)) for a in accounts]
    if isinstance(item, DeadLetter | ScoreRecord | DriftEvent):
        return []
    if isinstance(item, KillSwitch | ResetBreaker):
        return [kv for kv in risk_routes(item, accounts) if kv[0] in accounts]  # type: ignore[misc]
    if isinstance(item, PauseStrategy | ResumeStrategy):
        targets = accounts if item.account == ALL_ACCOUNTS else [a for a in accounts if a == item.account]
        return [(a, (a, replace(item, account=a))) for a in targets]
    if isinstance(item, Fill | OrderEvent):
        return [(item.account, (item.account, item))] if item.account in accounts else []
    return [(a, (a, item)) for a in accounts]


@dataclass(frozen=True)
class TradingOut:
    """The flow's streams: every stage's records, for the mode's sinks."""

    dead_letters: Stream[DeadLetter]
    vectors: Stream[FeatureVector]
    signals: Stream[Signal]
    account: Stream[AccountOut]
    #: Predictions, prequential scores and drift events of the online models.
    models: Stream[Prediction | ScoreRecord | DriftEvent]


def trading_steps(
    step_id: str,
    keyed: Stream[tuple[str, Any]],
    instrument: InstrumentSetup,
    accounts: Sequence[AccountSetup],
    wall_clock: Clock,
    *,
    commands: Stream[Any] | None = None,
) -> TradingOut:
    """Instrument step then account step, from events keyed by ``exchange:SYMBOL``; operator
    ``commands`` (the control topic) and, when execution runs in its own process, its order events
    and fills (``fills.v1``) join the account step directly."""
    by_account = {a.account: a for a in accounts}
    names = list(by_account)
    if instrument.ordered:
        keyed = op.map(f"{step_id}_one_key", keyed, lambda kv: (ORDERED_KEY, kv[1]))
    per_instrument = op.stateful_batch(
        f"{step_id}_instrument", keyed, lambda resume: InstrumentLogic(instrument, resume, wall_clock)
    )
    items = op.flat_map_batch(f"{step_id}_items", per_instrument, lambda batch: [v for _, v in batch])
    to_accounts: Stream[Any] = items if commands is None else op.merge(f"{step_id}_commands", items, commands)
    routed = op.flat_map_batch(
        f"{step_id}_route", to_accounts, lambda batch: [kv for item in batch for kv in route_to_accounts(item, names)]
    )
    judged = op.stateful_batch(
        f"{step_id}_account", routed, lambda resume: AccountLogic(by_account, wall_clock, resume)
    )
    account = op.flat_map_batch(f"{step_id}_account_out", judged, lambda batch: [v for _, v in batch])
    dead = op.flat_map_batch(f"{step_id}_dlq", items, lambda b: [v for v in b if isinstance(v, DeadLetter)])
    vectors = op.flat_map_batch(f"{step_id}_vectors", items, lambda b: [v for v in b if isinstance(v, FeatureVector)])
    signals = op.flat_map_batch(f"{step_id}_signals", items, lambda b: [v for v in b if isinstance(v, Signal)])
    models = op.flat_map_batch(
        f"{step_id}_models", items, lambda b: [v for v in b if isinstance(v, Prediction | ScoreRecord | DriftEvent)]
    )
    return TradingOut(dead, vectors, signals, account, models)
