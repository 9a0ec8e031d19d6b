"""The Grafana dashboard only charts metrics the flows expose (or rules record), every query parses,
and the compose file's Prometheus and Grafana services are wired to files that exist and are valid.

There is no Docker daemon (nor compose plugin) on the CI machines, so the compose file is checked
structurally here and its Prometheus configuration with promtool."""

from __future__ import annotations

import json
from pathlib import Path

import yaml

from tests.support.prom import ROOT, metric_names_in, recorded_names, registry_metric_names, run_promtool

INFRA = ROOT / "infra"
DASHBOARD = INFRA / "grafana" / "dashboards" / "bot4.json"
DATASOURCES = INFRA / "grafana" / "provisioning" / "datasources" / "prometheus.yml"
DASHBOARD_PROVIDERS = INFRA / "grafana" / "provisioning" / "dashboards" / "bot4.yml"
COMPOSE = INFRA / "docker-compose.yml"


def chart_panels() -> list[dict]:
    return [p for p in json.loads(DASHBOARD.read_text())["panels"] if p["type"] != "row"]


def exprs() -> list[tuple[str, str]]:
    return [(p["title"], t["expr"]) for p in chart_panels() for t in p["targets"]]


def compose() -> dict:
    return yaml.safe_load(COMPOSE.read_text())


def test_every_dashboard_query_uses_metrics_of_our_registry_or_rules():
    known = registry_metric_names() | recorded_names()
    unknown = {title: sorted(metric_names_in(expr) - known) for title, expr in exprs()}
    assert {k: v for k, v in unknown.items() if v} == {}


def test_every_dashboard_query_parses(tmp_path: Path):
    # promtool has no "check expression": each query becomes a recording rule it parses.
    rules = {
        "groups": [
            {
                "name": "dashboard",
                "rules": [{"record": f"dashboard:q{i}", "expr": e} for i, (_, e) in enumerate(exprs())],
            }
        ]
    }
    path = tmp_path / "dashboard_queries.yml"
    path.write_text(yaml.safe_dump(rules))
    result = run_promtool("check", "rules", str(path))
    assert result.returncode == 0, result.stdout + result.stderr


def test_dashboard_covers_what_a_user_watches():
    used = set().union(*(metric_names_in(e) for _, e in exprs()))
    watched = {
        "bot4_last_event_timestamp_seconds",  # freshness
        "bot4_consumer_lag_records",
        "bot4_events_total",
        "bot4_dead_letters_total",
        "bot4_stage_latency_seconds_bucket",
        "bot4_order_ack_latency_seconds_bucket",
        "bot4_risk_state",
        "bot4_breaker_open",
        "bot4_risk_decisions_total",  # denials by reason
        "bot4_order_transitions_total",
        "bot4_fills_total",
        "bot4_pnl_quote",
        "bot4_equity_quote",
        "bot4_drawdown_ratio",
    }
    assert watched - used == set()


def test_panels_have_unique_ids_queries_and_the_provisioned_data_source():
    uid = yaml.safe_load(DATASOURCES.read_text())["datasources"][0]["uid"]
    dashboard = json.loads(DASHBOARD.read_text())
    ids = [p["id"] for p in dashboard["panels"]]
    assert len(ids) == len(set(ids))
    for panel in chart_panels():
        assert panel["targets"], f"panel {panel['title']!r} has no query"
        assert panel["datasource"]["uid"] == uid, panel["title"]
        assert {t["datasource"]["uid"] for t in panel["targets"]} == {uid}, panel["title"]
        assert len({t["refId"] for t in panel["targets"]}) == len(panel["targets"]), panel["title"]


def test_compose_services_publish_on_localhost_only_and_mount_existing_files():
    services = compose()["services"]
    assert {"kafka", "postgres", "redis", "prometheus", "grafana"} <= set(services)
    for name, service in services.items():
        for port in service.get("ports", []):
            assert str(port).startswith("127.0.0.1:"), f"{name} publishes {port} beyond localhost"
        for volume in service.get("volumes", []):
            source = volume.split(":", 1)[0]
            if source.startswith("."):
                assert (INFRA / source).exists(), f"{name} mounts {source}, which does not exist"
    assert "127.0.0.1:29090:9090" in services["prometheus"]["ports"]  # the port services.sh uses


def test_compose_prometheus_config_is_valid_and_grafana_reads_the_mounted_dashboards():
    services = compose()["services"]
    mounts = dict(v.split(":")[:2] for v in services["prometheus"]["volumes"] if v.startswith("."))
    config = INFRA / next(src for src, dst in mounts.items() if dst == "/etc/prometheus/prometheus.yml")
    result = run_promtool("check", "config", str(config))
    assert result.returncode == 0, result.stdout + result.stderr
    assert mounts.get("./prometheus/rules") == "/etc/prometheus/rules"

    grafana = dict(v.split(":")[:2] for v in services["grafana"]["volumes"] if v.startswith("."))
    provider_path = yaml.safe_load(DASHBOARD_PROVIDERS.read_text())["providers"][0]["options"]["path"]
    assert grafana["./grafana/dashboards"] == provider_path
    assert grafana["./grafana/provisioning"] == "/etc/grafana/provisioning"
    datasource_url = yaml.safe_load(DATASOURCES.read_text())["datasources"][0]["url"]
    assert datasource_url == "http://prometheus:9090"  # the compose service name and container port
