"""`bot4 status`: the frame it renders, its message when Prometheus is down, and (against the real
Prometheus) the numbers a flow process exposes arriving on screen."""

from __future__ import annotations

import socket
import uuid
from datetime import UTC, datetime

import pytest
from rich.console import Console
from typer.testing import CliRunner

from core.errors import ConfigError
from flows import metrics
from flows.settings import load_settings
from flows.status_cmd import PrometheusClient, StatusSnapshot, collect, render, run_status
from tests.support.prom import prometheus_url, scraped_metrics_server, wait_until_scraped


def text_of(renderable) -> str:
    console = Console(record=True, width=160, color_system=None)
    console.print(renderable)
    return console.export_text()


def closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_frame_shows_freshness_state_breakers_exposure_pnl_denials_and_alerts():
    snapshot = StatusSnapshot(
        datetime(2026, 11, 25, 12, 0, tzinfo=UTC),
        "http://127.0.0.1:29090",
        {
            "targets": [({"instance": "127.0.0.1:29100"}, 1.0)],
            "freshness": [({"key": "binance:BTC/USDT"}, 2.5), ({"key": "binance:ETH/USDT"}, 600.0)],
            "lag": [({"topic": "md.trades.v1"}, 1234.0)],
            "events": [({"stage": "storage"}, 812.5)],
            "dead_letters": [({"stage": "storage", "reason": "out_of_order"}, 7.0)],
            "risk_state": [({"account": "main", "state": "halted"}, 1.0)],
            "breakers": [({"account": "main", "breaker": "drawdown"}, 1.0), ({"account": "main", "breaker": "x"}, 0.0)],
            "exposure": [({"account": "main", "key": "binance:BTC/USDT"}, 1500.25)],
            "pnl": [({"account": "main", "kind": "realized"}, -42.5), ({"account": "main", "kind": "unrealized"}, 3.0)],
            "equity": [({"account": "main"}, 9957.5)],
            "drawdown": [({"account": "main"}, 0.09)],
            "drawdown_limit": [({"account": "main"}, 0.1)],
            "denials": [({"reason": "position_limit"}, 3.0), ({"reason": "trading_halted"}, 12.0)],
        },
        [{"alertname": "Bot4TradingHalted", "severity": "page", "account": "main"}],
    )
    out = text_of(render(snapshot))
    for expected in (
        "1 flow process(es) up",
        "binance:BTC/USDT",
        "2.5 s",
        "10.0 min",
        "md.trades.v1",
        "1,234",
        "storage / out_of_order",
        "HALTED",
        "9,957.50",
        "-42.50",
        "9.00% / 10.00%",
        "main / drawdown",
        "OPEN",
        "closed",
        "1,500.25",
        "PAGE  Bot4TradingHalted account=main",
    ):
        assert expected in out, f"{expected!r} missing from:\n{out}"
    # Denials are listed most frequent first.
    assert out.index("trading_halted") < out.index("position_limit")


def test_empty_prometheus_answers_render_as_such():
    out = text_of(render(StatusSnapshot(datetime(2026, 11, 25, tzinfo=UTC), "http://x")))
    assert "0 flow process(es) up" in out
    assert "no risk gate reported" in out and "no alert firing" in out


def test_once_when_prometheus_is_down_exits_1_and_says_how_to_start_it():
    settings = load_settings(observability={"prometheus_url": f"http://127.0.0.1:{closed_port()}"})
    console = Console(record=True, width=200, color_system=None)
    assert run_status(settings, once=True, console=console) == 1
    out = console.export_text()
    assert "Prometheus does not answer at http://127.0.0.1:" in out
    assert "bash infra/services.sh up prometheus" in out


def test_prometheus_url_comes_from_the_environment_and_a_bad_one_is_refused(monkeypatch):
    assert load_settings().observability.prometheus_url == "http://127.0.0.1:29090"
    monkeypatch.setenv("BOT4_OBSERVABILITY__PROMETHEUS_URL", "http://prom.internal:9090/")
    assert load_settings().observability.prometheus_url == "http://prom.internal:9090"
    monkeypatch.setenv("BOT4_OBSERVABILITY__PROMETHEUS_URL", "prom.internal:9090")
    with pytest.raises(ConfigError, match=r"observability\.prometheus_url"):
        load_settings()


@pytest.mark.integration
def test_status_once_shows_what_a_scraped_process_reports():
    account = f"status-{uuid.uuid4().hex[:6]}"
    gauges = [
        (metrics.RISK_STATE, (account, "reducing"), 1.0),
        (metrics.BREAKER_OPEN, (account, "loss_streak"), 1.0),
        (metrics.EQUITY, (account,), 10123.0),
        (metrics.DRAWDOWN, (account,), 0.02),
        (metrics.DRAWDOWN_LIMIT, (account,), 0.1),
        (metrics.PNL, (account, "realized"), 77.0),
    ]
    for gauge, labels, number in gauges:
        gauge.labels(*labels).set(number)
    try:
        with scraped_metrics_server() as instance:
            wait_until_scraped(f'bot4_equity_quote{{instance="{instance}",account="{account}"}}', 10123.0)
            snapshot = collect(PrometheusClient(prometheus_url()))
            assert ({"account": account, "state": "reducing"}, 1.0) in snapshot.get("risk_state")
            assert ({"account": account, "breaker": "loss_streak"}, 1.0) in snapshot.get("breakers")
            result = CliRunner().invoke(_app(), ["status", "--once"], env={"COLUMNS": "200"})
        assert result.exit_code == 0, result.output
        assert account in result.output and "REDUCING" in result.output and "10,123.00" in result.output
    finally:
        for gauge, labels, _ in gauges:
            gauge.remove(*labels)


def _app():
    import typer

    from flows.status_cmd import register

    app = typer.Typer()
    app.command("noop")(lambda: None)  # a second command keeps `status` a subcommand
    register(app)
    return app
