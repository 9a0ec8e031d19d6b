"""The feature engine on real streams: schema, TA-Lib parity end to end, no look-ahead, bad input."""

from __future__ import annotations

import dataclasses
import itertools
from bisect import bisect_left
from datetime import timedelta
from decimal import Decimal

import numpy as np
import pandas as pd
import pytest
import talib

from core.clock import from_epoch_us, to_epoch_us
from core.events import BookDelta, BookSnapshot, Candle, MarketEvent, Quote, Side, Trade
from features.bars import InvalidTrade, LateTrade, RejectedCandle
from features.book import OrderBook, ResyncRequired
from features.engine import BOOK_DEPTH_BPS, BOOK_LEVELS, FeatureEngine
from features.schema import FEATURE_NAMES, FeatureVector, validate


def run_engine(engine: FeatureEngine, events: list) -> list:
    out = [o for event in events for o in engine.update(event)]
    return out + list(engine.flush())


def vectors_of(outputs: list) -> list[FeatureVector]:
    return [o for o in outputs if isinstance(o, FeatureVector)]


def column(vectors: list[FeatureVector], name: str) -> np.ndarray:
    return np.array([np.nan if v.values[name] is None else v.values[name] for v in vectors], dtype=float)


def assert_close(ours: np.ndarray, ref: np.ndarray, scale: np.ndarray | float) -> None:
    assert np.array_equal(np.isnan(ours), np.isnan(ref))
    mask = ~np.isnan(ref)
    floor = np.broadcast_to(np.asarray(scale, dtype=float), ref.shape)[mask]
    assert (np.abs(ours[mask] - ref[mask]) <= 1e-9 * np.maximum(np.abs(ref[mask]), floor)).all()


#: The first 8,000 hours of Binance BTC/USDT (2017-08 to 2018-07), with 6 of the 28 outages.
CANDLE_SLICE = slice(0, 8_000)


@pytest.fixture(scope="module")
def btc_1h_engine_outputs(btc_1h_candles: list[Candle]) -> list:
    return run_engine(FeatureEngine("1h", bars_from="candles"), btc_1h_candles[CANDLE_SLICE])


@pytest.fixture(scope="module")
def xrp_1m_outputs(xrp_trades: list[Trade]) -> list:
    return run_engine(FeatureEngine("1m", timedelta(seconds=5)), xrp_trades)


@pytest.fixture(scope="module")
def btc_ws_5s_outputs(btc_ws_day1: list[MarketEvent]) -> list:
    return run_engine(FeatureEngine("5s", timedelta(seconds=2)), btc_ws_day1)


def test_every_vector_on_real_streams_has_exactly_the_schema_and_valid_values(
    btc_ws_5s_outputs: list, xrp_1m_outputs: list, btc_1h_engine_outputs: list
) -> None:
    runs = {
        "btc ws 5s": btc_ws_5s_outputs,
        "xrp trades 1m": xrp_1m_outputs,
        "btc candles 1h": btc_1h_engine_outputs,
    }
    for name, outputs in runs.items():
        vectors = vectors_of(outputs)
        assert len(vectors) > 60, name
        for v in vectors:
            assert tuple(v.values) == FEATURE_NAMES, name
            assert validate(v.values) == [], (name, v.ts_event, validate(v.values))
            assert v.ts_event - v.bar_start in (timedelta(seconds=5), timedelta(minutes=1), timedelta(hours=1))
        ends = [v.ts_event for v in vectors]
        assert ends == sorted(ends) and len(set(ends)) == len(ends), name
    ws = vectors_of(runs["btc ws 5s"])
    # Warm vectors of the live capture have every feature (book and flow included).
    assert all(value is not None for value in ws[-1].values.values())
    others = [o for o in runs["btc ws 5s"] if not isinstance(o, FeatureVector)]
    assert [type(o).__name__ for o in others] == ["ResyncRequired"]  # the one request for a snapshot


def test_engine_on_binance_candles_equals_talib_and_holds_indicators_over_gaps(
    btc_1h: pd.DataFrame, btc_1h_engine_outputs: list
) -> None:
    vectors = vectors_of(btc_1h_engine_outputs)
    traded = [v for v in vectors if not v.values["bar_empty"]]
    frame = btc_1h.iloc[CANDLE_SLICE]
    assert len(traded) == len(frame) and len(vectors) > len(frame)  # some outage bars
    high, low, close, volume = (frame[c].to_numpy() for c in ("high", "low", "close", "volume"))
    assert_close(column(traded, "rsi_14"), talib.RSI(close, 14), 100.0)
    assert_close(column(traded, "sma_20"), talib.SMA(close, 20), close)
    assert_close(column(traded, "ema_20"), talib.EMA(close, 20), close)
    for name, ref in zip(("macd_12_26", "macd_signal_9", "macd_hist"), talib.MACD(close, 12, 26, 9), strict=True):
        assert_close(column(traded, name), ref, close)
    for name, ref in zip(
        ("bb_upper_20_2", "bb_middle_20", "bb_lower_20_2"), talib.BBANDS(close, 20, 2, 2, 0), strict=True
    ):
        assert_close(column(traded, name), ref, close)
    assert_close(column(traded, "atr_14"), talib.ATR(high, low, close, 14), close)
    k, d = talib.STOCH(high, low, close, 14, 3, 0, 3, 0)
    assert_close(column(traded, "stoch_k_14_3"), k, 100.0)
    assert_close(column(traded, "stoch_d_3"), d, 100.0)
    assert_close(column(traded, "obv"), talib.OBV(close, volume), np.cumsum(volume))

    # An empty (outage) bar: no prices, no returns, the indicators of the last traded bar.
    for prev, cur in itertools.pairwise(vectors):
        if cur.values["bar_empty"]:
            assert cur.values["bar_close"] is None and cur.values["return_1"] is None
            assert cur.values["bar_volume"] == 0.0 and cur.values["bar_trade_count"] is None
            for name in ("rsi_14", "macd_hist", "atr_14", "obv", "zscore_20"):
                assert cur.values[name] == prev.values[name]


def test_engine_from_xrp_trades_equals_talib_on_freqtrades_candles(
    xrp_1m_outputs: list, xrp_candles: dict[str, pd.DataFrame]
) -> None:
    """Trades -> bars -> indicators, end to end, against TA-Lib over freqtrade's own candles."""
    vectors = vectors_of(xrp_1m_outputs)
    traded = [v for v in vectors if not v.values["bar_empty"]]
    candles = xrp_candles["1m"]
    assert [pd.Timestamp(v.bar_start) for v in traded] == list(candles["date"])
    high, low, close, volume = (candles[c].to_numpy() for c in ("high", "low", "close", "volume"))
    assert_close(column(traded, "rsi_14"), talib.RSI(close, 14), 100.0)
    assert_close(column(traded, "ema_20"), talib.EMA(close, 20), close)
    assert_close(column(traded, "macd_hist"), talib.MACD(close, 12, 26, 9)[2], close)
    assert_close(column(traded, "atr_14"), talib.ATR(high, low, close, 14), close)
    assert_close(column(traded, "stoch_d_3"), talib.STOCH(high, low, close, 14, 3, 0, 3, 0)[1], 100.0)
    assert_close(column(traded, "obv"), talib.OBV(close, volume), np.cumsum(volume))


def _altered(event: MarketEvent) -> MarketEvent:
    """The same event with different values (never a different time or sequence)."""
    if isinstance(event, Trade):
        side = Side.SELL if event.side is Side.BUY else Side.BUY
        return dataclasses.replace(event, price=event.price * Decimal("1.01"), amount=event.amount * 2, side=side)
    if isinstance(event, BookDelta):
        return dataclasses.replace(
            event,
            bids=tuple((p, a * 3) for p, a in event.bids),
            asks=tuple((p, a * 3) for p, a in event.asks),
        )
    return event


def test_no_look_ahead_a_vector_is_unchanged_when_later_data_is_altered(btc_ws_day1: list[MarketEvent]) -> None:
    events = btc_ws_day1[: len(btc_ws_day1) // 2]
    trade_times = [e.ts_event for e in events if isinstance(e, Trade)]
    cut = trade_times[len(trade_times) // 2].replace(microsecond=0)
    cut -= timedelta(seconds=cut.second % 5)  # a 5 s bar boundary
    altered = [_altered(e) if e.ts_event >= cut else e for e in events]

    original = vectors_of(run_engine(FeatureEngine("5s", timedelta(seconds=2)), events))
    changed = vectors_of(run_engine(FeatureEngine("5s", timedelta(seconds=2)), altered))
    before = [v for v in original if v.ts_event <= cut]
    assert len(before) > 10
    assert [v for v in changed if v.ts_event <= cut] == before
    after = [(a, b) for a, b in zip(original, changed, strict=True) if a.ts_event > cut]
    assert after and all(a.values["bar_close"] != b.values["bar_close"] for a, b in after if not a.values["bar_empty"])
    assert all(a.values["book_imbalance_5"] != b.values["book_imbalance_5"] for a, b in after[1:])


def test_book_and_flow_features_are_as_of_the_bar_end(btc_ws_day1: list[MarketEvent], btc_ws_5s_outputs: list) -> None:
    """Book: the book after exactly the book events before the first one at/after the bar end.
    Flow: the trades of [end - 60 s, end)."""
    vectors = vectors_of(btc_ws_5s_outputs)
    book_events = [e for e in btc_ws_day1 if isinstance(e, BookSnapshot | BookDelta | Quote)]
    trades = [e for e in btc_ws_day1 if isinstance(e, Trade)]
    trade_times = [t.ts_event for t in trades]
    assert trade_times == sorted(trade_times)
    reference = OrderBook()
    fed = 0
    for vector in vectors:
        end = vector.ts_event
        stop = next(
            (i for i, e in enumerate(book_events) if isinstance(e, BookSnapshot | BookDelta) and e.ts_event >= end),
            len(book_events),
        )
        for event in book_events[fed:stop]:
            reference.update(event)
        fed = max(fed, stop)
        expected = reference.features(BOOK_LEVELS, BOOK_DEPTH_BPS)
        got = tuple(vector.values[n] for n in FEATURE_NAMES if n.startswith("book_"))
        assert got == (tuple(expected) if expected is not None else (None,) * 7), end

        window = trades[bisect_left(trade_times, end - timedelta(seconds=60)) : bisect_left(trade_times, end)]
        buy = sum((t.amount for t in window if t.side is Side.BUY), Decimal(0))
        sell = sum((t.amount for t in window if t.side is Side.SELL), Decimal(0))
        assert vector.values["flow_buy_volume_60s"] == pytest.approx(float(buy), rel=1e-12, abs=0)
        assert vector.values["flow_sell_volume_60s"] == pytest.approx(float(sell), rel=1e-12, abs=0)
        assert vector.values["flow_intensity_60s"] == pytest.approx(len(window) / 60.0, rel=1e-12)


def test_bad_input_gives_records_never_an_exception(
    btc_ws_day1: list[MarketEvent], btc_1h_candles: list[Candle]
) -> None:
    events = btc_ws_day1[:15_000]
    first_trade = next(e for e in events if isinstance(e, Trade))
    nan_trade = dataclasses.replace(first_trade, trade_id="nan", price=Decimal("NaN"))
    old_trade = dataclasses.replace(first_trade, trade_id="old", ts_event=first_trade.ts_event - timedelta(hours=6))
    mid = len(events) // 2
    last_delta = next(e for e in reversed(events[:mid]) if isinstance(e, BookDelta))
    assert last_delta.sequence is not None
    crossing = BookDelta(
        "binance", "BTC/USDT", last_delta.sequence + 1, last_delta.sequence + 1,
        ((Decimal("99999"), Decimal("1")),), (), last_delta.ts_event, last_delta.ts_recv,
    )  # fmt: skip
    later_delta = next(e for e in events[mid + 1 :] if isinstance(e, BookDelta))
    events[mid:mid] = [nan_trade, old_trade, crossing]
    engine = FeatureEngine("5s", timedelta(seconds=2))
    outputs = run_engine(engine, events)
    records = [o for o in outputs if not isinstance(o, FeatureVector)]
    assert [type(r) for r in records] == [ResyncRequired, InvalidTrade, LateTrade, ResyncRequired]
    assert records[-1].reason == "crossed_book"  # type: ignore[union-attr]
    vectors = vectors_of(outputs)
    assert all(validate(v.values) == [] for v in vectors)
    after = [v for v in vectors if v.ts_event > later_delta.ts_event]
    assert after and all(v.values["book_mid"] is None for v in after)  # never a wrong book

    candle_engine = FeatureEngine("1h", bars_from="candles")
    candles = btc_1h_candles[:40]
    zero_volume = [dataclasses.replace(c, volume=Decimal(0)) for c in candles[:25]]
    outputs = run_engine(candle_engine, zero_volume)
    assert all(v.values["vwap_20"] is None and v.values["obv"] == 0.0 for v in vectors_of(outputs))
    (rejected,) = candle_engine.update(dataclasses.replace(candles[25], close=Decimal("NaN")))
    assert isinstance(rejected, RejectedCandle) and rejected.reason == "invalid_ohlcv"
    (rejected,) = engine.update(candles[0])
    assert isinstance(rejected, RejectedCandle) and rejected.reason == "bars_from_trades"
    assert candle_engine.update(first_trade) == ()  # feeds the flow features only
    (invalid,) = candle_engine.update(nan_trade)
    assert isinstance(invalid, InvalidTrade)


def test_bars_that_ended_before_the_book_stream_started_have_no_book_features(
    btc_ws_day1: list[MarketEvent],
) -> None:
    trades = [e for e in btc_ws_day1 if isinstance(e, Trade)][:3000]
    start = trades[0].ts_event + timedelta(seconds=30)
    late_book = [e for e in btc_ws_day1 if isinstance(e, BookSnapshot | BookDelta) and e.ts_event >= start]
    engine = FeatureEngine("5s", timedelta(seconds=2))
    vectors = vectors_of(run_engine(engine, late_book[:200] + trades))  # the book stream is ahead
    early = [v for v in vectors if v.ts_event <= late_book[0].ts_event]
    assert early and all(v.values["book_mid"] is None for v in early)


def test_heartbeat_closes_bars_without_trades(btc_ws_trades: list[Trade]) -> None:
    engine = FeatureEngine("1m", timedelta(seconds=2))
    for trade in btc_ws_trades[:100]:
        engine.update(trade)
    last = btc_ws_trades[99].ts_event
    vectors = engine.advance(last + timedelta(minutes=3))
    assert vectors[0].values["bar_empty"] is False
    assert all(v.values["bar_empty"] for v in vectors[1:]) and len(vectors) >= 3
    assert vectors[-1].values["flow_intensity_60s"] == 0.0


def test_engine_refuses_bad_config_and_non_events() -> None:
    with pytest.raises(ValueError, match="bars_from"):
        FeatureEngine("1m", bars_from="ticks")  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="market event"):
        FeatureEngine("1m").update("trade")  # type: ignore[arg-type]


def test_feature_vector_row_is_flat_for_tables_and_feast(xrp_trades: list[Trade]) -> None:
    (vector,) = vectors_of(run_engine(FeatureEngine("1h", timedelta(0)), xrp_trades[:3]))
    row = vector.as_row()
    assert list(row)[:5] == ["symbol", "timeframe", "event_timestamp", "bar_start", "schema_version"]
    assert list(row)[5:] == list(FEATURE_NAMES)
    assert row["event_timestamp"] == from_epoch_us(to_epoch_us(vector.bar_start) + 3_600_000_000)
    assert isinstance(xrp_trades[0], Trade) and not isinstance(xrp_trades[0], Candle)
