"""md_book_snapshots: full order books (REST depth snapshots and resyncs)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from quality.suites._book import bad_level, crossed
from quality.suites._spec import (
    Column,
    TableSpec,
    Window,
    increasing_per_key,
    not_null,
    rows_where,
    suite_of,
    unique_key,
)

if TYPE_CHECKING:
    from great_expectations.core.expectation_suite import ExpectationSuite

SPEC = TableSpec(
    table="md_book_snapshots",
    columns=(
        Column("exchange", "text"),
        Column("symbol", "text"),
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
    """Not-null, valid levels, best bid below best ask, unique, time order by sequence."""
    d = window.dialect
    return suite_of(
        "md_book_snapshots",
        [
            *not_null(SPEC, d),
            rows_where(bad_level(d), "levels_valid", "every level has price > 0 and amount >= 0"),
            rows_where(crossed(d), "book_not_crossed", "best bid < best ask"),
            unique_key(SPEC.key),
            increasing_per_key(
                ("exchange", "symbol"),
                "sequence",
                "ts_event",
                check="ts_event_increasing_by_sequence",
                description="ts_event never decreases as the snapshot's update id grows (per instrument)",
                where="sequence IS NOT NULL",
            ),
        ],
    )
