"""Properties of event-time bars and flow on real trades, with Hypothesis choosing the disorder.

- Shuffled within the allowed lateness (each trade arrives at most ``lateness`` after a later
  one): the bars are identical to the bars of the sorted stream, and nothing is late.
- Shuffled beyond it: every trade is either in exactly one bar or reported as a LateTrade, and
  the bars are exactly the bars of the sorted stream without the late trades (never merged).
"""

from __future__ import annotations

from datetime import timedelta

from hypothesis import given, settings
from hypothesis import strategies as st

from core.clock import to_epoch_us
from core.events import Trade
from features.bars import Bar, LateTrade, TimeBarBuilder
from features.flow import TradeFlow

SETTINGS = settings(max_examples=25, deadline=None)


def build(trades: list[Trade], timeframe: str, lateness_ms: int) -> tuple[list[Bar], list[LateTrade]]:
    builder = TimeBarBuilder(timeframe, allowed_lateness=timedelta(milliseconds=lateness_ms))
    bars: list[Bar] = []
    late: list[LateTrade] = []
    for trade in trades:
        for out in builder.update(trade):
            if isinstance(out, Bar):
                bars.append(out)
            else:
                assert isinstance(out, LateTrade)
                late.append(out)
    bars.extend(builder.flush())
    return bars, late


@st.composite
def disorder(draw: st.DrawFn, trades: list[Trade], max_factor: int) -> tuple[list[Trade], list[Trade], str, int]:
    """A real slice of trades, and the same trades arriving with random delays."""
    n = draw(st.integers(20, 250))
    start = draw(st.integers(0, len(trades) - n))
    chosen = trades[start : start + n]
    timeframe = draw(st.sampled_from(["1s", "5s", "1m"]))
    lateness_ms = draw(st.integers(0, 5_000))
    bound = lateness_ms * max_factor
    delays = draw(st.lists(st.integers(0, bound), min_size=n, max_size=n))
    order = sorted(range(n), key=lambda i: (to_epoch_us(chosen[i].ts_event) + delays[i] * 1000, i))
    return chosen, [chosen[i] for i in order], timeframe, lateness_ms


@SETTINGS
@given(data=st.data())
def test_bars_of_trades_shuffled_within_lateness_equal_bars_of_sorted_trades(
    btc_ws_trades: list[Trade], data: st.DataObject
) -> None:
    ordered, arrived, timeframe, lateness_ms = data.draw(disorder(btc_ws_trades, max_factor=1))
    sorted_bars, sorted_late = build(ordered, timeframe, lateness_ms)
    shuffled_bars, shuffled_late = build(arrived, timeframe, lateness_ms)
    assert sorted_late == [] and shuffled_late == []
    assert shuffled_bars == sorted_bars
    assert sum(b.trade_count or 0 for b in shuffled_bars) == len(ordered)


@SETTINGS
@given(data=st.data())
def test_trades_beyond_the_watermark_are_reported_and_never_merged(
    btc_ws_trades: list[Trade], data: st.DataObject
) -> None:
    ordered, arrived, timeframe, lateness_ms = data.draw(disorder(btc_ws_trades, max_factor=4))
    bars, late = build(arrived, timeframe, lateness_ms)
    late_trades = [record.trade for record in late]
    assert all(record.trade.ts_event < record.watermark for record in late)
    assert sum(b.trade_count or 0 for b in bars) + len(late) == len(ordered)  # nothing dropped
    accepted = [t for t in ordered if not any(t is lt for lt in late_trades)]
    expected, _ = build(accepted, timeframe, lateness_ms)
    assert bars == expected


@SETTINGS
@given(data=st.data())
def test_flow_of_trades_shuffled_within_retention_equals_flow_of_sorted_trades(
    btc_ws_trades: list[Trade], data: st.DataObject
) -> None:
    ordered, arrived, _, lateness_ms = data.draw(disorder(btc_ws_trades, max_factor=1))
    window = timedelta(seconds=5)
    sorted_flow = TradeFlow(window, retention=window + timedelta(milliseconds=lateness_ms))
    shuffled_flow = TradeFlow(window, retention=window + timedelta(milliseconds=lateness_ms))
    for trade in ordered:
        sorted_flow.update(trade)
    for trade in arrived:
        shuffled_flow.update(trade)
    assert shuffled_flow.forgotten == 0
    end = ordered[-1].ts_event + timedelta(microseconds=1)
    for back in (0, 1, 2, 4):
        at = end - timedelta(seconds=back)
        assert shuffled_flow.get(at) == sorted_flow.get(at)
