"""risk_decisions: every approval, denial and trading-state change of the risk gate."""

from __future__ import annotations

from typing import TYPE_CHECKING

from core.orders import TradingState
from quality.suites._spec import Column, TableSpec, Window, in_set, not_null, rows_where, suite_of, unique_key

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


def build(window: Window) -> ExpectationSuite:
    """Not-null, known kind and state, unique id, approvals and denials name their order."""
    d = window.dialect
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
        ],
    )
