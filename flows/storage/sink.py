"""Idempotent, batched writes of market data and dead letters into PostgreSQL.

Each batch is COPYed into session temp tables, then moved with ``INSERT ... ON CONFLICT DO
NOTHING`` on the natural key, in one transaction. A replayed or re-delivered record therefore
adds nothing, which is what makes Kafka's at-least-once delivery safe here.
"""

from __future__ import annotations

import logging
import time
from collections import defaultdict
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import psycopg
from bytewax.outputs import DynamicSink, StatelessSinkPartition
from psycopg.types.json import Jsonb

from core.deadletter import DeadLetter
from core.events import BookDelta, BookSnapshot, Candle, Level, MarketEvent, Quote, Trade

log = logging.getLogger(__name__)

StoredItem = MarketEvent | DeadLetter


_ESCAPE = str.maketrans({"\\": "\\\\", "\t": "\\t", "\n": "\\n", "\r": "\\r"})


def _copy_text(value: object) -> str:
    """One value in PostgreSQL's COPY text format (faster than per-value adaptation by psycopg)."""
    if value is None:
        return "\\N"
    if isinstance(value, str):
        return value.translate(_ESCAPE)
    if isinstance(value, bool):
        return "t" if value else "f"
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, bytes):
        return "\\\\x" + value.hex()
    return str(value)  # Decimal, int


def copy_payload(rows: Iterable[Sequence[object]]) -> bytes:
    """Rows as one COPY text-format payload."""
    return "".join("\t".join([_copy_text(v) for v in row]) + "\n" for row in rows).encode()


def _levels_json(levels: tuple[Level, ...]) -> Jsonb:
    return Jsonb([[str(p), str(a)] for p, a in levels])


@dataclass(frozen=True, slots=True)
class _Table:
    name: str
    columns: tuple[str, ...]
    types: tuple[str, ...]  # PostgreSQL types for binary COPY, one per column
    conflict: str  # ON CONFLICT target
    row: Callable[[Any], Sequence[Any]]


_TABLES: dict[type, _Table] = {
    Trade: _Table(
        "md_trades",
        ("exchange", "symbol", "trade_id", "price", "amount", "side", "ts_event", "ts_recv"),
        ("text", "text", "text", "numeric", "numeric", "text", "timestamptz", "timestamptz"),
        "(exchange, symbol, ts_event, trade_id)",
        lambda e: (
            e.exchange,
            e.symbol,
            e.trade_id,
            e.price,
            e.amount,
            e.side.value if e.side else None,
            e.ts_event,
            e.ts_recv,
        ),
    ),
    Quote: _Table(
        "md_quotes",
        (
            "exchange",
            "symbol",
            "sequence",
            "bid_price",
            "bid_amount",
            "ask_price",
            "ask_amount",
            "ts_event",
            "ts_recv",
        ),
        ("text", "text", "int8", "numeric", "numeric", "numeric", "numeric", "timestamptz", "timestamptz"),
        "(exchange, symbol, ts_event, sequence_key)",
        lambda e: (
            e.exchange,
            e.symbol,
            e.sequence,
            e.bid_price,
            e.bid_amount,
            e.ask_price,
            e.ask_amount,
            e.ts_event,
            e.ts_recv,
        ),
    ),
    BookSnapshot: _Table(
        "md_book_snapshots",
        ("exchange", "symbol", "sequence", "bids", "asks", "ts_event", "ts_recv"),
        ("text", "text", "int8", "jsonb", "jsonb", "timestamptz", "timestamptz"),
        "(exchange, symbol, ts_event, sequence_key)",
        lambda e: (
            e.exchange,
            e.symbol,
            e.sequence,
            _levels_json(e.bids),
            _levels_json(e.asks),
            e.ts_event,
            e.ts_recv,
        ),
    ),
    BookDelta: _Table(
        "md_book_deltas",
        ("exchange", "symbol", "first_sequence", "sequence", "bids", "asks", "ts_event", "ts_recv"),
        ("text", "text", "int8", "int8", "jsonb", "jsonb", "timestamptz", "timestamptz"),
        "(exchange, symbol, ts_event, sequence_key)",
        lambda e: (
            e.exchange,
            e.symbol,
            e.first_sequence,
            e.sequence,
            _levels_json(e.bids),
            _levels_json(e.asks),
            e.ts_event,
            e.ts_recv,
        ),
    ),
    Candle: _Table(
        "md_candles",
        (
            "exchange",
            "symbol",
            "timeframe",
            "open",
            "high",
            "low",
            "close",
            "volume",
            "closed",
            "ts_event",
            "ts_recv",
        ),
        (
            "text",
            "text",
            "text",
            "numeric",
            "numeric",
            "numeric",
            "numeric",
            "numeric",
            "bool",
            "timestamptz",
            "timestamptz",
        ),
        "(exchange, symbol, timeframe, ts_event)",
        lambda e: (
            e.exchange,
            e.symbol,
            e.timeframe,
            e.open,
            e.high,
            e.low,
            e.close,
            e.volume,
            e.closed,
            e.ts_event,
            e.ts_recv,
        ),
    ),
    DeadLetter: _Table(
        "dead_letters",
        (
            "stage",
            "reason",
            "detail",
            "source_topic",
            "source_partition",
            "source_offset",
            "msg_key",
            "original",
            "ts_recv",
        ),
        ("text", "text", "text", "text", "int4", "int8", "bytea", "bytea", "timestamptz"),
        "(source_topic, source_partition, source_offset, stage)",
        lambda e: (
            e.stage,
            e.reason,
            e.detail,
            e.source_topic,
            e.source_partition,
            e.source_offset,
            e.key,
            e.original,
            e.ts_recv,
        ),
    ),
}


def _copy_binary(cur: psycopg.Cursor[Any], target: str, table: _Table, values: list[Sequence[Any]]) -> None:
    with cur.copy(f"COPY {target} ({', '.join(table.columns)}) FROM STDIN (FORMAT BINARY)") as copy:
        copy.set_types(list(table.types))
        for row in values:
            copy.write_row(row)


class PostgresWriter:
    """Writes batches of events idempotently; reconnects and retries a failed batch with backoff.

    Retrying is safe because every insert is idempotent on its natural key.
    """

    def __init__(
        self,
        conninfo: str,
        *,
        max_attempts: int = 8,
        backoff_s: float = 0.5,
        max_backoff_s: float = 15.0,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self._conninfo = conninfo
        self._max_attempts = max_attempts
        self._backoff_s = backoff_s
        self._max_backoff_s = max_backoff_s
        self._sleep = sleep
        self._conn: psycopg.Connection | None = None
        self.rows_inserted = 0
        self.rows_seen = 0

    def _connection(self) -> psycopg.Connection:
        if self._conn is None or self._conn.closed:
            self._conn = psycopg.connect(self._conninfo, autocommit=False)
            for table in _TABLES.values():
                self._conn.execute(
                    f"CREATE TEMP TABLE IF NOT EXISTS tmp_{table.name} AS "
                    f"SELECT {', '.join(table.columns)} FROM {table.name} WITH NO DATA"
                )
            self._conn.commit()
        return self._conn

    def write(self, items: Iterable[StoredItem]) -> int:
        """Store ``items``; return how many rows were new (the rest were already there)."""
        by_type: dict[type, list[StoredItem]] = defaultdict(list)
        for item in items:
            by_type[type(item)].append(item)
        if not by_type:
            return 0
        delay = self._backoff_s
        for attempt in range(1, self._max_attempts + 1):
            try:
                inserted = self._write_once(by_type)
                self.rows_inserted += inserted
                self.rows_seen += sum(len(v) for v in by_type.values())
                return inserted
            except psycopg.OperationalError as exc:
                self.close()
                if attempt == self._max_attempts:
                    raise
                log.warning(
                    "PostgreSQL write failed (attempt %d/%d): %s; retrying in %.1fs",
                    attempt,
                    self._max_attempts,
                    exc,
                    delay,
                )
                self._sleep(delay)
                delay = min(delay * 2, self._max_backoff_s)
        raise AssertionError("unreachable: the loop returns or raises")

    def _write_once(self, by_type: dict[type, list[StoredItem]]) -> int:
        conn = self._connection()
        inserted = 0
        with conn.transaction(), conn.cursor() as cur:
            for kind, rows in by_type.items():
                table = _TABLES[kind]
                cols = ", ".join(table.columns)
                values = [table.row(row) for row in rows]
                # Fast path: binary COPY straight into the table (psycopg's C adapters; several
                # times faster than INSERT ... SELECT). A batch holding a row that is already
                # stored fails as a whole; it is rolled back to the savepoint and moved through
                # the temp table with ON CONFLICT DO NOTHING.
                try:
                    with conn.transaction():
                        _copy_binary(cur, table.name, table, values)
                    inserted += len(rows)
                    continue
                except psycopg.errors.UniqueViolation:
                    pass
                _copy_binary(cur, f"tmp_{table.name}", table, values)
                cur.execute(
                    f"INSERT INTO {table.name} ({cols}) SELECT {cols} FROM tmp_{table.name} "
                    f"ON CONFLICT {table.conflict} DO NOTHING"
                )
                inserted += max(cur.rowcount, 0)
                cur.execute(f"TRUNCATE tmp_{table.name}")
        return inserted

    def close(self) -> None:
        if self._conn is not None:
            try:
                self._conn.close()
            finally:
                self._conn = None


class _PostgresSinkPartition(StatelessSinkPartition[StoredItem]):
    def __init__(self, writer: PostgresWriter) -> None:
        self._writer = writer

    def write_batch(self, items: list[StoredItem]) -> None:
        self._writer.write(items)

    def close(self) -> None:
        self._writer.close()


class PostgresSink(DynamicSink[StoredItem]):
    """Bytewax sink: one :class:`PostgresWriter` (one connection) per worker."""

    def __init__(self, conninfo: str) -> None:
        self._conninfo = conninfo

    def build(self, step_id: str, worker_index: int, worker_count: int) -> _PostgresSinkPartition:
        return _PostgresSinkPartition(PostgresWriter(self._conninfo))
