"""fills: executions reported by the venue (paper, testnet or live)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from quality.suites._spec import (
    Column,
    TableSpec,
    Window,
    finite,
    finite_positive,
    in_set,
    not_null,
    query_rows,
    suite_of,
    unique_key,
)

if TYPE_CHECKING:
    from great_expectations.core.expectation_suite import ExpectationSuite

SPEC = TableSpec(
    table="fills",
    columns=(
        Column("exchange", "text"),
        Column("fill_id", "text"),
        Column("client_order_id", "text"),
        Column("account", "text"),
        Column("symbol", "text"),
        Column("side", "text"),
        Column("price", "numeric"),
        Column("amount", "numeric"),
        Column("fee", "numeric"),
        Column("fee_currency", "text", nullable=True),
        Column("liquidity", "text", nullable=True),
        Column("ts_event", "ts"),
    ),
    key=("exchange", "fill_id"),
    time_column="ts_event",
)


def build(window: Window) -> ExpectationSuite:
    """Not-null, side, liquidity, finite positive price and amount, finite fee, unique, within the order."""
    d = window.dialect
    return suite_of(
        "fills",
        [
            *not_null(SPEC, d),
            in_set("side", ("buy", "sell")),
            in_set("liquidity", ("maker", "taker")),
            *finite_positive("price", d),
            *finite_positive("amount", d),
            finite("fee", d),
            unique_key(SPEC.key),
            # Fills of one order (all days) never add up to more than the order's amount.
            query_rows(
                "SELECT f.client_order_id, o.amount, sum(f.amount) AS filled FROM {batch} AS day "
                "JOIN fills AS f ON f.client_order_id = day.client_order_id "
                "JOIN orders AS o ON o.client_order_id = f.client_order_id "
                "GROUP BY f.client_order_id, o.amount HAVING sum(f.amount) > o.amount",
                "fills_within_order_amount",
                "the fills of an order sum to at most the order's amount",
            ),
        ],
    )
