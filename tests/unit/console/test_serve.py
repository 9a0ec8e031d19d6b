"""`bot4 serve` start-up refusals and the console settings' safe defaults."""

from __future__ import annotations

from typer.testing import CliRunner

from flows.cli import app
from flows.settings import load_settings


def test_the_console_listens_on_loopback_and_refuses_commands_by_default():
    console = load_settings().console
    assert (console.host, console.port, console.token, console.commands_enabled) == ("127.0.0.1", 29200, None, False)


def test_a_configured_token_enables_commands_unless_read_only():
    assert load_settings(console={"token": "a" * 16}).console.commands_enabled
    assert not load_settings(console={"token": "a" * 16, "read_only": True}).console.commands_enabled


def test_the_token_is_masked_in_the_settings_dump():
    from flows.settings import masked_dump

    dumped = masked_dump(load_settings(console={"token": "s3cret-console-token"}))
    assert dumped["console"]["token"] == "**********"


def test_serve_refuses_a_short_token_without_printing_it(monkeypatch):
    monkeypatch.setenv("BOT4_CONSOLE__TOKEN", "tooshort")
    result = CliRunner().invoke(app, ["serve", "--port", "29299"])
    assert result.exit_code == 2
    assert "shorter than 16 characters" in result.output and "tooshort" not in result.output
