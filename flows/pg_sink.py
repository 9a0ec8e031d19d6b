"""PostgreSQL rows from the flows: one connection per worker, kept open, idempotent writers.

Every table the flows write has a natural key and an ``ON CONFLICT`` clause, so a batch can be
written again after a crash or a lost connection and adds nothing twice. :class:`RowsSink` is the
one Bytewax sink for all of them: it keeps its connection between batches (opening one costs
about 20 ms here, a whole decision's budget many times over), commits each batch, and when the
connection is lost it reconnects and writes the batch again, backing off while PostgreSQL is down
(the flow pauses, nothing is dropped) and giving up with the error after ``max_wait_s``.

Writers take a connection or a conninfo string (:func:`connected`), so the same function serves the
sink and a one-off call.
"""

from __future__ import annotations

import contextlib
import logging
import time
from collections.abc import Callable, Iterator, Sequence
from typing import Any, Generic, TypeVar

import psycopg
from bytewax.outputs import DynamicSink, StatelessSinkPartition

log = logging.getLogger(__name__)

T = TypeVar("T")
Target = str | psycopg.Connection[Any]
Writer = Callable[[psycopg.Connection[Any], Sequence[T]], None]


@contextlib.contextmanager
def connected(target: Target) -> Iterator[psycopg.Connection[Any]]:
    """``target`` when it is a connection (its owner commits), else a connection opened on the
    conninfo for this block, committed and closed at its end."""
    if isinstance(target, str):
        with psycopg.connect(target) as conn:
            yield conn
    else:
        yield target


class _RowsPartition(StatelessSinkPartition[T], Generic[T]):
    def __init__(self, conninfo: str, writer: Writer[T], name: str, max_wait_s: float) -> None:
        self._conninfo = conninfo
        self._writer = writer
        self._name = name
        self._max_wait_s = max_wait_s
        self._conn: psycopg.Connection[Any] | None = None

    def write_batch(self, items: list[T]) -> None:
        if not items:
            return
        delay, waited = 0.25, 0.0
        while True:
            try:
                if self._conn is None or self._conn.closed:
                    self._conn = psycopg.connect(self._conninfo)
                self._writer(self._conn, items)
                self._conn.commit()
                return
            except psycopg.OperationalError as exc:
                self._drop()
                if waited >= self._max_wait_s:
                    raise
                log.warning(
                    "%s: PostgreSQL write failed (%s); retrying the batch of %d in %.2fs",
                    self._name,
                    str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__,
                    len(items),
                    delay,
                )
                time.sleep(delay)
                waited += delay
                delay = min(delay * 2, 5.0)

    def _drop(self) -> None:
        if self._conn is not None:
            with contextlib.suppress(psycopg.Error):
                self._conn.close()
            self._conn = None

    def close(self) -> None:
        self._drop()


class RowsSink(DynamicSink[T], Generic[T]):
    """A Bytewax sink around one idempotent writer (see the module docstring)."""

    def __init__(self, conninfo: str, writer: Writer[T], *, max_wait_s: float = 120.0) -> None:
        self._conninfo = conninfo
        self._writer = writer
        self._max_wait_s = max_wait_s

    def build(self, step_id: str, worker_index: int, worker_count: int) -> _RowsPartition[T]:
        return _RowsPartition(self._conninfo, self._writer, step_id, self._max_wait_s)
