"""Event-time order across instruments in front of an account (the trading flow's account step).

Each instrument's records (its market events and what the instrument step derived from them:
feature vectors, predictions, signals) reach the account step in their own order, but the
instruments' streams interleave as the workers, partitions and processes deliver them, which
varies from run to run. The account's decisions depend on that interleaving (one cash balance,
one risk state), so without a merge two runs over the same data, or one worker and two processes,
can send different orders.

:class:`EventTimeMerge` holds the records and releases them in ``(event time, instrument,
arrival)`` order up to the newest time every instrument has reached (the watermark): a record is
released once no instrument can still deliver an earlier one. A record derived from a market event
carries that event's time. An instrument that goes quiet would hold the others forever, so a record
is never held longer than ``max_hold`` of wall time; past that, everything up to its time is
released (live latency is bounded; the order is then what arrived). At the end of the input
everything is released.

>>> from datetime import UTC, datetime, timedelta
>>> t = datetime(2021, 5, 19, 13, 0, tzinfo=UTC)
>>> merge = EventTimeMerge(frozenset({"a", "b"}), timedelta(seconds=1))
>>> merge.push("b", t + timedelta(minutes=1), "b1", t)
>>> merge.push("b", t + timedelta(minutes=2), "b2", t)
>>> merge.ready(t)  # "a" has said nothing yet
[]
>>> merge.push("a", t + timedelta(minutes=1), "a1", t)
>>> merge.ready(t)  # both have reached minute 1: minute 1 goes, "b2" waits for "a"
['a1', 'b1']
>>> merge.ready(t + timedelta(seconds=2))  # "b2" held past max_hold
['b2']
"""

from __future__ import annotations

import heapq
from collections import deque
from datetime import datetime, timedelta
from typing import Any


class EventTimeMerge:
    """See the module docstring. Pickle-safe (part of the account step's recovery snapshot)."""

    def __init__(self, keys: frozenset[str], max_hold: timedelta) -> None:
        self.keys = keys
        self.max_hold = max_hold
        self._queues: dict[str, deque[tuple[datetime, int, Any, datetime]]] = {k: deque() for k in keys}
        self._newest: dict[str, datetime] = {}
        self._seq = 0
        self._held = 0

    def __len__(self) -> int:
        return self._held

    def push(self, key: str, ts: datetime, item: Any, wall: datetime) -> None:
        """Hold ``item`` of instrument ``key`` at event time ``ts`` (received at ``wall``)."""
        self._seq += 1
        self._queues[key].append((ts, self._seq, item, wall))
        self._held += 1
        newest = self._newest.get(key)
        if newest is None or ts > newest:
            self._newest[key] = ts

    def next_deadline(self) -> datetime | None:
        """When the oldest held record reaches ``max_hold`` (None when nothing is held)."""
        walls = [q[0][3] for q in self._queues.values() if q]
        return min(walls) + self.max_hold if walls else None

    def ready(self, wall: datetime, *, everything: bool = False) -> list[Any]:
        """Release, in order, what the watermark (or ``max_hold``, or ``everything``) allows."""
        if not self._held:
            return []
        limit: datetime | None = None
        if len(self._newest) == len(self.keys):
            limit = min(self._newest.values())
        expired = [q[0][0] for q in self._queues.values() if q and wall - q[0][3] >= self.max_hold]
        if expired:
            # Held too long: release up to the newest expired record's time.
            oldest_due = max(expired)
            limit = oldest_due if limit is None else max(limit, oldest_due)
        heads = [(q[0][0], key, q[0][1]) for key, q in self._queues.items() if q]
        heapq.heapify(heads)
        out: list[Any] = []
        while heads:
            ts, key, _ = heads[0]
            if not everything and (limit is None or ts > limit):
                break
            queue = self._queues[key]
            out.append(queue.popleft()[2])
            if queue:
                heapq.heapreplace(heads, (queue[0][0], key, queue[0][1]))
            else:
                heapq.heappop(heads)
        self._held -= len(out)
        return out
