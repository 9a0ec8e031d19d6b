"""The trading flow's account step with execution in another process (``remote_execution``), and
operator pauses of a strategy, driven step by step on the bundled real BTC/USDT 1m candles.

The two steps are run as the two processes run them, in lockstep: each bar goes through the
instrument and account steps of the trading side, whose orders.v1 records (approved orders,
progress) go with the bar to the paced execution step, whose order events and fills go back to
the account step. Nothing here is a stand-in: the real steps, the real paper venue.
"""

from __future__ import annotations

import itertools
from dataclasses import replace
from datetime import timedelta

import pytest

from core.clock import ManualClock, SystemClock, parse_utc
from core.events import Candle
from core.fills import Fill, OrderEvent
from core.orders import ApprovedOrder, KillSwitch, PauseStrategy, ResumeStrategy, Signal
from flows.demo import TRADING_FILES
from flows.execution import ExecutionProgress, OrderPlaced, PacedCancelAll, PaperAccount, PaperExecution
from flows.replay import read_events
from flows.trading import AccountLogic, InstrumentLogic, Mode
from risk.decisions import DecisionKind, RiskDecision
from tests.unit.flows.test_trading_flow import setups

BARS = 600


@pytest.fixture(scope="module")
def candles() -> list[Candle]:
    return [e for _, e in zip(range(BARS), read_events(TRADING_FILES[0]), strict=False) if isinstance(e, Candle)]


def lockstep(candles, commands=None, *, limits=None, wall=None):
    """Run bar by bar; returns (account-step records, execution records, account logic, execution logic)."""
    commands = commands or {}
    wall = wall or SystemClock()
    instrument, account = setups(Mode.PAPER)
    account = replace(account, remote_execution=True, limits=limits or account.limits)
    inst = InstrumentLogic(instrument, None, wall)
    trading = AccountLogic({"acct": account}, wall, None)
    execution = PaperExecution({"acct": PaperAccount("acct", account.capabilities, account.balances)}, None, paced=True)
    decided: list = []
    executed: list = []
    for n, candle in enumerate(candles):
        items, _ = inst.on_batch([candle])
        batch = [("acct", c) for c in commands.get(n, [])]
        batch += [("acct", i) for i in items if isinstance(i, Candle | Signal)]
        out, _ = trading.on_batch(batch)
        decided.extend(out)
        to_execution = [("acct", o) for o in out if isinstance(o, ApprovedOrder | PacedCancelAll | ExecutionProgress)]
        back, _ = execution.on_batch([("acct", candle), *to_execution])
        executed.extend(back)
        reports = [("acct", r) for r in back if isinstance(r, Fill | OrderEvent)]
        if reports:
            more, _ = trading.on_batch(reports)
            decided.extend(more)
    return decided, executed, trading, execution


def test_remote_execution_books_exactly_the_fills_execution_made_and_never_executes_in_the_trading_step(candles):
    decided, executed, trading, execution = lockstep(candles)
    approved = [o for o in decided if isinstance(o, ApprovedOrder)]
    assert len(approved) >= 6
    # The trading step publishes; it neither fills nor stores executions itself.
    assert not [o for o in decided if isinstance(o, Fill | OrderEvent | OrderPlaced)]
    progress = [o.ts for o in decided if isinstance(o, ExecutionProgress)]
    assert progress == sorted(set(progress)) and progress[-1] == candles[-1].ts_event + timedelta(minutes=1)
    # Execution executed each approved order once, and exits happened (the fills came back).
    placed = [o.order.client_order_id for o in executed if isinstance(o, OrderPlaced)]
    assert placed == [o.client_order_id for o in approved]
    fills = [f for f in executed if isinstance(f, Fill)]
    assert {f.side.value for f in fills} == {"buy", "sell"}
    # The trading step's portfolio is execution's, fill for fill.
    mine = trading.snapshot().manager.portfolio
    theirs = execution.snapshot().manager.portfolio
    assert (mine.cash, mine.fees, mine.realized_pnl) == (theirs.cash, theirs.fees, theirs.realized_pnl)
    assert {k: h.amount for k, h in mine.holdings().items()} == {k: h.amount for k, h in theirs.holdings().items()}
    # Orders still open at the end are those execution still has open.
    still = {o.client_order_id for o in trading.snapshot().manager.open_orders()}
    assert still == {o.client_order_id for o in execution.snapshot().manager.open_orders()}


def test_orders_spaced_in_replayed_market_time_refill_the_order_rate_bucket_started_before_the_first_event(
    candles,
):
    # The account's clock reads the wall clock (2026) until its first market event; the replayed
    # candles are from 2021. The gate's order-rate bucket must refill on that market time: every
    # order here is a bar (a minute) or more after the last, so none is over one order a minute.
    _, account = setups(Mode.PAPER)
    limits = account.limits.model_copy(update={"order_burst": 2, "max_orders_per_second": 1 / 60})
    decided, _, _, _ = lockstep(candles, limits=limits, wall=ManualClock(parse_utc("2026-11-26T03:00:00Z")))
    judged = [
        o for o in decided if isinstance(o, RiskDecision) and o.kind in (DecisionKind.APPROVED, DecisionKind.DENIED)
    ]
    approved = [d for d in judged if d.kind is DecisionKind.APPROVED]
    assert len(approved) > limits.order_burst
    times = [d.ts for d in approved]
    assert min(b - a for a, b in itertools.pairwise(times)) >= timedelta(minutes=1)
    assert not [d for d in judged if any(r.code == "rate_limit_exceeded" for r in d.reasons)]


def test_a_cancel_all_tells_execution_how_far_the_account_had_applied_each_instruments_market(candles):
    # The kill switch arrives after bar 299 was applied: execution must cancel after exactly that
    # market (flows.execution waits for it when it has not read it yet).
    kill = KillSwitch("acct", "alice", "test: kill", candles[300].ts_event)
    decided, _, _, execution = lockstep(candles, {300: [kill]})
    (cancel,) = [o for o in decided if isinstance(o, PacedCancelAll)]
    applied = candles[299].ts_event + timedelta(minutes=1)
    assert cancel.command.keep_reduce_only is False and cancel.ts == applied
    assert cancel.read_to == {candles[299].key: (applied, 1)}
    # Execution had read that far: the cancel-all went ahead and nothing is held behind it.
    assert execution.state is not None and not execution.state.pacing.blocked


def test_a_fill_delivered_twice_is_booked_once(candles):
    _, executed, trading, _ = lockstep(candles[:200])
    fills = [f for f in executed if isinstance(f, Fill)]
    assert fills
    before = trading.snapshot().manager.portfolio.cash
    trading.on_batch([("acct", fills[0])])
    assert trading.snapshot().manager.portfolio.cash == before


def test_a_paused_strategy_has_its_entries_denied_and_its_exits_judged_until_resumed(candles):
    baseline, _, _, _ = lockstep(candles)
    entries = [
        o
        for o in baseline
        if isinstance(o, RiskDecision) and o.kind is DecisionKind.APPROVED and o.event.intent.side.value == "buy"
    ]
    first_entry = entries[0].event.intent.ts_event
    first_index = next(i for i, c in enumerate(candles) if c.ts_event >= first_entry)
    exit_after = next(
        o
        for o in baseline
        if isinstance(o, RiskDecision) and o.kind is DecisionKind.APPROVED and o.event.intent.side.value == "sell"
    )
    exit_index = next(i for i, c in enumerate(candles) if c.ts_event >= exit_after.event.intent.ts_event)
    # Pause right after the first entry (its exit must still be judged), resume 200 bars later.
    when = candles[first_index + 1].ts_event
    pause = PauseStrategy("acct", "ema_cross_rsi", "alice", "test: news", when)
    resume = ResumeStrategy("acct", "ema_cross_rsi", "alice", "test: news over", candles[first_index + 200].ts_event)
    assert first_index + 1 < exit_index < first_index + 200
    decided, _, _, _ = lockstep(candles, {first_index + 1: [pause], first_index + 200: [resume]})
    judged = [
        o for o in decided if isinstance(o, RiskDecision) and o.kind in (DecisionKind.APPROVED, DecisionKind.DENIED)
    ]
    paused_window = [d for d in judged if when <= d.ts < resume.ts]
    paused_entries = [d for d in paused_window if d.event.intent.side.value == "buy"]
    assert paused_entries and all(d.kind is DecisionKind.DENIED for d in paused_entries)
    assert all(d.reasons[0].code == "strategy_paused" and "alice" in d.reasons[0].message for d in paused_entries)
    exits = [d for d in paused_window if d.event.intent.side.value == "sell" and d.kind is DecisionKind.APPROVED]
    assert exits, "the paused strategy's exit was still judged and approved"
    after = [d for d in judged if d.ts >= resume.ts and d.event.intent.side.value == "buy"]
    assert any(d.kind is DecisionKind.APPROVED for d in after)


def test_features_that_stop_while_market_data_flows_open_the_stale_features_breaker(candles):
    """The account step sees every bar's feature vector; when the vectors stop (a feature engine
    stuck) while candles keep coming, the stale-features breaker puts the account in REDUCING once
    the newest vector is older than its limit (5 minutes on 1m bars), and it closes again when
    they come back."""
    from core.orders import TradingState
    from features.schema import FeatureVector

    instrument, account = setups(Mode.PAPER)
    breakers = account.limits.breakers.model_copy(update={"max_consecutive_losses": None})
    account = replace(account, limits=account.limits.model_copy(update={"breakers": breakers}))
    limit_bars = int(breakers.features_max_age.total_seconds() // 60)
    inst = InstrumentLogic(instrument, None, SystemClock())
    trading = AccountLogic({"acct": account}, SystemClock(), None)
    stop, resume = 200, 260
    changes = []
    for n, candle in enumerate(candles[:320]):
        items, _ = inst.on_batch([candle])
        fed = [i for i in items if not (isinstance(i, FeatureVector) and stop <= n < resume)]
        out, _ = trading.on_batch([("acct", i) for i in fed if isinstance(i, Candle | Signal | FeatureVector)])
        changes += [(n, d) for d in out if isinstance(d, RiskDecision) and d.kind is DecisionKind.STATE_CHANGED]
    tripped = [(n, d) for n, d in changes if "stale_features closed->open" in d.to_record()["reason"]]
    assert tripped and stop + limit_bars <= tripped[0][0] <= stop + limit_bars + 1, changes
    assert tripped[0][1].trading_state is TradingState.REDUCING
    assert any(n >= resume and "stale_features" in d.to_record()["reason"] for n, d in changes)  # closed again
    assert trading.snapshot().engine.state is TradingState.ACTIVE


def test_every_submit_to_the_venue_is_counted_in_the_order_ack_latency_histogram(candles):
    from prometheus_client import REGISTRY

    def acks() -> float:
        return REGISTRY.get_sample_value("bot4_order_ack_latency_seconds_count", {"venue": "binance"}) or 0.0

    instrument, account = setups(Mode.PAPER)
    inst = InstrumentLogic(instrument, None, SystemClock())
    trading = AccountLogic({"acct": account}, SystemClock(), None)
    before = acks()
    approved = 0
    for candle in candles[:300]:
        items, _ = inst.on_batch([candle])
        out, _ = trading.on_batch([("acct", i) for i in items if isinstance(i, Candle | Signal)])
        approved += sum(1 for o in out if isinstance(o, ApprovedOrder))
    assert approved > 0 and acks() - before == approved  # one acknowledged submit per approved order


def test_a_live_accounts_snapshot_holds_no_exchange_connection_and_a_restore_reconnects_and_reconciles(candles):
    """Live mode: the order manager works on an exchange connection (here the real paper venue
    standing in for the exchange, which keeps its orders while we restart). The recovery snapshot
    must not carry the connection (a client, locks, the API keys); after a restore the account
    opens a new one from its factory and reconciles its orders with the exchange's."""
    import pickle

    from core.clock import ManualClock
    from execution.manager import OrderManager
    from execution.paper import PaperVenue

    instrument, account = setups(Mode.LIVE)
    exchange = PaperVenue(account.capabilities, account.balances)
    connections: list[PaperVenue] = []

    def connect() -> PaperVenue:
        connections.append(exchange)
        return exchange

    account = replace(account, live_venue=connect)
    clock = ManualClock(candles[0].ts_event)
    inst = InstrumentLogic(instrument, None, clock)
    trading = AccountLogic({"acct": account}, clock, None)
    sent_at = 0
    for at, candle in enumerate(candles):  # until an order is sent and rests, waiting for its bar
        clock.set(candle.ts_event + timedelta(minutes=1))
        exchange.on_candle(candle)  # the exchange sees its own market
        items, _ = inst.on_batch([candle])
        out, _ = trading.on_batch([("acct", i) for i in items if isinstance(i, Candle | Signal)])
        if any(isinstance(o, ApprovedOrder) for o in out):
            sent_at = at
            break
    state = trading.snapshot()
    open_before = {o.client_order_id for o in state.manager.open_orders()}
    assert open_before  # sent, accepted, waiting for the next bar
    blob = pickle.dumps(state)
    assert len(connections) == 1
    restored = pickle.loads(blob)
    assert isinstance(restored.manager, OrderManager) and restored.manager.venue is None
    assert trading.state.manager.venue is exchange  # the running account kept its connection

    resumed = AccountLogic({"acct": account}, clock, restored)
    nxt = candles[sent_at + 1]
    clock.set(nxt.ts_event + timedelta(minutes=1))
    exchange.on_candle(nxt)  # while we were away, the exchange filled the order at this bar's open
    out, _ = resumed.on_batch([("acct", nxt)])
    assert len(connections) == 2 and resumed.state.manager.venue is exchange  # reconnected
    fills = [o for o in out if isinstance(o, Fill)]
    assert {f.client_order_id for f in fills} == open_before and fills[0].price == nxt.open  # reconciled
    assert not resumed.snapshot().manager.open_orders()
