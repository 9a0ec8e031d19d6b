from __future__ import annotations

import json

import pytest
from typer.testing import CliRunner

from core.errors import ConfigError
from flows.cli import app
from flows.settings import load_settings


def test_defaults_bind_to_the_project_ports_on_loopback(monkeypatch):
    monkeypatch.delenv("BOT4_CONFIG_FILE", raising=False)
    s = load_settings()
    assert s.kafka.bootstrap == "127.0.0.1:29092"
    assert (s.postgres.host, s.postgres.port, s.redis.port) == ("127.0.0.1", 25432, 26379)
    assert s.exchange.live_trading_enabled is False


def test_environment_overrides_nested_fields(monkeypatch):
    monkeypatch.setenv("BOT4_KAFKA__LINGER_MS", "5")
    monkeypatch.setenv("BOT4_MODE", "backtest")
    s = load_settings()
    assert s.kafka.linger_ms == 5 and s.mode == "backtest"


@pytest.mark.parametrize(
    ("var", "value", "field"),
    [
        ("BOT4_KAFKA__LINGER_MS", "-1", "kafka.linger_ms"),
        ("BOT4_MODE", "yolo", "mode"),
        ("BOT4_KAFKA__BOOTSTRAP", "localhost", "kafka.bootstrap"),
        ("BOT4_POSTGRES__PORT", "99999", "postgres.port"),
    ],
)
def test_a_bad_value_fails_at_start_naming_the_field(monkeypatch, var, value, field):
    monkeypatch.setenv(var, value)
    with pytest.raises(ConfigError) as info:
        load_settings()
    assert field in str(info.value)
    assert "Operator action" in str(info.value)


def test_unknown_setting_in_the_config_file_is_refused(tmp_path, monkeypatch):
    cfg = tmp_path / "bot4.toml"
    cfg.write_text("[kafka]\nlinger_ms = 7\nlingerr = 1\n")
    monkeypatch.setenv("BOT4_CONFIG_FILE", str(cfg))
    with pytest.raises(ConfigError, match="lingerr"):
        load_settings()


def test_config_file_values_apply_and_the_environment_wins(tmp_path, monkeypatch):
    cfg = tmp_path / "bot4.toml"
    cfg.write_text('mode = "shadow"\n[kafka]\nlinger_ms = 7\n[postgres]\nport = 5432\n')
    monkeypatch.setenv("BOT4_CONFIG_FILE", str(cfg))
    monkeypatch.setenv("BOT4_POSTGRES__PORT", "6543")
    s = load_settings()
    assert (s.mode, s.kafka.linger_ms, s.postgres.port) == ("shadow", 7, 6543)


def test_missing_or_broken_config_file_is_a_clear_error(tmp_path, monkeypatch):
    monkeypatch.setenv("BOT4_CONFIG_FILE", str(tmp_path / "nope.toml"))
    with pytest.raises(ConfigError, match="not found"):
        load_settings()
    broken = tmp_path / "broken.toml"
    broken.write_text("[kafka\n")
    monkeypatch.setenv("BOT4_CONFIG_FILE", str(broken))
    with pytest.raises(ConfigError, match="not valid TOML"):
        load_settings()


def test_config_show_masks_secrets(monkeypatch):
    monkeypatch.setenv("BOT4_POSTGRES__PASSWORD", "hunter2")
    monkeypatch.setenv("BOT4_EXCHANGE__API_SECRET", "very-secret")
    result = CliRunner().invoke(app, ["config", "show"])
    assert result.exit_code == 0, result.output
    assert "hunter2" not in result.output and "very-secret" not in result.output
    shown = json.loads(result.output)
    assert shown["postgres"]["password"] == "**********"
    assert "hunter2" in load_settings().postgres.conninfo()


def test_cli_reports_a_bad_setting_with_exit_code_2(monkeypatch):
    monkeypatch.setenv("BOT4_MODE", "yolo")
    result = CliRunner().invoke(app, ["config", "show"])
    assert result.exit_code == 2


def test_risk_limits_compose_into_the_settings_and_refuse_bad_values(monkeypatch):
    from decimal import Decimal

    monkeypatch.setenv("BOT4_RISK__MAX_POSITION_PCT", "0.01")
    assert load_settings().risk.max_position_pct == Decimal("0.01")
    monkeypatch.setenv("BOT4_RISK__MAX_POSITION_PCT", "-0.5")
    with pytest.raises(ConfigError, match=r"risk\.max_position_pct"):
        load_settings()
