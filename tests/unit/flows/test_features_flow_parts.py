"""The pure parts of the features flow: features.v1 wire format, engine refusals to dead letters,
the feature_rows row, and the event-time reader of the aligned source."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal

import orjson
import pytest

from core.clock import ManualClock
from core.errors import WireFormatError
from core.events import Candle, Side, Trade
from core.wire import decode, encode
from features.bars import InvalidTrade, LateTrade, RejectedCandle
from features.book import ResyncRequired
from features.schema import FEATURE_NAMES, FEATURES, FeatureVector
from flows.aligned_source import event_time_us
from flows.features import (
    BOOK_RESYNCS,
    ROW_COLUMNS,
    decode_feature_vector,
    encode_feature_vector,
    feature_row,
    rejects_to_dead_letters,
)

T = datetime(2024, 8, 8, 23, 55, tzinfo=UTC)


def vector() -> FeatureVector:
    sample = {"float64": 61827.995, "int64": 42, "bool": False}
    values = {spec.name: sample[spec.dtype] for spec in FEATURES}
    values["rsi_14"] = None
    return FeatureVector("binance:BTC/USDT", "1m", T, T - timedelta(minutes=1), values)


def trade(seconds_late: int = 0) -> Trade:
    ts = T - timedelta(seconds=seconds_late)
    return Trade("binance", "BTC/USDT", "7", Decimal("61837.63"), Decimal("0.02"), Side.SELL, ts, T)


def test_a_vector_survives_the_wire_with_every_value_exact_and_none_kept() -> None:
    v = vector()
    data = encode_feature_vector(v)
    assert decode_feature_vector(data) == v
    obj = orjson.loads(data)
    assert obj["type"] == "feature_vector" and obj["v"] == 1
    assert obj["event_timestamp"] == 1723161300000000 and obj["rsi_14"] is None


@pytest.mark.parametrize(
    "data",
    [b"{", b'{"type": "trade", "v": 1}', b'{"type": "feature_vector", "v": 2}', b'{"type": "feature_vector", "v": 1}'],
)
def test_a_record_that_is_not_a_v1_vector_is_refused_with_a_wire_error(data: bytes) -> None:
    with pytest.raises(WireFormatError):
        decode_feature_vector(data)


def test_feature_row_follows_the_table_columns() -> None:
    row = feature_row(vector())
    assert len(row) == len(ROW_COLUMNS) == 5 + len(FEATURE_NAMES)
    assert row[:5] == ("binance:BTC/USDT", "1m", 1, T, T - timedelta(minutes=1))


def test_late_and_invalid_records_become_dead_letters_citing_their_bytes_and_a_resync_is_only_counted() -> None:
    clock = ManualClock(T)
    late, bad = trade(30), trade()
    candle = Candle("binance", "BTC/USDT", "5m", *(Decimal(1),) * 5, T, T)
    before = BOOK_RESYNCS.labels("binance:BTC/USDT", "sequence_gap")._value.get()
    letters = rejects_to_dead_letters(
        [
            LateTrade(late, T, "late_trade", "30 s behind the watermark"),
            InvalidTrade(bad, "price_not_finite", "price is NaN"),
            RejectedCandle(candle, "timeframe_mismatch", "5m candle, 1m engine"),
            RejectedCandle(candle, "bars_from_trades", "this engine builds its bars from trades"),
            ResyncRequired("binance:BTC/USDT", "sequence_gap", 41, "expected U=42, got U=45"),
        ],
        "t1.",
        clock,
    )
    assert [(d.reason, d.source_topic) for d in letters] == [
        ("late_trade", "t1.md.trades.v1"),
        ("price_not_finite", "t1.md.trades.v1"),
        ("timeframe_mismatch", "t1.md.candles.v1"),
    ]
    assert decode(letters[0].original) == late
    assert letters[0].original == encode(late)
    assert letters[0].key == b"binance:BTC/USDT" and letters[0].stage == "features"
    assert letters[0].ts_recv == T
    assert BOOK_RESYNCS.labels("binance:BTC/USDT", "sequence_gap")._value.get() == before + 1


def test_event_time_is_read_from_the_wire_bytes_without_a_full_decode() -> None:
    assert event_time_us(encode(trade())) == 1723161300000000
    assert event_time_us(b'{"ts_event": "soon"}') == -1
