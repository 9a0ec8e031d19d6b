"""The `bot4` commands against the real services: the issue's "done when" path."""

from __future__ import annotations

import uuid

import pytest
from confluent_kafka.admin import AdminClient
from typer.testing import CliRunner

from flows.cli import app
from flows.topics import load_topics

from .conftest import make_settings, scalar, topic_message_count

pytestmark = pytest.mark.integration


@pytest.fixture
def cli_prefix(kafka_bootstrap):
    prefix = f"cli{uuid.uuid4().hex[:6]}."
    yield prefix
    admin = AdminClient({"bootstrap.servers": kafka_bootstrap})
    names = [prefix + t.name for t in load_topics()]
    existing = set(admin.list_topics(timeout=10).topics)
    for fut in admin.delete_topics([n for n in names if n in existing]).values():
        fut.result(30)


def test_bot4_ingest_fills_kafka_and_postgres_with_exactly_the_capture(
    btc_capture, cli_prefix, pg_database, kafka_bootstrap, tmp_path, monkeypatch
):
    monkeypatch.setenv("BOT4_KAFKA__TOPIC_PREFIX", cli_prefix)
    monkeypatch.setenv("BOT4_POSTGRES__DBNAME", pg_database)
    monkeypatch.setenv("BOT4_DATA_DIR", str(tmp_path))
    runner = CliRunner()

    result = runner.invoke(app, ["db", "migrate"])
    assert result.exit_code == 0, result.output
    assert "0001_market_data (plain)" in result.output
    assert runner.invoke(app, ["db", "migrate"]).output.strip() == "schema is up to date"
    assert "0002_trading" in runner.invoke(app, ["db", "status"]).output

    result = runner.invoke(app, ["topics", "ensure"])
    assert result.exit_code == 0, result.output
    assert f"{cli_prefix}md.trades.v1" in result.output

    result = runner.invoke(app, ["ingest", str(btc_capture)])
    assert result.exit_code == 0, result.output
    settings = make_settings(cli_prefix, pg_database, tmp_path)
    assert topic_message_count(kafka_bootstrap, f"{cli_prefix}md.trades.v1") == 9757
    assert scalar(settings, "SELECT count(*) FROM md_trades") == 9757
    assert scalar(settings, "SELECT count(*) FROM dead_letters") == 0

    # The storage flow keeps its offsets in recovery snapshots: draining again reads nothing new.
    result = runner.invoke(app, ["store", "--drain"])
    assert result.exit_code == 0, result.output
    assert scalar(settings, "SELECT count(*) FROM md_trades") == 9757
    assert scalar(settings, "SELECT count(*) FROM dead_letters") == 0


def test_bot4_ingest_refuses_a_missing_file(tmp_path):
    result = CliRunner().invoke(app, ["ingest", str(tmp_path / "nope.gz")])
    assert result.exit_code == 2
    assert "no such file" in result.output


def test_bot4_ingest_needs_files_or_an_exchange_but_not_both(btc_capture):
    runner = CliRunner()
    neither = runner.invoke(app, ["ingest"])
    both = runner.invoke(app, ["ingest", str(btc_capture), "--exchange", "binance"])
    no_symbol = runner.invoke(app, ["ingest", "--exchange", "binance"])
    assert neither.exit_code == both.exit_code == no_symbol.exit_code == 2
    assert "either recorded FILES or --exchange" in neither.output
    assert "--symbol" in no_symbol.output
