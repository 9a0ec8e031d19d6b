from __future__ import annotations

from decimal import Decimal

import orjson
import pytest
from hypothesis import given
from hypothesis import strategies as st

from core.clock import from_epoch_us
from core.errors import WireFormatError
from core.events import BookDelta, BookSnapshot, Candle, Quote, Side, Trade
from core.wire import decode, encode, topic_for

T0 = from_epoch_us(1_723_161_255_342_000)
T1 = from_epoch_us(1_723_161_255_400_123)


def sample_events():
    return [
        Trade("binance", "BTC/USDT", "3735683259", Decimal("61837.63000000"), Decimal("0.02"), Side.SELL, T0, T1),
        Trade("binance", "BTC/USDT", "1", Decimal("1"), Decimal("2"), None, T0, T1),
        BookSnapshot(
            "binance",
            "BTC/USDT",
            50093239218,
            ((Decimal("61837.63"), Decimal("3.7")),),
            ((Decimal("61837.64"), Decimal("1.5")),),
            T0,
            T1,
        ),
        BookDelta("binance", "BTC/USDT", 50093239189, 50093239202, ((Decimal("61737.63"), Decimal("0")),), (), T0, T1),
        Quote(
            "binance",
            "BTC/USDT",
            Decimal("61837.63"),
            Decimal("3.78826"),
            Decimal("61837.64"),
            Decimal("1.54698"),
            T0,
            T1,
            50093239212,
        ),
        Candle(
            "binance",
            "BTC/USDT",
            "1m",
            Decimal("1"),
            Decimal("3"),
            Decimal("0.5"),
            Decimal("2"),
            Decimal("10.5"),
            T0,
            T1,
            closed=False,
        ),
    ]


@pytest.mark.parametrize("event", sample_events(), ids=lambda e: type(e).__name__)
def test_every_event_round_trips_exactly(event):
    assert decode(encode(event)) == event


def test_topics_follow_event_type():
    assert [topic_for(e) for e in sample_events()] == [
        "md.trades.v1",
        "md.trades.v1",
        "md.book.v1",
        "md.book.v1",
        "md.book.v1",
        "md.candles.v1",
    ]


def test_decimal_keeps_trailing_zeros_and_time_keeps_microseconds():
    data = orjson.loads(encode(sample_events()[0]))
    assert data["price"] == "61837.63000000"
    assert data["ts_recv"] == 1_723_161_255_400_123


@pytest.mark.parametrize(
    ("raw", "reason"),
    [
        (b'{"type": "trade", "v": 1, "exchange": "bin', "malformed_json"),
        (b"[1, 2]", "malformed_json"),
        (b'{"type": "order", "v": 1}', "unknown_type"),
        (b'{"type": "trade", "v": 2}', "unsupported_version"),
        (b'{"type": "trade", "v": 1, "exchange": "binance"}', "missing_field"),
    ],
)
def test_undecodable_bytes_raise_with_a_reason(raw, reason):
    with pytest.raises(WireFormatError) as info:
        decode(raw)
    assert info.value.reason == reason


def _trade_obj(**over):
    obj = orjson.loads(encode(sample_events()[0]))
    obj.update(over)
    return orjson.dumps(obj)


@pytest.mark.parametrize(
    "override",
    [
        {"price": 61837.63},
        {"price": "abc"},
        {"ts_event": "2024-08-08"},
        {"side": "long"},
        {"exchange": 5},
        {"id": None},
        {"ts_event": True},
    ],
)
def test_wrong_types_are_refused_as_wrong_type(override):
    with pytest.raises(WireFormatError) as info:
        decode(_trade_obj(**override))
    assert info.value.reason == "wrong_type"


def test_numeric_trade_id_is_accepted_as_text():
    assert decode(_trade_obj(id=42)).trade_id == "42"


def test_nan_price_decodes_so_the_contract_can_name_it():
    event = decode(_trade_obj(price="NaN"))
    assert not event.price.is_finite()


@given(
    price=st.decimals(min_value=Decimal("0.00000001"), max_value=Decimal("1e9"), allow_nan=False, places=8),
    amount=st.decimals(min_value=Decimal("0.00000001"), max_value=Decimal("1e6"), allow_nan=False, places=8),
    us=st.integers(min_value=0, max_value=4_102_444_800_000_000),
    trade_id=st.text(min_size=1, max_size=20),
)
def test_any_trade_round_trips(price, amount, us, trade_id):
    t = Trade("kraken", "ETH/EUR", trade_id, price, amount, Side.BUY, from_epoch_us(us), from_epoch_us(us))
    assert decode(encode(t)) == t
