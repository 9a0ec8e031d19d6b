"""A backtest over stored PostgreSQL history equals the backtest of the same recorded file.

The bundled real Binance 1m candles (BTC/USDT and ETH/USDT, May 2021) are stored with the storage
flow's writer; ``bot4 backtest --from-db candles`` reads them back through a server-side cursor.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime

import pytest
from typer.testing import CliRunner

from flows.backtest import BacktestConfig, run_backtest
from flows.cli import app
from flows.demo import TRADING_FILES
from flows.replay import read_events
from flows.replay.history import HistoryQuery, stored_events
from flows.replay.source import ReplayFile
from flows.settings import load_settings
from flows.storage.migrate import migrate
from flows.storage.sink import PostgresWriter

pytestmark = pytest.mark.integration


@pytest.fixture
def stored(pg_database: str) -> str:
    conninfo = load_settings(postgres={"dbname": pg_database}).postgres.conninfo()
    migrate(conninfo)
    writer = PostgresWriter(conninfo)
    try:
        for path in TRADING_FILES:
            writer.write(list(read_events(path)))
    finally:
        writer.close()
    return conninfo


def test_history_replays_the_stored_rows_in_event_time_order(stored):
    query = HistoryQuery(stored, "binance", ("BTC/USDT", "ETH/USDT"), "candles", "1m")
    events = list(stored_events(query, page=997))
    from_files = sorted((e for p in TRADING_FILES for e in read_events(p)), key=lambda e: (e.ts_event, e.symbol))
    assert [(e.key, e.ts_event, e.close) for e in events] == [(e.key, e.ts_event, e.close) for e in from_files]
    window = HistoryQuery(
        stored, "binance", ("BTC/USDT",), "candles", "1m",
        datetime(2021, 5, 18, tzinfo=UTC), datetime(2021, 5, 19, tzinfo=UTC),
    )  # fmt: skip
    assert len(list(stored_events(window))) == 1440


def test_a_backtest_from_postgresql_equals_the_backtest_of_the_file(stored, pg_database, tmp_path, monkeypatch):
    files = tuple(ReplayFile(p) for p in TRADING_FILES)
    config = BacktestConfig(
        files=files, symbols=("BTC/USDT", "ETH/USDT"), account="paper", timeframe="1m", bars_from="candles"
    )  # the CLI's account is the settings' default, "paper"
    from_files = run_backtest(config, tmp_path / "files")

    monkeypatch.setenv("BOT4_POSTGRES__DBNAME", pg_database)
    out = tmp_path / "db"
    result = CliRunner().invoke(
        app, ["backtest", "--from-db", "candles", "--symbol", "BTC/USDT", "--symbol", "ETH/USDT", "--out", str(out)]
    )
    assert result.exit_code == 0, result.output
    report = json.loads((out / "report.json").read_text())
    expected = json.loads(from_files.report_json.read_text())
    assert report["metrics"] == expected["metrics"]
    assert report["trades"] == expected["trades"]
    assert (out / "results" / "fills.jsonl").read_bytes() == (from_files.results_dir / "fills.jsonl").read_bytes()


def test_a_history_query_naming_nothing_stored_says_what_is_stored(stored, pg_database, tmp_path, monkeypatch):
    monkeypatch.setenv("BOT4_POSTGRES__DBNAME", pg_database)
    result = CliRunner().invoke(
        app, ["backtest", "--from-db", "candles", "--symbol", "DOGE/USDT", "--out", str(tmp_path / "x")]
    )
    assert result.exit_code == 2
    assert "BTC/USDT" in result.output and "ETH/USDT" in result.output
