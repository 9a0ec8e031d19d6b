"""Bars from real trades equal freqtrade's candles and a batch pandas resample; candles as bars.

How freqtrade builds its candles (``freqtrade.data.converter.trades_to_ohlcv``): it resamples the
trade prices with pandas (``resample(...).ohlc()``, volume ``amount.sum()``) and then calls
``dropna()``, so an interval without trades has no row at all. Our builder emits that interval
as an explicit empty bar; the comparison below therefore matches our non-empty bars row for row
and checks that our empty bars are exactly the intervals freqtrade has no row for.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta
from decimal import Decimal

import numpy as np
import pandas as pd
import pytest

from core.clock import from_epoch_ms
from core.events import Candle, Side, Trade
from features.bars import (
    Bar,
    CandleBars,
    InvalidTrade,
    LateTrade,
    RejectedCandle,
    TimeBarBuilder,
    VolumeBarBuilder,
    bar_from_candle,
)

FREQ = {"1m": "1min", "5m": "5min", "1h": "1h"}


@pytest.fixture(scope="module")
def xrp_bars(xrp_trades: list[Trade]) -> dict[str, list[Bar]]:
    """XRP/ETH bars per timeframe (30 s lateness; the file is sorted, so nothing is late)."""
    return {tf: build_bars(xrp_trades, tf, lateness=timedelta(seconds=30)) for tf in FREQ}


def build_bars(trades: list[Trade], timeframe: str, lateness: timedelta = timedelta(0)) -> list[Bar]:
    builder = TimeBarBuilder(timeframe, allowed_lateness=lateness)
    out: list[object] = []
    for trade in trades:
        out.extend(builder.update(trade))
    out.extend(builder.flush())
    assert all(isinstance(o, Bar) for o in out), [o for o in out if not isinstance(o, Bar)][:3]
    return out  # type: ignore[return-value]


def bars_frame(bars: list[Bar]) -> pd.DataFrame:
    return pd.DataFrame(
        {
            "date": pd.to_datetime([b.start for b in bars], utc=True),
            "open": [b.open for b in bars],
            "high": [b.high for b in bars],
            "low": [b.low for b in bars],
            "close": [b.close for b in bars],
            "volume": [b.volume for b in bars],
        }
    )


@pytest.mark.parametrize("timeframe", ["1m", "5m"])
def test_bars_from_xrp_trades_equal_freqtrade_candles_exactly(
    xrp_bars: dict[str, list[Bar]], xrp_candles: dict[str, pd.DataFrame], timeframe: str
) -> None:
    bars = xrp_bars[timeframe]
    expected = xrp_candles[timeframe].reset_index(drop=True)
    ours = bars_frame([b for b in bars if not b.empty])

    assert len(ours) == len(expected)
    assert (ours["date"].to_numpy() == expected["date"].to_numpy()).all()
    for column in ("open", "high", "low", "close"):
        assert np.array_equal(ours[column].to_numpy(), expected[column].to_numpy()), column
    # Volume: ours is the exact Decimal sum rounded once, freqtrade's a float sum; equal to the
    # float tolerance of that sum (here bit for bit: the XRP amounts are whole numbers).
    np.testing.assert_allclose(ours["volume"], expected["volume"], rtol=1e-12, atol=0)
    assert np.array_equal(ours["volume"].to_numpy(), expected["volume"].to_numpy())

    # The gaps: exactly the intervals between the first and last candle that freqtrade dropped.
    full = pd.date_range(expected["date"].iloc[0], expected["date"].iloc[-1], freq=FREQ[timeframe])
    missing = set(full) - set(expected["date"])
    empty = [b for b in bars if b.empty]
    assert {pd.Timestamp(b.start) for b in empty} == missing
    assert len(bars) == len(full)
    assert all(
        b.open is None and b.close is None and b.volume == 0.0 and b.trade_count == 0 and b.vwap is None for b in empty
    )
    assert timeframe != "1m" or len(empty) > 1000  # the 1m series really has gaps to show


@pytest.mark.parametrize("timeframe", ["1m", "5m", "1h"])
def test_bars_from_xrp_trades_equal_a_batch_pandas_resample(
    xrp_bars: dict[str, list[Bar]], xrp_trades_df: pd.DataFrame, timeframe: str
) -> None:
    df = xrp_trades_df.set_index("date")
    # pandas' first/last follow row order: check the file is in (time, id) order as ours is.
    order = list(zip(xrp_trades_df["timestamp"], xrp_trades_df["id"].astype(int), strict=True))
    assert order == sorted(order)
    resampled = df["price"].resample(FREQ[timeframe])
    batch = resampled.ohlc()
    batch["volume"] = df["amount"].resample(FREQ[timeframe]).sum()
    batch["notional"] = (df["price"] * df["amount"]).resample(FREQ[timeframe]).sum()
    batch["count"] = resampled.count()
    batch["buy"] = df["amount"].where(df["side"] == "buy", 0.0).resample(FREQ[timeframe]).sum()
    batch["sell"] = df["amount"].where(df["side"] == "sell", 0.0).resample(FREQ[timeframe]).sum()

    bars = xrp_bars[timeframe]
    assert len(bars) == len(batch)
    assert [pd.Timestamp(b.start) for b in bars] == list(batch.index)
    for column in ("open", "high", "low", "close"):
        ours = np.array([np.nan if getattr(b, column) is None else getattr(b, column) for b in bars])
        assert np.array_equal(ours, batch[column].to_numpy(), equal_nan=True), column
    assert [b.empty for b in bars] == list(batch["count"] == 0)
    assert [b.trade_count for b in bars] == list(batch["count"])
    for column, attr in (
        ("volume", "volume"),
        ("notional", "notional"),
        ("buy", "buy_volume"),
        ("sell", "sell_volume"),
    ):
        np.testing.assert_allclose([getattr(b, attr) for b in bars], batch[column], rtol=1e-12, atol=0)
    traded = batch["count"] > 0
    np.testing.assert_allclose(
        [b.vwap for b in bars if not b.empty], (batch["notional"] / batch["volume"])[traded], rtol=1e-12
    )


def _trade(tid: str, ms: int, price: str, amount: str = "1", side: Side | None = Side.BUY) -> Trade:
    when = from_epoch_ms(ms)
    return Trade("binance", "BTC/USDT", tid, Decimal(price), Decimal(amount), side, when, when)


def test_trade_behind_the_watermark_is_reported_late_and_never_merged(btc_ws_trades: list[Trade]) -> None:
    trades = btc_ws_trades[:3000]
    builder = TimeBarBuilder("1m", allowed_lateness=timedelta(seconds=2))
    out: list[object] = []
    for trade in trades:
        out.extend(builder.update(trade))
    # Re-send a trade from the first minute: it is 2+ minutes behind now.
    old = trades[10]
    result = builder.update(old)
    assert len(result) == 1 and isinstance(result[0], LateTrade)
    late = result[0]
    assert late.trade is old and late.reason == "late_trade" and "behind the watermark" in late.detail
    assert builder.watermark is not None and late.trade.ts_event < late.watermark
    out.extend(builder.flush())
    assert sum(b.trade_count for b in out if isinstance(b, Bar)) == len(trades)  # not merged


def test_flush_closes_open_bars_and_later_trades_in_them_are_late() -> None:
    builder = TimeBarBuilder("1m", allowed_lateness=timedelta(minutes=10))
    assert builder.update(_trade("1", 60_000, "100")) == ()
    assert builder.update(_trade("2", 185_000, "101")) == ()
    bars = builder.flush()
    assert [(b.start.minute, b.empty) for b in bars] == [(1, False), (2, True), (3, False)]
    assert bars[1].typical_price is None and bars[0].typical_price == 100.0
    result = builder.update(_trade("3", 190_000, "102"))
    assert isinstance(result[0], LateTrade)
    assert builder.flush() == ()


def test_out_of_order_trade_in_an_earlier_bar_before_any_bar_closed_opens_that_bar() -> None:
    builder = TimeBarBuilder("1m", allowed_lateness=timedelta(minutes=2))
    builder.update(_trade("2", 65_000, "101"))
    builder.update(_trade("1", 30_000, "100"))  # a minute earlier, within the lateness
    bars = builder.advance(from_epoch_ms(300_000))
    assert [(b.start.minute, b.close) for b in bars] == [(0, 100.0), (1, 101.0), (2, None)]


def test_advance_closes_bars_without_trades_as_empty_bars() -> None:
    builder = TimeBarBuilder("1m", allowed_lateness=timedelta(seconds=1))
    builder.update(_trade("1", 5_000, "100"))
    bars = builder.advance(from_epoch_ms(181_000))
    assert [(b.start.minute, b.empty) for b in bars] == [(0, False), (1, True), (2, True)]
    assert builder.advance(from_epoch_ms(100_000)) == ()  # event time never goes back


def test_open_and_close_at_equal_time_follow_the_numeric_trade_id() -> None:
    builder = TimeBarBuilder("1m", allowed_lateness=timedelta(seconds=5))
    # Same millisecond, arriving in the wrong order; id 10 > id 9 numerically (not as text).
    for tid, price in (("10", "3"), ("9", "1"), ("11", "2"), ("abc", "7")):
        builder.update(_trade(tid, 1_000, price))
    (bar,) = builder.flush()
    assert (bar.open, bar.close, bar.high, bar.low) == (1.0, 7.0, 7.0, 1.0)  # non-numeric ids sort last


def test_trades_without_side_count_in_volume_only() -> None:
    builder = TimeBarBuilder("1m", allowed_lateness=timedelta(0))
    builder.update(_trade("1", 1_000, "100", "2", Side.BUY))
    builder.update(_trade("2", 2_000, "100", "3", Side.SELL))
    builder.update(_trade("3", 3_000, "100", "5", None))
    (bar,) = builder.flush()
    assert (bar.volume, bar.buy_volume, bar.sell_volume, bar.trade_count) == (10.0, 2.0, 3.0, 3)


@pytest.mark.parametrize(
    ("price", "amount", "reason"),
    [
        ("NaN", "1", "price_not_finite"),
        ("100", "Infinity", "amount_not_finite"),
        ("0", "1", "price_not_positive"),
        ("100", "0", "amount_not_positive"),
    ],
)
def test_invalid_trade_is_reported_not_raised(price: str, amount: str, reason: str) -> None:
    builder = TimeBarBuilder("1m")
    (result,) = builder.update(_trade("1", 1_000, price, amount))
    assert isinstance(result, InvalidTrade) and result.reason == reason
    assert builder.flush() == ()


def test_builder_refuses_negative_lateness_and_bad_timeframe() -> None:
    with pytest.raises(ValueError, match="allowed_lateness"):
        TimeBarBuilder("1m", allowed_lateness=timedelta(seconds=-1))
    with pytest.raises(ValueError, match="timeframe"):
        TimeBarBuilder("1x")


# -- candles -----------------------------------------------------------------------------------


def test_binance_1h_candles_become_bars_with_every_outage_gap_explicit(
    btc_1h: pd.DataFrame, btc_1h_candles: list[Candle]
) -> None:
    candles = btc_1h_candles
    bars = CandleBars("1h")
    out = [o for c in candles for o in bars.update(c)]
    assert all(isinstance(o, Bar) for o in out)
    full = pd.date_range(btc_1h["date"].iloc[0], btc_1h["date"].iloc[-1], freq="1h")
    assert [pd.Timestamp(b.start) for b in out] == list(full)  # type: ignore[union-attr]
    filled = [b for b in out if isinstance(b, Bar) and not b.empty]
    assert len(filled) == len(btc_1h)
    assert [b.close for b in filled] == btc_1h["close"].tolist()
    assert [b.volume for b in filled] == btc_1h["volume"].tolist()
    gaps = [b for b in out if isinstance(b, Bar) and b.empty]
    gap_starts = pd.DatetimeIndex([b.start for b in gaps])
    runs = int((np.diff(gap_starts.asi8) != 3_600_000_000_000).sum()) + 1
    assert runs == 28  # the 28 real outages of the data set's README
    assert all(b.trade_count is None and b.vwap is None and b.source == "candles" for b in gaps)


def test_candle_problems_are_rejected_with_a_reason(
    btc_1h: pd.DataFrame, to_candles: Callable[..., list[Candle]]
) -> None:
    candles = to_candles(btc_1h.iloc[:3], "1h")
    bars = CandleBars("1h")
    assert len(bars.update(candles[1])) == 1
    reasons = []
    for bad in (
        candles[0],  # older than the last bar
        candles[1],  # duplicate
        Candle(**{**_fields(candles[2]), "timeframe": "5m"}),
        Candle(**{**_fields(candles[2]), "high": Decimal(1)}),
        Candle(**{**_fields(candles[2]), "close": Decimal("NaN")}),
        Candle(**{**_fields(candles[2]), "low": Decimal(0)}),
        Candle(**{**_fields(candles[2]), "volume": Decimal(-1)}),
        Candle(**{**_fields(candles[2]), "ts_event": candles[2].ts_event + timedelta(minutes=1)}),
    ):
        (result,) = bars.update(bad)
        assert isinstance(result, RejectedCandle)
        reasons.append(result.reason)
    assert reasons == [
        "duplicate_or_out_of_order",
        "duplicate_or_out_of_order",
        "timeframe_mismatch",
        "invalid_ohlcv",
        "invalid_ohlcv",
        "invalid_ohlcv",
        "invalid_ohlcv",
        "misaligned",
    ]
    forming = Candle(**{**_fields(candles[2]), "closed": False})
    assert bars.update(forming) == ()  # superseded by the closed candle, not a bar
    (bar,) = bars.update(candles[2])
    assert isinstance(bar, Bar) and bar.close == btc_1h["close"].iloc[2]
    assert bar_from_candle(candles[2]) == bar


def _fields(candle: Candle) -> dict[str, object]:
    return {name: getattr(candle, name) for name in Candle.__dataclass_fields__}


# -- volume and dollar bars --------------------------------------------------------------------


@pytest.mark.parametrize(("unit", "threshold"), [("volume", "5"), ("dollar", "250000")])
def test_volume_and_dollar_bars_partition_the_real_trades(
    btc_ws_trades: list[Trade], unit: str, threshold: str
) -> None:
    builder = VolumeBarBuilder(threshold, unit)  # type: ignore[arg-type]
    bars = [o for t in btc_ws_trades for o in builder.update(t)]
    assert bars and all(isinstance(b, Bar) for b in bars)
    used = sum(b.trade_count for b in bars if isinstance(b, Bar) and b.trade_count)
    prefix = btc_ws_trades[:used]
    measure = [t.amount if unit == "volume" else t.price * t.amount for t in prefix]
    # Every bar closed on the first trade that brought it to the threshold.
    i = 0
    for bar in bars:
        assert isinstance(bar, Bar) and bar.trade_count is not None
        chunk = measure[i : i + bar.trade_count]
        assert sum(chunk) >= Decimal(threshold) > sum(chunk[:-1])
        assert bar.volume == float(sum(t.amount for t in prefix[i : i + bar.trade_count]))
        assert bar.start == prefix[i].ts_event and bar.end == prefix[i + bar.trade_count - 1].ts_event
        i += bar.trade_count


def test_volume_bars_refuse_bad_config_and_report_bad_trades() -> None:
    with pytest.raises(ValueError, match="threshold"):
        VolumeBarBuilder("0")
    with pytest.raises(ValueError, match="unit"):
        VolumeBarBuilder("1", "ticks")  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="float"):
        VolumeBarBuilder(1.5)  # type: ignore[arg-type]
    (result,) = VolumeBarBuilder("1").update(_trade("1", 1, "-5"))
    assert isinstance(result, InvalidTrade)
