"""Prometheus metrics and health endpoints of the flows: ``bot4_*`` names with units, bounded
label sets (stage, outcome, reason, topic, configured instrument keys; never ids or free text).

Every flow process serves, on 127.0.0.1 and its own port:

- ``/metrics``: Prometheus text format;
- ``/healthz``: 200 while the process is alive;
- ``/readyz``: 200 once every component that registered with :func:`expect_ready` has called
  :func:`mark_ready` (e.g. a Kafka source after its first successful fetch), else 503 naming the
  ones still waiting.

:func:`ensure_server` starts it once per process; when the configured port is taken (several
flow processes on one host) it tries the next ports and logs which one it bound.
"""

from __future__ import annotations

import logging
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import orjson
from prometheus_client import CONTENT_TYPE_LATEST, REGISTRY, Counter, Gauge, generate_latest

log = logging.getLogger(__name__)

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

_lock = threading.Lock()
_waiting: set[str] = set()
_ready: set[str] = set()
_servers: list[ThreadingHTTPServer] = []  # at most one per process
_started = time.monotonic()


def expect_ready(component: str) -> None:
    """Declare a component whose readiness ``/readyz`` waits for."""
    with _lock:
        if component not in _ready:
            _waiting.add(component)


def mark_ready(component: str) -> None:
    with _lock:
        _waiting.discard(component)
        _ready.add(component)


def readiness() -> tuple[bool, list[str]]:
    with _lock:
        return not _waiting, sorted(_waiting)


class _Handler(BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        if self.path == "/metrics":
            self._send(200, generate_latest(REGISTRY), CONTENT_TYPE_LATEST)
        elif self.path == "/healthz":
            body = {"status": "ok", "uptime_s": round(time.monotonic() - _started, 1)}
            self._send(200, orjson.dumps(body), "application/json")
        elif self.path == "/readyz":
            ready, waiting = readiness()
            body = {"ready": ready, "waiting_for": waiting}
            self._send(200 if ready else 503, orjson.dumps(body), "application/json")
        else:
            self._send(404, b'{"error": "not found"}', "application/json")

    def _send(self, code: int, body: bytes, content_type: str) -> None:
        self.send_response(code)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: object) -> None:
        log.debug("metrics http: " + format, *args)


def ensure_server(port: int, attempts: int = 8) -> int | None:
    """Serve the endpoints on 127.0.0.1 from ``port`` (or the next free of ``attempts`` ports).

    Returns the bound port, or None when ``port`` is 0 (disabled). Idempotent per process.
    """
    if not port:
        return None
    with _lock:
        if _servers:
            return int(_servers[0].server_address[1])
        for candidate in range(port, port + attempts):
            try:
                server = ThreadingHTTPServer(("127.0.0.1", candidate), _Handler)
            except OSError:
                continue
            _servers.append(server)
            threading.Thread(target=server.serve_forever, name="bot4-metrics", daemon=True).start()
            if candidate != port:
                log.warning("metrics port %d taken; serving /metrics, /healthz, /readyz on %d", port, candidate)
            return candidate
    raise OSError(f"no free port for the metrics server in {port}..{port + attempts - 1} on 127.0.0.1")
