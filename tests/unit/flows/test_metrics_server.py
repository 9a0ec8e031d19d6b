"""The metrics and health endpoints every flow process serves."""

from __future__ import annotations

import urllib.error
import urllib.request

import orjson

from flows import metrics
from tests.support.flow_http import free_port


def get(port: int, path: str) -> tuple[int, bytes]:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=5) as resp:
            return resp.status, resp.read()
    except urllib.error.HTTPError as err:
        return err.code, err.read()


def test_metrics_health_and_readiness_endpoints():
    port = metrics.ensure_server(free_port())
    assert port is not None
    assert metrics.ensure_server(port) == port  # idempotent per process
    assert metrics.ensure_server(0) is None  # 0 disables
    metrics.DEAD_LETTERS.labels("storage", "malformed_json").inc()

    status, body = get(port, "/metrics")
    assert status == 200 and b'bot4_dead_letters_total{reason="malformed_json",stage="storage"}' in body
    assert get(port, "/healthz")[0] == 200

    metrics.expect_ready("kafka:test[0]")
    status, body = get(port, "/readyz")
    assert status == 503 and "kafka:test[0]" in orjson.loads(body)["waiting_for"]
    metrics.mark_ready("kafka:test[0]")
    assert get(port, "/readyz")[0] == 200
    assert get(port, "/nope")[0] == 404
