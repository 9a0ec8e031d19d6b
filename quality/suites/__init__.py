"""Great Expectations suites, one module per stored table, built in code.

``SUITES`` maps a table name to its module's ``SPEC`` (columns, natural key, time column) and
``build(window)`` (the suite for one day's batch). The schema suite (columns and types) is shared:
:func:`~quality.suites._spec.schema_suite`.

>>> sorted(SUITES)[:4]
['equity', 'feature_rows', 'features', 'fills']
>>> SUITES["md_trades"].spec.key
('exchange', 'symbol', 'trade_id')
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from quality.suites import (
    equity,
    feature_rows,
    features,
    fills,
    md_book_deltas,
    md_book_snapshots,
    md_candles,
    md_quotes,
    md_trades,
    orders,
    risk_decisions,
    signals,
)
from quality.suites._spec import Column, Dialect, TableSpec, Window, schema_suite

if TYPE_CHECKING:
    from great_expectations.core.expectation_suite import ExpectationSuite


@dataclass(frozen=True, slots=True)
class TableSuite:
    spec: TableSpec
    build: Callable[[Window], ExpectationSuite]


SUITES: dict[str, TableSuite] = {
    m.SPEC.table: TableSuite(m.SPEC, m.build)
    for m in (
        md_trades,
        md_quotes,
        md_book_snapshots,
        md_book_deltas,
        md_candles,
        features,
        feature_rows,
        signals,
        risk_decisions,
        orders,
        fills,
        equity,
    )
}

#: Tables validated when no ``--table`` is given: the stored market data.
MARKET_DATA = ("md_trades", "md_quotes", "md_book_snapshots", "md_book_deltas", "md_candles")

__all__ = ["MARKET_DATA", "SUITES", "Column", "Dialect", "TableSpec", "TableSuite", "Window", "schema_suite"]
