"""``bot4 run`` refusals, ``bot4 backtest`` and ``bot4 report`` on real candles, ``bot4 markets``."""

from __future__ import annotations

import json
from pathlib import Path

from typer.testing import CliRunner

from execution.markets import capabilities_from_json, capabilities_to_json, load_capabilities
from flows.cli import app

ROOT = Path(__file__).resolve().parents[3]
BTC_1M = ROOT / "data" / "sample" / "binance-1m-2021" / "BTC_USDT-1m.json"
MARKETS = ROOT / "data" / "markets" / "binance.json"


def test_live_trading_is_refused_without_the_explicit_setting_and_keys(monkeypatch):
    monkeypatch.setenv("BOT4_MODE", "live")
    result = CliRunner().invoke(app, ["run"])
    assert result.exit_code == 2
    assert "LIVE_TRADING_ENABLED is false" in result.output.replace("\n", " ")


def test_live_trading_with_the_setting_but_no_keys_is_refused(monkeypatch):
    monkeypatch.setenv("BOT4_MODE", "live")
    monkeypatch.setenv("BOT4_EXCHANGE__LIVE_TRADING_ENABLED", "true")
    monkeypatch.setenv("BOT4_EXCHANGE__TESTNET", "false")
    result = CliRunner().invoke(app, ["run"])
    assert result.exit_code == 2
    assert "API_KEY" in result.output.replace("\n", " ")


def test_backtest_writes_results_and_report_and_report_rebuilds_them_identically(tmp_path):
    small = tmp_path / "BTC_USDT-1m.json"
    small.write_text(json.dumps(json.loads(BTC_1M.read_text())[:1500]))
    out = tmp_path / "run"
    result = CliRunner().invoke(app, ["backtest", str(small), "--out", str(out), "--no-progress"])
    assert result.exit_code == 0, result.output
    assert "total return" in result.output and "report:" in result.output
    report = json.loads((out / "report.json").read_text())
    assert report["metadata"]["timeframe"] == "1m" and report["metadata"]["symbols"] == ["BTC/USDT"]
    assert report["metrics"]["trades"] > 0
    first = (out / "report.html").read_bytes()
    (out / "report.html").unlink()
    again = CliRunner().invoke(app, ["report", str(out)])
    assert again.exit_code == 0, again.output
    assert (out / "report.html").read_bytes() == first


def test_backtest_of_a_missing_file_or_unknown_strategy_says_so(tmp_path):
    result = CliRunner().invoke(app, ["backtest", str(tmp_path / "nope.json")])
    assert result.exit_code == 2 and "no such file" in result.output
    result = CliRunner().invoke(app, ["backtest", str(BTC_1M), "--strategy", "moon", "--out", str(tmp_path / "x")])
    assert result.exit_code == 2 and "unknown strategies" in result.output


def test_report_of_a_folder_without_results_is_refused(tmp_path):
    result = CliRunner().invoke(app, ["report", str(tmp_path)])
    assert result.exit_code == 2 and "no stored results" in result.output


def test_the_cached_markets_file_round_trips_and_names_what_is_missing(tmp_path):
    caps = load_capabilities(MARKETS, ("BTC/USDT",))
    assert caps.rules["BTC/USDT"].min_notional == 10
    assert capabilities_from_json(capabilities_to_json(caps, source="test")) == caps
    import pytest

    from core.errors import ConfigError

    with pytest.raises(ConfigError, match="DOGE/USDT"):
        load_capabilities(MARKETS, ("DOGE/USDT",))
    with pytest.raises(ConfigError, match="markets sync"):
        load_capabilities(tmp_path / "absent.json")
