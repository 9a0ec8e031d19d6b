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


def test_testnet_trading_needs_the_sandbox_keys_and_an_exchange_that_has_a_sandbox(monkeypatch):
    monkeypatch.setenv("BOT4_MODE", "testnet")
    result = CliRunner().invoke(app, ["run"])
    assert result.exit_code == 2 and "API_KEY" in result.output.replace("\n", " ")
    monkeypatch.setenv("BOT4_EXCHANGE__TESTNET", "false")
    result = CliRunner().invoke(app, ["run"])
    assert result.exit_code == 2 and "testnet is false" in result.output.replace("\n", " ")
    monkeypatch.setenv("BOT4_EXCHANGE__TESTNET", "true")
    monkeypatch.setenv("BOT4_TRADING__EXCHANGE", "kraken")
    monkeypatch.setenv("BOT4_TRADING__SYMBOLS", '["BTC/USDT"]')
    result = CliRunner().invoke(app, ["run"])
    assert result.exit_code == 2 and "kraken has no sandbox" in result.output.replace("\n", " ")


def test_a_testnet_account_trades_on_the_exchange_sandbox_venue_built_when_the_account_starts():
    from execution.ccxt_venue import CcxtVenue
    from flows.settings import load_settings
    from flows.trading import Mode
    from flows.trading_run import ExchangeConnection, account_setup

    settings = load_settings(mode="testnet", exchange={"api_key": "k" * 16, "api_secret": "s" * 16})
    setup = account_setup(settings, Mode.TESTNET)
    connection = setup.live_venue
    assert setup.mode is Mode.TESTNET and isinstance(connection, ExchangeConnection)
    assert connection.venue_class is CcxtVenue and connection.venue_class.SANDBOX and connection.config.testnet


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


def test_lookahead_check_finds_nothing_when_prices_after_the_cutoff_move(tmp_path):
    small = tmp_path / "BTC_USDT-1m.json"
    small.write_text(json.dumps(json.loads(BTC_1M.read_text())[:1200]))
    result = CliRunner().invoke(
        app, ["backtest", str(small), "--out", str(tmp_path / "la"), "--lookahead-check", "2021-05-16T12:00:00Z"]
    )
    assert result.exit_code == 0, result.output
    assert "no look-ahead" in result.output


def test_a_strategy_that_backdates_its_signals_is_caught_by_the_lookahead_check(tmp_path, monkeypatch):
    """The check can fail: a strategy deciding on the next 10 closes but stamping its signal 10 bars
    back (a classic look-ahead bug) is reported; the real EMA-cross strategy is not."""
    from datetime import UTC, datetime

    from core.events import Side
    from core.orders import Signal
    from flows import backtest
    from flows.backtest import BacktestConfig, lookahead_check
    from flows.replay.source import ReplayFile

    class Backdating:
        name = "backdating"

        def __init__(self, account: str) -> None:
            self.account = account
            self.history: list[tuple[object, float]] = []

        def on_position(self, key, is_long, entry_price=None):
            return None

        def on_features(self, vector, prediction):
            close = vector.values.get("bar_close")
            if close is None:
                return None
            self.history.append((vector.ts_event, close))
            if len(self.history) < 11:
                return None
            then, close_then = self.history[-11]
            side = Side.BUY if close > close_then else Side.SELL
            exchange, symbol = vector.key.split(":", 1)
            return Signal(self.name, self.account, exchange, symbol, side, 1.0, 1.0, ("future",), "cheat", then)

    monkeypatch.setitem(backtest.STRATEGIES, "backdating", Backdating)
    small = tmp_path / "BTC_USDT-1m.json"
    small.write_text(json.dumps(json.loads(BTC_1M.read_text())[:1200]))
    cutoff = datetime(2021, 5, 16, 12, tzinfo=UTC)
    files = (ReplayFile(small),)
    cheating = BacktestConfig(files=files, timeframe="1m", bars_from="candles", strategies=("backdating",))
    found = lookahead_check(cheating, cutoff)
    assert not found.clean and found.differences
    honest = lookahead_check(BacktestConfig(files=files, timeframe="1m", bars_from="candles"), cutoff)
    assert honest.clean and honest.compared > 100


def test_walk_forward_trades_each_test_window_only(tmp_path):
    small = tmp_path / "BTC_USDT-1m.json"
    small.write_text(json.dumps(json.loads(BTC_1M.read_text())[:3000]))
    result = CliRunner().invoke(app, ["backtest", str(small), "--out", str(tmp_path / "wf"), "--walk-forward", "2"])
    assert result.exit_code == 0, result.output
    rows = json.loads((tmp_path / "wf" / "walk_forward.json").read_text())
    assert [r["fold"] for r in rows] == [1, 2]
    assert rows[0]["test_end"] == rows[1]["test_start"]
    for r in rows:
        fold = json.loads((tmp_path / "wf" / f"fold-{r['fold']}" / "report.json").read_text())
        assert fold["metadata"]["start"] >= r["test_start"][:19]  # equity only over the test window
