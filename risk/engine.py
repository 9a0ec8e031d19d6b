"""One account's risk engine: the gate, the breakers and the trading state, kept in step.

The trading flow keeps one :class:`RiskEngine` per account key. Every call returns the
:class:`~risk.decisions.RiskDecision` records to publish; the engine itself does no I/O.

>>> from decimal import Decimal
>>> from core.clock import ManualClock, parse_utc
>>> from core.orders import KillSwitch
>>> from risk.config import RiskLimits
>>> clock = ManualClock(parse_utc("2021-05-19T00:00:00Z"))
>>> engine = RiskEngine("acct", RiskLimits(), clock)
>>> [d.kind.value for d in engine.kill(KillSwitch("acct", "alice", "venue incident", clock.now()))]
['state_changed', 'cancel_all']
>>> engine.state
<TradingState.HALTED: 'halted'>
"""

from __future__ import annotations

from collections.abc import Iterable

from core.clock import Clock
from core.orders import ApprovedOrder, KillSwitch, OrderDenied, OrderIntent, ResetBreaker, TradingState
from risk.breakers import RiskEvent, RiskStateMachine
from risk.config import RiskLimits
from risk.decisions import RiskDecision, record
from risk.gate import GateState, evaluate
from risk.market import MarketView
from risk.portfolio import PortfolioView


class RiskEngine:
    """Gate plus state machine for one account; observations go to :attr:`machine` through
    :meth:`observe` so the gate always sees the current trading state."""

    __slots__ = ("_gate", "_limits", "_machine")

    def __init__(self, account: str, limits: RiskLimits, clock: Clock) -> None:
        self._limits = limits
        self._machine = RiskStateMachine(account, limits.breakers, clock)
        self._gate = GateState.start(limits, clock)

    @property
    def machine(self) -> RiskStateMachine:
        return self._machine

    @property
    def state(self) -> TradingState:
        return self._machine.state

    def evaluate(
        self, intent: OrderIntent, portfolio: PortfolioView, market: MarketView
    ) -> tuple[ApprovedOrder | OrderDenied, RiskDecision]:
        """Run the gate in the current trading state; returns the outcome and its record."""
        self._gate.trading_state = self._machine.state
        outcome = evaluate(intent, portfolio, market, self._limits, self._gate)
        return outcome, record(outcome, self._machine.state)

    def observe(self, events: Iterable[RiskEvent]) -> tuple[RiskDecision, ...]:
        """Records for the events a state-machine call returned, e.g.
        ``engine.observe(engine.machine.on_equity(equity))``."""
        return tuple(record(e, self._machine.state) for e in events)

    def kill(self, command: KillSwitch) -> tuple[RiskDecision, ...]:
        """The kill switch (see :meth:`RiskStateMachine.kill`), as records."""
        return self.observe(self._machine.kill(command))

    def reset(self, command: ResetBreaker) -> tuple[RiskDecision, ...]:
        """A person's breaker reset (see :meth:`RiskStateMachine.reset`), as records."""
        return self.observe(self._machine.reset(command))
