"""The account-keyed risk step: every intent judged, every decision recorded, commands obeyed."""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal

import bytewax.operators as op
from bytewax.dataflow import Dataflow
from bytewax.recovery import RecoveryConfig, init_db_dir
from bytewax.testing import TestingSink, TestingSource, run_main

from core.clock import ManualClock, parse_utc
from core.events import Side
from core.orders import ApprovedOrder, KillSwitch, OrderIntent, OrderType, ResetBreaker
from flows.risk_step import MarketUpdate, PortfolioUpdate, risk_gate
from risk.config import RiskLimits
from risk.decisions import RiskDecision
from risk.market import InstrumentRules, MarketView
from risk.portfolio import PortfolioView

T0 = parse_utc("2024-08-08T23:54:15Z")
RULES = InstrumentRules(Decimal("0.01"), Decimal("0.00001"), Decimal("0.00001"), min_notional=Decimal("5"))


def intent(coid: str, amount: str = "0.001", account: str = "main") -> OrderIntent:
    return OrderIntent(
        account, "trend", "binance", "BTC/USDT", Side.BUY, OrderType.MARKET, Decimal(amount), None, False, coid, T0
    )


def market() -> MarketUpdate:
    return MarketUpdate(MarketView("binance", "BTC/USDT", Decimal("61837.63"), RULES, T0))


def portfolio(account: str = "main") -> PortfolioUpdate:
    return PortfolioUpdate(PortfolioView(account, Decimal("100000")))


def run(inputs, recovery=None, clock=None):
    clock = clock or ManualClock(T0)
    flow = Dataflow("risk_test")
    stream = op.input("in", flow, TestingSource(inputs))
    out = risk_gate("risk", stream, ["main", "other"], RiskLimits(), clock)
    approved: list[ApprovedOrder] = []
    decisions: list[RiskDecision] = []
    op.output("approved", out.approved, TestingSink(approved))
    op.output("decisions", out.decisions, TestingSink(decisions))
    run_main(flow, epoch_interval=timedelta(0), recovery_config=recovery)
    return approved, decisions


def test_an_intent_before_the_portfolio_or_market_is_known_is_denied_not_guessed():
    approved, decisions = run([intent("b4-1")])
    assert approved == []
    assert [d.kind.value for d in decisions] == ["denied"]
    assert {r.code for r in decisions[0].reasons} == {"portfolio_unknown", "market_unknown"}


def test_within_limits_approved_then_too_big_denied_with_the_reason():
    # 2% of 100,000 equity is 2,000 USDT: 0.001 BTC (62 USDT) passes, 0.1 BTC (6,184 USDT) does not.
    approved, decisions = run([portfolio(), market(), intent("b4-1"), intent("b4-2", "0.1")])
    assert [a.intent.client_order_id for a in approved] == ["b4-1"]
    assert [d.kind.value for d in decisions] == ["approved", "denied"]
    assert "position_limit_exceeded" in {r.code for r in decisions[1].reasons}


def test_kill_switch_for_all_accounts_halts_each_and_reset_resumes_one():
    ts = T0
    inputs = [
        portfolio(),
        portfolio("other"),
        market(),
        KillSwitch("*", "alice", "venue incident", ts),
        intent("b4-1"),
        intent("b4-o", account="other"),
        ResetBreaker("main", "kill_switch", "alice", "incident over", ts),
        ResetBreaker("main", "no_such_breaker", "alice", "typo", ts),
        intent("b4-2"),
        intent("b4-o2", account="other"),
    ]
    approved, decisions = run(inputs)
    assert [a.intent.client_order_id for a in approved] == ["b4-2"]
    by_account: dict[str, list[str]] = {}
    for d in decisions:
        by_account.setdefault(d.account, []).append(d.kind.value)
    assert by_account["main"] == ["state_changed", "cancel_all", "denied", "state_changed", "approved"]
    assert by_account["other"] == ["state_changed", "cancel_all", "denied", "denied"]
    halted = [d for d in decisions if d.kind.value == "denied" and d.account == "other"]
    assert all("trading_halted" in {r.code for r in d.reasons} for d in halted)


def test_the_halt_survives_a_restart_from_recovery(tmp_path):
    init_db_dir(tmp_path, 1)
    recovery = RecoveryConfig(str(tmp_path))
    inputs = [
        portfolio(),
        market(),
        KillSwitch("main", "alice", "halt", T0),
        TestingSource.ABORT(),
        portfolio(),
        market(),
        intent("b4-9"),
    ]
    first_approved, first = run(inputs, recovery=recovery)
    assert [d.kind.value for d in first] == ["state_changed", "cancel_all"]
    # The restart resumes after the abort: the views are re-published, the latched halt comes
    # back from the snapshot, and the intent is denied.
    approved, decisions = run(inputs, recovery=recovery)
    assert first_approved == approved == []
    assert [d.kind.value for d in decisions] == ["denied"]
    assert "trading_halted" in {r.code for r in decisions[0].reasons}
