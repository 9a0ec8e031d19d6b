from __future__ import annotations

import pickle
from datetime import timedelta
from decimal import Decimal

import pytest

from core.clock import from_epoch_ms
from core.events import BookDelta, BookSnapshot, Candle, Quote, Side, Trade
from quality.contracts import KeyContracts, check_event

KNOWN = frozenset({"binance:BTC/USDT"})
D = Decimal


def trade(tid="1", price="100", amount="1", ms=1_000_000, symbol="BTC/USDT"):
    t = from_epoch_ms(ms)
    return Trade("binance", symbol, tid, D(price), D(amount), Side.BUY, t, t)


@pytest.mark.parametrize(
    ("event", "reason"),
    [
        (trade(price="NaN"), "price_not_finite"),
        (trade(price="-1"), "price_not_positive"),
        (trade(price="0"), "price_not_positive"),
        (trade(amount="0"), "amount_not_positive"),
        (trade(amount="Infinity"), "amount_not_finite"),
        (trade(symbol="DOGE/USDT"), "unknown_symbol"),
    ],
)
def test_trade_contract_names_what_is_wrong(event, reason):
    violation = check_event(event, KNOWN)
    assert violation is not None and violation.reason == reason


def test_valid_trade_passes_and_empty_known_set_accepts_any_symbol():
    assert check_event(trade(), KNOWN) is None
    assert check_event(trade(symbol="DOGE/USDT"), frozenset()) is None


def candle(o="10", h="12", lo="9", c="11", v="5"):
    t = from_epoch_ms(0)
    return Candle("binance", "BTC/USDT", "1m", D(o), D(h), D(lo), D(c), D(v), t, t)


@pytest.mark.parametrize(
    ("event", "reason"),
    [
        (candle(h="10.5"), "candle_ohlc_inconsistent"),
        (candle(lo="10.5"), "candle_ohlc_inconsistent"),
        (candle(o="-1"), "candle_price_invalid"),
        (candle(v="-1"), "candle_volume_invalid"),
    ],
)
def test_candle_contract(event, reason):
    assert check_event(event, KNOWN).reason == reason
    assert check_event(candle(), KNOWN) is None


def test_book_and_quote_contracts():
    t = from_epoch_ms(0)
    good = BookSnapshot("binance", "BTC/USDT", 1, ((D(99), D(1)),), ((D(100), D(1)),), t, t)
    crossed = BookSnapshot("binance", "BTC/USDT", 1, ((D(101), D(1)),), ((D(100), D(1)),), t, t)
    negative = BookDelta("binance", "BTC/USDT", 1, 2, ((D(99), D(-1)),), (), t, t)
    bad_price = BookDelta("binance", "BTC/USDT", 1, 2, (), ((D(0), D(1)),), t, t)
    assert check_event(good, KNOWN) is None
    assert check_event(crossed, KNOWN).reason == "crossed_book"
    assert check_event(negative, KNOWN).reason == "book_amount_invalid"
    assert check_event(bad_price, KNOWN).reason == "book_price_invalid"
    q = Quote("binance", "BTC/USDT", D(101), D(1), D(100), D(1), t, t)
    assert check_event(q, KNOWN).reason == "crossed_quote"
    q2 = Quote("binance", "BTC/USDT", D(-1), D(1), D(100), D(1), t, t)
    assert check_event(q2, KNOWN).reason == "quote_price_invalid"


def test_out_of_order_beyond_tolerance_is_refused_within_is_accepted():
    state = KeyContracts(max_backwards=timedelta(seconds=5), dedup_window=100)
    assert state.check(trade("1", ms=100_000)) is None
    assert state.check(trade("2", ms=96_000)) is None  # 4 s back: inside tolerance
    violation = state.check(trade("3", ms=90_000))  # 10 s back
    assert violation is not None and violation.reason == "out_of_order"


def test_duplicate_ids_are_refused_and_the_window_is_bounded():
    state = KeyContracts(max_backwards=timedelta(seconds=5), dedup_window=2)
    assert state.check(trade("1")) is None
    assert state.check(trade("1")).reason == "duplicate_trade_id"
    assert state.check(trade("2")) is None
    assert state.check(trade("3")) is None  # evicts "1"
    assert state.check(trade("1")) is None


def test_state_snapshot_and_pickle_resume_to_the_same_decisions():
    state = KeyContracts(max_backwards=timedelta(seconds=1), dedup_window=10)
    for i in range(5):
        state.check(trade(str(i), ms=1_000_000 + i))
    restored = KeyContracts(max_backwards=timedelta(seconds=1), dedup_window=10)
    restored.restore(pickle.loads(pickle.dumps(state.snapshot())))
    pickled = pickle.loads(pickle.dumps(state))
    for s in (state, restored, pickled):
        assert s.check(trade("3", ms=1_000_010)).reason == "duplicate_trade_id"
        assert s.check(trade("9", ms=990_000)).reason == "out_of_order"
