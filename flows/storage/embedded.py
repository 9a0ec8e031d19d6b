"""The embedded store: SQLite, for the demo and for users without servers.

Same tables and natural keys as PostgreSQL (``md_trades``, ``md_quotes``, ``md_book_snapshots``,
``md_book_deltas``, ``md_candles``, ``dead_letters``); decimals are stored as their exact text,
times as ISO-8601 UTC text. Inserts are ``INSERT OR IGNORE`` on the natural key, so a replay adds
nothing, exactly like the PostgreSQL sink.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import orjson
from bytewax.outputs import DynamicSink, StatelessSinkPartition

from core.deadletter import DeadLetter
from core.events import BookDelta, BookSnapshot, Candle, Level, Quote, Trade
from flows.storage.sink import StoredItem

SCHEMA = """
CREATE TABLE IF NOT EXISTS md_trades (
    exchange TEXT NOT NULL, symbol TEXT NOT NULL, trade_id TEXT NOT NULL, price TEXT NOT NULL,
    amount TEXT NOT NULL, side TEXT, ts_event TEXT NOT NULL, ts_recv TEXT NOT NULL,
    PRIMARY KEY (exchange, symbol, trade_id, ts_event));
CREATE TABLE IF NOT EXISTS md_quotes (
    exchange TEXT NOT NULL, symbol TEXT NOT NULL, sequence INTEGER, bid_price TEXT NOT NULL,
    bid_amount TEXT NOT NULL, ask_price TEXT NOT NULL, ask_amount TEXT NOT NULL, ts_event TEXT NOT NULL,
    ts_recv TEXT NOT NULL, PRIMARY KEY (exchange, symbol, ts_event, sequence));
CREATE TABLE IF NOT EXISTS md_book_snapshots (
    exchange TEXT NOT NULL, symbol TEXT NOT NULL, sequence INTEGER, bids TEXT NOT NULL, asks TEXT NOT NULL,
    ts_event TEXT NOT NULL, ts_recv TEXT NOT NULL, PRIMARY KEY (exchange, symbol, ts_event, sequence));
CREATE TABLE IF NOT EXISTS md_book_deltas (
    exchange TEXT NOT NULL, symbol TEXT NOT NULL, first_sequence INTEGER, sequence INTEGER,
    bids TEXT NOT NULL, asks TEXT NOT NULL, ts_event TEXT NOT NULL, ts_recv TEXT NOT NULL,
    PRIMARY KEY (exchange, symbol, ts_event, sequence));
CREATE TABLE IF NOT EXISTS md_candles (
    exchange TEXT NOT NULL, symbol TEXT NOT NULL, timeframe TEXT NOT NULL, open TEXT NOT NULL,
    high TEXT NOT NULL, low TEXT NOT NULL, close TEXT NOT NULL, volume TEXT NOT NULL,
    closed INTEGER NOT NULL, ts_event TEXT NOT NULL, ts_recv TEXT NOT NULL,
    PRIMARY KEY (exchange, symbol, timeframe, ts_event));
CREATE TABLE IF NOT EXISTS dead_letters (
    stage TEXT NOT NULL, reason TEXT NOT NULL, detail TEXT NOT NULL, source_topic TEXT,
    source_partition INTEGER, source_offset INTEGER, msg_key BLOB, original BLOB NOT NULL,
    ts_recv TEXT NOT NULL, UNIQUE (source_topic, source_partition, source_offset, stage));
"""


def _lv(levels: tuple[Level, ...]) -> str:
    return orjson.dumps([[str(p), str(a)] for p, a in levels]).decode()


def _row(item: StoredItem) -> tuple[str, tuple[Any, ...]]:
    if isinstance(item, Trade):
        return "md_trades", (
            item.exchange,
            item.symbol,
            item.trade_id,
            str(item.price),
            str(item.amount),
            item.side.value if item.side else None,
            item.ts_event.isoformat(),
            item.ts_recv.isoformat(),
        )
    if isinstance(item, Quote):
        return "md_quotes", (
            item.exchange,
            item.symbol,
            item.sequence,
            str(item.bid_price),
            str(item.bid_amount),
            str(item.ask_price),
            str(item.ask_amount),
            item.ts_event.isoformat(),
            item.ts_recv.isoformat(),
        )
    if isinstance(item, BookSnapshot):
        return "md_book_snapshots", (
            item.exchange,
            item.symbol,
            item.sequence,
            _lv(item.bids),
            _lv(item.asks),
            item.ts_event.isoformat(),
            item.ts_recv.isoformat(),
        )
    if isinstance(item, BookDelta):
        return "md_book_deltas", (
            item.exchange,
            item.symbol,
            item.first_sequence,
            item.sequence,
            _lv(item.bids),
            _lv(item.asks),
            item.ts_event.isoformat(),
            item.ts_recv.isoformat(),
        )
    if isinstance(item, Candle):
        return "md_candles", (
            item.exchange,
            item.symbol,
            item.timeframe,
            str(item.open),
            str(item.high),
            str(item.low),
            str(item.close),
            str(item.volume),
            int(item.closed),
            item.ts_event.isoformat(),
            item.ts_recv.isoformat(),
        )
    return "dead_letters", (
        item.stage,
        item.reason,
        item.detail,
        item.source_topic,
        item.source_partition,
        item.source_offset,
        item.key,
        item.original,
        item.ts_recv.isoformat(),
    )


class EmbeddedStore:
    """A SQLite file with the market-data schema."""

    def __init__(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self.path = path
        self.conn = sqlite3.connect(path)
        self.conn.executescript(SCHEMA)

    def write(self, items: Iterable[StoredItem]) -> int:
        by_table: dict[str, list[tuple[Any, ...]]] = {}
        for item in items:
            table, row = _row(item)
            by_table.setdefault(table, []).append(row)
        before = self.conn.total_changes
        with self.conn:
            for table, rows in by_table.items():
                marks = ", ".join("?" * len(rows[0]))
                self.conn.executemany(f"INSERT OR IGNORE INTO {table} VALUES ({marks})", rows)
        return self.conn.total_changes - before

    def count(self, table: str) -> int:
        row = self.conn.execute(f"SELECT count(*) FROM {table}").fetchone()
        return int(row[0])

    def close(self) -> None:
        self.conn.close()


class _EmbeddedPartition(StatelessSinkPartition[StoredItem]):
    def __init__(self, store: EmbeddedStore) -> None:
        self._store = store

    def write_batch(self, items: list[StoredItem]) -> None:
        self._store.write(items)

    def close(self) -> None:
        self._store.close()


class EmbeddedSink(DynamicSink[StoredItem]):
    """Bytewax sink into the SQLite store. SQLite has one writer: run it with a single worker."""

    def __init__(self, path: Path) -> None:
        self._path = path

    def build(self, step_id: str, worker_index: int, worker_count: int) -> _EmbeddedPartition:
        if worker_count != 1:
            raise ValueError(f"the embedded SQLite store takes one writer, got {worker_count} workers")
        return _EmbeddedPartition(EmbeddedStore(self._path))


__all__ = ["DeadLetter", "EmbeddedSink", "EmbeddedStore"]
