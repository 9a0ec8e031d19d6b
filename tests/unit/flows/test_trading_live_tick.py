"""An account trading on an exchange judges its breakers on the wall clock even when no record arrives.

Found by the exchange-fault chaos test (tests/chaos/test_exchange_faults.py): the account step ran
only when a record came, so a market-data feed that stopped left the account ACTIVE for as long as
it stayed away; the stale-market-data breaker opened only once data came back.
"""

from __future__ import annotations

from dataclasses import replace
from datetime import timedelta
from decimal import Decimal

from core.clock import ManualClock
from core.events import Candle
from core.orders import TradingState
from execution.paper import PaperVenue
from flows.demo import TRADING_FILES
from flows.replay import read_events
from flows.trading import LIVE_BREAKER_TICK, AccountLogic, Mode
from risk.decisions import DecisionKind, RiskDecision
from tests.unit.flows.test_trading_flow import setups


def _first_candle() -> Candle:
    return next(e for e in read_events(TRADING_FILES[0]) if isinstance(e, Candle) and e.symbol == "BTC/USDT")


def test_a_feed_that_stops_makes_a_live_account_reducing_on_the_wall_clock_without_another_record() -> None:
    _, account = setups(Mode.TESTNET)
    account = replace(account, live_venue=lambda: PaperVenue(account.capabilities, {"USDT": Decimal(10_000)}))
    candle = _first_candle()
    clock = ManualClock(candle.ts_event + timedelta(minutes=1))  # the bar just closed: its data is fresh
    logic = AccountLogic({"acct": account}, clock, None)
    logic.on_batch([("acct", candle)])
    max_age = account.limits.breakers.market_data_max_age  # two 1m bars for a candle feed

    clock.advance(max_age / 2)
    assert logic.notify_at() == clock.now() + LIVE_BREAKER_TICK
    out, _ = logic.on_notify()
    assert not [r for r in out if isinstance(r, RiskDecision)]

    clock.advance(max_age / 2 + timedelta(seconds=1))  # nothing arrived: the feed has stopped
    out, _ = logic.on_notify()
    [change] = [r for r in out if isinstance(r, RiskDecision) and r.kind is DecisionKind.STATE_CHANGED]
    assert change.trading_state is TradingState.REDUCING
    assert "stale_market_data closed->open: binance:BTC/USDT" in change.to_record()["reason"]


def test_a_paper_account_on_event_time_asks_for_no_wall_clock_tick() -> None:
    _, account = setups(Mode.PAPER)
    candle = _first_candle()
    logic = AccountLogic({"acct": account}, ManualClock(candle.ts_event), None)
    logic.on_batch([("acct", candle)])
    assert logic.notify_at() is None
