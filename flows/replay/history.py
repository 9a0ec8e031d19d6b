"""Replaying stored history from PostgreSQL: the ``md_candles`` or ``md_trades`` rows of some
instruments over a time range, in event-time order, as market events (``bot4 backtest --from-db``).

Rows are read through a server-side cursor in pages, so a year of 1m candles or a month of trades
streams in bounded memory. :class:`HistorySource` is the Bytewax input: one partition, resumable
(its snapshot is the number of events emitted; a resumed run re-reads and skips them).
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Literal

import psycopg
from bytewax.inputs import FixedPartitionedSource, StatefulSourcePartition

from core.events import Candle, MarketEvent, Side, Trade

KeyedEvent = tuple[str, MarketEvent]


@dataclass(frozen=True)
class HistoryQuery:
    """Which stored rows to replay: an exchange, its symbols, the table, the range [start, end)."""

    conninfo: str
    exchange: str
    symbols: tuple[str, ...]
    kind: Literal["candles", "trades"] = "candles"
    timeframe: str = "1m"
    start: datetime | None = None
    end: datetime | None = None

    def describe(self) -> str:
        """Where the events come from, for reports (no credentials)."""
        span = f"{self.start.isoformat() if self.start else '-'} .. {self.end.isoformat() if self.end else '-'}"
        what = f"md_candles {self.timeframe}" if self.kind == "candles" else "md_trades"
        return f"postgresql {what} {self.exchange} {','.join(self.symbols)} {span}"


def _bounds(query: HistoryQuery) -> tuple[datetime, datetime]:
    low = query.start or datetime(1970, 1, 1, tzinfo=UTC)
    high = query.end or datetime(9999, 1, 1, tzinfo=UTC)
    return low, high


def stored_events(query: HistoryQuery, page: int = 10_000) -> Iterator[MarketEvent]:
    """The rows of ``query`` as events, ordered by event time (then symbol, then trade id)."""
    low, high = _bounds(query)
    symbols = list(query.symbols)
    with psycopg.connect(query.conninfo) as conn, conn.cursor(name="bot4_history") as cur:
        cur.itersize = page
        if query.kind == "candles":
            cur.execute(
                "SELECT symbol, timeframe, open, high, low, close, volume, ts_event, ts_recv, closed FROM md_candles"
                " WHERE exchange = %s AND symbol = ANY(%s) AND timeframe = %s AND ts_event >= %s AND ts_event < %s"
                " ORDER BY ts_event, symbol",
                (query.exchange, symbols, query.timeframe, low, high),
            )
            for symbol, tf, o, h, lo, c, v, ts, recv, closed in cur:
                yield Candle(
                    query.exchange, symbol, tf, o, h, lo, c, v, ts.astimezone(UTC), recv.astimezone(UTC), closed
                )
        else:
            cur.execute(
                "SELECT symbol, trade_id, price, amount, side, ts_event, ts_recv FROM md_trades"
                " WHERE exchange = %s AND symbol = ANY(%s) AND ts_event >= %s AND ts_event < %s"
                " ORDER BY ts_event, symbol, length(trade_id), trade_id",
                (query.exchange, symbols, low, high),
            )
            for symbol, trade_id, price, amount, side, ts, recv in cur:
                yield Trade(
                    query.exchange,
                    symbol,
                    trade_id,
                    price,
                    amount,
                    None if side is None else Side(side),
                    ts.astimezone(UTC),
                    recv.astimezone(UTC),
                )


class _HistoryPartition(StatefulSourcePartition[KeyedEvent, int]):
    def __init__(self, query: HistoryQuery, resume_from: int, batch_size: int) -> None:
        self._events = stored_events(query)
        self._emitted = 0
        self._batch_size = batch_size
        for _ in range(resume_from):  # the events emitted before the snapshot
            if next(self._events, None) is None:
                break
            self._emitted += 1

    def next_batch(self) -> list[KeyedEvent]:
        batch: list[KeyedEvent] = []
        for event in self._events:
            batch.append((event.key, event))
            if len(batch) >= self._batch_size:
                break
        if not batch:
            raise StopIteration
        self._emitted += len(batch)
        return batch

    def snapshot(self) -> int:
        return self._emitted

    def close(self) -> None:
        self._events.close()  # type: ignore[attr-defined]


class HistorySource(FixedPartitionedSource[KeyedEvent, int]):
    """Bytewax input of :func:`stored_events` (one partition, in event-time order)."""

    def __init__(self, query: HistoryQuery, *, batch_size: int = 1000) -> None:
        if not query.symbols:
            raise ValueError("a history replay needs at least one symbol")
        self._query = query
        self._batch_size = batch_size

    def list_parts(self) -> list[str]:
        return ["history"]

    def build_part(self, step_id: str, for_part: str, resume_state: int | None) -> _HistoryPartition:
        return _HistoryPartition(self._query, resume_state or 0, self._batch_size)


def stored_symbols(conninfo: str, exchange: str, kind: str, timeframe: str) -> Sequence[str]:
    """The symbols with stored rows (for a helpful error when a query names none)."""
    with psycopg.connect(conninfo) as conn:
        if kind == "candles":
            rows = conn.execute(
                "SELECT DISTINCT symbol FROM md_candles WHERE exchange = %s AND timeframe = %s ORDER BY 1",
                (exchange, timeframe),
            )
        else:
            rows = conn.execute("SELECT DISTINCT symbol FROM md_trades WHERE exchange = %s ORDER BY 1", (exchange,))
        return [r[0] for r in rows]
