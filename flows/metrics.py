"""Prometheus metrics of the flows: ``bot4_*`` names with units, bounded label sets.

Labels are limited to stage, outcome, reason, topic and instrument key (a configured, finite
set), never ids or free text. :func:`serve` exposes them with a health endpoint on the
process's own port.
"""

from __future__ import annotations

from prometheus_client import Counter, Gauge, start_http_server

EVENTS = Counter(
    "bot4_events_total",
    "Events handled per stage and outcome (ok, dead_letter).",
    ["stage", "outcome"],
)
DEAD_LETTERS = Counter(
    "bot4_dead_letters_total",
    "Records sent to the dead-letter topic, by stage and reason.",
    ["stage", "reason"],
)
ROWS_WRITTEN = Counter(
    "bot4_storage_rows_total",
    "Rows written to PostgreSQL by table; 'new' excludes rows already present.",
    ["table", "outcome"],
)
LAST_EVENT_TIME = Gauge(
    "bot4_last_event_timestamp_seconds",
    "Exchange time of the newest event seen per instrument and stage (data freshness).",
    ["stage", "key"],
)


def serve(port: int) -> None:
    """Serve /metrics on 127.0.0.1:``port`` (0 disables)."""
    if port:
        start_http_server(port, addr="127.0.0.1")
