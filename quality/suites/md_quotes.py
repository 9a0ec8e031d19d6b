"""md_quotes: best bid and ask (bookTicker) updates."""

from __future__ import annotations

from typing import TYPE_CHECKING

from quality.suites._spec import (
    Column,
    TableSpec,
    Window,
    finite_positive,
    increasing_per_key,
    not_finite,
    not_null,
    num,
    rows_where,
    suite_of,
    unique_key,
)

if TYPE_CHECKING:
    from great_expectations.core.expectation_suite import ExpectationSuite

SPEC = TableSpec(
    table="md_quotes",
    columns=(
        Column("exchange", "text"),
        Column("symbol", "text"),
        Column("sequence", "int", nullable=True),
        Column("bid_price", "numeric"),
        Column("bid_amount", "numeric"),
        Column("ask_price", "numeric"),
        Column("ask_amount", "numeric"),
        Column("ts_event", "ts"),
        Column("ts_recv", "ts"),
        Column("sequence_key", "int", postgres_only=True),
    ),
    key=("exchange", "symbol", "ts_event", "sequence"),
    time_column="ts_event",
    scan_prefix=("exchange", "symbol"),
)


def build(window: Window) -> ExpectationSuite:
    """Not-null, finite positive prices, non-negative amounts, not crossed, unique, time order."""
    d = window.dialect
    finite_prices = f"NOT {not_finite('bid_price', d)} AND NOT {not_finite('ask_price', d)}"
    return suite_of(
        "md_quotes",
        [
            *not_null(SPEC, d),
            *finite_positive("bid_price", d),
            *finite_positive("ask_price", d),
            *finite_positive("bid_amount", d, allow_zero=True),
            *finite_positive("ask_amount", d, allow_zero=True),
            rows_where(
                f"{finite_prices} AND {num('bid_price', d)} >= {num('ask_price', d)}",
                "book_not_crossed",
                "best bid < best ask",
            ),
            unique_key(SPEC.key),
            increasing_per_key(
                ("exchange", "symbol"),
                "sequence",
                "ts_event",
                check="ts_event_increasing_by_sequence",
                description="ts_event never decreases as the venue's update id grows (per instrument)",
                where="sequence IS NOT NULL",
            ),
        ],
    )
