"""Strategies: turn one bar's features (and optionally a model's prediction) into a trading Signal.

A strategy sees every :class:`~features.schema.FeatureVector` of its instruments in event order
together with the prediction the models stage made for that same bar (``None`` when no model
runs or the model had nothing to say) and returns a :class:`~core.orders.Signal` or ``None``.

Both strategies here are long only and keep per-instrument state keyed by the vector's ``key``
("exchange:SYMBOL"), so one instance can serve several instruments; the state is plain data and
the instances pickle (Bytewax snapshots them). Their "am I long" bookkeeping assumes that every
BUY they emit is executed and every SELL closes the position. The risk gate may deny an order;
the flow then calls :meth:`EmaCrossRsi.on_position` (same on :class:`ModelStrategy`) with the
real position so the strategy stops believing in a position it does not have (or starts
managing one it did not open).

Missing values (``None``: warm-up, an empty bar), non-finite numbers and values of the wrong type
never raise: the strategy skips that rule for that bar. A bar with ``bar_empty`` true never
counts as a crossing.

>>> from datetime import UTC, datetime, timedelta
>>> from features.schema import FeatureVector
>>> t0 = datetime(2021, 5, 1, tzinfo=UTC)
>>> def bar(i, macd, rsi=50.0, close=100.0, low=None):
...     values = {"macd_12_26": macd, "rsi_14": rsi, "bar_close": close,
...               "bar_low": close if low is None else low, "bar_empty": False}
...     return FeatureVector("binance:BTC/USDT", "1m", t0 + timedelta(minutes=i + 1),
...                          t0 + timedelta(minutes=i), values)
>>> s = EmaCrossRsi(account="paper")
>>> s.on_features(bar(0, -1.0), None) is None
True
>>> buy = s.on_features(bar(1, 0.5), None)
>>> buy.side.value, buy.reasons, buy.model_version
('buy', ('ema_cross_up', 'rsi_below_max'), 'rule:ema_cross_rsi:v1')
>>> sell = s.on_features(bar(2, 0.2, close=95.0, low=89.0), None)
>>> sell.side.value, sell.reasons
('sell', ('stop_loss',))
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Protocol

from core.events import Side
from core.orders import Signal
from features.schema import FeatureValue, FeatureVector
from models.records import Prediction


class Strategy(Protocol):
    """Turns a bar's features and the models stage's prediction into a Signal (or nothing).

    Implementations keep per-instrument state, must pickle, and must not raise on missing or
    odd values (skip instead).
    """

    name: str

    def on_features(self, vector: FeatureVector, prediction: Prediction | None) -> Signal | None:
        """The signal for this bar, or ``None``."""
        ...

    def on_position(self, key: str, is_long: bool, entry_price: float | None = None) -> None:
        """Correct the strategy's belief about its position on ``key`` (the gate may have denied)."""
        ...


def number(values: Mapping[str, FeatureValue], name: str) -> float | None:
    """A feature as a finite float, or ``None`` if missing, ``None``, a bool, not a number or not finite.

    >>> number({"rsi_14": 55}, "rsi_14"), number({"rsi_14": float("nan")}, "rsi_14"), number({}, "rsi_14")
    (55.0, None, None)
    """
    value = values.get(name)
    if type(value) is float:  # the common case, decided as below without the other checks
        return value if math.isfinite(value) else None
    if value is None or isinstance(value, bool) or not isinstance(value, int | float):
        return None
    as_float = float(value)
    return as_float if math.isfinite(as_float) else None


def split_key(key: str) -> tuple[str, str] | None:
    """``(exchange, symbol)`` from "exchange:SYMBOL" split at the first ":", or ``None`` if malformed.

    >>> split_key("binance:BTC/USDT"), split_key("BTC/USDT")
    (('binance', 'BTC/USDT'), None)
    """
    exchange, sep, symbol = key.partition(":")
    if not sep or not exchange or not symbol:
        return None
    return exchange, symbol


@dataclass(slots=True)
class _Position:
    """One instrument's strategy state: the last MACD value, and the position the strategy believes in."""

    prev_macd: float | None = None
    long: bool = False
    entry_close: float | None = None
    last_close: float | None = None
    entry_model_version: str | None = None


def _stop_hit(values: Mapping[str, FeatureValue], state: _Position, stop_loss: float) -> bool:
    if not state.long or state.entry_close is None:
        return False
    low = number(values, "bar_low")
    if low is None:
        low = number(values, "bar_close")
    return low is not None and low <= state.entry_close * (1.0 - stop_loss)


def _open_bar(
    positions: dict[str, _Position], vector: FeatureVector, stop_loss: float
) -> tuple[tuple[str, str], Mapping[str, FeatureValue], _Position, float | None, bool] | None:
    """What every strategy reads first from a bar: the instrument, its values and state, the close
    (remembered for a stop measured from it) and whether the stop was hit; None for an empty bar
    or a malformed key (no signal on those)."""
    parts = split_key(vector.key)
    if parts is None:
        return None
    values = vector.values
    state = positions.get(vector.key)
    if state is None:
        state = positions[vector.key] = _Position()
    if values.get("bar_empty") is True:
        return None
    close = number(values, "bar_close")
    stop = _stop_hit(values, state, stop_loss)
    if close is not None:
        state.last_close = close
    return parts, values, state, close, stop


def _set_position(positions: dict[str, _Position], key: str, is_long: bool, entry_price: float | None) -> None:
    state = positions.setdefault(key, _Position())
    state.long = is_long
    if not is_long:
        state.entry_close = None
        state.entry_model_version = None
    elif entry_price is not None and math.isfinite(entry_price) and entry_price > 0:
        state.entry_close = entry_price
    elif state.entry_close is None:
        # A position opened outside the strategy: the stop is measured from the last close seen.
        state.entry_close = state.last_close


class EmaCrossRsi:
    """Long only: buy when EMA12 crosses above EMA26 with RSI below ``rsi_max``; sell on the cross down or a stop.

    The cross is read from ``macd_12_26`` (= EMA12 - EMA26) against 0 with freqtrade's qtpylib
    semantics: crossed above is ``now > 0 and prev <= 0``, crossed below is ``now < 0 and
    prev >= 0``, where ``prev`` is the value on the previous non-empty bar. The stop fires when a
    later bar's ``bar_low`` (``bar_close`` if the low is missing) is at or below
    ``entry_close * (1 - stop_loss)``; the entry close is the close of the bar that gave the BUY.
    Signals have strength and confidence 1.0 and model version ``rule:ema_cross_rsi:v1``.

    >>> s = EmaCrossRsi("paper", stop_loss=0.05)
    >>> s.name, s.stop_loss, s.rsi_max
    ('ema_cross_rsi', 0.05, 70.0)
    """

    MODEL_VERSION = "rule:ema_cross_rsi:v1"

    def __init__(self, account: str, stop_loss: float = 0.10, rsi_max: float = 70.0, name: str = "ema_cross_rsi"):
        if not (0.0 < stop_loss < 1.0):
            raise ValueError(f"stop_loss must be in (0, 1), got {stop_loss!r}")
        if not (0.0 < rsi_max <= 100.0):
            raise ValueError(f"rsi_max must be in (0, 100], got {rsi_max!r}")
        self.name = name
        self.account = account
        self.stop_loss = stop_loss
        self.rsi_max = rsi_max
        self._positions: dict[str, _Position] = {}

    def is_long(self, key: str) -> bool:
        """Whether the strategy believes it holds ``key``.

        >>> EmaCrossRsi("paper").is_long("binance:BTC/USDT")
        False
        """
        state = self._positions.get(key)
        return state is not None and state.long

    def on_position(self, key: str, is_long: bool, entry_price: float | None = None) -> None:
        """Set the position the strategy believes in (the gate denied a BUY, or a fill arrived).

        Without ``entry_price`` a new long's stop is measured from the last close seen for ``key``.

        >>> s = EmaCrossRsi("paper")
        >>> s.on_position("binance:BTC/USDT", True, entry_price=100.0)
        >>> s.is_long("binance:BTC/USDT")
        True
        """
        _set_position(self._positions, key, is_long, entry_price)

    def on_features(self, vector: FeatureVector, prediction: Prediction | None) -> Signal | None:
        """The BUY or SELL for this bar, or ``None``; the prediction is ignored (a pure TA rule).

        >>> from datetime import UTC, datetime
        >>> t = datetime(2021, 5, 1, tzinfo=UTC)
        >>> v = FeatureVector("binance:BTC/USDT", "1m", t, t, {"macd_12_26": None})
        >>> EmaCrossRsi("paper").on_features(v, None) is None
        True
        """
        bar = _open_bar(self._positions, vector, self.stop_loss)
        if bar is None:
            return None
        parts, values, state, close, stop = bar
        macd = number(values, "macd_12_26")
        prev = state.prev_macd
        if macd is not None:
            state.prev_macd = macd
        if stop:
            return self._exit(vector, parts, state, ("stop_loss",))
        if macd is None or prev is None:
            return None
        if state.long:
            if macd < 0.0 <= prev:
                return self._exit(vector, parts, state, ("ema_cross_down",))
            return None
        if macd > 0.0 >= prev:
            rsi = number(values, "rsi_14")
            if rsi is None or close is None or rsi >= self.rsi_max:
                return None
            state.long = True
            state.entry_close = close
            return Signal(
                self.name, self.account, parts[0], parts[1], Side.BUY, 1.0, 1.0,
                ("ema_cross_up", "rsi_below_max"), self.MODEL_VERSION, vector.ts_event,
            )  # fmt: skip
        return None

    def _exit(
        self, vector: FeatureVector, parts: tuple[str, str], state: _Position, reasons: tuple[str, ...]
    ) -> Signal:
        state.long = False
        state.entry_close = None
        return Signal(
            self.name,
            self.account,
            parts[0],
            parts[1],
            Side.SELL,
            1.0,
            1.0,
            reasons,
            self.MODEL_VERSION,
            vector.ts_event,
        )


class ModelStrategy:
    """Long only fusion of a model's probability with a TA filter.

    BUY when the prediction's ``p_up >= enter_p``, the close is above ``ema_20`` (trend filter) and
    ``rsi_14 < rsi_max``; confidence is ``p_up`` and strength is the edge ``p_up - 0.5`` scaled so
    that ``full_strength_edge`` or more gives 1.0. SELL (strength 1.0, confidence ``1 - p_up``)
    when long and ``p_up <= exit_p``, or on the stop (as :class:`EmaCrossRsi`, needs no
    prediction). ``model`` names the catalog model whose predictions it acts on (``None``: any);
    a prediction for another model, instrument or bar is ignored. ``model_version`` of a signal is
    the prediction's (the entry's for a stop).

    >>> from datetime import UTC, datetime
    >>> t = datetime(2021, 5, 1, tzinfo=UTC)
    >>> v = FeatureVector("binance:BTC/USDT", "1m", t, t,
    ...                   {"bar_close": 101.0, "bar_low": 100.0, "ema_20": 100.0, "rsi_14": 55.0, "bar_empty": False})
    >>> p = Prediction("logreg", "logreg:v1", "binance:BTC/USDT", t, 0.62, 5, 1)
    >>> sig = ModelStrategy("paper").on_features(v, p)
    >>> sig.side.value, sig.confidence, round(sig.strength, 2), sig.model_version
    ('buy', 0.62, 0.6, 'logreg:v1')
    """

    def __init__(
        self,
        account: str,
        *,
        model: str | None = None,
        enter_p: float = 0.55,
        exit_p: float = 0.5,
        rsi_max: float = 70.0,
        stop_loss: float = 0.10,
        full_strength_edge: float = 0.2,
        name: str = "model_fusion",
    ):
        if not (0.5 <= enter_p < 1.0) or not (0.0 < exit_p <= enter_p):
            raise ValueError(f"need 0 < exit_p <= enter_p < 1 and enter_p >= 0.5, got {exit_p!r}, {enter_p!r}")
        if not (0.0 < stop_loss < 1.0):
            raise ValueError(f"stop_loss must be in (0, 1), got {stop_loss!r}")
        if not (0.0 < full_strength_edge <= 0.5):
            raise ValueError(f"full_strength_edge must be in (0, 0.5], got {full_strength_edge!r}")
        self.name = name
        self.account = account
        self.model = model
        self.enter_p = enter_p
        self.exit_p = exit_p
        self.rsi_max = rsi_max
        self.stop_loss = stop_loss
        self.full_strength_edge = full_strength_edge
        self._positions: dict[str, _Position] = {}

    def is_long(self, key: str) -> bool:
        """Whether the strategy believes it holds ``key``."""
        state = self._positions.get(key)
        return state is not None and state.long

    def on_position(self, key: str, is_long: bool, entry_price: float | None = None) -> None:
        """Set the position the strategy believes in (see :meth:`EmaCrossRsi.on_position`).

        >>> s = ModelStrategy("paper")
        >>> s.on_position("binance:BTC/USDT", True, 100.0); s.is_long("binance:BTC/USDT")
        True
        """
        _set_position(self._positions, key, is_long, entry_price)

    def _usable(self, vector: FeatureVector, prediction: Prediction | None) -> Prediction | None:
        if prediction is None or prediction.key != vector.key or prediction.ts_event != vector.ts_event:
            return None
        if self.model is not None and prediction.model != self.model:
            return None
        return prediction if math.isfinite(prediction.p_up) and 0.0 <= prediction.p_up <= 1.0 else None

    def on_features(self, vector: FeatureVector, prediction: Prediction | None) -> Signal | None:
        """The BUY or SELL for this bar, or ``None`` (no usable prediction and no stop).

        >>> from datetime import UTC, datetime
        >>> t = datetime(2021, 5, 1, tzinfo=UTC)
        >>> ModelStrategy("paper").on_features(FeatureVector("binance:BTC/USDT", "1m", t, t, {}), None) is None
        True
        """
        bar = _open_bar(self._positions, vector, self.stop_loss)
        if bar is None:
            return None
        parts, values, state, close, stop = bar
        usable = self._usable(vector, prediction)
        if stop:
            version = state.entry_model_version or (usable.model_version if usable else "rule:stop_loss")
            return self._signal(
                vector,
                parts,
                state,
                side=Side.SELL,
                strength=1.0,
                confidence=1.0,
                reasons=("stop_loss",),
                version=version,
            )
        if usable is None:
            return None
        p_up = usable.p_up
        if state.long:
            if p_up <= self.exit_p:
                return self._signal(
                    vector, parts, state, side=Side.SELL, strength=1.0, confidence=1.0 - p_up,
                    reasons=("model_down",), version=usable.model_version,
                )  # fmt: skip
            return None
        if p_up < self.enter_p or close is None:
            return None
        ema = number(values, "ema_20")
        rsi = number(values, "rsi_14")
        if ema is None or rsi is None or close <= ema or rsi >= self.rsi_max:
            return None
        strength = min(1.0, (p_up - 0.5) / self.full_strength_edge)
        reasons = ("model_up", "close_above_ema_20", "rsi_below_max")
        state.entry_close = close
        state.entry_model_version = usable.model_version
        return self._signal(
            vector, parts, state, side=Side.BUY, strength=strength, confidence=p_up, reasons=reasons,
            version=usable.model_version,
        )  # fmt: skip

    def _signal(
        self,
        vector: FeatureVector,
        parts: tuple[str, str],
        state: _Position,
        *,
        side: Side,
        strength: float,
        confidence: float,
        reasons: tuple[str, ...],
        version: str,
    ) -> Signal:
        state.long = side is Side.BUY
        if not state.long:
            state.entry_close = None
            state.entry_model_version = None
        return Signal(
            self.name, self.account, parts[0], parts[1], side, strength, confidence, reasons, version, vector.ts_event
        )
