"""The table suites on the embedded SQLite store, over real data from ../shared/data.

SQLite is where most faults can be shown at all: the PostgreSQL tables refuse a negative price, a
null or a duplicate primary key by constraint, so those checks guard data that got in another way
(the integration tests drop the constraints to show them on PostgreSQL too)."""

from __future__ import annotations

import json
import shutil
import sqlite3
from datetime import UTC, datetime
from pathlib import Path

import pytest

from flows.replay import read_events
from flows.storage.embedded import EmbeddedStore
from quality.validate import ValidationRun, validate
from tests.support.report_browser import ASSET_URL, CHROMIUM, dump_dom, screenshot

DAY1 = datetime(2024, 8, 8, tzinfo=UTC)
DAY2 = datetime(2024, 8, 9, tzinfo=UTC)
BTC_FILES = ("btcusdt_20240808.gz", "btcusdt_20240809.gz")


@pytest.fixture(scope="module")
def btc_store(shared_data: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Both days of the real Binance BTC/USDT capture (trades, quotes, depth diffs, one snapshot)."""
    path = tmp_path_factory.mktemp("btc") / "store.sqlite"
    store = EmbeddedStore(path)
    for name in BTC_FILES:
        store.write(read_events(shared_data / "ticks" / "binance-spot-ws" / name))
    store.close()
    return path


@pytest.fixture(scope="module")
def xrp_store(shared_data: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """freqtrade's XRP/ETH trades and the 1m candles built from exactly those trades (3 days)."""
    path = tmp_path_factory.mktemp("xrp") / "store.sqlite"
    store = EmbeddedStore(path)
    for name in ("XRP_ETH-trades.feather", "XRP_ETH-1m.feather"):
        store.write(read_events(shared_data / "ticks" / "freqtrade-xrp-eth" / name))
    store.close()
    return path


@pytest.fixture(scope="module")
def clean_run(btc_store: Path, tmp_path_factory: pytest.TempPathFactory) -> ValidationRun:
    return validate(f"sqlite:///{btc_store}", out_dir=tmp_path_factory.mktemp("report"))


def faulty(store: Path, tmp_path: Path, *statements: str, unconstrained: tuple[str, ...] = ()) -> Path:
    """A copy of ``store`` with ``statements`` applied; ``unconstrained`` tables lose their
    NOT NULL and primary key first (rebuilt with CREATE TABLE AS, same columns and types)."""
    path = tmp_path / "faulty.sqlite"
    shutil.copy(store, path)
    conn = sqlite3.connect(path)
    with conn:
        for table in unconstrained:
            conn.execute(f"CREATE TABLE {table}_loose AS SELECT * FROM {table}")
            conn.execute(f"DROP TABLE {table}")
            conn.execute(f"ALTER TABLE {table}_loose RENAME TO {table}")
        for sql in statements:
            assert conn.execute(sql).rowcount >= 1, f"fault not applied: {sql}"
    conn.close()
    return path


def trade_id(store: Path, offset: int) -> str:
    """The id of the trade ``offset`` places after the first of 2024-08-08."""
    with sqlite3.connect(store) as conn:
        row = conn.execute(
            "SELECT trade_id FROM md_trades WHERE ts_event < ? ORDER BY CAST(trade_id AS INTEGER) LIMIT 1 OFFSET ?",
            (DAY2.isoformat(), offset),
        ).fetchone()
    return str(row[0])


def failed(run: ValidationRun) -> dict[tuple[str, str], int | None]:
    return {(f.table, f.check): f.unexpected_count for f in run.failures}


def check(run: ValidationRun, table: str, name: str, day: str):
    result = next(t for t in run.tables if t.table == table)
    batch = next(b for b in result.batches if b.day == day)
    return next(c for c in batch.checks if c.check == name)


def test_real_btc_capture_validates_clean_in_one_batch_per_day(clean_run: ValidationRun, btc_store: Path):
    assert clean_run.success, clean_run.failures
    assert clean_run.event is None
    days = {t.table: [b.day for b in t.batches] for t in clean_run.tables}
    assert days["md_trades"] == ["schema", "2024-08-08", "2024-08-09"]
    assert days["md_quotes"] == ["schema", "2024-08-08", "2024-08-09"]
    assert days["md_book_snapshots"] == ["schema", "2024-08-08"]
    statuses = {t.table: t.status for t in clean_run.tables}
    assert statuses == {
        "md_trades": "passed",
        "md_quotes": "passed",
        "md_book_snapshots": "passed",
        "md_book_deltas": "passed",
        "md_candles": "no_rows",
    }
    trades = next(t for t in clean_run.tables if t.table == "md_trades")
    assert trades.rows == 9757 + 10147
    assert check(clean_run, "md_trades", "trade_id_gaps", "2024-08-08").unexpected_count == 0
    with sqlite3.connect(btc_store) as conn:
        stored = conn.execute(
            "SELECT success, rows_validated, summary FROM quality_runs WHERE run_id = ?", (clean_run.run_id,)
        ).fetchone()
    assert stored[0] == 1 and stored[1] == clean_run.summary()["rows_validated"]
    assert json.loads(stored[2])["tables"][0]["table"] == "md_trades"


@pytest.mark.parametrize(
    ("fault", "expected"),
    [
        ("UPDATE md_trades SET price = NULL WHERE trade_id = '{tid}'", "price_not_null"),
        ("UPDATE md_trades SET price = '-61837.63' WHERE trade_id = '{tid}'", "price_positive"),
        ("UPDATE md_trades SET amount = 'NaN' WHERE trade_id = '{tid}'", "amount_finite"),
        ("UPDATE md_trades SET side = 'short' WHERE trade_id = '{tid}'", "side_in_set"),
        (
            "INSERT INTO md_trades SELECT exchange, symbol, trade_id, price, amount, side, ts_event, ts_recv "
            "FROM md_trades WHERE trade_id = '{tid}'",
            "natural_key_unique",
        ),
        (
            "UPDATE md_trades SET ts_event = '2024-08-08T23:50:00+00:00' WHERE trade_id = '{tid}'",
            "ts_event_increasing_by_trade_id",
        ),
    ],
    ids=["null", "negative_price", "nan_amount", "unknown_side", "duplicate_key", "time_backwards"],
)
def test_fault_in_real_trades_is_caught_by_the_named_check(btc_store: Path, tmp_path: Path, fault: str, expected: str):
    tid = trade_id(btc_store, 500)
    path = faulty(btc_store, tmp_path, fault.format(tid=tid), unconstrained=("md_trades",))
    run = validate(f"sqlite:///{path}", tables=["md_trades"], start=DAY1, end=DAY2, record=False)
    assert not run.success
    found = failed(run)
    assert set(found) == {("md_trades", expected)}, found
    # Each fault touches one trade; GE counts both rows of a duplicated key.
    assert found[("md_trades", expected)] == (2 if expected == "natural_key_unique" else 1)
    assert run.event is not None and run.event.failures[0].check == expected


def test_missing_trade_ids_are_counted_but_do_not_fail(btc_store: Path, tmp_path: Path):
    first, second = trade_id(btc_store, 100), trade_id(btc_store, 200)
    path = faulty(btc_store, tmp_path, f"DELETE FROM md_trades WHERE trade_id IN ('{first}', '{second}')")
    run = validate(f"sqlite:///{path}", tables=["md_trades"], start=DAY1, end=DAY2, record=False)
    assert run.success
    gaps = check(run, "md_trades", "trade_id_gaps", "2024-08-08")
    assert (gaps.success, gaps.severity, gaps.unexpected_count) == (False, "info", 2)


def test_crossed_quote_is_caught(btc_store: Path, tmp_path: Path):
    path = faulty(
        btc_store,
        tmp_path,
        "UPDATE md_quotes SET bid_price = '61900.00' WHERE rowid = (SELECT min(rowid) FROM md_quotes)",
    )
    run = validate(f"sqlite:///{path}", tables=["md_quotes"], start=DAY1, end=DAY2, record=False)
    assert failed(run) == {("md_quotes", "book_not_crossed"): 1}


def test_crossed_snapshot_and_bad_delta_levels_are_caught(btc_store: Path, tmp_path: Path):
    path = faulty(
        btc_store,
        tmp_path,
        "UPDATE md_book_snapshots SET bids = json_insert(bids, '$[#]', json_array('99999.0', '1.0'))",
        "UPDATE md_book_deltas SET asks = json_array(json_array('-1', '0.5')) "
        "WHERE rowid = (SELECT min(rowid) FROM md_book_deltas)",
    )
    run = validate(
        f"sqlite:///{path}", tables=["md_book_snapshots", "md_book_deltas"], start=DAY1, end=DAY2, record=False
    )
    assert failed(run) == {("md_book_snapshots", "book_not_crossed"): 1, ("md_book_deltas", "levels_valid"): 1}


def test_candles_reconcile_with_bars_from_the_same_trades(xrp_store: Path):
    run = validate(f"sqlite:///{xrp_store}", tables=["md_candles"], record=False)
    assert run.success, run.failures
    assert [b.day for b in run.tables[0].batches] == ["schema", "2019-10-11", "2019-10-12", "2019-10-13"]


def test_candle_faults_are_caught_high_below_low_and_a_close_the_trades_disagree_with(xrp_store: Path, tmp_path: Path):
    path = faulty(
        xrp_store,
        tmp_path,
        "UPDATE md_candles SET high = '0.001' WHERE ts_event = '2019-10-11T06:00:00+00:00'",
        "UPDATE md_candles SET close = low WHERE ts_event = '2019-10-11T12:01:00+00:00'",
    )
    run = validate(
        f"sqlite:///{path}",
        tables=["md_candles"],
        start=datetime(2019, 10, 11, tzinfo=UTC),
        end=datetime(2019, 10, 12, tzinfo=UTC),
        record=False,
    )
    found = failed(run)
    assert found == {
        ("md_candles", "high_gte_open_close"): 1,
        ("md_candles", "high_gte_low"): 1,
        ("md_candles", "bars_match_exchange_candles"): 2,
    }


def test_trading_tables_absent_from_the_embedded_store_are_reported_not_failed(btc_store: Path):
    run = validate(f"sqlite:///{btc_store}", tables=["orders", "fills"], record=False)
    assert run.success
    assert [(t.table, t.status) for t in run.tables] == [("orders", "absent"), ("fills", "absent")]


def test_report_references_no_network_asset(clean_run: ValidationRun):
    assert clean_run.out_dir is not None
    pages = sorted(clean_run.out_dir.glob("*.html"))
    assert [p.name for p in pages] == sorted(
        ["index.html", "md_trades.html", "md_quotes.html", "md_book_snapshots.html", "md_book_deltas.html"]
    )
    for page in pages:
        html = page.read_text(encoding="utf-8")
        assert not ASSET_URL.search(html), f"{page.name} loads an asset over the network"
        assert "http://" not in html and "https://" not in html, page.name
        assert "<style>" in html
    summary = json.loads((clean_run.out_dir / "summary.json").read_text())
    assert summary["success"] is True and summary["batches"] == clean_run.summary()["batches"]


@pytest.mark.skipif(CHROMIUM is None, reason="chromium is not installed (Debian: apt-get install -y chromium)")
def test_report_renders_styled_and_complete_in_headless_chromium_offline(clean_run: ValidationRun, tmp_path: Path):
    assert clean_run.out_dir is not None
    index = clean_run.out_dir / "index.html"
    dom = dump_dom(index)
    for table in ("md_trades", "md_quotes", "md_book_snapshots", "md_book_deltas", "md_candles"):
        assert f">{table}<" in dom
    assert "19,904" in dom and 'class="badge passed"' in dom
    trades_dom = dump_dom(clean_run.out_dir / "md_trades.html")
    assert trades_dom.count('id="2024-08-0') == 2 and "ts_event_increasing_by_trade_id" in trades_dom
    image = screenshot(index, tmp_path / "index.png", width=900, height=500)
    assert image.pixel(10, 10) == (0x24, 0x29, 0x2F), "the header has no background: CSS did not apply"
    assert image.count((0x1A, 0x7F, 0x37)) > 200, "no green 'passed' badges were painted"
    assert image.pixel(450, 400) != image.pixel(10, 10)
