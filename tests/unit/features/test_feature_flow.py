"""Trade-flow features on the real Binance trades equal a direct recount of the window."""

from __future__ import annotations

from bisect import bisect_left
from datetime import timedelta
from decimal import Decimal

import pytest

from core.clock import to_epoch_us
from core.events import Side, Trade
from features.bars import InvalidTrade
from features.flow import TradeFlow


def recount(trades: list[Trade], times: list[int], end_us: int, window_us: int) -> tuple[Decimal, Decimal, int]:
    chosen = trades[bisect_left(times, end_us - window_us) : bisect_left(times, end_us)]
    buy = sum((t.amount for t in chosen if t.side is Side.BUY), Decimal(0))
    sell = sum((t.amount for t in chosen if t.side is Side.SELL), Decimal(0))
    return buy, sell, len(chosen)


def test_streaming_flow_equals_a_recount_of_the_window_at_every_step(btc_ws_trades: list[Trade]) -> None:
    trades = btc_ws_trades
    times = [to_epoch_us(t.ts_event) for t in trades]
    assert times == sorted(times)
    window = timedelta(seconds=30)
    flow = TradeFlow(window)  # retention = window: the smallest that answers "now"
    for i, trade in enumerate(trades):
        assert flow.update(trade) is None
        if i % 97:
            continue
        got = flow.get()
        buy, sell, count = recount(trades[: i + 1], times[: i + 1], times[i] + 1, 30_000_000)
        assert got.buy_volume == pytest.approx(float(buy), rel=1e-12, abs=0)
        assert got.sell_volume == pytest.approx(float(sell), rel=1e-12, abs=0)
        assert got.trade_count == count and got.intensity == pytest.approx(count / 30.0)
        if buy + sell:
            assert got.imbalance == pytest.approx(float((buy - sell) / (buy + sell)), rel=1e-9, abs=1e-12)
    assert flow.forgotten == 0
    assert flow.newest == trades[-1].ts_event


def test_out_of_order_trade_within_retention_counts_and_older_is_forgotten(btc_ws_trades: list[Trade]) -> None:
    flow = TradeFlow(timedelta(seconds=10), retention=timedelta(seconds=20))
    trades = btc_ws_trades[:2000]
    span = trades[-1].ts_event - trades[0].ts_event
    assert span > timedelta(seconds=40)
    held_back = trades[-10]
    for trade in trades:
        if trade is not held_back:
            flow.update(trade)
    before = flow.get(end=held_back.ts_event + timedelta(microseconds=1))
    flow.update(held_back)  # a few seconds late, inside the retention
    after = flow.get(end=held_back.ts_event + timedelta(microseconds=1))
    assert after.trade_count == before.trade_count + 1
    flow.update(trades[0])  # far older than the retention
    assert flow.forgotten == 1


def test_empty_window_and_bad_input() -> None:
    flow = TradeFlow()
    value = flow.get()
    assert (value.trade_count, value.imbalance, value.intensity) == (0, None, 0.0)
    with pytest.raises(ValueError, match="window"):
        TradeFlow(timedelta(0))
    with pytest.raises(ValueError, match="retention"):
        TradeFlow(timedelta(seconds=10), retention=timedelta(seconds=5))


def test_invalid_trade_is_returned_not_counted(btc_ws_trades: list[Trade]) -> None:
    import dataclasses

    flow = TradeFlow()
    bad = dataclasses.replace(btc_ws_trades[0], amount=Decimal(-1))
    result = flow.update(bad)
    assert isinstance(result, InvalidTrade) and result.reason == "amount_not_positive"
    assert flow.get().trade_count == 0
