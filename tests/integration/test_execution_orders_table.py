"""The ``orders`` table as :func:`flows.execution.write_execution` keeps it: each row shows its order
after the order's newest event (by the order's own sequence), whatever clocks stamped the events."""

from __future__ import annotations

from dataclasses import replace
from datetime import timedelta

import psycopg
import pytest

from core.fills import OrderEvent
from flows.execution import write_execution
from flows.risk_step import PortfolioUpdate
from flows.settings import PostgresSettings
from flows.storage.migrate import migrate
from tests.unit.flows.test_execution_pacing import cancel_all_ahead_of_market

pytestmark = pytest.mark.integration


def rows(outputs: list) -> list:
    return [o for o in outputs if not isinstance(o, PortfolioUpdate)]


def stored(conninfo: str) -> tuple:
    with psycopg.connect(conninfo) as conn:
        row = conn.execute("SELECT status, ts_created, ts_updated FROM orders").fetchone()
    assert row is not None
    return tuple(row)


def test_an_order_a_restarted_execution_cancels_ahead_of_its_market_data_is_stored_canceled(pg_database):
    # The chaos test's finding: the orders.v1 backlog read before the md backlog, a cancel-all
    # ended orders still waiting for their market, and their rows stayed pending_submit.
    conninfo = PostgresSettings(dbname=pg_database).conninfo()
    migrate(conninfo)
    outputs, decided = cancel_all_ahead_of_market(11)
    write_execution(conninfo, rows(outputs))
    assert stored(conninfo) == ("canceled", decided, decided)


def test_the_newest_event_by_sequence_wins_even_when_stamped_earlier_and_a_redelivered_older_one_changes_nothing(
    pg_database,
):
    conninfo = PostgresSettings(dbname=pg_database).conninfo()
    migrate(conninfo)
    outputs, decided = cancel_all_ahead_of_market(21)
    events = [o for o in outputs if isinstance(o, OrderEvent)]
    placed = [o for o in rows(outputs) if not isinstance(o, OrderEvent)]
    # A venue whose clock is behind ours stamps its cancel a second before our cancel request
    # (the testnet run's case: a fill found after our cancel request, stamped at the venue's time).
    *ours, venue_cancel = events
    assert venue_cancel.status.value == "canceled"
    write_execution(conninfo, [*placed, *ours, replace(venue_cancel, ts_event=decided - timedelta(seconds=1))])
    assert stored(conninfo)[0] == "canceled"
    write_execution(conninfo, ours[1:2])  # the accept, redelivered after a restart
    assert stored(conninfo)[0] == "canceled"
