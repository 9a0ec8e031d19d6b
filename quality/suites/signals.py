"""signals: model outputs per strategy and instrument, before the risk gate."""

from __future__ import annotations

from typing import TYPE_CHECKING

from quality.suites._spec import Column, TableSpec, Window, finite, in_set, not_null, rows_where, suite_of, unique_key

if TYPE_CHECKING:
    from great_expectations.core.expectation_suite import ExpectationSuite

SPEC = TableSpec(
    table="signals",
    columns=(
        Column("strategy", "text"),
        Column("account", "text"),
        Column("exchange", "text"),
        Column("symbol", "text"),
        Column("side", "text"),
        Column("strength", "float"),
        Column("confidence", "float"),
        Column("model_version", "text", nullable=True),
        Column("reasons", "json"),
        Column("ts_event", "ts"),
    ),
    key=("strategy", "exchange", "symbol", "ts_event"),
    time_column="ts_event",
)


def build(window: Window) -> ExpectationSuite:
    """Not-null, side, finite strength, confidence in [0, 1], unique per strategy and time."""
    d = window.dialect
    return suite_of(
        "signals",
        [
            *not_null(SPEC, d),
            in_set("side", ("buy", "sell")),
            finite("strength", d),
            finite("confidence", d),
            rows_where("confidence < 0 OR confidence > 1", "confidence_in_unit_range", "0 <= confidence <= 1"),
            unique_key(SPEC.key),
        ],
    )
