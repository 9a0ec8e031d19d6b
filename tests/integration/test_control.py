"""The kill switch from the CLI to the risk engine, through Kafka, with the audit row."""

from __future__ import annotations

import uuid

import pytest
from confluent_kafka.admin import AdminClient, NewTopic
from typer.testing import CliRunner

from core.clock import ManualClock, parse_utc
from core.orders import KillSwitch, PauseStrategy, ResumeStrategy, TradingState
from flows.cli import app
from flows.control import CONTROL_TOPIC, decode_command
from flows.storage.migrate import migrate
from risk.config import RiskLimits
from risk.engine import RiskEngine

from .conftest import make_settings, read_topic, scalar

pytestmark = pytest.mark.integration


@pytest.fixture
def control_prefix(kafka_bootstrap):
    prefix = f"ctl{uuid.uuid4().hex[:6]}."
    admin = AdminClient({"bootstrap.servers": kafka_bootstrap})
    name = prefix + CONTROL_TOPIC
    for fut in admin.create_topics([NewTopic(name, 1, 1, config={"cleanup.policy": "compact"})]).values():
        fut.result(30)
    yield prefix
    for fut in admin.delete_topics([name]).values():
        fut.result(30)


def test_bot4_kill_reaches_the_risk_engine_which_halts_and_cancels_everything(
    control_prefix, pg_database, kafka_bootstrap, tmp_path, monkeypatch
):
    settings = make_settings(control_prefix, pg_database, tmp_path)
    migrate(settings.postgres.conninfo())
    monkeypatch.setenv("BOT4_KAFKA__TOPIC_PREFIX", control_prefix)
    monkeypatch.setenv("BOT4_POSTGRES__DBNAME", pg_database)
    monkeypatch.setenv("BOT4_OPERATOR", "alice")
    runner = CliRunner()

    refused = runner.invoke(app, ["kill", "--account", "main", "--reason", "test"], input="n\n")
    assert refused.exit_code == 1
    result = runner.invoke(app, ["kill", "--account", "main", "--reason", "venue incident", "--yes"])
    assert result.exit_code == 0, result.output

    messages = read_topic(kafka_bootstrap, control_prefix + CONTROL_TOPIC)
    assert len(messages) == 1 and messages[0][0] == b"main"
    command = decode_command(messages[0][1])
    assert isinstance(command, KillSwitch)
    assert (command.account, command.requested_by, command.reason) == ("main", "alice", "venue incident")
    assert scalar(settings, "SELECT count(*) FROM operator_commands WHERE kind = 'kill_switch' AND via = 'cli'") == 1

    engine = RiskEngine("main", RiskLimits(), ManualClock(parse_utc("2024-08-09T00:00:00Z")))
    decisions = engine.kill(command)
    assert engine.state is TradingState.HALTED
    assert [d.kind.value for d in decisions] == ["state_changed", "cancel_all"]

    result = runner.invoke(
        app, ["reset", "--account", "main", "--breaker", "kill_switch", "--reason", "incident over", "--yes"]
    )
    assert result.exit_code == 0, result.output
    reset = decode_command(read_topic(kafka_bootstrap, control_prefix + CONTROL_TOPIC)[-1][1])
    engine.reset(reset)
    assert engine.state is TradingState.ACTIVE
    assert scalar(settings, "SELECT count(*) FROM operator_commands") == 2


def test_a_kill_without_a_reason_is_refused():
    result = CliRunner().invoke(app, ["kill", "--reason", "  ", "--yes"])
    assert result.exit_code == 2


def test_bot4_pause_and_resume_travel_on_the_command_topic_and_are_audited_with_the_strategy(
    control_prefix, pg_database, kafka_bootstrap, tmp_path, monkeypatch
):
    settings = make_settings(control_prefix, pg_database, tmp_path)
    migrate(settings.postgres.conninfo())
    monkeypatch.setenv("BOT4_KAFKA__TOPIC_PREFIX", control_prefix)
    monkeypatch.setenv("BOT4_POSTGRES__DBNAME", pg_database)
    monkeypatch.setenv("BOT4_OPERATOR", "carol")
    runner = CliRunner()
    pause_args = ["pause", "--account", "main", "--strategy", "trend-v1", "--reason", "fills look wrong"]

    assert runner.invoke(app, pause_args, input="n\n").exit_code == 1
    assert runner.invoke(app, [*pause_args[:-1], " ", "--yes"]).exit_code == 2
    result = runner.invoke(app, [*pause_args, "--yes"])
    assert result.exit_code == 0, result.output
    result = runner.invoke(
        app, ["resume", "--account", "main", "--strategy", "trend-v1", "--reason", "venue fixed", "--yes"]
    )
    assert result.exit_code == 0, result.output

    messages = read_topic(kafka_bootstrap, control_prefix + CONTROL_TOPIC)
    assert [key for key, _ in messages] == [b"main", b"main"]
    pause, resume = (decode_command(value) for _, value in messages)
    assert isinstance(pause, PauseStrategy) and isinstance(resume, ResumeStrategy)
    assert (pause.account, pause.strategy, pause.requested_by, pause.reason) == (
        "main",
        "trend-v1",
        "carol",
        "fills look wrong",
    )
    assert (resume.strategy, resume.reason) == ("trend-v1", "venue fixed")
    audited = scalar(
        settings,
        "SELECT string_agg(kind || ':' || strategy || ':' || requested_by || ':' || via, ',' ORDER BY id)"
        " FROM operator_commands",
    )
    assert audited == "pause_strategy:trend-v1:carol:cli,resume_strategy:trend-v1:carol:cli"
