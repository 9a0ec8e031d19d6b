"""Replay of April-May 2021 (Binance BTC/USDT 5m candles, with the May crash) through the risk engine.

A naive always-long strategy buys back up to 95% of equity whenever it is below that; fills happen
at the bar's close. The drawdown breaker (15%) must halt on the first bar whose close takes equity
15% below its peak (so the loss passes the limit by at most that one bar's move), and nothing may
trade until a person resets it, here a day later. A reset re-bases the peak, so the crash halts
trading again.
"""

from __future__ import annotations

import json
from datetime import timedelta
from decimal import Decimal
from pathlib import Path

from core.clock import ManualClock, from_epoch_ms, parse_utc
from core.events import Side
from core.money import float_to_decimal
from core.orders import ApprovedOrder, OrderIntent, OrderType, ResetBreaker, TradingState, client_order_id
from risk.config import BreakerLimits, RiskLimits
from risk.engine import RiskEngine
from risk.market import InstrumentRules, MarketView
from risk.portfolio import PortfolioView, Position

CANDLES = "candles/binance-1m-2021/BTC_USDT-5m.json"
RULES = InstrumentRules(Decimal("0.01"), Decimal("0.00001"), Decimal("0.00001"), None, Decimal(5))
ACCOUNT = "replay"
LIMIT = Decimal("0.15")
BAR = timedelta(minutes=5)


def load_bars(shared_data: Path) -> list[tuple[int, Decimal]]:
    rows = json.loads((shared_data / CANDLES).read_text())
    return [(int(r[0]), float_to_decimal(r[4])) for r in rows]


def test_may_2021_crash_halts_at_the_first_bar_past_15_percent_and_nothing_trades_until_reset(
    shared_data: Path,
) -> None:
    bars = load_bars(shared_data)
    limits = RiskLimits(
        max_position_pct=Decimal(1),
        max_leverage=Decimal(1),
        max_order_notional=None,
        breakers=BreakerLimits(daily_loss_pct=None, max_consecutive_losses=None),
    )
    clock = ManualClock(from_epoch_ms(bars[0][0]))
    engine = RiskEngine(ACCOUNT, limits, clock)
    cash, units = Decimal(100_000), Decimal(0)
    peak = equity = cash
    drawdowns: list[Decimal] = []
    halts: list[int] = []
    trades_while_halted = attempts_while_halted = 0
    approvals_between_halts = 0
    for i, (open_ms, close) in enumerate(bars):
        now = from_epoch_ms(open_ms) + BAR
        clock.set(now)
        if (
            halts
            and engine.state is TradingState.HALTED
            and now >= from_epoch_ms(bars[halts[-1]][0]) + timedelta(days=1)
        ):
            engine.reset(ResetBreaker(ACCOUNT, "drawdown", "risk-officer", "reviewed the drop", now))
            peak = equity  # the breaker re-bases its peak at the last equity it saw
        equity = cash + units * close
        peak = max(peak, equity)
        drawdowns.append((peak - equity) / peak)
        records = engine.observe(engine.machine.on_equity(equity))
        if any(r.to_record().get("new") == "halted" for r in records):
            halts.append(i)
        book = PortfolioView(ACCOUNT, equity, [Position("binance", "BTC/USDT", units, close)])
        want = equity * Decimal("0.95") / close - units
        if want < Decimal("0.001"):
            continue  # fully invested: this naive strategy only ever adds
        coid = client_order_id("always-long", "BTC/USDT", now)
        intent = OrderIntent(
            ACCOUNT, "always-long", "binance", "BTC/USDT", Side.BUY, OrderType.MARKET, want, None, False, coid, now
        )
        outcome, decision = engine.evaluate(intent, book, MarketView("binance", "BTC/USDT", close, RULES, now))
        halted = engine.state is TradingState.HALTED
        attempts_while_halted += halted
        if isinstance(outcome, ApprovedOrder):
            units += outcome.amount
            cash -= outcome.amount * close
            trades_while_halted += halted
            approvals_between_halts += bool(halts) and not halted
        else:
            assert halted == ("trading_halted" in outcome.codes)
            assert decision.to_record()["kind"] == "denied"

    assert len(halts) >= 2
    for i in halts:
        # the first bar at or past the limit halts: the bar before was still inside it
        assert drawdowns[i - 1] < LIMIT <= drawdowns[i]
        move = abs(bars[i][1] - bars[i - 1][1]) / bars[i - 1][1]
        assert drawdowns[i] - LIMIT <= move
    crash = [i for i in halts if parse_utc("2021-05-12T00:00:00Z") < from_epoch_ms(bars[i][0])]
    assert crash, [from_epoch_ms(bars[i][0]).isoformat() for i in halts]
    assert attempts_while_halted > 100, attempts_while_halted
    assert trades_while_halted == 0
    assert approvals_between_halts > 0
