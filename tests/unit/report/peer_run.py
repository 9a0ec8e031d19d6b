"""A realistic report input from real data: freqtrade's 1h EMA-cross/RSI backtest on Binance BTC/USDT.

- Fills: each of freqtrade's 965 trades (``reference/freqtrade-ema-cross-rsi/trades-1h.csv``) is a buy
  at its open time and price and a sell at its close time and price, with freqtrade's 0.1% fee per
  side charged in USDT on each side's notional.
- Equity: 10,000 USDT (freqtrade's wallet) marked to market at every real 1h candle close of
  ``candles/binance-1h/BTC_USDT-1h.feather`` (the price series of the report too).
- Risk decisions: what Bot4's own risk engine (``risk.engine.RiskEngine``) says about each entry,
  fed the trades' closing PnL (its consecutive-losses breaker: 5 losses in a row pause new entries
  for a day) and the realised equity. freqtrade had no such gate, so every trade still happened;
  the denials show where Bot4 would have refused the entry.
"""

from __future__ import annotations

import csv
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from decimal import Decimal
from pathlib import Path

import pandas as pd

from core.clock import ManualClock
from core.events import Side
from core.fills import Fill, Liquidity
from core.money import float_to_decimal
from core.orders import OrderIntent, OrderType, client_order_id
from flows.report import EquitySample, PricePoint, RunMetadata, RunResults
from risk.config import BreakerLimits, RiskLimits
from risk.decisions import RiskDecision
from risk.engine import RiskEngine
from risk.market import InstrumentRules, MarketView
from risk.portfolio import PortfolioView

REPO = Path(__file__).resolve().parents[3]
SHARED = REPO.parent / "shared"
REFERENCE = SHARED / "reference" / "freqtrade-ema-cross-rsi"
CANDLES = SHARED / "data" / "candles" / "binance-1h" / "BTC_USDT-1h.feather"
SYMBOL, ACCOUNT, STRATEGY = "BTC/USDT", "ft-1h", "ema-cross-rsi"
WALLET = Decimal(10_000)


@dataclass(frozen=True)
class PeerTrade:
    open_ts: datetime
    close_ts: datetime
    open_rate: Decimal
    close_rate: Decimal
    amount: Decimal
    fee_open: Decimal
    fee_close: Decimal
    profit_abs: Decimal


def load_peer_trades() -> list[PeerTrade]:
    with (REFERENCE / "trades-1h.csv").open(newline="") as src:
        return [
            PeerTrade(
                datetime.fromisoformat(row["open_date"]),
                datetime.fromisoformat(row["close_date"]),
                Decimal(row["open_rate"]),
                Decimal(row["close_rate"]),
                Decimal(row["amount"]),
                Decimal(row["fee_open"]),
                Decimal(row["fee_close"]),
                Decimal(row["profit_abs"]),
            )
            for row in csv.DictReader(src)
        ]


def _fill(trade_no: int, side: Side, price: Decimal, amount: Decimal, fee_rate: Decimal, ts: datetime) -> Fill:
    return Fill(
        "binance", f"ft-{trade_no}-{side.value}", f"ft-{trade_no}", ACCOUNT, SYMBOL, side, price, amount,
        price * amount * fee_rate, "USDT", Liquidity.TAKER, ts,
    )  # fmt: skip


def peer_fills(trades: list[PeerTrade]) -> tuple[Fill, ...]:
    fills = []
    for i, t in enumerate(trades):
        fills.append(_fill(i, Side.BUY, t.open_rate, t.amount, t.fee_open, t.open_ts))
        fills.append(_fill(i, Side.SELL, t.close_rate, t.amount, t.fee_close, t.close_ts))
    return tuple(fills)


def candle_closes() -> list[PricePoint]:
    """(close time, close) of every real candle: a candle stamped at its open closes an hour later."""
    frame = pd.read_feather(CANDLES, columns=["date", "close"])
    hour = timedelta(hours=1)
    return [
        PricePoint(ts.to_pydatetime() + hour, float_to_decimal(float(c), name="close"))
        for ts, c in zip(frame["date"], frame["close"], strict=True)
    ]


def mark_to_market(fills: tuple[Fill, ...], closes: list[PricePoint]) -> tuple[EquitySample, ...]:
    """Cash and position after every fill at or before each candle close, valued at that close."""
    ordered = sorted(fills, key=lambda f: (f.ts_event, f.fill_id))
    cash, held, i = WALLET, Decimal(0), 0
    out = []
    for p in closes:
        while i < len(ordered) and ordered[i].ts_event <= p.ts:
            f = ordered[i]
            sign = 1 if f.side is Side.BUY else -1
            cash -= sign * f.notional + f.fee
            held += sign * f.amount
            i += 1
        exposure = abs(held) * p.close
        out.append(EquitySample(p.ts, cash + held * p.close, cash, exposure))
    return tuple(out)


def gate_decisions(trades: list[PeerTrade]) -> tuple[RiskDecision, ...]:
    """Bot4's risk engine judging each peer entry, observing each trade's realised PnL and equity."""
    limits = RiskLimits(
        max_position_pct=Decimal("0.2"),
        breakers=BreakerLimits(consecutive_losses_cooldown=timedelta(days=1)),
    )
    clock = ManualClock(trades[0].open_ts)
    engine = RiskEngine(ACCOUNT, limits, clock)
    rules = InstrumentRules(Decimal("0.01"), Decimal("0.00001"), min_notional=Decimal(5))
    decisions: list[RiskDecision] = []
    equity = WALLET
    for t in trades:
        clock.set(t.open_ts)
        decisions += engine.observe(engine.machine.tick())
        intent = OrderIntent(
            ACCOUNT, STRATEGY, "binance", SYMBOL, Side.BUY, OrderType.MARKET, t.amount, None, False,
            client_order_id(STRATEGY, SYMBOL, t.open_ts), t.open_ts,
        )  # fmt: skip
        market = MarketView("binance", SYMBOL, t.open_rate, rules, t.open_ts)
        _, decision = engine.evaluate(intent, PortfolioView(ACCOUNT, equity), market)
        decisions.append(decision)
        clock.set(t.close_ts)
        equity += t.profit_abs
        decisions += engine.observe(engine.machine.on_trade_closed(t.profit_abs))
        decisions += engine.observe(engine.machine.on_equity(equity))
    return tuple(decisions)


def freqtrade_results() -> RunResults:
    trades = load_peer_trades()
    fills = peer_fills(trades)
    closes = candle_closes()
    meta = RunMetadata(
        run_id="freqtrade-ema-cross-rsi-1h",
        mode="backtest",
        strategies=(STRATEGY,),
        exchange="binance",
        symbols=(SYMBOL,),
        timeframe="1h",
        start=closes[0].ts,
        end=closes[-1].ts,
        initial_equity=WALLET,
        quote_currency="USDT",
        settings={"stake_amount": "1000", "fee": "0.001", "max_open_trades": 1, "stoploss": -0.1},
        data_sources=(str(CANDLES.relative_to(SHARED)), str((REFERENCE / "trades-1h.csv").relative_to(SHARED))),
        wall_time_s=0.0,
        events_processed=len(closes),
    )
    return RunResults(meta, mark_to_market(fills, closes), fills, gate_decisions(trades), {SYMBOL: tuple(closes)}, ())


def first_days(results: RunResults, days: int) -> RunResults:
    """The same run cut to its first ``days`` days (a smaller real input for tests that need no more)."""
    end = results.metadata.start + timedelta(days=days)
    trades_done = {f.client_order_id for f in results.fills if f.side is Side.SELL and f.ts_event <= end}
    return RunResults(
        replace(results.metadata, end=end),
        tuple(s for s in results.equity if s.ts <= end),
        tuple(f for f in results.fills if f.client_order_id in trades_done),
        tuple(d for d in results.decisions if d.ts <= end),
        {sym: tuple(p for p in pts if p.ts <= end) for sym, pts in results.prices.items()},
        results.dead_letters,
    )
