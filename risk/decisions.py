"""Records of what the risk engine decided, for ``risk.decisions.v1`` and PostgreSQL.

Every approval, denial, trading-state change and cancel-all instruction becomes one
:class:`RiskDecision`. The risk package does no I/O: flows publish ``to_record()`` (plain JSON types:
decimals as strings, times as integer microseconds since the epoch, like the market-data wire).

>>> from core.clock import parse_utc
>>> from core.orders import TradingState, TradingStateChanged
>>> change = TradingStateChanged("acct", TradingState.ACTIVE, TradingState.HALTED, "drawdown",
...                              parse_utc("2021-05-19T13:00:00Z"))
>>> rec = record(change, TradingState.HALTED).to_record()
>>> rec["kind"], rec["old"], rec["new"], rec["ts"]
('state_changed', 'active', 'halted', 1621429200000000)
"""

from __future__ import annotations

import enum
import hashlib
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import Any

from core.clock import from_epoch_us, to_epoch_us
from core.events import Side
from core.money import to_decimal
from core.orders import (
    _APPROVAL_TOKEN,
    ApprovedOrder,
    CancelAllOrders,
    DenialReason,
    OrderDenied,
    OrderIntent,
    OrderType,
    TradingState,
    TradingStateChanged,
)

TOPIC = "risk.decisions.v1"
RECORD_VERSION = 1

RiskOutcome = ApprovedOrder | OrderDenied | TradingStateChanged | CancelAllOrders


class DecisionKind(enum.StrEnum):
    APPROVED = "approved"
    DENIED = "denied"
    STATE_CHANGED = "state_changed"
    CANCEL_ALL = "cancel_all"


@dataclass(frozen=True, slots=True)
class RiskDecision:
    """One entry of the risk record: what happened, for which account, in which trading state, why."""

    decision_id: str
    kind: DecisionKind
    account: str
    trading_state: TradingState
    ts: datetime
    reasons: tuple[DenialReason, ...]
    event: RiskOutcome

    @property
    def key(self) -> str:
        """Kafka key: the risk gate is keyed by account."""
        return self.account

    def to_record(self) -> dict[str, Any]:
        """A flat JSON-ready dict (one row of ``risk_decisions``, one message of the topic)."""
        out: dict[str, Any] = {
            "v": RECORD_VERSION,
            "decision_id": self.decision_id,
            "kind": self.kind.value,
            "account": self.account,
            "trading_state": self.trading_state.value,
            "ts": to_epoch_us(self.ts),
            "reasons": [{"code": r.code, "message": r.message} for r in self.reasons],
        }
        event = self.event
        if isinstance(event, ApprovedOrder | OrderDenied):
            out.update(_intent_fields(event.intent))
        if isinstance(event, ApprovedOrder):
            out["approved_amount"] = str(event.amount)
            out["approved_price"] = None if event.price is None else str(event.price)
        elif isinstance(event, TradingStateChanged):
            out.update(old=event.old.value, new=event.new.value, reason=event.reason)
        elif isinstance(event, CancelAllOrders):
            out.update(reason=event.reason, keep_reduce_only=event.keep_reduce_only)
        return out


def _intent_fields(intent: OrderIntent) -> dict[str, Any]:
    return {
        "client_order_id": intent.client_order_id,
        "strategy": intent.strategy,
        "exchange": intent.exchange,
        "symbol": intent.symbol,
        "side": str(intent.side),
        "order_type": str(intent.order_type),
        "amount": str(intent.amount),
        "limit_price": None if intent.limit_price is None else str(intent.limit_price),
        "reduce_only": intent.reduce_only,
        "ts_event": to_epoch_us(intent.ts_event),
    }


def _event_id(*parts: object) -> str:
    return "rd-" + hashlib.sha256("\x1f".join(map(str, parts)).encode()).hexdigest()[:24]


def record(event: RiskOutcome, trading_state: TradingState) -> RiskDecision:
    """Wrap a gate outcome or a state-machine event as a :class:`RiskDecision`.

    ``trading_state`` is the account's state when the decision was taken.
    """
    if isinstance(event, ApprovedOrder):
        return RiskDecision(
            event.decision_id, DecisionKind.APPROVED, event.intent.account, trading_state, event.ts_decided, (), event
        )
    if isinstance(event, OrderDenied):
        return RiskDecision(
            event.decision_id,
            DecisionKind.DENIED,
            event.intent.account,
            trading_state,
            event.ts_decided,
            event.reasons,
            event,
        )
    if isinstance(event, TradingStateChanged):
        ident = _event_id(event.account, "state", event.new.value, to_epoch_us(event.ts))
        return RiskDecision(ident, DecisionKind.STATE_CHANGED, event.account, trading_state, event.ts, (), event)
    ident = _event_id(event.account, "cancel_all", event.keep_reduce_only, to_epoch_us(event.ts))
    return RiskDecision(ident, DecisionKind.CANCEL_ALL, event.account, trading_state, event.ts, (), event)


def approved_order_record(order: ApprovedOrder) -> dict[str, Any]:
    """The ``orders.v1`` message for an approved order (JSON-ready, decimals as strings)."""
    out = _intent_fields(order.intent)
    out.update(
        v=RECORD_VERSION,
        account=order.intent.account,
        approved_amount=str(order.amount),
        approved_price=None if order.price is None else str(order.price),
        decision_id=order.decision_id,
        ts_decided=to_epoch_us(order.ts_decided),
    )
    return out


def approved_order_from_record(rec: Mapping[str, Any]) -> ApprovedOrder:
    """Rebuild an approved order from its ``orders.v1`` message, for execution in another process.

    Trusts the record: only the risk flow writes ``orders.v1``. Raises ``KeyError`` / ``ValueError``
    on a malformed record (the caller quarantines it).

    >>> from core.clock import parse_utc
    >>> rec = {"v": 1, "account": "a", "strategy": "s", "exchange": "binance", "symbol": "BTC/USDT",
    ...        "side": "buy", "order_type": "limit", "amount": "0.01", "limit_price": "60000",
    ...        "reduce_only": False, "client_order_id": "b4-1", "ts_event": 0,
    ...        "approved_amount": "0.01", "approved_price": "60000", "decision_id": "rd-1", "ts_decided": 5}
    >>> order = approved_order_from_record(rec)
    >>> order.amount, order.price, approved_order_record(order) == rec
    (Decimal('0.01'), Decimal('60000'), True)
    """
    if rec.get("v") != RECORD_VERSION:
        raise ValueError(f"orders record version {rec.get('v')!r} is not {RECORD_VERSION}")
    intent = _intent_from_record(rec, checked=True)
    price = rec["approved_price"]
    return ApprovedOrder(
        intent,
        to_decimal(rec["approved_amount"], name="approved_amount"),
        None if price is None else to_decimal(price, name="approved_price"),
        str(rec["decision_id"]),
        from_epoch_us(int(rec["ts_decided"])),
        token=_APPROVAL_TOKEN,
    )


def _intent_from_record(rec: Mapping[str, Any], *, checked: bool) -> OrderIntent:
    """The intent fields of an order or decision record. ``checked=False`` keeps a denied intent's
    amount as recorded, even the NaN or negative value it was denied for."""

    def number(value: Any, name: str) -> Decimal:
        return to_decimal(value, name=name) if checked else Decimal(str(value))

    limit = rec["limit_price"]
    return OrderIntent(
        account=str(rec["account"]),
        strategy=str(rec["strategy"]),
        exchange=str(rec["exchange"]),
        symbol=str(rec["symbol"]),
        side=Side(rec["side"]),
        order_type=OrderType(rec["order_type"]),
        amount=number(rec["amount"], "amount"),
        limit_price=None if limit is None else number(limit, "limit_price"),
        reduce_only=bool(rec["reduce_only"]),
        client_order_id=str(rec["client_order_id"]),
        ts_event=from_epoch_us(int(rec["ts_event"])),
    )


def decision_from_record(rec: Mapping[str, Any]) -> RiskDecision:
    """Rebuild a :class:`RiskDecision` from :meth:`RiskDecision.to_record` (``ValueError`` /
    ``KeyError`` if malformed); an approval through :func:`approved_order_from_record`.

    >>> from core.clock import parse_utc
    >>> from core.orders import KillSwitch
    >>> from risk.config import RiskLimits
    >>> from risk.engine import RiskEngine
    >>> from core.clock import ManualClock
    >>> engine = RiskEngine("acct", RiskLimits(), ManualClock(parse_utc("2021-05-19T00:00:00Z")))
    >>> records = engine.kill(KillSwitch("acct", "ops", "test", parse_utc("2021-05-19T00:00:00Z")))
    >>> [decision_from_record(r.to_record()) == r for r in records]
    [True, True]
    """
    if rec.get("v") != RECORD_VERSION:
        raise ValueError(f"risk decision record version {rec.get('v')!r} is not {RECORD_VERSION}")
    kind = DecisionKind(rec["kind"])
    ts = from_epoch_us(int(rec["ts"]))
    account = str(rec["account"])
    state = TradingState(rec["trading_state"])
    reasons = tuple(DenialReason(str(r["code"]), str(r["message"])) for r in rec["reasons"])
    event: RiskOutcome
    if kind is DecisionKind.APPROVED:
        event = approved_order_from_record({**rec, "ts_decided": rec["ts"]})
    elif kind is DecisionKind.DENIED:
        event = OrderDenied(_intent_from_record(rec, checked=False), reasons, str(rec["decision_id"]), ts)
    elif kind is DecisionKind.STATE_CHANGED:
        event = TradingStateChanged(account, TradingState(rec["old"]), TradingState(rec["new"]), str(rec["reason"]), ts)
    else:
        event = CancelAllOrders(account, str(rec["reason"]), ts, bool(rec["keep_reduce_only"]))
    return RiskDecision(str(rec["decision_id"]), kind, account, state, ts, reasons, event)
