"""The Prometheus files under infra/prometheus are valid for promtool, their unit tests pass, and
they only name metrics the flows' registry really exposes."""

from __future__ import annotations

import urllib.request
from pathlib import Path

from flows import metrics
from tests.support.prom import (
    RULE_TESTS,
    RULES,
    metric_names_in,
    recorded_names,
    registry_metric_names,
    render_prometheus_config,
    rule_exprs,
    run_promtool,
)


def test_rule_files_pass_promtool_check_rules():
    assert RULES, "no rule files under infra/prometheus/rules"
    result = run_promtool("check", "rules", *map(str, RULES))
    assert result.returncode == 0, result.stdout + result.stderr


def test_rule_unit_tests_pass():
    assert RULE_TESTS, "no promtool unit tests under infra/prometheus/tests"
    result = run_promtool("test", "rules", *map(str, RULE_TESTS))
    assert result.returncode == 0, result.stdout + result.stderr
    assert "SUCCESS" in result.stdout


def test_every_alert_has_a_promtool_unit_test():
    alerts = {name for name, _ in rule_exprs() if not name.startswith("bot4:")}
    tested = " ".join(path.read_text() for path in RULE_TESTS)
    assert {a for a in alerts if f"alertname: {a}" not in tested} == set()


def test_rendered_config_passes_promtool_check_config(tmp_path: Path):
    config = render_prometheus_config(tmp_path)
    result = run_promtool("check", "config", str(config))
    assert result.returncode == 0, result.stdout + result.stderr
    assert not [line for line in config.read_text().splitlines() if "@" in line.split("#", 1)[0]]


def test_rules_use_only_metrics_our_registry_exposes():
    known = registry_metric_names() | recorded_names()
    unknown = {name: sorted(metric_names_in(expr) - known) for name, expr in rule_exprs()}
    assert {k: v for k, v in unknown.items() if v} == {}


def test_served_metrics_pass_promtool_check_metrics():
    # A child per labelled metric, so every family appears with its HELP, TYPE and samples.
    for family in (metrics.EVENTS, metrics.DEAD_LETTERS, metrics.ROWS_WRITTEN, metrics.RISK_DECISIONS):
        family.labels("check", "check")
    metrics.STAGE_LATENCY.labels("check")
    metrics.ORDER_TRANSITIONS.labels("check", "filled")
    metrics.VENUE_ERRORS.labels("check", "timeout")
    server = metrics.start_server(0)
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{server.server_address[1]}/metrics", timeout=5) as response:
            body = response.read()
    finally:
        server.shutdown()
        server.server_close()
    assert b"bot4_events_total" in body
    result = run_promtool("check", "metrics", stdin=body)
    assert result.returncode == 0, result.stdout + result.stderr
