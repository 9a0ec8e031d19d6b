"""equity: the account's equity curve (cash, exposure, PnL, drawdown) over event time."""

from __future__ import annotations

from typing import TYPE_CHECKING

from quality.suites._spec import Column, TableSpec, Window, finite, not_null, num, rows_where, suite_of, unique_key

if TYPE_CHECKING:
    from great_expectations.core.expectation_suite import ExpectationSuite

_MONEY = (
    "equity",
    "cash",
    "gross_exposure",
    "net_exposure",
    "realized_pnl",
    "unrealized_pnl",
    "peak_equity",
    "drawdown",
)

SPEC = TableSpec(
    table="equity",
    columns=(Column("account", "text"), Column("ts_event", "ts"), *(Column(m, "numeric") for m in _MONEY)),
    key=("account", "ts_event"),
    time_column="ts_event",
    symbol_column=None,
)


def build(window: Window) -> ExpectationSuite:
    """Not-null, finite money, peak >= equity, non-negative drawdown and gross exposure, unique."""
    d = window.dialect
    return suite_of(
        "equity",
        [
            *not_null(SPEC, d),
            *(finite(m, d) for m in _MONEY),
            rows_where(f"{num('peak_equity', d)} < {num('equity', d)}", "peak_gte_equity", "peak_equity >= equity"),
            rows_where(f"{num('drawdown', d)} < 0", "drawdown_not_negative", "drawdown >= 0"),
            rows_where(f"{num('gross_exposure', d)} < 0", "gross_exposure_not_negative", "gross_exposure >= 0"),
            unique_key(SPEC.key),
        ],
    )
