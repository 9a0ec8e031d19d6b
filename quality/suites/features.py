"""features: one row of feature values per instrument, timeframe and bar close."""

from __future__ import annotations

from typing import TYPE_CHECKING

from quality.suites._spec import Column, TableSpec, Window, not_null, rows_where, suite_of, unique_key

if TYPE_CHECKING:
    from great_expectations.core.expectation_suite import ExpectationSuite

SPEC = TableSpec(
    table="features",
    columns=(
        Column("exchange", "text"),
        Column("symbol", "text"),
        Column("timeframe", "text"),
        Column("schema_version", "int"),
        Column("ts_event", "ts"),
        Column("ts_computed", "ts"),
        Column("values", "json"),
    ),
    key=("exchange", "symbol", "timeframe", "schema_version", "ts_event"),
    time_column="ts_event",
    scan_prefix=("exchange", "symbol", "timeframe", "schema_version"),
)


def build(window: Window) -> ExpectationSuite:
    """Not-null, unique, positive schema version, values an object, computed after the bar closed."""
    d = window.dialect
    is_object = "jsonb_typeof(\"values\") <> 'object'" if d == "postgresql" else "json_type(\"values\") <> 'object'"
    return suite_of(
        "features",
        [
            *not_null(SPEC, d),
            unique_key(SPEC.key),
            rows_where("schema_version < 1", "schema_version_positive", "schema_version >= 1"),
            rows_where(is_object, "values_is_object", "values is a JSON object of feature name -> value"),
            # A feature row describes a closed bar: computing it before the bar closed is look-ahead.
            rows_where("ts_computed < ts_event", "computed_after_bar_close", "ts_computed >= ts_event"),
        ],
    )
