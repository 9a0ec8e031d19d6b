"""The per-instrument feature engine: market events in, one :class:`FeatureVector` per bar out.

``FeatureEngine.update(event)`` takes every market event of one ``exchange:SYMBOL`` (trades,
candles, book snapshots, deltas, quotes) and returns what became final: feature vectors for the
bars that closed, and the records that must go to the dead-letter topic or trigger a book
resync (:class:`~features.bars.LateTrade`, :class:`~features.bars.InvalidTrade`,
:class:`~features.bars.RejectedCandle`, :class:`~features.book.ResyncRequired`). Nothing raises
on bad data.

No look-ahead: a vector for the bar ``[start, end)`` uses only events with ``ts_event < end``.
Bars close on the watermark, so by then later trades and book events may already have arrived;
trade flow is therefore read for the window ending at ``end``, and the book's features are
captured as they stood before the first book event at or after each bar boundary.

Indicators are updated by bars that have trades; an empty bar reports ``bar_empty=True``, no
prices and no returns, and the indicators as of the last bar that traded.

This is the class the Bytewax operator calls (``features/operators.py``, keyed per instrument).
"""

from __future__ import annotations

from collections import deque
from datetime import datetime, timedelta
from typing import Any, Literal

from core.clock import to_epoch_us
from core.events import BookDelta, BookSnapshot, Candle, MarketEvent, Quote, Trade
from core.symbols import timeframe_seconds
from features._state import State, check_state, state_header
from features.bars import Bar, CandleBars, InvalidTrade, LateTrade, RejectedCandle, TimeBarBuilder
from features.book import BookFeatures, OrderBook, ResyncRequired
from features.flow import TradeFlow
from features.indicators import (
    ATR,
    EMA,
    MACD,
    OBV,
    RSI,
    SMA,
    VWAP,
    BollingerBands,
    RealizedVolatility,
    Returns,
    RollingZScore,
    Stochastic,
)
from features.schema import FEATURE_NAMES, FeatureValue, FeatureVector

FLOW_WINDOW = timedelta(seconds=60)
BOOK_LEVELS = 5
BOOK_DEPTH_BPS = 10.0
#: Book captures kept for bars not yet closed (one per bar boundary the book stream crossed).
MAX_BOOK_CAPTURES = 10_000

EngineOutput = FeatureVector | LateTrade | InvalidTrade | RejectedCandle | ResyncRequired

_INDICATOR_NAMES = FEATURE_NAMES[FEATURE_NAMES.index("sma_20") : FEATURE_NAMES.index("zscore_20") + 1]
_BB = frozenset({"bb_upper_20_2", "bb_middle_20", "bb_lower_20_2"})
_MACD = frozenset({"macd_12_26", "macd_signal_9", "macd_hist"})
_STOCH = frozenset({"stoch_k_14_3", "stoch_d_3"})
_FLOW_NAMES = ("flow_buy_volume_60s", "flow_sell_volume_60s", "flow_imbalance_60s", "flow_intensity_60s")
_BOOK_NAMES = (
    "book_mid",
    "book_spread",
    "book_spread_bps",
    "book_microprice",
    "book_imbalance_5",
    "book_depth_bid_10bps",
    "book_depth_ask_10bps",
)

# Filled into every vector when there is no trade flow or book yet (candle backtests: always).
_NO_FLOW: dict[str, FeatureValue] = dict.fromkeys(_FLOW_NAMES)
_NO_BOOK: dict[str, FeatureValue] = dict.fromkeys(_BOOK_NAMES)


class FeatureEngine:
    """Bars, indicators, trade flow and book features of one instrument, composed per bar.

    ``bars_from="trades"`` builds event-time bars from trades (late trades reported);
    ``bars_from="candles"`` takes the exchange's closed candles of ``timeframe`` as the bars (trades
    then only feed the flow features). ``flush()`` closes the open bars at the end of a replay.

    >>> from decimal import Decimal
    >>> from core.clock import parse_utc
    >>> from core.events import Side
    >>> def trade(tid, ts, price):
    ...     return Trade("binance", "BTC/USDT", tid, Decimal(price), Decimal("0.5"), Side.BUY,
    ...                  parse_utc(ts), parse_utc(ts))
    >>> engine = FeatureEngine("1m", allowed_lateness=timedelta(seconds=2))
    >>> engine.update(trade("1", "2024-01-01T00:00:30Z", "100"))
    ()
    >>> (vector,) = engine.update(trade("2", "2024-01-01T00:01:05Z", "101"))
    >>> vector.ts_event.isoformat(), vector.values["bar_close"], vector.values["flow_buy_volume_60s"]
    ('2024-01-01T00:01:00+00:00', 100.0, 0.5)
    >>> vector.values["rsi_14"] is None  # not warm yet
    True
    """

    def __init__(
        self,
        timeframe: str = "1m",
        allowed_lateness: timedelta = timedelta(seconds=2),
        bars_from: Literal["trades", "candles"] = "trades",
        features: frozenset[str] | None = None,
    ) -> None:
        if bars_from not in ("trades", "candles"):
            raise ValueError(f"bars_from must be 'trades' or 'candles', got {bars_from!r}")
        unknown = sorted(set(features or ()) - set(FEATURE_NAMES))
        if unknown:
            raise ValueError(f"unknown features {unknown}; features/schema.py lists the names")
        # Indicators whose features nobody reads are not updated (their values stay None): a
        # backtest of a strategy reading two indicators does not pay for thirteen. None: all.
        self._needed = frozenset(_INDICATOR_NAMES) if features is None else frozenset(features)
        self.timeframe = timeframe
        self.allowed_lateness = allowed_lateness
        self.bars_from = bars_from
        self._len = timeframe_seconds(timeframe) * 1_000_000
        self._bars = TimeBarBuilder(timeframe, allowed_lateness)
        self._candles = CandleBars(timeframe)
        self._flow = TradeFlow(FLOW_WINDOW, retention=FLOW_WINDOW + allowed_lateness)
        self._book = OrderBook()
        self._returns = Returns()
        self._sma = SMA(20)
        self._ema = EMA(20)
        self._rsi = RSI(14)
        self._macd = MACD(12, 26, 9)
        self._bb = BollingerBands(20, 2.0)
        self._atr = ATR(14)
        self._vwap = VWAP(20)
        self._stoch = Stochastic(14, 3, 3)
        self._obv = OBV()
        self._rv = RealizedVolatility(20)
        self._z = RollingZScore(20)
        self._indicators: dict[str, FeatureValue] = dict.fromkeys(_INDICATOR_NAMES)
        # (after_us, until_us, features): the book as it stood at every bar boundary b with
        # after_us < b <= until_us (captured before the first book event at or after until_us).
        self._book_asof: deque[tuple[int, int, BookFeatures | None]] = deque(maxlen=MAX_BOOK_CAPTURES)
        self._book_last_ts: int | None = None

    # -- events -------------------------------------------------------------------------------

    def update(self, event: MarketEvent) -> tuple[EngineOutput, ...]:
        """Take one market event of this instrument; return what became final."""
        if type(event) is Candle and self.bars_from == "candles":  # a candle backtest's every event
            outs = self._candles.update(event)
            if len(outs) == 1 and isinstance(outs[0], Bar):
                return (self._vector(outs[0]),)
            return tuple(self._vector(out) if isinstance(out, Bar) else out for out in outs)
        if isinstance(event, Trade):
            return self._on_trade(event)
        if isinstance(event, BookDelta | BookSnapshot):
            self._capture_book(to_epoch_us(event.ts_event))
            return self._book.update(event)
        if isinstance(event, Quote):
            return self._book.update(event)
        if isinstance(event, Candle):
            if self.bars_from != "candles":
                return (RejectedCandle(event, "bars_from_trades", "this engine builds its bars from trades"),)
            return tuple(self._vector(out) if isinstance(out, Bar) else out for out in self._candles.update(event))
        raise TypeError(f"FeatureEngine.update takes a market event, got {type(event).__name__}")

    def _on_trade(self, trade: Trade) -> tuple[EngineOutput, ...]:
        if self.bars_from != "trades":
            bad = self._flow.update(trade)
            return () if bad is None else (bad,)
        outs = self._bars.update(trade)
        if not outs:
            self._flow.update(trade)
            return ()
        first = outs[0]
        if isinstance(first, LateTrade | InvalidTrade):
            return (first,)
        # Bars closed by this trade are read before the trade joins the flow window (it is later).
        vectors = tuple(self._vector(bar) for bar in outs if isinstance(bar, Bar))
        self._flow.update(trade)
        return vectors

    def advance(self, ts_event: datetime) -> tuple[FeatureVector, ...]:
        """Move event time without a trade (a heartbeat); return the vectors of the bars it closes."""
        return tuple(self._vector(bar) for bar in self._bars.advance(ts_event))

    def flush(self) -> tuple[FeatureVector, ...]:
        """Close every open bar (end of a replay) and return their vectors."""
        return tuple(self._vector(bar) for bar in self._bars.flush())

    # -- composition ----------------------------------------------------------------------------

    def _update_indicators(self, bar: Bar) -> tuple[FeatureValue, FeatureValue]:
        close, high, low = bar.close, bar.high, bar.low
        assert close is not None and high is not None and low is not None  # a non-empty bar
        ret = self._returns.update(close)
        ind = self._indicators
        need = self._needed
        if not need.isdisjoint(_BB):
            bb = self._bb.update(close)
            ind["bb_upper_20_2"], ind["bb_middle_20"], ind["bb_lower_20_2"] = bb if bb is not None else (None,) * 3
        if not need.isdisjoint(_MACD):
            macd = self._macd.update(close)
            ind["macd_12_26"], ind["macd_signal_9"], ind["macd_hist"] = macd if macd is not None else (None,) * 3
        if not need.isdisjoint(_STOCH):
            stoch = self._stoch.update(high, low, close)
            ind["stoch_k_14_3"], ind["stoch_d_3"] = stoch if stoch is not None else (None, None)
        if "sma_20" in need:
            ind["sma_20"] = self._sma.update(close)
        if "ema_20" in need:
            ind["ema_20"] = self._ema.update(close)
        if "rsi_14" in need:
            ind["rsi_14"] = self._rsi.update(close)
        if "atr_14" in need:
            ind["atr_14"] = self._atr.update(high, low, close)
        if "vwap_20" in need:
            price = bar.vwap if bar.vwap is not None else (high + low + close) / 3.0
            ind["vwap_20"] = self._vwap.update(price, bar.volume)
        if "obv" in need:
            ind["obv"] = self._obv.update(close, bar.volume)
        if "realized_vol_20" in need:
            ind["realized_vol_20"] = self._rv.update(close)
        if "zscore_20" in need:
            ind["zscore_20"] = self._z.update(close)
        return (None, None) if ret is None else (ret.simple, ret.log)

    def _vector(self, bar: Bar) -> FeatureVector:
        simple, log = (None, None) if bar.empty else self._update_indicators(bar)
        values: dict[str, FeatureValue] = {
            "bar_open": bar.open,
            "bar_high": bar.high,
            "bar_low": bar.low,
            "bar_close": bar.close,
            "bar_volume": bar.volume,
            "bar_vwap": bar.vwap,
            "bar_trade_count": bar.trade_count,
            "bar_buy_volume": bar.buy_volume,
            "bar_sell_volume": bar.sell_volume,
            "bar_empty": bar.empty,
            "return_1": simple,
            "log_return_1": log,
        }
        values.update(self._indicators)
        if self._flow.newest is None:
            values.update(_NO_FLOW)
        else:
            flow = self._flow.get(bar.end)
            values["flow_buy_volume_60s"] = flow.buy_volume
            values["flow_sell_volume_60s"] = flow.sell_volume
            values["flow_imbalance_60s"] = flow.imbalance
            values["flow_intensity_60s"] = flow.intensity
        book = self._book_at(to_epoch_us(bar.end)) if self._book_last_ts is not None else None
        if book is None:
            values.update(_NO_BOOK)
        else:
            values.update(zip(_BOOK_NAMES, book, strict=True))
        return FeatureVector(bar.key, self.timeframe, bar.end, bar.start, values)

    def _capture_book(self, ts: int) -> None:
        last = self._book_last_ts
        if last is not None and ts > last:
            boundary = ts - ts % self._len
            if boundary > last:
                self._book_asof.append((last, boundary, self._book.features(BOOK_LEVELS, BOOK_DEPTH_BPS)))
        if last is None or ts > last:
            self._book_last_ts = ts

    def _book_at(self, end_us: int) -> BookFeatures | None:
        last = self._book_last_ts
        if last is None:
            return None
        if last < end_us:
            return self._book.features(BOOK_LEVELS, BOOK_DEPTH_BPS)
        captures = self._book_asof
        while captures and captures[0][1] < end_us:
            captures.popleft()
        if captures and captures[0][0] < end_us <= captures[0][1]:
            return captures[0][2]
        return None  # the bar ended before the first book event

    # -- state ------------------------------------------------------------------------------------

    def _params(self) -> dict[str, Any]:
        params: dict[str, Any] = {
            "timeframe": self.timeframe,
            "lateness_us": self.allowed_lateness // timedelta(microseconds=1),
            "bars_from": self.bars_from,
        }
        if self._needed != frozenset(_INDICATOR_NAMES):  # only a subset engine records it (old snapshots stay valid)
            params["indicators"] = sorted(self._needed & frozenset(_INDICATOR_NAMES))
        return params

    def _components(self) -> dict[str, Any]:
        return {
            "bars": self._bars,
            "candles": self._candles,
            "flow": self._flow,
            "book": self._book,
            "returns": self._returns,
            "sma": self._sma,
            "ema": self._ema,
            "rsi": self._rsi,
            "macd": self._macd,
            "bb": self._bb,
            "atr": self._atr,
            "vwap": self._vwap,
            "stoch": self._stoch,
            "obv": self._obv,
            "rv": self._rv,
            "z": self._z,
        }

    def snapshot(self) -> State:
        """Plain-data state of every component; ``restore`` continues exactly from here."""
        state = state_header("FeatureEngine", self._params())
        state["components"] = {name: part.snapshot() for name, part in self._components().items()}
        state["indicators"] = dict(self._indicators)
        state["book_asof"] = [
            [after, until, None if feats is None else list(feats)] for after, until, feats in self._book_asof
        ]
        state["book_last_ts"] = self._book_last_ts
        return state

    def restore(self, state: State) -> None:
        """Load a :meth:`snapshot` of an engine with the same timeframe, lateness and bar source."""
        check_state(state, "FeatureEngine", self._params())
        for name, part in self._components().items():
            part.restore(state["components"][name])
        self._indicators = dict(state["indicators"])
        self._book_asof = deque(
            (
                (after, until, None if feats is None else BookFeatures(*feats))
                for after, until, feats in state["book_asof"]
            ),
            maxlen=MAX_BOOK_CAPTURES,
        )
        self._book_last_ts = state["book_last_ts"]
