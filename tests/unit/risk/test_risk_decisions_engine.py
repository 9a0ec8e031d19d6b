"""risk.decisions records and the per-account RiskEngine that keeps gate and breakers in step."""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal

import orjson
import pytest

from core.clock import ManualClock
from core.events import Side
from core.orders import ApprovedOrder, KillSwitch, OrderDenied, ResetBreaker, TradingState
from risk.config import RiskLimits
from risk.decisions import (
    TOPIC,
    DecisionKind,
    approved_order_from_record,
    approved_order_record,
)
from risk.engine import RiskEngine
from tests.unit.risk._risk_builders import ACCOUNT, T0, intent, market, portfolio, position


def engine() -> tuple[RiskEngine, ManualClock]:
    clock = ManualClock(T0)
    return RiskEngine(ACCOUNT, RiskLimits(), clock), clock


def test_engine_records_an_approval_as_a_publishable_decision() -> None:
    eng, _ = engine()
    outcome, decision = eng.evaluate(intent("0.01", price="60000"), portfolio(), market())
    assert isinstance(outcome, ApprovedOrder)
    assert decision.kind is DecisionKind.APPROVED and decision.key == ACCOUNT
    rec = orjson.loads(orjson.dumps(decision.to_record()))
    assert rec["decision_id"] == outcome.decision_id
    assert rec["approved_amount"] == "0.01000" and rec["approved_price"] == "60000.00"
    assert rec["trading_state"] == "active" and rec["reasons"] == []
    assert rec["side"] == "buy" and rec["order_type"] == "limit"
    assert TOPIC == "risk.decisions.v1"


def test_engine_records_a_denial_with_every_reason() -> None:
    eng, _ = engine()
    outcome, decision = eng.evaluate(intent("5"), portfolio(), market())
    assert isinstance(outcome, OrderDenied)
    rec = decision.to_record()
    assert rec["kind"] == "denied"
    assert {r["code"] for r in rec["reasons"]} == set(outcome.codes)
    assert "approved_amount" not in rec


def test_engine_when_drawdown_halts_then_gate_denies_until_reset() -> None:
    eng, clock = engine()
    eng.observe(eng.machine.on_equity(Decimal(100_000)))
    records = eng.observe(eng.machine.on_equity(Decimal(80_000)))
    assert [r.kind for r in records] == [DecisionKind.STATE_CHANGED, DecisionKind.CANCEL_ALL]
    assert records[0].to_record()["new"] == "halted"
    assert records[1].to_record()["keep_reduce_only"] is True
    book = portfolio("80000")
    outcome, decision = eng.evaluate(intent("0.001"), book, market())
    assert isinstance(outcome, OrderDenied) and decision.trading_state is TradingState.HALTED
    eng.reset(ResetBreaker(ACCOUNT, "drawdown", "alice", "reviewed", clock.now()))
    # the daily loss breaker (5%) still holds the account in REDUCING until the next UTC day
    assert eng.state is TradingState.REDUCING
    clock.advance(timedelta(days=1))
    eng.observe(eng.machine.tick())
    assert eng.state is TradingState.ACTIVE
    outcome, _ = eng.evaluate(intent("0.001"), book, market(ts=clock.now()))
    assert isinstance(outcome, ApprovedOrder)


def test_engine_kill_switch_records_state_change_and_full_cancel() -> None:
    eng, clock = engine()
    records = eng.kill(KillSwitch(ACCOUNT, "bob", "runaway strategy", clock.now()))
    kinds = [r.to_record()["kind"] for r in records]
    assert kinds == ["state_changed", "cancel_all"]
    assert records[1].to_record()["keep_reduce_only"] is False
    assert len({r.decision_id for r in records}) == 2
    book = portfolio(positions=(position("0.01"),))
    outcome, _ = eng.evaluate(intent("0.01", side=Side.SELL, reduce_only=True), book, market())
    assert isinstance(outcome, OrderDenied) and outcome.codes == ("trading_halted",)


def test_approved_order_survives_the_orders_topic_round_trip() -> None:
    eng, _ = engine()
    outcome, _ = eng.evaluate(intent("0.01"), portfolio(), market())
    assert isinstance(outcome, ApprovedOrder)
    wire = orjson.loads(orjson.dumps(approved_order_record(outcome)))
    assert approved_order_from_record(wire) == outcome


def test_orders_record_of_unknown_version_or_bad_amount_is_refused() -> None:
    eng, _ = engine()
    outcome, _ = eng.evaluate(intent("0.01"), portfolio(), market())
    assert isinstance(outcome, ApprovedOrder)
    rec = approved_order_record(outcome)
    with pytest.raises(ValueError, match="version"):
        approved_order_from_record({**rec, "v": 2})
    with pytest.raises(ValueError, match="approved_amount"):
        approved_order_from_record({**rec, "approved_amount": "lots"})
