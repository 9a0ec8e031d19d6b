"""risk_decisions: every approval, denial and trading-state change of the risk gate.

Every approved order reaches a terminal state (filled, canceled, rejected, expired) in ``orders``
within :data:`TERMINAL_WITHIN` of its approval: an approval older than that (by the run's clock,
``window.now``) whose order is missing or still open is a lost or stuck order. Younger approvals
are not judged: their orders may still be working.

>>> TERMINAL_WITHIN
datetime.timedelta(days=1)
"""

from __future__ import annotations

from datetime import timedelta
from typing import TYPE_CHECKING

from core.fills import OrderStatus
from core.orders import TradingState
from quality.suites._spec import (
    Column,
    TableSpec,
    Window,
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
    table="risk_decisions",
    columns=(
        Column("decision_id", "text"),
        Column("account", "text"),
        Column("client_order_id", "text", nullable=True),
        Column("kind", "text"),
        Column("trading_state", "text"),
        Column("reasons", "json"),
        Column("detail", "json"),
        Column("ts_event", "ts"),
    ),
    key=("decision_id",),
    time_column="ts_event",
    symbol_column=None,
)

#: What the gate records (risk.decisions.DecisionKind, plus the kill switch the schema names).
KINDS = ("approved", "denied", "state_changed", "cancel_all", "kill_switch")

#: How long an approved order may stay open before validation calls it stuck. The gate approves
#: market and short-lived limit orders for bars of minutes; a day is far beyond any of them.
TERMINAL_WITHIN = timedelta(days=1)


def build(window: Window) -> ExpectationSuite:
    """Not-null, known kind and state, unique id, approvals and denials name their order, approved
    orders end in a terminal state."""
    d = window.dialect
    terminal = ", ".join(f"'{s.value}'" for s in OrderStatus if s.is_terminal)
    judged_before = window.literal(window.now - TERMINAL_WITHIN)
    hours = TERMINAL_WITHIN / timedelta(hours=1)
    return suite_of(
        "risk_decisions",
        [
            *not_null(SPEC, d),
            in_set("kind", KINDS),
            in_set("trading_state", tuple(s.value for s in TradingState)),
            unique_key(SPEC.key),
            rows_where(
                "kind IN ('approved', 'denied') AND client_order_id IS NULL",
                "order_decision_has_client_order_id",
                "an approval or denial names the client order id it decided",
            ),
            query_rows(
                "SELECT d.decision_id, d.client_order_id, d.ts_event, o.status FROM {batch} AS d "
                "LEFT JOIN orders AS o ON o.client_order_id = d.client_order_id "
                f"WHERE d.kind = 'approved' AND d.ts_event < {judged_before} "
                f"AND (o.client_order_id IS NULL OR o.status NOT IN ({terminal}))",
                "approved_order_reaches_terminal_state",
                f"every approved order is in orders and terminal ({terminal}) within {hours:g} h of approval",
            ),
        ],
    )
