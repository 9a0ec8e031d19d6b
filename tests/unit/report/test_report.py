"""The report built from a real run (freqtrade's 1h BTC/USDT backtest, see peer_run): its totals
against freqtrade's own summary, the stored-results round trip, determinism, and the HTML's content."""

from __future__ import annotations

import json
import re
from dataclasses import replace
from datetime import timedelta
from decimal import Decimal
from pathlib import Path

import pandas as pd
import pytest

from core.clock import parse_utc
from core.deadletter import DeadLetter
from core.events import Candle
from core.money import float_to_decimal
from flows.report import (
    EquitySample,
    ReportPaths,
    RunResults,
    build_report,
    dead_letter_counts,
    load_results,
    rebuild_report,
    save_results,
)
from flows.report.html import MAX_TRADE_ROWS
from flows.report.metrics import compute, max_drawdown
from quality.contracts import check_event
from risk.decisions import DecisionKind
from tests.support.report_browser import ASSET_URL
from tests.unit.report.peer_run import CANDLES, REFERENCE, WALLET, PeerTrade, first_days

SUMMARY = json.loads((REFERENCE / "summary-1h.json").read_text())


@pytest.fixture(scope="module")
def ft_json(ft_report: ReportPaths) -> dict:
    return json.loads(ft_report.json.read_text())


def real_dead_letters() -> list[DeadLetter]:
    """Real candles with faults injected the way a bad feed delivers them, refused by the real
    contract check: the report must count them by stage and reason."""
    frame = pd.read_feather(CANDLES).head(40)
    letters = []
    for i, row in enumerate(frame.itertuples()):
        ts = row.date.to_pydatetime()
        price = {k: float_to_decimal(float(getattr(row, k))) for k in ("open", "high", "low", "close")}
        if i % 4 == 0:
            price["high"] = price["low"] - 1  # high below low
        elif i % 4 == 1:
            price["close"] = Decimal(0)
        candle = Candle("binance", "BTC/USDT", "1h", **price, volume=float_to_decimal(float(row.volume)),
                        ts_event=ts, ts_recv=ts)  # fmt: skip
        bad = check_event(candle, frozenset({"binance:BTC/USDT"}))
        if bad is not None:
            raw = json.dumps({"o": str(candle.open), "h": str(candle.high), "c": str(candle.close), "<tag>": "&"})
            letters.append(DeadLetter("contracts", bad.reason, bad.detail, raw.encode(), ts, "md.candles.v1", 0, i))
    return letters


# ---- parity with freqtrade's own summary ------------------------------------------------------


def test_trade_totals_match_freqtrade_summary(ft_results: RunResults):
    m = compute(ft_results)
    assert m.stats.trades == SUMMARY["total_trades"] == 965
    assert (m.stats.wins, m.stats.losses, m.stats.draws) == (SUMMARY["wins"], SUMMARY["losses"], SUMMARY["draws"])
    assert m.stats.win_rate == SUMMARY["wins"] / SUMMARY["total_trades"]
    # freqtrade rounds each trade's profit to 8 decimals (its CSV column); we recompute every trade
    # from price, amount and fee in Decimal, so the sum may differ by up to 965 half-units of 1e-8.
    assert abs(m.stats.net_pnl - Decimal(str(SUMMARY["profit_total_abs"]))) < Decimal("0.000005")
    assert m.final_equity == WALLET + m.stats.net_pnl  # flat at the end: equity is the realised balance
    assert abs(m.final_equity - Decimal(str(SUMMARY["final_balance"]))) < Decimal("0.000005")
    assert m.total_return == pytest.approx(SUMMARY["profit_total"], rel=1e-9)
    assert m.open_positions == ()


def test_drawdown_differs_from_freqtrade_because_it_is_marked_to_market(
    ft_results: RunResults, peer_trades: list[PeerTrade]
):
    """freqtrade's 8.28% is measured on the realised balance after each closed trade; the report
    marks open positions to every hourly close, which also sees the losses of trades still open.
    The same drawdown function on the realised-balance series reproduces freqtrade exactly."""
    balance, realised = WALLET, [EquitySample(peer_trades[0].open_ts, WALLET, WALLET, Decimal(0))]
    for t in peer_trades:
        balance += t.profit_abs
        realised.append(EquitySample(t.close_ts, balance, balance, Decimal(0)))
    dd = max_drawdown(realised)
    assert dd.pct == pytest.approx(SUMMARY["max_drawdown_account"], rel=1e-9)
    assert dd.value == pytest.approx(Decimal(str(SUMMARY["max_drawdown_abs"])), abs=Decimal("1e-6"))
    marked = compute(ft_results).drawdown
    assert marked.pct > dd.pct  # intra-trade losses deepen it
    assert marked.pct == pytest.approx(0.0862, abs=5e-5)


def test_per_symbol_and_buy_and_hold_come_from_the_real_prices(ft_results: RunResults):
    m = compute(ft_results)
    (btc,) = m.per_symbol
    closes = ft_results.prices["BTC/USDT"]
    assert btc.stats.trades == 965 and btc.fills == 1930
    assert btc.buy_and_hold_return == pytest.approx(float(closes[-1].close / closes[0].close - 1))
    assert m.buy_and_hold_return == pytest.approx(btc.buy_and_hold_return)
    assert m.fees == btc.fees == sum((f.fee for f in ft_results.fills), Decimal(0))
    assert m.risk.denials > 0 and m.risk.approvals + m.risk.denials == 965
    assert dict(m.risk.denials_by_reason) == {"trading_reducing": m.risk.denials}


# ---- stored results --------------------------------------------------------------------------


def test_results_round_trip_through_the_results_folder(ft_results: RunResults, tmp_path: Path):
    with_dlq = replace(first_days(ft_results, 365), dead_letters=dead_letter_counts(real_dead_letters()))
    kinds = {d.kind for d in with_dlq.decisions}
    assert kinds == set(DecisionKind)  # approvals, denials, state changes and cancel-alls all travel
    assert load_results(save_results(with_dlq, tmp_path)) == with_dlq


def test_load_results_names_the_missing_file(tmp_path: Path):
    with pytest.raises(FileNotFoundError, match=r"metadata\.json"):
        load_results(tmp_path)


def test_a_rebuild_from_stored_results_is_byte_identical_to_the_first_build(
    ft_results: RunResults, ft_report: ReportPaths, tmp_path: Path
):
    """Deterministic output: the rebuild (``bot4 report <dir>``) reads the results back from disk
    and builds again; not one byte may differ (no clock, no set order, nothing lost on disk)."""
    rebuilt = rebuild_report(save_results(ft_results, tmp_path / "stored"))
    assert rebuilt.html.parent == tmp_path / "stored"
    assert rebuilt.html.read_bytes() == ft_report.html.read_bytes()
    assert rebuilt.json.read_bytes() == ft_report.json.read_bytes()


def test_rebuild_can_write_elsewhere(ft_results: RunResults, tmp_path: Path):
    short = first_days(ft_results, 2)
    paths = rebuild_report(save_results(short, tmp_path / "stored"), tmp_path / "out")
    assert paths == ReportPaths(tmp_path / "out" / "report.html", tmp_path / "out" / "report.json")
    assert build_report(short, tmp_path / "again").json.read_bytes() == paths.json.read_bytes()


# ---- report.json ------------------------------------------------------------------------------


def test_json_holds_metrics_trades_risk_and_metadata(ft_json: dict):
    metrics = ft_json["metrics"]
    assert metrics["trades"] == 965 and metrics["wins"] == 259
    assert Decimal(metrics["trade_pnl"]) == pytest.approx(Decimal("2742.49849531"), abs=Decimal("0.000005"))
    for key in ("sharpe", "sortino", "calmar", "max_drawdown_pct", "win_rate", "profit_factor", "exposure_time",
                "turnover", "fees", "buy_and_hold_return"):  # fmt: skip
        assert metrics[key] is not None, key
    assert len(ft_json["trades"]) == 965
    assert ft_json["metadata"]["run_id"] == "freqtrade-ema-cross-rsi-1h"
    assert ft_json["risk"]["denials_by_reason"]["trading_reducing"] == metrics["risk_denials"]
    days = ft_json["equity_daily"]
    assert days[0]["ts"].startswith("2017-08-17") and days[-1]["ts"].startswith("2024-04-21")
    assert Decimal(days[-1]["equity"]) == Decimal(metrics["final_equity"])


def test_json_of_an_empty_run_has_nulls_not_nan(tmp_path: Path, ft_results: RunResults):
    t = ft_results.metadata.start
    one = (EquitySample(t, WALLET, WALLET, Decimal(0)),)
    paths = build_report(RunResults(ft_results.metadata, one), tmp_path)
    text = paths.json.read_text()
    assert "NaN" not in text and "Infinity" not in text
    metrics = json.loads(text)["metrics"]
    assert metrics["trades"] == 0
    for key in ("sharpe", "sortino", "calmar", "cagr", "win_rate", "profit_factor", "expectancy", "exposure_time"):
        assert metrics[key] is None, key
    assert metrics["buy_and_hold_return"] is None  # no prices given: no benchmark, not a flat 0%
    html = paths.html.read_text()
    assert "No closed trade." in html and "no breaker tripped" in html and "no dead letters" in html


# ---- report.html ------------------------------------------------------------------------------


def test_html_shows_every_summary_metric(ft_report: ReportPaths, ft_json: dict):
    html = ft_report.html.read_text()
    rows = re.findall(r'<tr data-metric="([a-z_]+)"><th>[^<]+</th><td class="num">([^<]*)</td>', html)
    assert sorted(key for key, _ in rows) == sorted(ft_json["metrics"])  # the same metrics in both files
    shown = dict(rows)
    assert shown["trades"] == "965" and shown["win_rate"] == "26.84%" and shown["net_profit"] == "2,742.50"
    assert all(text for text in shown.values())


def test_html_is_self_contained_with_no_url_and_no_script(ft_report: ReportPaths):
    html = ft_report.html.read_text()
    assert "http" not in html.lower()
    assert ASSET_URL.search(html) is None
    assert "<script" not in html.lower() and "<link" not in html.lower() and "<img" not in html.lower()
    assert html.count("<svg") == 5  # equity, vs buy-and-hold, drawdown, BTC/USDT price, risk timeline


def test_html_caps_the_trade_table_and_says_so(ft_report: ReportPaths):
    html = ft_report.html.read_text()
    table = html[html.index('<table id="trades">') :]
    table = table[: table.index("</table>")]
    assert table.count("<tr>") == MAX_TRADE_ROWS + 1  # header + rows
    assert f"Showing the first {MAX_TRADE_ROWS} of 965 trades" in html


def test_html_lists_denials_state_changes_and_dead_letters(ft_results: RunResults, tmp_path: Path):
    letters = real_dead_letters()
    results = replace(first_days(ft_results, 365), dead_letters=dead_letter_counts(letters))
    html = build_report(results, tmp_path).html.read_text()
    assert '<table id="denials">' in html and "trading_reducing" in html
    assert '<table id="state-changes">' in html and "consecutive_losses" in html
    assert '<table id="dead-letters">' in html
    by_reason: dict[str, int] = {}
    for dl in letters:
        by_reason[dl.reason] = by_reason.get(dl.reason, 0) + 1
    assert by_reason == {"candle_ohlc_inconsistent": 10, "candle_price_invalid": 10}
    for reason, n in by_reason.items():
        assert f'<td>contracts</td><td>{reason}</td><td class="num">{n}</td>' in html


def test_html_escapes_every_text_from_the_results(ft_results: RunResults, tmp_path: Path):
    hostile = "<script>alert('x')</script>"
    meta = replace(ft_results.metadata, run_id=hostile, strategies=(hostile,), settings={hostile: hostile})
    results = replace(first_days(ft_results, 90), metadata=meta, dead_letters=dead_letter_counts(real_dead_letters()))
    html = build_report(results, tmp_path).html.read_text()
    assert "<script" not in html
    assert "&lt;script&gt;alert(&#x27;x&#x27;)&lt;/script&gt;" in html
    assert "&quot;&lt;tag&gt;&quot;: &quot;&amp;&quot;" in html  # a dead letter's original bytes, escaped


def test_report_of_a_run_shorter_than_a_day(ft_results: RunResults, tmp_path: Path):
    start = parse_utc("2021-05-19T00:00:00Z")
    window = tuple(s for s in ft_results.equity if start <= s.ts < start + timedelta(hours=12))
    prices = {
        "BTC/USDT": tuple(p for p in ft_results.prices["BTC/USDT"] if start <= p.ts < start + timedelta(hours=12))
    }
    meta = replace(ft_results.metadata, start=window[0].ts, end=window[-1].ts, initial_equity=window[0].equity)
    paths = build_report(RunResults(meta, window, prices=prices), tmp_path)
    metrics = json.loads(paths.json.read_text())["metrics"]
    assert metrics["sharpe"] is None  # one day: no daily return to annualise
    assert metrics["max_drawdown_pct"] >= 0 and "<svg" in paths.html.read_text()
