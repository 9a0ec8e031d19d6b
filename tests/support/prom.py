"""Helpers for the Prometheus and Grafana file tests: promtool, the metric names our registry
exposes, and the names a PromQL expression uses."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import time
import urllib.parse
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
import yaml
from prometheus_client import REGISTRY

ROOT = Path(__file__).resolve().parents[2]
PROM_DIR = ROOT / "infra" / "prometheus"
RULES = sorted((PROM_DIR / "rules").glob("*.yml"))
RULE_TESTS = sorted((PROM_DIR / "tests").glob("*.yml"))

#: bot4_* metric names and bot4:* recording rule names inside a PromQL expression.
_NAME = re.compile(r"\b(bot4(?:_[a-z0-9_]+|:[a-z0-9_:]+))")

_SUFFIXES = {
    "counter": ("_total", "_created"),
    "gauge": ("",),
    "histogram": ("_bucket", "_count", "_sum", "_created"),
    "summary": ("", "_count", "_sum", "_created"),
}


def promtool() -> str:
    """Path of promtool; `make test` installs it with `infra/services.sh tools`."""
    path = shutil.which("promtool")
    assert path, "promtool not found: run `bash infra/services.sh tools` (installs Debian's prometheus package)"
    return path


def registry_metric_names() -> set[str]:
    """Every sample name the flows' registry can expose (``flows.metrics`` imported)."""
    import flows.metrics  # noqa: F401  # registers the catalogue

    names: set[str] = set()
    for family in REGISTRY.collect():
        names.update(family.name + suffix for suffix in _SUFFIXES.get(family.type, ("",)))
    return names


def recorded_names() -> set[str]:
    """Names of the recording rules in infra/prometheus/rules."""
    out: set[str] = set()
    for path in RULES:
        for group in yaml.safe_load(path.read_text())["groups"]:
            out.update(rule["record"] for rule in group["rules"] if "record" in rule)
    return out


def rule_exprs() -> list[tuple[str, str]]:
    """(rule name, expression) of every recording and alerting rule."""
    out: list[tuple[str, str]] = []
    for path in RULES:
        for group in yaml.safe_load(path.read_text())["groups"]:
            out.extend((rule.get("alert") or rule["record"], rule["expr"]) for rule in group["rules"])
    return out


def metric_names_in(expr: str) -> set[str]:
    return set(_NAME.findall(expr))


def render_prometheus_config(dest: Path, listen: str = "127.0.0.1:29090") -> Path:
    """Render infra/prometheus/prometheus.yml.in the way infra/services.sh does."""
    targets = dest / "targets"
    targets.mkdir(parents=True, exist_ok=True)
    (targets / "flows.json").write_text('[{"targets": ["127.0.0.1:29100"], "labels": {"service": "bot4"}}]\n')
    text = (PROM_DIR / "prometheus.yml.in").read_text()
    text = text.replace("@RULES_DIR@", str(PROM_DIR / "rules"))
    text = text.replace("@TARGETS_DIR@", str(targets)).replace("@LISTEN@", listen)
    config = dest / "prometheus.yml"
    config.write_text(text)
    return config


# ---- the real Prometheus of `infra/services.sh up`

#: The ports infra/services.sh lists in Prometheus's file_sd targets.
SCRAPED_PORTS = range(29100, 29110)
SCRAPE_WAIT_S = 20.0


def prometheus_url() -> str:
    from flows.settings import load_settings

    return load_settings().observability.prometheus_url


def query(promql: str) -> list[dict[str, Any]]:
    url = f"{prometheus_url()}/api/v1/query?{urllib.parse.urlencode({'query': promql})}"
    with urllib.request.urlopen(url, timeout=5) as response:
        body = json.load(response)
    assert body["status"] == "success", body
    result: list[dict[str, Any]] = body["data"]["result"]
    return result


def value(promql: str) -> float | None:
    result = query(promql)
    assert len(result) <= 1, f"{promql} returned {len(result)} series, expected at most one"
    return float(result[0]["value"][1]) if result else None


def wait_until_scraped(promql: str, expected: float | None) -> float | None:
    """Poll until Prometheus reports ``expected`` (the process' own value) for ``promql``."""
    deadline = time.monotonic() + SCRAPE_WAIT_S
    seen = value(promql)
    while seen != expected and time.monotonic() < deadline:
        time.sleep(0.25)
        seen = value(promql)
    assert seen == expected, f"Prometheus reports {seen} for {promql}, the process has {expected}"
    return seen


@contextmanager
def scraped_metrics_server() -> Iterator[str]:
    """This process' /metrics on a port Prometheus scrapes, once scraped; yields the instance label."""
    from flows import metrics

    url = prometheus_url()
    try:
        with urllib.request.urlopen(f"{url}/-/ready", timeout=3) as response:
            assert response.status == 200
    except OSError as exc:
        pytest.fail(f"Prometheus does not answer at {url} ({exc}); start it: bash infra/services.sh up")
    server = None
    for port in SCRAPED_PORTS:
        try:
            server = metrics.start_server(port)
            break
        except OSError:
            continue
    assert server is not None, f"every scraped port {SCRAPED_PORTS} is taken"
    instance = f"127.0.0.1:{server.server_address[1]}"
    try:
        wait_until_scraped(f'up{{job="bot4-flows",instance="{instance}"}}', 1.0)
        yield instance
    finally:
        server.shutdown()
        server.server_close()


def run_promtool(*args: str, stdin: bytes | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [promtool(), *args],
        input=stdin.decode() if stdin else None,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
