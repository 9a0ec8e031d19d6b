"""Prometheus metrics and health endpoints of the flows: ``bot4_*`` names with units, bounded
label sets (stage, outcome, reason, topic, configured instrument keys; never ids or free text).

Every flow process serves, on 127.0.0.1 and its own port:

- ``/metrics``: Prometheus text format;
- ``/healthz``: 200 while the process is alive;
- ``/readyz``: 200 once every component that registered with :func:`expect_ready` has called
  :func:`mark_ready` (e.g. a Kafka source after its first successful fetch), else 503 naming the
  ones still waiting.

Bytewax's own metrics come through the same ``/metrics``: Bytewax 0.21 keeps them (per step:
items in and out, batch sizes, durations of ``next_batch``, mappers, ``on_batch``, ``write_batch``,
snapshots) in its Rust runtime and serves them only on its "dataflow API" web server, which
``cli_main`` (``bot4 run``, ``python -m bytewax.run``) starts when ``BYTEWAX_DATAFLOW_API_ENABLED``
is set, on ``BYTEWAX_DATAFLOW_API_PORT`` (default 3030). :func:`ensure_server` turns it on, on a
free port, and :class:`BytewaxMetricsCollector` re-exposes its ``bytewax_*`` families at scrape
time (that server also appends this process's Python registry, which would be scraped twice).
``run_main`` (tests, backtests) starts no such server: there are no ``bytewax_*`` series then.

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

import atexit
import logging
import os
import shutil
import socket
import tempfile
import threading
import time
import urllib.request
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import orjson
from prometheus_client import CONTENT_TYPE_LATEST, REGISTRY, Counter, Gauge, Histogram, generate_latest
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.parser import text_string_to_metric_families
from prometheus_client.registry import Collector

from risk.venue_calls import VenueCallOutcome

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


def export_venue_calls(venue: str, outcomes: Iterable[VenueCallOutcome]) -> None:
    """``bot4_venue_errors_total`` by error class and ``bot4_order_ack_latency_seconds`` (answered
    submits' round trips; zero on the paper venue, which answers in event time)."""
    for outcome in outcomes:
        if not outcome.ok:
            VENUE_ERRORS.labels(venue, outcome.error or outcome.result.value).inc()
        elif outcome.is_order_round_trip:
            ORDER_ACK_LATENCY.labels(venue).observe(outcome.round_trip.total_seconds())


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


class BytewaxMetricsCollector(Collector):
    """Bytewax's own ``bytewax_*`` metrics, read from its dataflow API server at scrape time.

    Labels as Bytewax sets them (``step_id``, ``worker_index``: bounded by the dataflow's steps and
    workers) minus ``otel_scope_name``, which is always ``bytewax``. ``bot4_bytewax_metrics_up``
    says whether the last read worked (0 before ``cli_main`` has started the server, or after it
    stopped); nothing at all while no port is watched, or outside a scrape of our endpoint.
    """

    UP = "bot4_bytewax_metrics_up"
    UP_HELP = "1 when Bytewax's own metrics endpoint answered the last scrape, 0 when it did not."
    TIMEOUT_S = 1.0

    def __init__(self) -> None:
        self._port: int | None = None
        self._serving = threading.local()

    @property
    def port(self) -> int | None:
        return self._port

    @contextmanager
    def serving(self) -> Iterator[None]:
        """Mark this thread as answering a scrape of our endpoint: only then is Bytewax read.

        Bytewax's server builds its answer by calling this process's Python registry from its
        own thread; reading Bytewax from there would ask it again, recursively, until timeouts.
        """
        self._serving.active = True
        try:
            yield
        finally:
            self._serving.active = False

    def watch(self, port: int | None) -> None:
        self._port = port

    def describe(self) -> Iterator[Metric]:
        # The families are Bytewax's to define; an empty description keeps registration from
        # calling collect() (and the HTTP read) once at import.
        return iter(())

    def collect(self) -> Iterator[Metric]:
        port = self._port
        if port is None or not getattr(self._serving, "active", False):
            return
        up = GaugeMetricFamily(self.UP, self.UP_HELP)
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=self.TIMEOUT_S) as response:
                text = response.read().decode("utf-8")
        except OSError:
            up.add_metric([], 0.0)
            yield up
            return
        up.add_metric([], 1.0)
        yield up
        for family in text_string_to_metric_families(text):
            if not family.name.startswith("bytewax_"):
                continue  # the Python registry (ours) and OpenTelemetry's scope and target info
            family.samples = [
                s._replace(labels={k: v for k, v in s.labels.items() if k != "otel_scope_name"}) for s in family.samples
            ]
            yield family


BYTEWAX = BytewaxMetricsCollector()
REGISTRY.register(BYTEWAX)

_BYTEWAX_ENABLED = "BYTEWAX_DATAFLOW_API_ENABLED"
_BYTEWAX_PORT = "BYTEWAX_DATAFLOW_API_PORT"
_BYTEWAX_DEFAULT_PORT = 3030
_BYTEWAX_GRAPH_DIR = "BYTEWAX_DATAFLOW_API_CACHE_PATH"
_bytewax_api_used: list[bool] = []  # [True] once this process has asked Bytewax for its API


def enable_bytewax_metrics() -> int:
    """Have ``cli_main`` start Bytewax's dataflow API server and proxy its metrics; its port.

    A port the operator set (``BYTEWAX_DATAFLOW_API_PORT``; 3030 when only ``_ENABLED`` is set) is
    kept; otherwise a free port is picked, so several flow processes on one host never collide.
    Bytewax binds that server to every interface (0.0.0.0; 0.21 has no setting for the address)
    and serves the dataflow graph at ``/dataflow`` there too; a port it can not bind only stops
    that server (Bytewax logs a panic of its web server thread), never the dataflow.

    Bytewax 0.21 allows this once per process: a second ``cli_main`` with the API on fails, so
    :func:`ensure_server` turns it off again for every later flow of the process.
    """
    _bytewax_api_used[:] = [True]
    if os.environ.get(_BYTEWAX_PORT):
        port = int(os.environ[_BYTEWAX_PORT])
    elif _BYTEWAX_ENABLED in os.environ:
        port = _BYTEWAX_DEFAULT_PORT
    else:
        with socket.socket() as sock:
            sock.bind(("127.0.0.1", 0))
            port = int(sock.getsockname()[1])
        os.environ[_BYTEWAX_PORT] = str(port)
    os.environ[_BYTEWAX_ENABLED] = "true"
    # The server also writes the dataflow graph, as dataflow.json in this folder (default: the
    # working directory, wherever the flow was started from).
    if _BYTEWAX_GRAPH_DIR not in os.environ:
        folder = Path(tempfile.gettempdir()) / f"bot4-bytewax-{os.getpid()}"
        folder.mkdir(exist_ok=True)
        atexit.register(shutil.rmtree, folder, ignore_errors=True)
        os.environ[_BYTEWAX_GRAPH_DIR] = str(folder)
    BYTEWAX.watch(port)
    return port


def _disable_bytewax_metrics() -> None:
    """No Bytewax API for the next cli_main of this process (see :func:`ensure_server`)."""
    if BYTEWAX.port is not None:
        os.environ.pop(_BYTEWAX_ENABLED, None)
        BYTEWAX.watch(None)


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
            with BYTEWAX.serving():
                exposition = generate_latest(REGISTRY)
            self._send(200, exposition, CONTENT_TYPE_LATEST)
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


def ensure_server(port: int, attempts: int = 8, *, bytewax: bool = True) -> int | None:
    """Serve the endpoints on 127.0.0.1 from ``port`` (or the next free of ``attempts`` ports),
    with Bytewax's own metrics in them unless ``bytewax`` is False (:func:`enable_bytewax_metrics`).

    Returns the bound port, or None when ``port`` is 0 (disabled). Idempotent per process.
    """
    if not port:
        return None
    with _lock:
        if _servers:
            # A later flow of the same process (``bot4 ingest`` runs two): Bytewax 0.21 registers
            # its exporter once per process, and a second cli_main with its API on fails
            # ("Duplicate metrics collector registration attempted"). Only the first is exposed.
            _disable_bytewax_metrics()
            return int(_servers[0].server_address[1])
    if bytewax and not _bytewax_api_used:
        enable_bytewax_metrics()
    with _lock:
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
