"""What the console API returns: the OpenAPI description is generated from these models.

Money, prices and amounts are decimal strings (``"61837.63"``), exactly as PostgreSQL holds them;
times are ISO 8601 in UTC. Nothing here carries a secret.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

Decimal = str  # a decimal number as a string, never a float


class _Out(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class ErrorDetail(_Out):
    """Why a request was refused or failed (one sentence naming the value and what was expected)."""

    detail: str


class ConsoleInfo(_Out):
    """What the UI needs to know about this server (no secret, only whether one is set)."""

    mode: str
    commands_enabled: bool
    read_only: bool
    token_configured: bool
    reports_dir: str
    live_topics: list[str]
    live_following: list[str] = Field(description="live topics found on the broker and followed from their end")
    absent: list[str] = Field(description="parts of the issue this server cannot show yet, and why")


class Account(_Out):
    account: str
    trading_state: str | None = Field(description="latest state the risk engine recorded; null if none yet")
    state_since: datetime | None
    orders: int
    open_orders: int
    fills: int
    last_fill_at: datetime | None


class Position(_Out):
    account: str
    exchange: str
    symbol: str
    quote_currency: str
    amount: Decimal
    average_price: Decimal | None
    mark: Decimal
    mark_source: Literal["trade", "fill"]
    mark_at: datetime | None
    notional: Decimal
    realized_pnl: Decimal
    unrealized_pnl: Decimal
    fees: Decimal
    fills: int


class Order(_Out):
    client_order_id: str
    account: str
    strategy: str
    exchange: str
    symbol: str
    side: str
    order_type: str
    amount: Decimal
    limit_price: Decimal | None
    status: str
    venue_order_id: str | None
    ts_created: datetime
    ts_updated: datetime
    filled: Decimal


class OrderEvent(_Out):
    seq: int
    event: str
    status_before: str
    status_after: str
    detail: dict[str, Any]
    ts_event: datetime


class Fill(_Out):
    exchange: str
    fill_id: str
    client_order_id: str
    account: str
    symbol: str
    side: str
    price: Decimal
    amount: Decimal
    notional: Decimal
    fee: Decimal
    fee_currency: str | None
    liquidity: str | None
    ts_event: datetime


class OrderDetail(_Out):
    order: Order
    events: list[OrderEvent]
    fills: list[Fill]


class EquityPoint(_Out):
    ts_event: datetime
    equity: Decimal
    cash: Decimal
    gross_exposure: Decimal
    net_exposure: Decimal
    realized_pnl: Decimal
    unrealized_pnl: Decimal
    peak_equity: Decimal
    drawdown: Decimal


class EquityCurve(_Out):
    account: str
    points: list[EquityPoint]
    max_drawdown: Decimal | None


class Reason(_Out):
    code: str
    message: str


class Decision(_Out):
    decision_id: str
    account: str
    client_order_id: str | None
    kind: str
    trading_state: str
    reasons: list[Reason]
    detail: dict[str, Any]
    ts_event: datetime


class Breaker(_Out):
    name: str
    status: str
    reason: str
    since: datetime


class CommandRecord(_Out):
    id: int
    kind: str = Field(description="kill_switch, reset_breaker, pause_strategy or resume_strategy")
    account: str
    breaker: str | None
    strategy: str | None = Field(description="the strategy a pause_strategy or resume_strategy names")
    requested_by: str
    reason: str
    via: str
    ts: datetime
    recorded_at: datetime


class RiskState(_Out):
    account: str
    trading_state: str | None
    since: datetime | None
    last_change_reason: str | None
    breakers: list[Breaker] = Field(description="breakers named in the recorded state changes, latest status each")
    pending_commands: list[CommandRecord] = Field(
        description="commands sent after the latest recorded state change (not yet acted on by the risk engine)"
    )


class StrategyStatus(_Out):
    """One strategy on one account: seen in the stored signals or named by a pause/resume command."""

    account: str
    strategy: str
    paused: bool = Field(
        description="the latest pause/resume command for this strategy on this account (or on '*') is a pause"
    )
    last_command: CommandRecord | None = Field(description="that latest pause/resume command, if any")
    signals: int = Field(description="signals stored for this pair")
    last_signal_at: datetime | None


class Freshness(_Out):
    key: str = Field(description="exchange:SYMBOL")
    exchange: str
    symbol: str
    last_trade_at: datetime | None
    last_quote_at: datetime | None
    last_candle_at: datetime | None
    age_seconds: float | None = Field(description="now minus the newest of the three, in seconds")
    dead_letters: int


class DeadLetterCount(_Out):
    key: str | None = Field(description="the record's Kafka key (exchange:SYMBOL) when it had one")
    stage: str
    reason: str
    count: int
    last_at: datetime


class ValidationRun(_Out):
    run_id: str
    backend: str
    tables: list[str]
    symbol: str | None
    range_start: datetime | None
    range_end: datetime | None
    started_at: datetime
    finished_at: datetime
    success: bool
    batches: int
    rows_validated: int
    failed_checks: int
    report_url: str | None


class BacktestReport(_Out):
    name: str
    modified_at: datetime
    has_json: bool
    has_html: bool
    json_url: str | None
    html_url: str | None


class Candle(_Out):
    ts: datetime
    open: Decimal
    high: Decimal
    low: Decimal
    close: Decimal
    volume: Decimal
    trades: int


class SignalMark(_Out):
    strategy: str
    account: str
    side: str
    strength: float
    confidence: float
    model_version: str | None
    ts_event: datetime


class SymbolChart(_Out):
    key: str
    interval_seconds: int
    source: Literal["candles", "trades"] = Field(
        description="stored candles of that timeframe when there are any, else bars built from stored trades"
    )
    candles: list[Candle]
    fills: list[Fill]
    signals: list[SignalMark]


class ModelScore(_Out):
    """A model's newest prequential scores on one instrument (null: undefined so far)."""

    model: str
    model_version: str
    symbol: str
    ts_event: datetime
    n_labels: int
    window_size: int
    log_loss: float | None
    roc_auc: float | None
    accuracy: float | None
    brier: float | None
    rolling_log_loss: float | None
    rolling_roc_auc: float | None
    rolling_accuracy: float | None
    rolling_brier: float | None
    drift_events: int
    last_drift_action: str | None
    last_drift_at: datetime | None


#: Text that goes on the record must say something: blank or whitespace-only values are refused (422).
_SAYS_SOMETHING = r"\S"


class KillRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    account: str = Field(
        min_length=1, max_length=100, pattern=_SAYS_SOMETHING, description="account to halt; '*' halts every account"
    )
    reason: str = Field(min_length=1, max_length=500, pattern=_SAYS_SOMETHING)
    operator: str = Field(
        min_length=1, max_length=100, pattern=_SAYS_SOMETHING, description="who is asking (goes on the record)"
    )
    confirm: Literal["KILL"] = Field(description="must be the word KILL")


class ResetRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    account: str = Field(min_length=1, max_length=100, pattern=_SAYS_SOMETHING)
    breaker: str = Field(
        min_length=1, max_length=100, pattern=_SAYS_SOMETHING, description="e.g. kill_switch, drawdown, daily_loss"
    )
    reason: str = Field(min_length=1, max_length=500, pattern=_SAYS_SOMETHING)
    operator: str = Field(min_length=1, max_length=100, pattern=_SAYS_SOMETHING)
    confirm: Literal["RESET"] = Field(description="must be the word RESET")


class PauseRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    account: str = Field(
        min_length=1, max_length=100, pattern=_SAYS_SOMETHING, description="account; '*' pauses it on every account"
    )
    strategy: str = Field(
        min_length=1, max_length=100, pattern=_SAYS_SOMETHING, description="strategy name as in its signals"
    )
    reason: str = Field(min_length=1, max_length=500, pattern=_SAYS_SOMETHING)
    operator: str = Field(min_length=1, max_length=100, pattern=_SAYS_SOMETHING)
    confirm: Literal["PAUSE"] = Field(description="must be the word PAUSE")


class ResumeRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    account: str = Field(
        min_length=1, max_length=100, pattern=_SAYS_SOMETHING, description="account; '*' resumes it on every account"
    )
    strategy: str = Field(min_length=1, max_length=100, pattern=_SAYS_SOMETHING)
    reason: str = Field(min_length=1, max_length=500, pattern=_SAYS_SOMETHING)
    operator: str = Field(min_length=1, max_length=100, pattern=_SAYS_SOMETHING)
    confirm: Literal["RESUME"] = Field(description="must be the word RESUME")


class CommandAccepted(_Out):
    kind: str
    account: str
    breaker: str | None
    strategy: str | None
    requested_by: str
    reason: str
    ts: datetime
    topic: str
