"""md_book_deltas: incremental order book updates (Binance depth diffs)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from quality.suites._book import bad_level
from quality.suites._spec import (
    Column,
    TableSpec,
    Window,
    increasing_per_key,
    not_null,
    query_rows,
    rows_where,
    suite_of,
    unique_key,
)

if TYPE_CHECKING:
    from great_expectations.core.expectation_suite import ExpectationSuite

SPEC = TableSpec(
    table="md_book_deltas",
    columns=(
        Column("exchange", "text"),
        Column("symbol", "text"),
        Column("first_sequence", "int", nullable=True),
        Column("sequence", "int", nullable=True),
        Column("bids", "json"),
        Column("asks", "json"),
        Column("ts_event", "ts"),
        Column("ts_recv", "ts"),
        Column("sequence_key", "int", postgres_only=True),
    ),
    key=("exchange", "symbol", "ts_event", "sequence"),
    time_column="ts_event",
    scan_prefix=("exchange", "symbol"),
)


def build(window: Window) -> ExpectationSuite:
    """Not-null, valid levels, ordered update ranges, unique, time order, sequence gaps (reported)."""
    d = window.dialect
    return suite_of(
        "md_book_deltas",
        [
            *not_null(SPEC, d),
            # A delta may delete a level (amount 0); a negative amount or a price <= 0 is never valid.
            rows_where(bad_level(d), "levels_valid", "every level has price > 0 and amount >= 0"),
            rows_where(
                "first_sequence IS NOT NULL AND sequence IS NOT NULL AND first_sequence > sequence",
                "sequence_range_ordered",
                "first update id <= last update id",
            ),
            unique_key(SPEC.key),
            increasing_per_key(
                ("exchange", "symbol"),
                "sequence",
                "ts_event",
                check="ts_event_increasing_by_sequence",
                description="ts_event never decreases as the update id grows (per instrument)",
                where="sequence IS NOT NULL",
            ),
            # A diff must start right after the previous one ended, or the book misses updates
            # until the next snapshot: reported with its count, the book flow resyncs on its own.
            query_rows(
                "SELECT * FROM (SELECT first_sequence, LAG(sequence) OVER (PARTITION BY exchange, symbol "
                "ORDER BY sequence) AS prev_last, exchange, symbol FROM {batch} "
                "WHERE sequence IS NOT NULL AND first_sequence IS NOT NULL) seqs "
                "WHERE first_sequence <> prev_last + 1",
                "sequence_gaps",
                "each diff's first update id follows the previous diff's last (count of gaps, reported only)",
                severity="info",
            ),
        ],
    )
