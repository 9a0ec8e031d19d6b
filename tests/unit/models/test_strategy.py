"""Strategies: qtpylib crossing semantics, RSI filter, stop, position correction, odd values, pickling."""

from __future__ import annotations

import pickle
from datetime import UTC, datetime, timedelta

import pytest

from core.events import Side
from features.schema import FeatureVector
from models.records import Prediction
from models.strategy import EmaCrossRsi, ModelStrategy

KEY = "binance:BTC/USDT"
T0 = datetime(2021, 5, 1, tzinfo=UTC)


def vec(i: int, key: str = KEY, **values: object) -> FeatureVector:
    base: dict[str, object] = {"bar_empty": False}
    base.update(values)
    return FeatureVector(key, "1m", T0 + timedelta(minutes=i + 1), T0 + timedelta(minutes=i), base)  # type: ignore[arg-type]


def bar(
    i: int, macd: float | None, rsi: float | None = 50.0, close: float = 100.0, low: float | None = None, key: str = KEY
):
    return vec(i, key, macd_12_26=macd, rsi_14=rsi, bar_close=close, bar_low=close if low is None else low)


def run(strategy, bars):
    return [strategy.on_features(b, None) for b in bars]


def test_cross_from_exactly_zero_counts_as_crossed_above_like_qtpylib():
    out = run(EmaCrossRsi("paper"), [bar(0, 0.0), bar(1, 0.1)])
    assert out[0] is None
    assert out[1] is not None and out[1].side is Side.BUY


def test_no_entry_when_macd_stays_positive_or_touches_zero_from_above():
    out = run(EmaCrossRsi("paper"), [bar(0, 0.5), bar(1, 0.7), bar(2, 0.0), bar(3, 0.0)])
    assert out == [None, None, None, None]


def test_entry_denied_when_rsi_at_or_above_max_then_no_late_entry():
    s = EmaCrossRsi("paper", rsi_max=60.0)
    out = run(s, [bar(0, -1.0), bar(1, 1.0, rsi=60.0), bar(2, 2.0, rsi=40.0)])
    assert out == [None, None, None]
    assert not s.is_long(KEY)


def test_no_second_buy_while_long_and_exit_on_cross_below_including_to_exact_zero_prev():
    s = EmaCrossRsi("paper")
    out = run(s, [bar(0, -1.0), bar(1, 1.0), bar(2, -1.0), bar(3, 1.0), bar(4, 0.0), bar(5, -0.5)])
    sides = [None if o is None else (o.side, o.reasons) for o in out]
    assert sides == [
        None,
        (Side.BUY, ("ema_cross_up", "rsi_below_max")),
        (Side.SELL, ("ema_cross_down",)),
        (Side.BUY, ("ema_cross_up", "rsi_below_max")),
        None,
        (Side.SELL, ("ema_cross_down",)),  # prev == 0 >= 0 and now < 0: qtpylib crossed_below
    ]


def test_stop_loss_uses_bar_low_and_entry_close():
    s = EmaCrossRsi("paper", stop_loss=0.10)
    out = run(s, [bar(0, -1.0), bar(1, 1.0, close=200.0), bar(2, 2.0, close=185.0, low=180.5), bar(3, 2.0, low=180.0)])
    assert out[2] is None
    assert out[3] is not None and out[3].side is Side.SELL and out[3].reasons == ("stop_loss",)
    assert not s.is_long(KEY)


def test_stop_falls_back_to_close_when_low_missing():
    s = EmaCrossRsi("paper", stop_loss=0.10)
    run(s, [bar(0, -1.0), bar(1, 1.0, close=100.0)])
    out = s.on_features(vec(2, macd_12_26=1.0, rsi_14=50.0, bar_close=89.0, bar_low=None), None)
    assert out is not None and out.reasons == ("stop_loss",)


def test_empty_bar_never_crosses_and_the_cross_is_judged_against_the_last_traded_bar():
    s = EmaCrossRsi("paper")
    out = run(s, [bar(0, -1.0)])
    empty = vec(1, macd_12_26=2.0, rsi_14=50.0, bar_close=None, bar_low=None, bar_empty=True)
    assert s.on_features(empty, None) is None
    out = run(s, [bar(2, 1.0)])
    assert out[0] is not None and out[0].side is Side.BUY


@pytest.mark.parametrize("missing", ["macd_12_26", "rsi_14", "bar_close"])
def test_missing_value_skips_without_raising(missing):
    s = EmaCrossRsi("paper")
    s.on_features(bar(0, -1.0), None)
    values = {"macd_12_26": 1.0, "rsi_14": 50.0, "bar_close": 100.0, "bar_low": 99.0}
    values[missing] = None
    assert s.on_features(vec(1, **values), None) is None


@pytest.mark.parametrize("odd", [float("nan"), float("inf"), "1.0", True])
def test_non_finite_or_wrong_type_values_are_treated_as_missing(odd):
    s = EmaCrossRsi("paper")
    s.on_features(bar(0, -1.0), None)
    assert s.on_features(vec(1, macd_12_26=odd, rsi_14=50.0, bar_close=100.0), None) is None


def test_signal_fields_come_from_key_and_vector():
    s = EmaCrossRsi("acct-1")
    out = run(s, [bar(0, -1.0, key="binance:ETH/USDT"), bar(1, 1.0, key="binance:ETH/USDT")])[1]
    assert (out.account, out.exchange, out.symbol, out.strategy) == ("acct-1", "binance", "ETH/USDT", "ema_cross_rsi")
    assert out.ts_event == T0 + timedelta(minutes=2)
    assert (out.strength, out.confidence, out.model_version) == (1.0, 1.0, "rule:ema_cross_rsi:v1")


def test_malformed_key_gives_no_signal():
    s = EmaCrossRsi("paper")
    assert run(s, [bar(0, -1.0, key="nocolon"), bar(1, 1.0, key="nocolon")]) == [None, None]


def test_symbols_have_separate_state():
    s = EmaCrossRsi("paper")
    eth = "binance:ETH/USDT"
    out = run(s, [bar(0, -1.0), bar(0, 1.0, key=eth), bar(1, 1.0), bar(1, 2.0, key=eth)])
    assert out[2] is not None and out[2].symbol == "BTC/USDT"
    assert out[3] is None  # ETH never was <= 0


def test_on_position_after_a_denied_buy_allows_the_next_entry():
    s = EmaCrossRsi("paper")
    run(s, [bar(0, -1.0), bar(1, 1.0)])
    s.on_position(KEY, False)  # the gate denied the BUY
    out = run(s, [bar(2, -1.0), bar(3, 1.0)])
    assert out[0] is None  # no SELL: not long
    assert out[1] is not None and out[1].side is Side.BUY


def test_on_position_long_without_price_uses_last_close_for_the_stop():
    s = EmaCrossRsi("paper", stop_loss=0.10)
    run(s, [bar(0, 1.0, close=100.0)])
    s.on_position(KEY, True)
    out = s.on_features(bar(1, 1.0, close=95.0, low=90.0), None)
    assert out is not None and out.reasons == ("stop_loss",)


def test_pickled_strategy_continues_identically():
    bars = [bar(i, m, close=100.0 + i) for i, m in enumerate([-1.0, 1.0, 2.0, -1.0, -2.0, 0.5, 0.2, -0.1])]
    whole = run(EmaCrossRsi("paper"), bars)
    first = EmaCrossRsi("paper")
    head = run(first, bars[:3])
    resumed = pickle.loads(pickle.dumps(first))
    assert head + run(resumed, bars[3:]) == whole
    assert [o.side for o in whole if o is not None] == [Side.BUY, Side.SELL, Side.BUY, Side.SELL]


def pred(i: int, p: float, model: str = "logreg", key: str = KEY) -> Prediction:
    return Prediction(model, f"{model}:v1", key, T0 + timedelta(minutes=i + 1), p, 5, 1)


def mvec(i: int, close: float = 101.0, ema: float | None = 100.0, rsi: float | None = 50.0, low: float | None = None):
    return vec(i, bar_close=close, bar_low=close if low is None else low, ema_20=ema, rsi_14=rsi)


def test_model_strategy_enters_on_probability_and_trend_and_exits_on_probability():
    s = ModelStrategy("paper", model="logreg", enter_p=0.55, exit_p=0.48)
    buy = s.on_features(mvec(0), pred(0, 0.7))
    assert buy is not None and buy.side is Side.BUY and buy.confidence == 0.7 and buy.strength == pytest.approx(1.0)
    assert s.on_features(mvec(1), pred(1, 0.9)) is None  # already long
    assert s.on_features(mvec(2), pred(2, 0.5)) is None
    sell = s.on_features(mvec(3), pred(3, 0.4))
    assert sell is not None and sell.side is Side.SELL and sell.confidence == pytest.approx(0.6)
    assert sell.reasons == ("model_down",) and sell.model_version == "logreg:v1"


def test_model_strategy_filter_blocks_entry_below_ema_or_high_rsi():
    s = ModelStrategy("paper")
    assert s.on_features(mvec(0, close=99.0), pred(0, 0.8)) is None
    assert s.on_features(mvec(1, rsi=75.0), pred(1, 0.8)) is None
    assert s.on_features(mvec(2, ema=None), pred(2, 0.8)) is None


def test_model_strategy_ignores_predictions_of_other_models_bars_or_symbols():
    s = ModelStrategy("paper", model="logreg")
    assert s.on_features(mvec(0), pred(0, 0.9, model="hat")) is None
    assert s.on_features(mvec(1), pred(0, 0.9)) is None  # stale bar
    assert s.on_features(mvec(2), pred(2, 0.9, key="binance:ETH/USDT")) is None
    assert s.on_features(mvec(3), None) is None


def test_model_strategy_stop_fires_without_prediction_and_carries_entry_version():
    s = ModelStrategy("paper", stop_loss=0.05)
    s.on_features(mvec(0, close=100.5), pred(0, 0.8))
    sell = s.on_features(mvec(1, close=96.0, low=95.0), None)
    assert sell is not None and sell.reasons == ("stop_loss",) and sell.model_version == "logreg:v1"


def test_model_strategy_pickles():
    s = ModelStrategy("paper")
    s.on_features(mvec(0), pred(0, 0.8))
    restored = pickle.loads(pickle.dumps(s))
    assert restored.is_long(KEY)
    assert restored.on_features(mvec(1), pred(1, 0.3)) == s.on_features(mvec(1), pred(1, 0.3))


def test_bad_parameters_fail_at_construction():
    with pytest.raises(ValueError, match="stop_loss"):
        EmaCrossRsi("paper", stop_loss=1.5)
    with pytest.raises(ValueError, match="exit_p"):
        ModelStrategy("paper", enter_p=0.55, exit_p=0.6)
