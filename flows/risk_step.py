"""The risk gate as a Bytewax step, keyed by account, and its outputs.

Everything that can change what an account may do arrives on one account-keyed stream: order
intents, operator commands (kill switch, reset), the account's portfolio as execution last saw it,
and the market view of each instrument. One :class:`~risk.engine.RiskEngine` per account judges
every intent; every verdict and every state change becomes a :class:`~risk.decisions.RiskDecision`
for ``risk.decisions.v1`` and the ``risk_decisions`` table, and approved orders go on to
``orders.v1``. Nothing reaches a venue any other way.

Views are not part of the recovery snapshot (they are re-published continuously); after a
restart an intent that arrives before the account's portfolio or the instrument's market is known
is denied with ``portfolio_unknown`` / ``market_unknown``, never approved on stale data.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import bytewax.operators as op
import orjson
from bytewax.dataflow import Stream
from bytewax.operators import StatefulBatchLogic
from prometheus_client import Counter
from psycopg.types.json import Jsonb

from core.clock import Clock
from core.orders import ApprovedOrder, DenialReason, KillSwitch, OrderDenied, OrderIntent, ResetBreaker
from flows.control import ALL_ACCOUNTS
from flows.kafka_io import OutMessage
from flows.metrics import EVENTS
from flows.pg_sink import Target, connected
from flows.snapshots import frozen
from risk.config import RiskLimits
from risk.decisions import TOPIC as DECISIONS_TOPIC
from risk.decisions import RiskDecision, approved_order_record, record
from risk.engine import RiskEngine
from risk.gate import decision_id
from risk.market import MarketView
from risk.portfolio import PortfolioView

log = logging.getLogger(__name__)

ORDERS_TOPIC = "orders.v1"
COMMANDS_REFUSED = Counter(
    "bot4_operator_commands_refused_total", "Operator commands the risk engine refused, by kind.", ["kind"]
)
STAGE = "risk"


@dataclass(frozen=True, slots=True)
class PortfolioUpdate:
    """The account's portfolio as execution last saw it (replaces the previous view)."""

    view: PortfolioView


@dataclass(frozen=True, slots=True)
class MarketUpdate:
    """The market view of one instrument for every account (replaces the previous one)."""

    view: MarketView


RiskInput = OrderIntent | KillSwitch | ResetBreaker | PortfolioUpdate | MarketUpdate
RiskOutput = ApprovedOrder | RiskDecision


def route_to_accounts(item: RiskInput, accounts: Sequence[str]) -> list[tuple[str, tuple[str, RiskInput]]]:
    """Key an input by account; market views and ``account="*"`` commands go to every account.

    >>> from core.clock import parse_utc
    >>> cmd = KillSwitch("*", "ops", "outage", parse_utc("2024-01-01T00:00:00Z"))
    >>> [(key, value[1].account) for key, value in route_to_accounts(cmd, ["a", "b"])]
    [('a', 'a'), ('b', 'b')]
    """
    if isinstance(item, MarketUpdate):
        return [(a, (a, item)) for a in accounts]
    if isinstance(item, PortfolioUpdate):
        return [(item.view.account, (item.view.account, item))]
    if isinstance(item, KillSwitch | ResetBreaker) and item.account == ALL_ACCOUNTS:
        if isinstance(item, KillSwitch):
            return [(a, (a, KillSwitch(a, item.requested_by, item.reason, item.ts))) for a in accounts]
        return [(a, (a, ResetBreaker(a, item.breaker, item.requested_by, item.reason, item.ts))) for a in accounts]
    return [(item.account, (item.account, item))]


class AccountRisk(StatefulBatchLogic[tuple[str, RiskInput], RiskOutput, RiskEngine]):
    """One account's gate: the engine (snapshotted) plus the latest portfolio and market views.

    Bytewax builds the logic without telling it the key, so values arrive as ``(account, input)``
    and the engine is created on the first one (or restored from the snapshot).
    """

    def __init__(self, limits: RiskLimits, clock: Clock, resume: RiskEngine | None) -> None:
        self._limits = limits
        self._clock = clock
        self._engine = resume
        self.account = ""
        self.portfolio: PortfolioView | None = None
        self.markets: dict[str, MarketView] = {}

    @property
    def engine(self) -> RiskEngine:
        if self._engine is None:
            self._engine = RiskEngine(self.account, self._limits, self._clock)
        return self._engine

    def on_batch(self, values: list[tuple[str, RiskInput]]) -> tuple[list[RiskOutput], bool]:
        out: list[RiskOutput] = []
        for account, item in values:
            self.account = account
            out.extend(self._one(item))
        EVENTS.labels(STAGE, "ok").inc(len(values))
        return out, StatefulBatchLogic.RETAIN

    def _one(self, item: RiskInput) -> Iterable[RiskOutput]:
        if isinstance(item, PortfolioUpdate):
            self.portfolio = item.view
            return ()
        if isinstance(item, MarketUpdate):
            self.markets[item.view.key] = item.view
            return ()
        if isinstance(item, KillSwitch):
            return self.engine.kill(item)
        if isinstance(item, ResetBreaker):
            try:
                return self.engine.reset(item)
            except ValueError as exc:  # unknown breaker or no reason: the state stays as it is
                COMMANDS_REFUSED.labels("reset_breaker").inc()
                log.warning(
                    "account %s: reset of %r by %s refused: %s", self.account, item.breaker, item.requested_by, exc
                )
                return ()
        return self._evaluate(item)

    def _evaluate(self, intent: OrderIntent) -> Iterable[RiskOutput]:
        missing: list[DenialReason] = []
        if self.portfolio is None:
            missing.append(DenialReason("portfolio_unknown", f"no portfolio state for account {self.account!r} yet"))
        market = self.markets.get(intent.key)
        if market is None:
            missing.append(DenialReason("market_unknown", f"no market view for {intent.key} yet"))
        if missing or self.portfolio is None or market is None:
            now = self._clock.now()
            denied = OrderDenied(intent, tuple(missing), decision_id(intent.client_order_id, now), now)
            return (record(denied, self.engine.state),)
        outcome, decision = self.engine.evaluate(intent, self.portfolio, market)
        return (outcome, decision) if isinstance(outcome, ApprovedOrder) else (decision,)

    def snapshot(self) -> RiskEngine:
        return frozen(self.engine)  # pickled later by Bytewax: see flows.snapshots


@dataclass(frozen=True)
class RiskOut:
    """Approved orders (for ``orders.v1``) and every decision (for ``risk.decisions.v1``)."""

    approved: Stream[ApprovedOrder]
    decisions: Stream[RiskDecision]


def risk_gate(
    step_id: str, inputs: Stream[RiskInput], accounts: Sequence[str], limits: RiskLimits, clock: Clock
) -> RiskOut:
    """Route inputs to their accounts and run each account's gate; see the module docstring."""
    keyed = op.flat_map_batch(
        f"{step_id}_route", inputs, lambda batch: [kv for item in batch for kv in route_to_accounts(item, accounts)]
    )
    judged = op.stateful_batch(f"{step_id}_gate", keyed, lambda resume: AccountRisk(limits, clock, resume))
    values = op.flat_map_batch(f"{step_id}_unkey", judged, lambda batch: [v for _, v in batch])
    approved = op.flat_map_batch(
        f"{step_id}_approved", values, lambda batch: [v for v in batch if isinstance(v, ApprovedOrder)]
    )
    decisions = op.flat_map_batch(
        f"{step_id}_decisions", values, lambda batch: [v for v in batch if isinstance(v, RiskDecision)]
    )
    return RiskOut(approved, decisions)


def decision_message(decision: RiskDecision, prefix: str = "") -> OutMessage:
    return OutMessage(prefix + DECISIONS_TOPIC, decision.account.encode(), orjson.dumps(decision.to_record()))


def order_message(order: ApprovedOrder, prefix: str = "") -> OutMessage:
    return OutMessage(prefix + ORDERS_TOPIC, order.intent.account.encode(), orjson.dumps(approved_order_record(order)))


def _row(decision: RiskDecision) -> tuple[Any, ...]:
    rec = decision.to_record()
    return (
        decision.decision_id,
        decision.account,
        rec.get("client_order_id"),
        decision.kind.value,
        decision.trading_state.value,
        Jsonb(rec["reasons"]),
        Jsonb(rec),
        decision.ts,
    )


def write_decisions(target: Target, decisions: Sequence[RiskDecision]) -> None:
    """Insert decisions idempotently (a replayed decision has the same id and time)."""
    with connected(target) as conn, conn.cursor() as cur:
        cur.executemany(
            "INSERT INTO risk_decisions (decision_id, account, client_order_id, kind, trading_state, reasons, "
            "detail, ts_event) VALUES (%s, %s, %s, %s, %s, %s, %s, %s) ON CONFLICT DO NOTHING",
            [_row(d) for d in decisions],
        )
