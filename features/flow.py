"""Trade-flow features over an event-time window: buy/sell volume, imbalance, trade intensity.

``TradeFlow`` keeps the recent trades ordered by event time and answers for any window
``[end - window, end)``, so a caller can ask "as of the end of this bar" and get the same
answer however late (within the retention) the trades in it arrived. Sums are exact in any
order (``math.fsum``), so a shuffled stream gives identical values.
"""

from __future__ import annotations

import math
from bisect import bisect_left, bisect_right
from datetime import datetime, timedelta
from typing import NamedTuple

from core.clock import from_epoch_us, to_epoch_us
from core.events import Side, Trade
from features._state import State, check_state, state_header
from features.bars import InvalidTrade, invalid_trade


class FlowValue(NamedTuple):
    """Trade flow in one window. ``imbalance`` is ``(buy - sell) / (buy + sell)`` in [-1, 1]
    (``None`` without sided volume); ``intensity`` is trades per second.

    >>> FlowValue(3.0, 1.0, 0.5, 2, 0.2).imbalance
    0.5
    """

    buy_volume: float
    sell_volume: float
    imbalance: float | None
    trade_count: int
    intensity: float


def _us(delta: timedelta) -> int:
    return delta // timedelta(microseconds=1)


class TradeFlow:
    """Buy/sell volume imbalance and trade intensity of one instrument over a time window.

    ``update(trade)`` records a trade (or returns an :class:`~features.bars.InvalidTrade`);
    ``get(end)`` answers for ``[end - window, end)``, by default for the window ending just after
    the newest trade. Trades older than the newest minus ``retention`` are forgotten, so a query
    must end no earlier than ``newest - retention + window`` to be complete.

    >>> from decimal import Decimal
    >>> from core.clock import parse_utc
    >>> def trade(tid, ts, amount, side):
    ...     return Trade("binance", "BTC/USDT", tid, Decimal(100), Decimal(amount), side,
    ...                  parse_utc(ts), parse_utc(ts))
    >>> flow = TradeFlow(window=timedelta(seconds=10))
    >>> flow.update(trade("1", "2024-01-01T00:00:01Z", "3", Side.BUY))
    >>> flow.update(trade("2", "2024-01-01T00:00:05Z", "1", Side.SELL))
    >>> flow.get()
    FlowValue(buy_volume=3.0, sell_volume=1.0, imbalance=0.5, trade_count=2, intensity=0.2)
    >>> flow.get(end=parse_utc("2024-01-01T00:00:05Z")).trade_count
    1
    """

    def __init__(self, window: timedelta = timedelta(seconds=60), retention: timedelta | None = None) -> None:
        if window <= timedelta(0):
            raise ValueError(f"window must be > 0, got {window}")
        retention = window if retention is None else retention
        if retention < window:
            raise ValueError(f"retention {retention} must be >= window {window}")
        self.window = window
        self.retention = retention
        self._window_us = _us(window)
        self._retention_us = _us(retention)
        # Parallel columns kept sorted by event time, so a window is two bisects and two
        # C-level sums over list slices.
        self._ts: list[int] = []
        self._buy: list[float] = []
        self._sell: list[float] = []
        self._newest: int | None = None
        self.forgotten = 0  # trades that arrived already older than the retention

    def update(self, trade: Trade) -> InvalidTrade | None:
        """Record one trade; a trade older than the retention is counted in ``forgotten``."""
        bad = invalid_trade(trade)
        if bad is not None:
            return bad
        ts = to_epoch_us(trade.ts_event)
        side = trade.side
        amount = float(trade.amount)
        buy = amount if side is Side.BUY else 0.0
        sell = amount if side is Side.SELL else 0.0
        times = self._ts
        newest = self._newest
        if newest is None or ts >= newest:
            times.append(ts)
            self._buy.append(buy)
            self._sell.append(sell)
            if newest is None or ts > newest:
                self._newest = ts
                cutoff = ts - self._retention_us
                if times[0] < cutoff:
                    drop = bisect_left(times, cutoff)
                    del times[:drop], self._buy[:drop], self._sell[:drop]
        elif ts >= newest - self._retention_us:
            at = bisect_right(times, ts)
            times.insert(at, ts)
            self._buy.insert(at, buy)
            self._sell.insert(at, sell)
        else:
            self.forgotten += 1
        return None

    def get(self, end: datetime | None = None) -> FlowValue:
        """Flow over ``[end - window, end)``; ``end`` defaults to just after the newest trade."""
        newest = self._newest
        default_end = 0 if newest is None else newest + 1
        end_us = default_end if end is None else to_epoch_us(end)
        times = self._ts
        lo = bisect_left(times, end_us - self._window_us)
        hi = bisect_left(times, end_us)
        # fsum is exact, so the value does not depend on the order trades arrived in.
        buy = math.fsum(self._buy[lo:hi])
        sell = math.fsum(self._sell[lo:hi])
        sided = buy + sell
        imbalance = (buy - sell) / sided if sided > 0.0 else None
        count = hi - lo
        return FlowValue(buy, sell, imbalance, count, count / (self._window_us / 1e6))

    @property
    def newest(self) -> datetime | None:
        """Event time of the newest trade seen."""
        return None if self._newest is None else from_epoch_us(self._newest)

    def _params(self) -> dict[str, int]:
        return {"window_us": self._window_us, "retention_us": self._retention_us}

    def snapshot(self) -> State:
        """Plain-data state: the retained trades' times and buy / sell amounts."""
        state = state_header("TradeFlow", self._params())
        state.update(
            ts=list(self._ts),
            buy=list(self._buy),
            sell=list(self._sell),
            newest=self._newest,
            forgotten=self.forgotten,
        )
        return state

    def restore(self, state: State) -> None:
        """Load a :meth:`snapshot` of a ``TradeFlow`` with the same window and retention."""
        check_state(state, "TradeFlow", self._params())
        self._ts, self._buy, self._sell = list(state["ts"]), list(state["buy"]), list(state["sell"])
        self._newest = state["newest"]
        self.forgotten = state["forgotten"]
