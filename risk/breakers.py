"""Circuit breakers and the account's trading state machine (ACTIVE / REDUCING / HALTED).

A breaker is CLOSED (healthy), OPEN (tripped: it imposes its ``action`` state) or HALF_OPEN
(cooldown over: trading resumes on probation, the next observation closes it or trips it again).
A latched breaker (drawdown, kill switch) has no cooldown: it stays OPEN until a person resets it
with a reason. The account's state is the strictest state any breaker imposes; every change comes
back from the call that caused it as a :class:`~core.orders.TradingStateChanged`, and entering
REDUCING or HALTED also returns a :class:`~core.orders.CancelAllOrders` for the orders that could
add risk (the kill switch cancels everything). Time comes only from the injected clock.

>>> from decimal import Decimal
>>> from core.clock import ManualClock, parse_utc
>>> from risk.config import BreakerLimits
>>> clock = ManualClock(parse_utc("2021-05-19T00:00:00Z"))
>>> machine = RiskStateMachine("acct", BreakerLimits(), clock)
>>> machine.on_equity(Decimal("100000"))
()
>>> events = machine.on_equity(Decimal("84000"))
>>> events[0].new, machine.state
(<TradingState.HALTED: 'halted'>, <TradingState.HALTED: 'halted'>)
>>> sorted(name for name, b in machine.breakers.items() if b.status is BreakerStatus.OPEN)
['daily_loss', 'drawdown']
>>> from core.orders import ResetBreaker
>>> machine.reset(ResetBreaker("acct", "drawdown", "alice", "positions checked", clock.now()))[0].new
<TradingState.REDUCING: 'reducing'>
"""

from __future__ import annotations

import enum
import statistics
from collections import deque
from collections.abc import Callable, Iterable, Mapping
from datetime import date, datetime, timedelta
from decimal import Decimal

from core.clock import Clock
from core.orders import (
    CancelAllOrders,
    KillSwitch,
    ResetBreaker,
    TradingState,
    TradingStateChanged,
)
from risk.config import BreakerLimits
from risk.market import sane_number
from risk.venue_calls import VenueCallOutcome

#: What the state machine returns for execution and for risk.decisions.v1.
RiskEvent = TradingStateChanged | CancelAllOrders


class BreakerStatus(enum.StrEnum):
    CLOSED = "closed"
    OPEN = "open"
    HALF_OPEN = "half_open"


class Breaker:
    """Status, cooldown and probe logic shared by every breaker; subclasses add what they watch.

    ``cooldown`` None means latched: only :meth:`reset` closes it.
    """

    __slots__ = ("action", "cooldown", "name", "opened_at", "reason", "status")

    def __init__(self, name: str, action: TradingState, cooldown: timedelta | None) -> None:
        self.name = name
        self.action = action
        self.cooldown = cooldown
        self.status = BreakerStatus.CLOSED
        self.opened_at: datetime | None = None
        self.reason = ""

    @property
    def demand(self) -> TradingState:
        """The trading state this breaker imposes now."""
        return self.action if self.status is BreakerStatus.OPEN else TradingState.ACTIVE

    def trip(self, now: datetime, reason: str) -> None:
        self.status = BreakerStatus.OPEN
        self.opened_at = now
        self.reason = reason

    def close(self, reason: str) -> None:
        self.status = BreakerStatus.CLOSED
        self.opened_at = None
        self.reason = reason

    def tick(self, now: datetime) -> None:
        """Let time pass: after the cooldown an OPEN breaker turns HALF_OPEN and probes."""
        if (
            self.status is BreakerStatus.OPEN
            and self.cooldown is not None
            and self.opened_at is not None
            and now - self.opened_at >= self.cooldown
        ):
            self.status = BreakerStatus.HALF_OPEN
            self.reason = f"cooldown of {self.cooldown} over, probing"
            self._probe(now)

    def _probe(self, now: datetime) -> None:
        """Called on turning HALF_OPEN; by default the next observation is the probe."""
        del now

    def due(self) -> datetime | None:
        """The earliest time at which time alone (no new observation) can change this breaker:
        here, the end of an OPEN breaker's cooldown."""
        if self.status is BreakerStatus.OPEN and self.cooldown is not None and self.opened_at is not None:
            return self.opened_at + self.cooldown
        return None

    def settle(self, now: datetime) -> None:
        """Called after every observation (and tick) has been applied; by default nothing."""
        del now

    def reset(self, now: datetime, reason: str) -> None:
        """A person closes the breaker (also the only way out of a latched one)."""
        del now
        self.close(reason)


class DrawdownBreaker(Breaker):
    """HALTED when equity falls ``limit`` below its peak; latched until reset.

    A reset re-bases the peak at the latest equity, otherwise the breaker would trip again at once.
    """

    __slots__ = ("equity", "limit", "peak")

    def __init__(self, limit: Decimal) -> None:
        super().__init__("drawdown", TradingState.HALTED, None)
        self.limit = limit
        self.peak: Decimal | None = None
        self.equity: Decimal | None = None

    def observe(self, equity: Decimal, now: datetime) -> None:
        if not sane_number(equity) or equity <= 0:
            if self.status is not BreakerStatus.OPEN:
                self.trip(now, f"equity {equity} is not a finite number > 0")
            return
        self.equity = equity
        if self.peak is None or equity > self.peak:
            self.peak = equity
        drawdown = (self.peak - equity) / self.peak
        if self.status is not BreakerStatus.OPEN and drawdown >= self.limit:
            self.trip(
                now,
                f"drawdown {drawdown * 100:.2f}% from peak equity {self.peak} to {equity} "
                f"reached max_drawdown_pct {self.limit * 100}%",
            )

    def reset(self, now: datetime, reason: str) -> None:
        super().reset(now, reason)
        self.peak = self.equity


class DailyLossBreaker(Breaker):
    """REDUCING when equity falls ``limit`` below the UTC day's first equity; closes at the next day.

    No half-open probe: a new day is a new loss budget.
    """

    __slots__ = ("day", "limit", "start_equity")

    def __init__(self, limit: Decimal) -> None:
        super().__init__("daily_loss", TradingState.REDUCING, None)
        self.limit = limit
        self.day: date | None = None
        self.start_equity: Decimal | None = None

    def tick(self, now: datetime) -> None:
        if self.status is BreakerStatus.OPEN and self.opened_at is not None and now.date() > self.opened_at.date():
            self.close(f"new UTC day {now.date()}")

    def due(self) -> datetime | None:
        if self.status is BreakerStatus.OPEN and self.opened_at is not None:
            day = self.opened_at.replace(hour=0, minute=0, second=0, microsecond=0)
            return day + timedelta(days=1)
        return None

    def observe(self, equity: Decimal, now: datetime) -> None:
        if not sane_number(equity) or equity <= 0:
            return  # the drawdown breaker halts on a broken equity value
        if now.date() != self.day or self.start_equity is None or self.start_equity <= 0:
            self.day = now.date()
            self.start_equity = equity
        loss = (self.start_equity - equity) / self.start_equity
        if self.status is not BreakerStatus.OPEN and loss >= self.limit:
            self.trip(
                now,
                f"loss {loss * 100:.2f}% since the day's start equity {self.start_equity} reached "
                f"daily_loss_pct {self.limit * 100}%",
            )


class ConsecutiveLossesBreaker(Breaker):
    """REDUCING after ``limit`` losing trades in a row; after the cooldown the next closed trade
    is the probe: a win (or break-even) closes it, a loss trips it again."""

    __slots__ = ("count", "limit")

    def __init__(self, limit: int, cooldown: timedelta) -> None:
        super().__init__("consecutive_losses", TradingState.REDUCING, cooldown)
        self.limit = limit
        self.count = 0

    def observe(self, pnl: Decimal, now: datetime) -> None:
        loss = not sane_number(pnl) or pnl < 0
        if self.status is BreakerStatus.HALF_OPEN:
            if loss:
                self.trip(now, f"probe trade lost {pnl}")
            else:
                self.count = 0
                self.close(f"probe trade made {pnl}")
        elif self.status is BreakerStatus.CLOSED:
            self.count = self.count + 1 if loss else 0
            if self.count >= self.limit:
                self.trip(now, f"{self.count} losing trades in a row (max_consecutive_losses {self.limit})")
                self.count = 0


class StalenessBreaker(Breaker):
    """REDUCING while any watched source (market data per instrument, features, model) is older
    than ``max_age``. After the cooldown it probes: fresh data closes it, stale data trips it again."""

    __slots__ = ("last_seen", "max_age")

    def __init__(self, name: str, max_age: timedelta, cooldown: timedelta) -> None:
        super().__init__(name, TradingState.REDUCING, cooldown)
        self.max_age = max_age
        self.last_seen: dict[str, datetime] = {}

    def _stalest(self, now: datetime) -> tuple[str, timedelta] | None:
        """The oldest source beyond ``max_age``, or None when all are fresh."""
        worst: tuple[str, timedelta] | None = None
        for source, seen in self.last_seen.items():
            age = now - seen
            if age > self.max_age and (worst is None or age > worst[1]):
                worst = (source, age)
        return worst

    def settle(self, now: datetime) -> None:
        # Runs after the call's observation, so fresh data arriving just as the cooldown ends is
        # the successful probe rather than being judged stale a moment before it lands.
        stale = self._stalest(now)
        if stale is not None and self.status is not BreakerStatus.OPEN:
            source, age = stale
            self.trip(now, f"{source} is {age.total_seconds():.1f}s old (max {self.max_age.total_seconds():.1f}s)")
        elif stale is None and self.status is BreakerStatus.HALF_OPEN:
            self.close("data fresh again")

    def due(self) -> datetime | None:
        if self.status is BreakerStatus.OPEN:
            return super().due()
        if self.status is BreakerStatus.CLOSED and self.last_seen:
            return min(self.last_seen.values()) + self.max_age  # the oldest source turns stale
        return None

    def observe(self, source: str, ts: datetime) -> None:
        previous = self.last_seen.get(source)
        if previous is None or ts > previous:
            self.last_seen[source] = ts


class VenueErrorBreaker(Breaker):
    """HALTED when, within ``window``, at least ``min_calls`` venue calls were made and the share of
    errors reached ``max_rate``. After the cooldown the next call is the probe."""

    __slots__ = ("calls", "max_rate", "min_calls", "window")

    def __init__(self, window: timedelta, min_calls: int, max_rate: Decimal, cooldown: timedelta) -> None:
        super().__init__("venue_errors", TradingState.HALTED, cooldown)
        self.window = window
        self.min_calls = min_calls
        self.max_rate = float(max_rate)
        self.calls: deque[tuple[datetime, bool]] = deque()

    def observe(self, ok: bool, now: datetime) -> None:
        if self.status is BreakerStatus.HALF_OPEN:
            if ok:
                self.close("probe call succeeded")
            else:
                self.trip(now, "probe call failed")
            return
        if self.status is BreakerStatus.OPEN:
            return
        self.calls.append((now, ok))
        while self.calls and now - self.calls[0][0] > self.window:
            self.calls.popleft()
        errors = sum(1 for _, good in self.calls if not good)
        if len(self.calls) >= self.min_calls and errors / len(self.calls) >= self.max_rate:
            self.trip(
                now,
                f"{errors} of {len(self.calls)} venue calls failed in {self.window.total_seconds():.0f}s "
                f"(max error rate {self.max_rate:.0%})",
            )
            self.calls.clear()


class LatencyBreaker(Breaker):
    """REDUCING when the median of the last ``samples`` order round trips exceeds ``max_round_trip``.
    After the cooldown the next round trip is the probe."""

    __slots__ = ("latencies", "max_round_trip")

    def __init__(self, max_round_trip: timedelta, samples: int, cooldown: timedelta) -> None:
        super().__init__("latency", TradingState.REDUCING, cooldown)
        self.max_round_trip = max_round_trip
        self.latencies: deque[timedelta] = deque(maxlen=samples)

    def observe(self, latency: timedelta, now: datetime) -> None:
        if self.status is BreakerStatus.HALF_OPEN:
            if latency <= self.max_round_trip:
                self.close(f"probe round trip {latency.total_seconds():.3f}s")
            else:
                self.trip(now, f"probe round trip {latency.total_seconds():.3f}s")
            return
        if self.status is BreakerStatus.OPEN:
            return
        self.latencies.append(latency)
        if len(self.latencies) == self.latencies.maxlen:
            median = statistics.median_low(self.latencies)
            if median > self.max_round_trip:
                self.trip(
                    now,
                    f"median order round trip {median.total_seconds():.3f}s over the last "
                    f"{len(self.latencies)} orders exceeds {self.max_round_trip.total_seconds():.3f}s",
                )
                self.latencies.clear()


class DisconnectBreaker(Breaker):
    """HALTED while the venue connection is down; closes once the connection has stayed up for
    the cooldown (that stable stretch is the probe, so there is no separate half-open step)."""

    __slots__ = ("connected_since",)

    def __init__(self, cooldown: timedelta) -> None:
        super().__init__("venue_disconnect", TradingState.HALTED, cooldown)
        self.connected_since: datetime | None = None

    def tick(self, now: datetime) -> None:
        if (
            self.status is BreakerStatus.OPEN
            and self.cooldown is not None
            and self.connected_since is not None
            and now - self.connected_since >= self.cooldown
        ):
            self.close(f"connected for {self.cooldown}")

    def due(self) -> datetime | None:
        if self.status is BreakerStatus.OPEN and self.cooldown is not None and self.connected_since is not None:
            return self.connected_since + self.cooldown
        return None

    def observe(self, connected: bool, now: datetime) -> None:
        if connected:
            if self.connected_since is None:
                self.connected_since = now
        else:
            self.connected_since = None
            if self.status is not BreakerStatus.OPEN:
                self.trip(now, "venue disconnected")


class ManualBreaker(Breaker):
    """A latched breaker a person engages (the kill switch)."""

    __slots__ = ()

    def __init__(self, name: str, action: TradingState) -> None:
        super().__init__(name, action, None)


class RiskStateMachine:
    """One account's breakers and trading state. Every method returns the events it caused.

    Each call first lets time pass for every breaker (cooldowns), then applies its observation,
    then lets every breaker settle (staleness is judged here), then recomputes the state.
    """

    __slots__ = (
        "_account",
        "_breakers",
        "_clock",
        "_consecutive",
        "_daily",
        "_disconnect",
        "_drawdown",
        "_due",
        "_features",
        "_kill",
        "_latency",
        "_market",
        "_state",
        "_venue",
    )

    def __init__(self, account: str, limits: BreakerLimits, clock: Clock) -> None:
        self._account = account
        self._clock = clock
        self._state = TradingState.ACTIVE
        self._drawdown = DrawdownBreaker(limits.max_drawdown_pct)
        self._daily = DailyLossBreaker(limits.daily_loss_pct) if limits.daily_loss_pct is not None else None
        self._consecutive = (
            ConsecutiveLossesBreaker(limits.max_consecutive_losses, limits.consecutive_losses_cooldown)
            if limits.max_consecutive_losses is not None
            else None
        )
        self._market = StalenessBreaker("stale_market_data", limits.market_data_max_age, limits.market_data_cooldown)
        self._features = StalenessBreaker("stale_features", limits.features_max_age, limits.features_cooldown)
        self._venue = VenueErrorBreaker(
            limits.venue_error_window, limits.venue_min_calls, limits.venue_max_error_rate, limits.venue_error_cooldown
        )
        self._latency = LatencyBreaker(limits.max_round_trip, limits.latency_samples, limits.latency_cooldown)
        self._disconnect = DisconnectBreaker(limits.disconnect_cooldown)
        self._kill = ManualBreaker("kill_switch", TradingState.HALTED)
        #: next_due()'s answer until the next change (False: not known since the last change).
        self._due: datetime | bool | None = False
        every: list[Breaker | None] = [
            self._kill,
            self._drawdown,
            self._daily,
            self._consecutive,
            self._market,
            self._features,
            self._venue,
            self._latency,
            self._disconnect,
        ]
        self._breakers: dict[str, Breaker] = {b.name: b for b in every if b is not None}

    @property
    def account(self) -> str:
        return self._account

    @property
    def state(self) -> TradingState:
        return self._state

    @property
    def breakers(self) -> Mapping[str, Breaker]:
        """Every enabled breaker by name (for metrics and status pages; do not mutate)."""
        return self._breakers

    def on_equity(self, equity: Decimal) -> tuple[RiskEvent, ...]:
        """Mark-to-market equity: drawdown from peak and daily loss."""
        return self._apply(lambda now: self._observe_equity(equity, now))

    def _observe_equity(self, equity: Decimal, now: datetime) -> None:
        self._drawdown.observe(equity, now)
        if self._daily is not None:
            self._daily.observe(equity, now)

    def on_trade_closed(self, pnl: Decimal) -> tuple[RiskEvent, ...]:
        """Realised PnL of a closed trade: consecutive losses."""
        breaker = self._consecutive
        return self._apply(lambda now: breaker.observe(pnl, now) if breaker is not None else None)

    def on_market_data(self, key: str, ts_event: datetime) -> tuple[RiskEvent, ...]:
        """Newest market data time for an instrument (``exchange:SYMBOL``)."""
        return self._apply(lambda now: self._market.observe(key, ts_event))

    def on_market_data_many(self, newest: Mapping[str, datetime]) -> tuple[RiskEvent, ...]:
        """The newest market-data time of several instruments at once, judged together: an
        instrument is not found stale just because its update came later in the same call."""
        return self.on_data(market=newest)

    def on_data(
        self,
        market: Mapping[str, datetime] | None = None,
        features: Mapping[str, datetime] | None = None,
        predictions: Mapping[str, datetime] | None = None,
    ) -> tuple[RiskEvent, ...]:
        """Newest market-data, feature-vector and prediction times per instrument, all observed
        before any breaker is judged: after a gap in the data, the bar that ends it brings fresh
        market data and fresh features together, and neither breaker may trip on the other's news
        arriving a call later.

        >>> from core.clock import ManualClock, parse_utc
        >>> from risk.config import BreakerLimits
        >>> clock = ManualClock(parse_utc("2024-08-08T00:00:00Z"))
        >>> m = RiskStateMachine("acct", BreakerLimits(), clock)
        >>> key = "binance:BTC/USDT"
        >>> m.on_data({key: clock.now()}, {key: clock.now()})
        ()
        >>> _ = clock.advance(timedelta(hours=3))  # a three-hour hole in the data, then a bar
        >>> m.on_data({key: clock.now()}, {key: clock.now()})
        ()
        """

        def observe(now: datetime) -> None:
            for key, ts_event in (market or {}).items():
                self._market.observe(key, ts_event)
            for key, ts in (features or {}).items():
                self._features.observe(f"features {key}", ts)
            for key, ts in (predictions or {}).items():
                self._features.observe(f"model {key}", ts)

        return self._apply(observe)

    def on_features(self, source: str, ts: datetime) -> tuple[RiskEvent, ...]:
        """Newest time of a feature set or a model's output (``source`` names which)."""
        return self._apply(lambda now: self._features.observe(source, ts))

    def on_model_inputs(
        self,
        features: Mapping[str, datetime] | None = None,
        predictions: Mapping[str, datetime] | None = None,
    ) -> tuple[RiskEvent, ...]:
        """The newest feature-vector time and model-prediction time per instrument
        (``exchange:SYMBOL``), judged together by the stale-features breaker: each instrument's
        features and its model output are watched as two sources (``features <key>`` and
        ``model <key>``), so a model that stops predicting is noticed even while features flow.

        >>> from core.clock import ManualClock, parse_utc
        >>> from risk.config import BreakerLimits
        >>> clock = ManualClock(parse_utc("2024-08-08T00:00:00Z"))
        >>> m = RiskStateMachine("acct", BreakerLimits(), clock)
        >>> m.on_model_inputs({"binance:BTC/USDT": clock.now()}, {"binance:BTC/USDT": clock.now()})
        ()
        >>> _ = clock.advance(timedelta(minutes=5, seconds=1))
        >>> m.on_model_inputs(features={"binance:BTC/USDT": clock.now()})[0].reason
        'stale_features closed->open: model binance:BTC/USDT is 301.0s old (max 300.0s)'
        """

        return self.on_data(features=features, predictions=predictions)

    def on_venue_outcomes(self, outcomes: Iterable[VenueCallOutcome]) -> tuple[RiskEvent, ...]:
        """The venue calls the order manager made since the last call
        (``OrderManager.drain_outcomes()``), in order, judged together: every call counts for the
        error rate, every answered submit is a round-trip sample, and a call that could not reach
        the venue is a disconnect (any other call shows the connection up). A poll that returned
        is no evidence either way (it may not have left the process) and is skipped.

        >>> from core.clock import ManualClock, parse_utc
        >>> from risk.config import BreakerLimits
        >>> from risk.venue_calls import CallResult, VenueCall
        >>> clock = ManualClock(parse_utc("2024-08-08T00:00:00Z"))
        >>> m = RiskStateMachine("acct", BreakerLimits(), clock)
        >>> lost = VenueCallOutcome(VenueCall.SUBMIT, CallResult.DISCONNECTED, timedelta(seconds=1), clock.now(),
        ...                         "unavailable")
        >>> m.on_venue_outcomes([lost])[0].new
        <TradingState.HALTED: 'halted'>
        """
        venue, latency, disconnect = self._venue, self._latency, self._disconnect

        def observe(now: datetime) -> None:
            for outcome in outcomes:
                if not outcome.is_evidence:
                    continue
                venue.observe(outcome.ok, now)
                if outcome.is_order_round_trip:
                    latency.observe(outcome.round_trip, now)
                disconnect.observe(outcome.connected, now)

        return self._apply(observe)

    def on_venue_call(self, ok: bool) -> tuple[RiskEvent, ...]:
        """Outcome of one venue call (order, cancel, fetch): error rate."""
        return self._apply(lambda now: self._venue.observe(ok, now))

    def on_round_trip(self, latency: timedelta) -> tuple[RiskEvent, ...]:
        """Time from sending an order to the venue's acknowledgement."""
        return self._apply(lambda now: self._latency.observe(latency, now))

    def on_connection(self, connected: bool) -> tuple[RiskEvent, ...]:
        """Venue connection up or down."""
        return self._apply(lambda now: self._disconnect.observe(connected, now))

    def next_due(self) -> datetime | None:
        """The earliest time at which time alone can change a breaker (a cooldown ends, a source
        turns stale, a new UTC day): an event-time flow judges the breakers at its first event at or
        after it, wherever its batches end. None when nothing is pending."""
        try:
            due = self._due
        except AttributeError:  # restored from a snapshot taken before the answer was kept
            due = False
        if due is False:
            # Only _apply changes a breaker, and it forgets the answer: an event-time flow asks on
            # every market event, and the breakers change far less often.
            times = [t for t in (b.due() for b in self._breakers.values()) if t is not None]
            due = self._due = min(times) if times else None
        assert due is not True
        return due

    def tick(self) -> tuple[RiskEvent, ...]:
        """Let time pass with no observation (call on a timer or on every event)."""
        return self._apply(lambda now: None)

    def kill(self, command: KillSwitch) -> tuple[RiskEvent, ...]:
        """The kill switch: HALTED, latched, and cancel every open order (reduce-only ones too).

        The cancel instruction is returned even when the account was already HALTED.
        """
        self._check_account(command.account)
        reason = f"kill switch by {command.requested_by}: {command.reason}"
        events = self._apply(lambda now: self._kill.trip(now, reason))
        cancel = CancelAllOrders(self._account, reason, self._clock.now(), keep_reduce_only=False)
        return (*(e for e in events if not isinstance(e, CancelAllOrders)), cancel)

    def reset(self, command: ResetBreaker) -> tuple[RiskEvent, ...]:
        """A person closes a breaker by name, with a reason (required: it goes on the record)."""
        self._check_account(command.account)
        if not command.reason.strip() or not command.requested_by.strip():
            raise ValueError("resetting a breaker needs who asked (requested_by) and why (reason)")
        breaker = self._breakers.get(command.breaker)
        if breaker is None:
            raise ValueError(f"no breaker named {command.breaker!r}; breakers are {sorted(self._breakers)}")
        note = f"reset by {command.requested_by}: {command.reason}"
        return self._apply(lambda now: breaker.reset(now, note))

    def _check_account(self, account: str) -> None:
        if account != self._account:
            raise ValueError(f"command for account {account!r} sent to the state machine of {self._account!r}")

    def _apply(self, observe: Callable[[datetime], object]) -> tuple[RiskEvent, ...]:
        self._due = False
        now = self._clock.now()
        before = {name: b.status for name, b in self._breakers.items()}
        for breaker in self._breakers.values():
            breaker.tick(now)
        observe(now)
        for breaker in self._breakers.values():
            breaker.settle(now)
        new = TradingState.ACTIVE
        for breaker in self._breakers.values():
            if breaker.demand.severity > new.severity:
                new = breaker.demand
        old = self._state
        if new is old:
            return ()
        self._state = new
        changed = [
            f"{name} {before[name].value}->{b.status.value}: {b.reason}"
            for name, b in self._breakers.items()
            if b.status is not before[name]
        ]
        reason = "; ".join(changed) or f"state recomputed to {new.value}"
        events: list[RiskEvent] = [TradingStateChanged(self._account, old, new, reason, now)]
        if new.severity > old.severity:
            events.append(CancelAllOrders(self._account, reason, now, keep_reduce_only=True))
        return tuple(events)
