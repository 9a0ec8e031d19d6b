"""md_trades: one row per trade as the venue reported it."""

from __future__ import annotations

from typing import TYPE_CHECKING

from quality.suites._spec import (
    Column,
    TableSpec,
    Window,
    bigint,
    finite_positive,
    in_set,
    increasing_per_key,
    is_digits,
    not_null,
    query_rows,
    suite_of,
    unique_key,
)

if TYPE_CHECKING:
    from great_expectations.core.expectation_suite import ExpectationSuite

SPEC = TableSpec(
    table="md_trades",
    columns=(
        Column("exchange", "text"),
        Column("symbol", "text"),
        Column("trade_id", "text"),
        Column("price", "numeric"),
        Column("amount", "numeric"),
        Column("side", "text", nullable=True),
        Column("ts_event", "ts"),
        Column("ts_recv", "ts"),
    ),
    # A trade id names one trade per instrument; the stored key also carries ts_event only because
    # a hypertable needs its time column in every unique index.
    key=("exchange", "symbol", "trade_id"),
    time_column="ts_event",
    scan_prefix=("exchange", "symbol"),
)


def build(window: Window) -> ExpectationSuite:
    """Not-null, finite positive price and amount, side, unique trade id, time order, id gaps."""
    d = window.dialect
    trade_no = bigint("trade_id", d)
    numeric_ids = is_digits("trade_id", d)
    return suite_of(
        "md_trades",
        [
            *not_null(SPEC, d),
            *finite_positive("price", d),
            *finite_positive("amount", d),
            in_set("side", ("buy", "sell")),
            unique_key(SPEC.key),
            # Venue trade ids grow with time: an earlier ts_event for a later id is time going backwards.
            increasing_per_key(
                ("exchange", "symbol"),
                trade_no,
                "ts_event",
                check="ts_event_increasing_by_trade_id",
                description="ts_event never decreases as the numeric trade id grows (per instrument)",
                where=numeric_ids,
            ),
            # A gap is a row whose id is more than one above the previous id: reported, not failed
            # (captures start and stop, and some venues skip ids).
            query_rows(
                f"SELECT * FROM (SELECT {trade_no} AS id_this, LAG({trade_no}) OVER "
                f"(PARTITION BY exchange, symbol ORDER BY {trade_no}) AS id_prev, exchange, symbol "
                f"FROM {{batch}} WHERE {numeric_ids}) ids WHERE id_this - id_prev > 1",
                "trade_id_gaps",
                "numeric trade ids follow each other without gaps (count of gaps, reported only)",
                severity="info",
            ),
        ],
    )
