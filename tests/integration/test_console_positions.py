"""The console's positions kept between requests (flows.console.queries.PositionBooks) equal a
rebuild from every stored fill: after new fills, after a fill stored late with an older time, and
per account."""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal
from itertools import islice
from pathlib import Path

import psycopg
import pytest

from core.events import Candle, Side
from core.fills import Fill, Liquidity
from flows.console.queries import PositionBooks, positions
from flows.execution import write_execution
from flows.replay import read_events
from flows.settings import PostgresSettings
from flows.storage.migrate import migrate

pytestmark = pytest.mark.integration

BTC_1M = Path(__file__).resolve().parents[2] / "data" / "sample" / "binance-1m-2021" / "BTC_USDT-1m.json"


def fills_at_real_closes(count: int) -> list[Fill]:
    """Fills of two accounts at the closes of real BTC/USDT 1m candles: buy on an up candle, sell
    on a down one (so positions go long, flat and short), 0.01 BTC each, 0.1% fee in USDT."""
    candles = [e for e in islice(read_events(BTC_1M), count) if isinstance(e, Candle)]
    return [_fill(i, c) for i, c in enumerate(candles)]


def _fill(i: int, c: Candle) -> Fill:
    side = Side.BUY if c.close >= c.open else Side.SELL
    fee = (c.close * Decimal("0.00001")).quantize(Decimal("0.00000001"))
    ts = c.ts_event + timedelta(minutes=1)
    account = ("desk-a", "desk-b")[i % 2]
    return Fill("binance", f"f-{i}", f"b4-{i}", account, "BTC/USDT", side, c.close, Decimal("0.01"), fee, "USDT",
                Liquidity.TAKER, ts)  # fmt: skip


def test_positions_kept_between_requests_equal_a_rebuild_from_every_fill(pg_database):
    conninfo = PostgresSettings(dbname=pg_database).conninfo()
    migrate(conninfo)
    fills = fills_at_real_closes(400)
    first, later, late = fills[:300], fills[320:], fills[300:320]
    kept = PositionBooks()

    def both(account: str | None = None) -> tuple[list, list]:
        with psycopg.connect(conninfo) as conn:
            return positions(conn, account, kept), positions(conn, account, PositionBooks())

    write_execution(conninfo, first)
    incremental, rebuilt = both()
    assert incremental == rebuilt and sum(p.fills for p in incremental) == 300

    write_execution(conninfo, later)  # newer fills: applied on top of the kept books
    incremental, rebuilt = both()
    assert incremental == rebuilt and sum(p.fills for p in incremental) == 380

    write_execution(conninfo, late)  # stored late, older than the newest applied: a rebuild
    incremental, rebuilt = both()
    assert incremental == rebuilt and sum(p.fills for p in incremental) == 400
    assert {p.account for p in incremental} == {"desk-a", "desk-b"}

    only_b, rebuilt_b = both("desk-b")
    assert only_b == rebuilt_b == [p for p in incremental if p.account == "desk-b"]
    # The kept books were not moved by marking or by the account filter: asking again changes nothing.
    assert both() == (incremental, incremental)
