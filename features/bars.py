"""Bars: time bars from trades by event time, bars from exchange candles, volume and dollar bars.

Time bars (:class:`TimeBarBuilder`) are aligned to the Unix epoch (a ``1h`` bar starts on the UTC
hour) and cover ``[start, end)``. Event time decides the bar, arrival order does not:

- the *watermark* is the latest event time seen minus the allowed lateness;
- a bar is emitted once the watermark reaches its end, so a trade that arrives out of order but
  no more than the allowed lateness behind the newest trade still lands in its own bar;
- a trade older than the watermark (or in a bar already emitted) is *late*: it is returned as a
  :class:`LateTrade` with the reason and is never merged into a bar, nor dropped silently;
- an interval without trades is emitted as an explicit empty bar (``empty=True``, OHLC ``None``,
  volume 0), never forward-filled.

Open, close, high and low do not depend on arrival order: the open is the trade with the smallest
``(ts_event, trade id)``, the close the one with the largest (numeric ids compare as numbers), and
volume, notional and buy/sell volume are summed exactly in ``Decimal``. So a stream shuffled
within the allowed lateness gives the same bars as the sorted stream.

Inside a bar prices and sums stay ``Decimal``; the emitted :class:`Bar` carries floats, which is
what features and models consume.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any, Literal

from core.clock import from_epoch_us, to_epoch_us
from core.events import Candle, Side, Trade
from core.money import to_decimal
from core.symbols import instrument_key, timeframe_seconds
from features._state import State, check_state, state_header

_ZERO = Decimal(0)
_NOTHING: tuple[()] = ()


@dataclass(frozen=True, slots=True)
class Bar:
    """One OHLCV bar of ``[start, end)``; ``empty`` bars carry ``None`` prices and zero volume.

    ``notional`` is the sum of price x amount (quote volume), ``vwap`` is notional / volume.
    ``buy_volume`` / ``sell_volume`` count trades by aggressor side; trades of unknown side count
    in ``volume`` only. Bars made from exchange candles (``source="candles"``) do not know the
    trade count, notional or side split: those fields are ``None``.

    >>> from datetime import UTC, datetime
    >>> bar = Bar("binance", "BTC/USDT", "1m", datetime(2024, 8, 8, 23, 54, tzinfo=UTC),
    ...           datetime(2024, 8, 8, 23, 55, tzinfo=UTC), 10.0, 12.0, 9.0, 11.0, 3.0, 10.5,
    ...           31.5, 2, 1.0, 2.0, False, "trades")
    >>> bar.key, bar.typical_price
    ('binance:BTC/USDT', 10.666666666666666)
    """

    exchange: str
    symbol: str
    timeframe: str
    start: datetime
    end: datetime
    open: float | None
    high: float | None
    low: float | None
    close: float | None
    volume: float
    vwap: float | None
    notional: float | None
    trade_count: int | None
    buy_volume: float | None
    sell_volume: float | None
    empty: bool
    source: str

    @property
    def key(self) -> str:
        return instrument_key(self.exchange, self.symbol)

    @property
    def typical_price(self) -> float | None:
        """(high + low + close) / 3, or ``None`` for an empty bar."""
        if self.high is None or self.low is None or self.close is None:
            return None
        return (self.high + self.low + self.close) / 3.0


@dataclass(frozen=True, slots=True)
class LateTrade:
    """A trade that arrived behind the watermark; it is reported here and is in no bar.

    >>> from datetime import UTC, datetime
    >>> from decimal import Decimal
    >>> t = Trade("binance", "BTC/USDT", "1", Decimal("1"), Decimal("1"), None,
    ...           datetime(2024, 1, 1, tzinfo=UTC), datetime(2024, 1, 1, tzinfo=UTC))
    >>> LateTrade(t, datetime(2024, 1, 1, 0, 1, tzinfo=UTC), "late_trade", "60 s behind").reason
    'late_trade'
    """

    trade: Trade
    watermark: datetime
    reason: str
    detail: str


@dataclass(frozen=True, slots=True)
class InvalidTrade:
    """A trade whose price or amount is not a finite positive number; it is in no bar.

    >>> check_trade(Trade("binance", "BTC/USDT", "1", Decimal("NaN"), Decimal("1"), None,
    ...     from_epoch_us(0), from_epoch_us(0)))
    'price_not_finite'
    """

    trade: Trade
    reason: str
    detail: str


@dataclass(frozen=True, slots=True)
class RejectedCandle:
    """A candle that cannot become a bar (wrong timeframe, bad OHLC, duplicate or out of order).

    >>> d = Decimal(1)
    >>> c = Candle("binance", "BTC/USDT", "5m", d, d, d, d, d, from_epoch_us(0), from_epoch_us(0))
    >>> CandleBars("1h").update(c)[0].reason
    'timeframe_mismatch'
    """

    candle: Candle
    reason: str
    detail: str


def check_trade(trade: Trade) -> str | None:
    """The reason a trade is unusable for bars and flow features, or ``None`` if it is fine.

    >>> ok = Trade("binance", "BTC/USDT", "1", Decimal("61837.63"), Decimal("0.02"), Side.BUY,
    ...            from_epoch_us(0), from_epoch_us(0))
    >>> check_trade(ok) is None
    True
    """
    price, amount = trade.price, trade.amount
    if not price.is_finite():
        return "price_not_finite"
    if not amount.is_finite():
        return "amount_not_finite"
    if price <= 0:
        return "price_not_positive"
    if amount <= 0:
        return "amount_not_positive"
    return None


def invalid_trade(trade: Trade) -> InvalidTrade | None:
    """An :class:`InvalidTrade` record for a bad trade, ``None`` for a good one.

    >>> bad = Trade("binance", "BTC/USDT", "7", Decimal("-1"), Decimal("1"), None,
    ...             from_epoch_us(0), from_epoch_us(0))
    >>> invalid_trade(bad).detail
    'trade 7: price=-1 amount=1'
    """
    reason = check_trade(trade)
    if reason is None:
        return None
    return InvalidTrade(trade, reason, f"trade {trade.trade_id}: price={trade.price} amount={trade.amount}")


def _id_key(trade_id: str) -> tuple[int, int, str]:
    """Order of trade ids at equal event time: numeric ids as numbers, others as text after them."""
    if trade_id.isdigit():
        return (0, int(trade_id), "")
    return (1, 0, trade_id)


class _Acc:
    """Running OHLCV of one bar, in Decimal, independent of arrival order."""

    __slots__ = (
        "buy",
        "close_id",
        "close_px",
        "close_ts",
        "count",
        "high",
        "low",
        "notional",
        "open_id",
        "open_px",
        "open_ts",
        "sell",
        "volume",
    )

    def __init__(self, ts: int, tid: str, px: Decimal, amt: Decimal, side: Side | None) -> None:
        self.open_ts = self.close_ts = ts
        self.open_id = self.close_id = tid
        self.open_px = self.close_px = self.high = self.low = px
        self.volume = amt
        self.notional = px * amt
        self.count = 1
        self.buy = amt if side is Side.BUY else _ZERO
        self.sell = amt if side is Side.SELL else _ZERO

    def add(self, ts: int, tid: str, px: Decimal, amt: Decimal, side: Side | None) -> None:
        close_ts = self.close_ts
        if ts > close_ts or (ts == close_ts and _id_key(tid) > _id_key(self.close_id)):
            self.close_ts, self.close_id, self.close_px = ts, tid, px
        open_ts = self.open_ts
        if ts < open_ts or (ts == open_ts and _id_key(tid) < _id_key(self.open_id)):
            self.open_ts, self.open_id, self.open_px = ts, tid, px
        if px > self.high:
            self.high = px
        elif px < self.low:
            self.low = px
        self.volume += amt
        self.notional += px * amt
        self.count += 1
        if side is Side.BUY:
            self.buy += amt
        elif side is Side.SELL:
            self.sell += amt

    def to_plain(self) -> list[Any]:
        return [
            self.open_ts,
            self.open_id,
            str(self.open_px),
            self.close_ts,
            self.close_id,
            str(self.close_px),
            str(self.high),
            str(self.low),
            str(self.volume),
            str(self.notional),
            self.count,
            str(self.buy),
            str(self.sell),
        ]

    @classmethod
    def from_plain(cls, data: list[Any]) -> _Acc:
        acc = cls.__new__(cls)
        (acc.open_ts, acc.open_id, open_px, acc.close_ts, acc.close_id, close_px) = data[:6]
        acc.open_px, acc.close_px = Decimal(open_px), Decimal(close_px)
        acc.high, acc.low, acc.volume, acc.notional = (Decimal(v) for v in data[6:10])
        acc.count = data[10]
        acc.buy, acc.sell = Decimal(data[11]), Decimal(data[12])
        return acc

    def to_bar(self, exchange: str, symbol: str, timeframe: str, start: datetime, end: datetime) -> Bar:
        volume = self.volume
        return Bar(
            exchange,
            symbol,
            timeframe,
            start,
            end,
            float(self.open_px),
            float(self.high),
            float(self.low),
            float(self.close_px),
            float(volume),
            float(self.notional / volume),
            float(self.notional),
            self.count,
            float(self.buy),
            float(self.sell),
            False,
            "trades",
        )


def _empty_bar(exchange: str, symbol: str, timeframe: str, *, start: int, length: int, source: str) -> Bar:
    known = source == "trades"
    return Bar(
        exchange,
        symbol,
        timeframe,
        from_epoch_us(start),
        from_epoch_us(start + length),
        None,
        None,
        None,
        None,
        0.0,
        None,
        0.0 if known else None,
        0 if known else None,
        0.0 if known else None,
        0.0 if known else None,
        True,
        source,
    )


BarOutput = Bar | LateTrade | InvalidTrade


class TimeBarBuilder:
    """Event-time bars of one instrument from its trades, with a watermark for late data.

    ``update(trade)`` returns what became final because of that trade: bars whose end the
    watermark reached (empty ones included, in order), or a :class:`LateTrade` /
    :class:`InvalidTrade` for the trade itself. ``flush()`` emits the bars still open at the end
    of a replay.

    >>> from core.clock import parse_utc
    >>> def trade(tid, ts, price, amount="1"):
    ...     return Trade("binance", "BTC/USDT", tid, Decimal(price), Decimal(amount), Side.BUY,
    ...                  parse_utc(ts), parse_utc(ts))
    >>> bars = TimeBarBuilder("1m", allowed_lateness=timedelta(seconds=5))
    >>> bars.update(trade("1", "2024-01-01T00:00:10Z", "100"))
    ()
    >>> bars.update(trade("3", "2024-01-01T00:01:02Z", "102"))
    ()
    >>> bars.update(trade("2", "2024-01-01T00:00:59Z", "101"))  # 3 s out of order: merged
    ()
    >>> [(b.start.minute, b.open, b.close, b.volume) for b in bars.update(trade("4", "2024-01-01T00:03:06Z", "103"))]
    [(0, 100.0, 101.0, 2.0), (1, 102.0, 102.0, 1.0), (2, None, None, 0.0)]
    >>> bars.update(trade("5", "2024-01-01T00:02:30Z", "99"))[0].reason
    'late_trade'
    """

    def __init__(self, timeframe: str = "1m", allowed_lateness: timedelta = timedelta(seconds=2)) -> None:
        if allowed_lateness < timedelta(0):
            raise ValueError(f"allowed_lateness must be >= 0, got {allowed_lateness}")
        self.timeframe = timeframe
        self.allowed_lateness = allowed_lateness
        self._len = timeframe_seconds(timeframe) * 1_000_000
        self._lateness = allowed_lateness // timedelta(microseconds=1)
        self._exchange = ""
        self._symbol = ""
        self._max_ts: int | None = None
        self._next_start: int | None = None  # start of the next bar to emit
        self._closed_until: int | None = None  # end of the last emitted bar
        self._open: dict[int, _Acc] = {}

    @property
    def watermark(self) -> datetime | None:
        """Latest event time seen minus the allowed lateness (``None`` before the first trade)."""
        return None if self._max_ts is None else from_epoch_us(self._max_ts - self._lateness)

    def update(self, trade: Trade) -> tuple[BarOutput, ...]:
        """Add one trade; return the bars it completed, or the reason it was not used."""
        price, amount = trade.price, trade.amount
        if not (price.is_finite() and amount.is_finite() and price > 0 and amount > 0):
            bad = invalid_trade(trade)
            assert bad is not None  # the same four conditions
            return (bad,)
        ts = to_epoch_us(trade.ts_event)
        max_ts = self._max_ts
        if max_ts is not None:
            floor = max_ts - self._lateness
            closed = self._closed_until
            if closed is not None and closed > floor:
                floor = closed
            if ts < floor:
                return (self._late(trade, ts, floor),)
        start = ts - ts % self._len
        acc = self._open.get(start)
        if acc is None:
            self._open[start] = _Acc(ts, trade.trade_id, price, amount, trade.side)
            if self._next_start is None:
                self._exchange, self._symbol = trade.exchange, trade.symbol
                self._next_start = start
            elif start < self._next_start:
                self._next_start = start
        else:
            acc.add(ts, trade.trade_id, price, amount, trade.side)
        if max_ts is None or ts > max_ts:
            self._max_ts = ts
            return self._emit_until(ts - self._lateness)
        return _NOTHING

    def advance(self, ts_event: datetime) -> tuple[Bar, ...]:
        """Move event time to ``ts_event`` without a trade (a heartbeat); return the bars it closes.

        >>> bars = TimeBarBuilder("1m", allowed_lateness=timedelta(0))
        >>> bars.advance(from_epoch_us(0))
        ()
        """
        ts = to_epoch_us(ts_event)
        if self._max_ts is not None and ts <= self._max_ts:
            return _NOTHING
        self._max_ts = ts
        return self._emit_until(ts - self._lateness)

    def flush(self) -> tuple[Bar, ...]:
        """Emit every bar still open (end of a replay); later trades in those bars are late.

        >>> TimeBarBuilder("5m").flush()
        ()
        """
        if not self._open:
            return _NOTHING
        return self._emit_until(max(self._open) + self._len)

    def _late(self, trade: Trade, ts: int, floor: int) -> LateTrade:
        lag = timedelta(microseconds=floor - ts)
        return LateTrade(
            trade,
            from_epoch_us(floor),
            "late_trade",
            f"trade {trade.trade_id} at {trade.ts_event.isoformat()} is {lag} behind the watermark "
            f"{from_epoch_us(floor).isoformat()} (allowed lateness {self.allowed_lateness})",
        )

    def _emit_until(self, watermark: int) -> tuple[Bar, ...]:
        start = self._next_start
        length = self._len
        if start is None or start + length > watermark:
            return _NOTHING
        out = []
        pop = self._open.pop
        while start + length <= watermark:
            acc = pop(start, None)
            if acc is None:
                out.append(
                    _empty_bar(
                        self._exchange, self._symbol, self.timeframe, start=start, length=length, source="trades"
                    )
                )
            else:
                out.append(
                    acc.to_bar(
                        self._exchange,
                        self._symbol,
                        self.timeframe,
                        from_epoch_us(start),
                        from_epoch_us(start + length),
                    )
                )
            start += length
        self._next_start = start
        self._closed_until = start
        return tuple(out)

    def _params(self) -> dict[str, Any]:
        return {"timeframe": self.timeframe, "lateness_us": self._lateness}

    def snapshot(self) -> State:
        """Plain-data state; ``restore`` on a fresh builder continues exactly from here."""
        state = state_header("TimeBarBuilder", self._params())
        state.update(
            exchange=self._exchange,
            symbol=self._symbol,
            max_ts=self._max_ts,
            next_start=self._next_start,
            closed_until=self._closed_until,
            open=[[start, acc.to_plain()] for start, acc in sorted(self._open.items())],
        )
        return state

    def restore(self, state: State) -> None:
        """Load a :meth:`snapshot` taken from a builder with the same timeframe and lateness."""
        check_state(state, "TimeBarBuilder", self._params())
        self._exchange, self._symbol = state["exchange"], state["symbol"]
        self._max_ts = state["max_ts"]
        self._next_start = state["next_start"]
        self._closed_until = state["closed_until"]
        self._open = {start: _Acc.from_plain(plain) for start, plain in state["open"]}


def _candle_problem(c: Candle) -> str | None:
    o, h, low, close, volume = c.open, c.high, c.low, c.close, c.volume
    if not (o.is_finite() and h.is_finite() and low.is_finite() and close.is_finite() and volume.is_finite()):
        return f"OHLCV not finite: {(o, h, low, close, volume)}"
    if low <= 0:
        return f"prices must be > 0: {(o, h, low, close)}"
    if volume < 0:
        return f"volume {volume} < 0"
    if h < o or h < close or h < low or low > o or low > close:
        return f"high/low do not bound open/close: {(o, h, low, close)}"
    return None


class CandleBars:
    """Exchange candles accepted as bars, with gaps made explicit and disorder reported.

    A closed candle of the configured timeframe becomes a :class:`Bar` with ``source="candles"``;
    missing intervals before it are emitted as empty bars. A still-forming candle
    (``closed=False``) is not a bar yet and yields nothing: the closed one replaces it. Anything
    else (other timeframe, impossible OHLC, misaligned, duplicate or older than the last bar) is
    returned as a :class:`RejectedCandle`.

    >>> from core.clock import parse_utc
    >>> def candle(ts, close):
    ...     d = Decimal(close)
    ...     return Candle("binance", "BTC/USDT", "1h", d, d, d, d, Decimal(5), parse_utc(ts), parse_utc(ts))
    >>> bars = CandleBars("1h")
    >>> [b.close for b in bars.update(candle("2024-01-01T00:00:00Z", "10"))]
    [10.0]
    >>> [(b.start.hour, b.empty) for b in bars.update(candle("2024-01-01T02:00:00Z", "11"))]
    [(1, True), (2, False)]
    >>> bars.update(candle("2024-01-01T02:00:00Z", "11"))[0].reason
    'duplicate_or_out_of_order'
    """

    def __init__(self, timeframe: str = "1m") -> None:
        self.timeframe = timeframe
        self._len = timeframe_seconds(timeframe) * 1_000_000
        self._next_start: int | None = None

    def update(self, candle: Candle) -> tuple[Bar | RejectedCandle, ...]:
        """Turn one candle into bars (gap bars first), or say why it cannot be one."""
        if not candle.closed:
            return _NOTHING
        if candle.timeframe != self.timeframe:
            return (
                RejectedCandle(
                    candle, "timeframe_mismatch", f"candle is {candle.timeframe}, bars are {self.timeframe}"
                ),
            )
        problem = _candle_problem(candle)
        if problem is not None:
            return (RejectedCandle(candle, "invalid_ohlcv", problem),)
        start = to_epoch_us(candle.ts_event)
        length = self._len
        if start % length:
            return (
                RejectedCandle(
                    candle,
                    "misaligned",
                    f"open time {candle.ts_event.isoformat()} is not on a {self.timeframe} boundary",
                ),
            )
        expected = self._next_start
        if expected is not None and start < expected:
            return (
                RejectedCandle(
                    candle,
                    "duplicate_or_out_of_order",
                    f"open time {candle.ts_event.isoformat()} is before the next expected "
                    f"{from_epoch_us(expected).isoformat()}",
                ),
            )
        out: list[Bar | RejectedCandle] = []
        if expected is not None:
            out.extend(
                _empty_bar(candle.exchange, candle.symbol, self.timeframe, start=gap, length=length, source="candles")
                for gap in range(expected, start, length)
            )
        out.append(bar_from_candle(candle, length))
        self._next_start = start + length
        return tuple(out)

    def snapshot(self) -> State:
        """Plain-data state (the next expected open time)."""
        state = state_header("CandleBars", {"timeframe": self.timeframe})
        state["next_start"] = self._next_start
        return state

    def restore(self, state: State) -> None:
        """Load a :meth:`snapshot` of a ``CandleBars`` with the same timeframe."""
        check_state(state, "CandleBars", {"timeframe": self.timeframe})
        self._next_start = state["next_start"]


#: Bar lengths as timedeltas, by length in microseconds (one per timeframe, not one per bar).
_SPANS: dict[int, timedelta] = {}


def bar_from_candle(candle: Candle, length_us: int | None = None) -> Bar:
    """A closed exchange candle as a :class:`Bar` (no validation; see :class:`CandleBars`).

    >>> from core.clock import parse_utc
    >>> d = Decimal("2")
    >>> c = Candle("binance", "BTC/USDT", "5m", d, d, d, d, Decimal(7), parse_utc("2024-01-01T00:05:00Z"),
    ...            parse_utc("2024-01-01T00:10:00Z"))
    >>> bar_from_candle(c).end.isoformat()
    '2024-01-01T00:10:00+00:00'
    """
    length = length_us if length_us is not None else timeframe_seconds(candle.timeframe) * 1_000_000
    span = _SPANS.get(length)
    if span is None:
        span = _SPANS[length] = timedelta(microseconds=length)
    return Bar(
        candle.exchange,
        candle.symbol,
        candle.timeframe,
        candle.ts_event,
        candle.ts_event + span,
        float(candle.open),
        float(candle.high),
        float(candle.low),
        float(candle.close),
        float(candle.volume),
        None,
        None,
        None,
        None,
        None,
        False,
        "candles",
    )


class VolumeBarBuilder:
    """Bars that close when traded volume (or notional, ``unit="dollar"``) reaches a threshold.

    Trades are taken in arrival order (there is no event-time window to be late for) and are not
    split: the trade that crosses the threshold closes its bar, so a bar holds at least
    ``threshold``. ``start`` / ``end`` are the first and last trade times in the bar (inclusive).

    >>> from core.clock import parse_utc
    >>> def trade(tid, amount):
    ...     ts = parse_utc("2024-01-01T00:00:00Z") + timedelta(seconds=int(tid))
    ...     return Trade("binance", "BTC/USDT", tid, Decimal(100), Decimal(amount), Side.SELL, ts, ts)
    >>> bars = VolumeBarBuilder("3")
    >>> bars.update(trade("1", "2"))
    ()
    >>> [(b.volume, b.trade_count, b.timeframe) for b in bars.update(trade("2", "1.5"))]
    [(3.5, 2, 'volume:3')]
    """

    def __init__(self, threshold: Decimal | int | str, unit: Literal["volume", "dollar"] = "volume") -> None:
        self.threshold = to_decimal(threshold, name="threshold")
        if self.threshold <= 0:
            raise ValueError(f"threshold must be > 0, got {self.threshold}")
        if unit not in ("volume", "dollar"):
            raise ValueError(f"unit must be 'volume' or 'dollar', got {unit!r}")
        self.unit = unit
        self.timeframe = f"{unit}:{self.threshold}"
        self._acc: _Acc | None = None
        self._filled = _ZERO

    def update(self, trade: Trade) -> tuple[Bar | InvalidTrade, ...]:
        """Add one trade; return the bar it completed, if any."""
        bad = invalid_trade(trade)
        if bad is not None:
            return (bad,)
        ts = to_epoch_us(trade.ts_event)
        acc = self._acc
        if acc is None:
            acc = self._acc = _Acc(ts, trade.trade_id, trade.price, trade.amount, trade.side)
        else:
            acc.add(ts, trade.trade_id, trade.price, trade.amount, trade.side)
        self._filled += trade.amount if self.unit == "volume" else trade.price * trade.amount
        if self._filled < self.threshold:
            return _NOTHING
        self._acc, self._filled = None, _ZERO
        bar = acc.to_bar(
            trade.exchange, trade.symbol, self.timeframe, from_epoch_us(acc.open_ts), from_epoch_us(acc.close_ts)
        )
        return (bar,)

    def snapshot(self) -> State:
        """Plain-data state of the bar being filled."""
        state = state_header("VolumeBarBuilder", {"threshold": str(self.threshold), "unit": self.unit})
        state["acc"] = None if self._acc is None else self._acc.to_plain()
        state["filled"] = str(self._filled)
        return state

    def restore(self, state: State) -> None:
        """Load a :meth:`snapshot` of a builder with the same threshold and unit."""
        check_state(state, "VolumeBarBuilder", {"threshold": str(self.threshold), "unit": self.unit})
        self._acc = None if state["acc"] is None else _Acc.from_plain(state["acc"])
        self._filled = Decimal(state["filled"])
