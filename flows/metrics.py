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

Instrument keys as label values go through :func:`instrument_label`: keys on the allow-list
(``BOT4_QUALITY__KNOWN_SYMBOLS`` by default) keep their own series, every other key is counted
under ``other``, so a burst of unknown symbols can not create unbounded series.

The metric objects below are the whole catalogue; infra/prometheus/rules/bot4.yml and
infra/grafana/dashboards/bot4.json use only these names (tests hold them to it). The flows that
own a domain (risk gate, execution, portfolio) set the risk, order and PnL metrics.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Iterable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import orjson
from prometheus_client import CONTENT_TYPE_LATEST, REGISTRY, Counter, Gauge, Histogram, generate_latest
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

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
    "Exchange time of the newest event seen per instrument and stage (data freshness); "
    "key is an allowed instrument key or 'other' (instrument_label).",
    ["stage", "key"],
)
CONSUMER_LAG = Gauge(
    "bot4_consumer_lag_records",
    "Records between a source partition's read position and its high watermark, per topic and partition.",
    ["topic", "partition"],
)
#: Seconds from our receive time (ts_recv) to a stage handling the event; observed once per batch
#: (the batch's last event), so the cost does not grow with the event rate. A replay keeps the
#: recording's ts_recv, so there it measures the data's age (the +Inf bucket), not our latency.
STAGE_LATENCY = Histogram(
    "bot4_stage_latency_seconds",
    "Seconds from an event's receive time to the stage that handled it (once per batch).",
    ["stage"],
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0),
)

# ---- risk gate and portfolio (set by the trading flow; account is the configured account id)
RISK_STATE = Gauge(
    "bot4_risk_state",
    "1 for the account's current trading state (active, reducing, halted), 0 for the others.",
    ["account", "state"],
)
BREAKER_OPEN = Gauge(
    "bot4_breaker_open",
    "1 while the named circuit breaker is open (or probing), 0 when closed.",
    ["account", "breaker"],
)
RISK_DECISIONS = Counter(
    "bot4_risk_decisions_total",
    "Risk gate decisions by outcome (approved, denied) and reason ('none' for approvals).",
    ["outcome", "reason"],
)
DRAWDOWN = Gauge("bot4_drawdown_ratio", "Drawdown from the equity peak, as a fraction (0.05 = 5 %).", ["account"])
DRAWDOWN_LIMIT = Gauge(
    "bot4_drawdown_limit_ratio", "The configured maximum drawdown the gate halts at, as a fraction.", ["account"]
)
EQUITY = Gauge("bot4_equity_quote", "Account equity in the quote currency.", ["account"])
PNL = Gauge(
    "bot4_pnl_quote", "Profit and loss in the quote currency, by kind (realized, unrealized).", ["account", "kind"]
)
EXPOSURE = Gauge(
    "bot4_exposure_quote",
    "Signed position notional in the quote currency per instrument (key through instrument_label).",
    ["account", "key"],
)

# ---- execution (set by the execution flow or the in-process venue)
ORDER_TRANSITIONS = Counter(
    "bot4_order_transitions_total",
    "Orders entering each state of the order state machine, per venue.",
    ["venue", "state"],
)
FILLS = Counter("bot4_fills_total", "Fills received, per venue and side.", ["venue", "side"])
FILL_NOTIONAL = Counter("bot4_fill_notional_quote_total", "Filled notional in the quote currency.", ["venue"])
VENUE_ERRORS = Counter(
    "bot4_venue_errors_total",
    "Venue calls that failed, by venue and kind (rate_limited, unavailable, timeout, rejected, ...).",
    ["venue", "kind"],
)
ORDER_ACK_LATENCY = Histogram(
    "bot4_order_ack_latency_seconds",
    "Seconds from submitting an order to the venue's acknowledgement.",
    ["venue"],
    buckets=(0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0),
)

# ---- validation: read from the latest `bot4 validate` summary at scrape time (see below)


class ValidationSummaryCollector(Collector):
    """``bot4_validation_failed{table}`` from the newest ``summary.json`` of ``bot4 validate``.

    ``bot4 validate`` is a short-lived command, so no scrape would ever see a gauge it set; every
    long-running flow process instead reads the report it wrote (default
    ``<data_dir>/quality/summary.json``) when scraped: 1 for a table whose validation failed, 0
    for one that passed; tables without rows are left out. A missing file gives no series.
    """

    NAME = "bot4_validation_failed"
    HELP = "1 when the latest Great Expectations validation of the table failed, 0 when it passed."

    def __init__(self, path: Path | None = None) -> None:
        self._path = path

    def watch(self, path: Path) -> None:
        self._path = path

    def describe(self) -> Iterator[Metric]:
        yield GaugeMetricFamily(self.NAME, self.HELP, labels=["table"])

    def collect(self) -> Iterator[Metric]:
        family = GaugeMetricFamily(self.NAME, self.HELP, labels=["table"])
        if self._path is None:
            from flows.settings import load_settings

            self._path = load_settings().data_dir / "quality" / "summary.json"
        try:
            summary = orjson.loads(self._path.read_bytes())
            tables = [(str(t["table"]), t["status"]) for t in summary["tables"]]
        except FileNotFoundError:
            tables = []
        except (OSError, orjson.JSONDecodeError, KeyError, TypeError) as exc:
            log.warning("validation summary %s unreadable (%s); bot4_validation_failed left empty", self._path, exc)
            tables = []
        for table, status in tables:
            if status in ("passed", "failed"):
                family.add_metric([table], 1.0 if status == "failed" else 0.0)
        yield family


VALIDATION_FAILED = ValidationSummaryCollector()
REGISTRY.register(VALIDATION_FAILED)

#: Label value for every instrument key that is not on the allow-list.
OTHER_KEY = "other"
_allowed_keys: list[frozenset[str]] = []  # empty until configured or first used


def set_instrument_allowlist(keys: Iterable[str]) -> None:
    """Instrument keys that keep their own label value; every other key becomes ``other``."""
    _allowed_keys[:] = [frozenset(keys)]


def instrument_label(key: str) -> str:
    """The label value for an instrument key: itself when allowed, else ``other``.

    The allow-list defaults to the configured known symbols (read once from the settings).
    """
    if not _allowed_keys:
        from flows.settings import load_settings

        set_instrument_allowlist(load_settings().quality.known_symbols)
    return key if key in _allowed_keys[0] else OTHER_KEY


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


def start_server(port: int) -> ThreadingHTTPServer:
    """A new endpoint server on 127.0.0.1:``port`` in a daemon thread; the caller owns it
    (``shutdown()`` and ``server_close()`` stop it). Flows use :func:`ensure_server`."""
    server = ThreadingHTTPServer(("127.0.0.1", port), _Handler)
    threading.Thread(target=server.serve_forever, name=f"bot4-metrics-{port}", daemon=True).start()
    return server


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
                server = start_server(candidate)
            except OSError:
                continue
            _servers.append(server)
            if candidate != port:
                log.warning("metrics port %d taken; serving /metrics, /healthz, /readyz on %d", port, candidate)
            return candidate
    raise OSError(f"no free port for the metrics server in {port}..{port + attempts - 1} on 127.0.0.1")
