"""orders: approved order intents and their latest state.

A ``filled`` order's fills (of any day) add up to exactly its amount; the fills suite checks the
other side, that no order is filled beyond its amount. Decimal columns in PostgreSQL, so the
sums are exact.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from core.fills import OrderStatus
from core.orders import OrderType
from quality.suites._spec import (
    Column,
    TableSpec,
    Window,
    finite_positive,
    in_set,
    not_null,
    query_rows,
    rows_where,
    suite_of,
    unique_key,
)

if TYPE_CHECKING:
    from great_expectations.core.expectation_suite import ExpectationSuite

SPEC = TableSpec(
    table="orders",
    columns=(
        Column("client_order_id", "text"),
        Column("account", "text"),
        Column("strategy", "text"),
        Column("exchange", "text"),
        Column("symbol", "text"),
        Column("side", "text"),
        Column("order_type", "text"),
        Column("amount", "numeric"),
        Column("limit_price", "numeric", nullable=True),
        Column("status", "text"),
        Column("venue_order_id", "text", nullable=True),
        Column("ts_created", "ts"),
        Column("ts_updated", "ts"),
    ),
    key=("client_order_id",),
    time_column="ts_created",
)


def build(window: Window) -> ExpectationSuite:
    """Not-null, side and type, finite positive amount and limit price, limit orders priced, times,
    filled orders' fills summing to their amount."""
    d = window.dialect
    return suite_of(
        "orders",
        [
            *not_null(SPEC, d),
            in_set("side", ("buy", "sell")),
            in_set("order_type", tuple(t.value for t in OrderType)),
            *finite_positive("amount", d),
            *finite_positive("limit_price", d),
            rows_where(
                "order_type = 'limit' AND limit_price IS NULL", "limit_order_has_price", "a limit order has a price"
            ),
            rows_where("ts_updated < ts_created", "updated_after_created", "ts_updated >= ts_created"),
            unique_key(SPEC.key),
            query_rows(
                "SELECT o.client_order_id, o.amount, coalesce(sum(f.amount), 0) AS filled FROM {batch} AS o "
                "LEFT JOIN fills AS f ON f.client_order_id = o.client_order_id "
                f"WHERE o.status = '{OrderStatus.FILLED.value}' GROUP BY o.client_order_id, o.amount "
                "HAVING coalesce(sum(f.amount), 0) <> o.amount",
                "filled_order_fills_sum_to_amount",
                "the fills of a filled order sum to exactly the order's amount",
            ),
        ],
    )
