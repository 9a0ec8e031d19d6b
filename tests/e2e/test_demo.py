"""`make demo`'s job, end to end on the bundled real data, with no server."""

from __future__ import annotations

import gzip
import json

import pytest
from typer.testing import CliRunner

from flows.cli import app
from flows.demo import SAMPLE_FILES, run_demo
from flows.storage.embedded import EmbeddedStore


def count_lines(path, needle: bytes) -> int:
    with gzip.open(path, "rb") as fh:
        return sum(1 for line in fh if needle in line)


def test_demo_stores_every_record_of_the_bundled_captures_exactly_once(tmp_path):
    summary = run_demo(tmp_path)
    expected = {
        "md_trades": sum(count_lines(p, b'"e":"trade"') for p in SAMPLE_FILES),
        "md_book_deltas": sum(count_lines(p, b'"e":"depthUpdate"') for p in SAMPLE_FILES),
        "md_quotes": sum(count_lines(p, b"@bookTicker") for p in SAMPLE_FILES),
        "md_book_snapshots": sum(count_lines(p, b'"lastUpdateId"') for p in SAMPLE_FILES),
        "md_candles": 0,
        "dead_letters": 0,
    }
    assert expected["md_trades"] == 9757 + 6106
    assert summary["tables"] == expected
    by_symbol = {s["symbol"]: s for s in summary["symbols"]}
    btc = by_symbol["binance:BTC/USDT"]
    assert btc["trades"] == 9757
    assert btc["open"] == "61837.63000000"  # the capture's first trade, exact
    assert btc["minute_bars"] == 7
    assert json.loads((tmp_path / "summary.json").read_text())["tables"] == expected

    # Replaying into the same store adds nothing: the natural keys make it idempotent.
    store = EmbeddedStore(tmp_path / "bot4.sqlite")
    try:
        from flows.replay import read_events

        events = list(read_events(SAMPLE_FILES[0]))
        assert store.write(events) == 0
        assert store.count("md_trades") == expected["md_trades"]
    finally:
        store.close()


@pytest.mark.no_cover  # the whole demo; untraced by coverage (tests/conftest.py)
def test_bot4_demo_command_prints_the_summary(tmp_path):
    result = CliRunner().invoke(app, ["demo", "--out", str(tmp_path)])
    assert result.exit_code == 0, result.output
    assert "binance:BTC/USDT" in result.output and "9757" in result.output
    assert (tmp_path / "summary.json").exists()
    assert "total return" in result.output and (tmp_path / "trading" / "report.html").exists()
    # Every feature vector went to Feast's embedded environment; the online store holds the
    # newest full vector of each instrument, at its last bar.
    from features.schema import FEATURES

    assert f"binance:BTC/USDT: {len(FEATURES)} features at 2021-05-20 20:41:00+00:00" in result.output
    assert f"binance:ETH/USDT: {len(FEATURES)} features at 2021-05-20 20:39:00+00:00" in result.output
    assert (tmp_path / "feast" / "feature_rows_1m.parquet").stat().st_size > 100_000


@pytest.mark.no_cover  # the whole demo; untraced by coverage (tests/conftest.py)
def test_the_demo_trades_the_bundled_candles_and_writes_a_report_with_the_metrics(tmp_path):
    from flows.demo import run_trading_demo

    run = run_trading_demo(tmp_path)
    report = json.loads(run.report_json.read_text())
    metrics = report["metrics"]
    for name in (
        "sharpe",
        "sortino",
        "calmar",
        "max_drawdown_pct",
        "win_rate",
        "profit_factor",
        "exposure_time",
        "turnover",
        "fees",
        "buy_and_hold_return",
        "total_return",
    ):
        assert name in metrics, name
    assert metrics["trades"] > 0 and metrics["risk_approvals"] > 0
    assert sorted(s["symbol"] for s in report["per_symbol"]) == ["BTC/USDT", "ETH/USDT"]
    html = run.report_html.read_text()
    assert "<svg" in html and "http://" not in html and "https://" not in html
    assert report["metadata"]["mode"] == "paper"
