"""Trading vocabulary: signals, order intents, the gate's verdicts, trading states, risk commands.

A strategy turns a :class:`Signal` into an :class:`OrderIntent` (a request to trade). The risk gate
(``risk.gate.evaluate``) answers with an :class:`ApprovedOrder` or an :class:`OrderDenied`. Only
the gate can build an :class:`ApprovedOrder`, so execution can trust any instance it receives.

Client order ids are derived from (strategy, symbol, signal time), so a replayed or restarted flow
emits the same id and a venue adapter can refuse the duplicate:

>>> from core.clock import parse_utc
>>> client_order_id("trend-v1", "BTC/USDT", parse_utc("2021-05-19T13:00:00Z"))
'b4-f6ddd87cdff465926517c288'
>>> ApprovedOrder(None, None, None, "forged", None, token=object())
Traceback (most recent call last):
...
TypeError: ApprovedOrder can be created only by risk.gate.evaluate; submit an OrderIntent to the gate
"""

from __future__ import annotations

import enum
import hashlib
import math
from dataclasses import InitVar, dataclass
from datetime import datetime
from decimal import Decimal

from core.clock import require_utc, to_epoch_us
from core.events import Side
from core.symbols import instrument_key

# Checked by ApprovedOrder.__post_init__; only risk.gate passes it. Python cannot hide a name, so
# this guards against accidental construction (and dataclasses.replace), not against malice.
_APPROVAL_TOKEN = object()


class TradingState(enum.StrEnum):
    """What the risk gate lets through for one account.

    ACTIVE: every order the checks allow. REDUCING: only reduce-only orders that shrink a position.
    HALTED: no new orders at all (cancels never need approval).
    """

    ACTIVE = "active"
    REDUCING = "reducing"
    HALTED = "halted"

    @property
    def severity(self) -> int:
        """0 for ACTIVE, 1 for REDUCING, 2 for HALTED: the stricter state wins when combined.

        >>> max(TradingState.REDUCING, TradingState.HALTED, key=lambda s: s.severity)
        <TradingState.HALTED: 'halted'>
        """
        return _SEVERITY[self]


_SEVERITY = {TradingState.ACTIVE: 0, TradingState.REDUCING: 1, TradingState.HALTED: 2}


class OrderType(enum.StrEnum):
    MARKET = "market"
    LIMIT = "limit"


def client_order_id(strategy: str, symbol: str, signal_ts: datetime) -> str:
    """Deterministic client order id: the same inputs give the same id in every process.

    Built from SHA-256 (not ``hash()``, which is salted per process); 27 characters of
    ``[a-z0-9-]``, inside every major venue's limit (Binance: 36).

    >>> from core.clock import parse_utc
    >>> ts = parse_utc("2024-08-08T23:54:15Z")
    >>> client_order_id("s", "BTC/USDT", ts) == client_order_id("s", "BTC/USDT", ts)
    True
    >>> client_order_id("s", "BTC/USDT", ts) == client_order_id("s", "ETH/USDT", ts)
    False
    """
    ts = require_utc(signal_ts, "signal_ts")
    digest = hashlib.sha256(f"{strategy}\x1f{symbol}\x1f{to_epoch_us(ts)}".encode()).hexdigest()
    return f"b4-{digest[:24]}"


@dataclass(frozen=True, slots=True)
class Signal:
    """A model's or strategy's view on one instrument; not yet an order.

    ``strength`` (how much of the strategy's allocation to use) and ``confidence`` are in [0, 1].
    """

    strategy: str
    account: str
    exchange: str
    symbol: str
    side: Side
    strength: float
    confidence: float
    reasons: tuple[str, ...]
    model_version: str
    ts_event: datetime

    def __post_init__(self) -> None:
        for name in ("strength", "confidence"):
            value = getattr(self, name)
            if not (isinstance(value, int | float) and math.isfinite(value) and 0 <= value <= 1):
                raise ValueError(f"Signal.{name} must be a finite number in [0, 1], got {value!r}")
        require_utc(self.ts_event, "Signal.ts_event")

    @property
    def key(self) -> str:
        return instrument_key(self.exchange, self.symbol)


@dataclass(frozen=True, slots=True)
class OrderIntent:
    """A request to trade, not yet approved.

    Values are not validated here on purpose: the gate is the one place that judges them, and a bad
    value (NaN, negative, absurd) becomes a denial with a reason instead of an exception upstream.
    ``limit_price`` is required for limit orders and must be None for market orders.
    """

    account: str
    strategy: str
    exchange: str
    symbol: str
    side: Side
    order_type: OrderType
    amount: Decimal
    limit_price: Decimal | None
    reduce_only: bool
    client_order_id: str
    ts_event: datetime

    @property
    def key(self) -> str:
        return instrument_key(self.exchange, self.symbol)


@dataclass(frozen=True, slots=True)
class DenialReason:
    """Why the gate refused: a stable machine ``code`` and a message naming value and limit."""

    code: str
    message: str


@dataclass(frozen=True, slots=True)
class ApprovedOrder:
    """An intent the gate approved, with the amount and price it approved (rounded to the venue).

    Only ``risk.gate.evaluate`` can create one (it holds the token); execution accepts nothing else.
    """

    intent: OrderIntent
    amount: Decimal
    price: Decimal | None
    decision_id: str
    ts_decided: datetime
    token: InitVar[object]

    def __post_init__(self, token: object) -> None:
        if token is not _APPROVAL_TOKEN:
            raise TypeError(
                "ApprovedOrder can be created only by risk.gate.evaluate; submit an OrderIntent to the gate"
            )

    @property
    def client_order_id(self) -> str:
        return self.intent.client_order_id

    @property
    def key(self) -> str:
        return self.intent.key


@dataclass(frozen=True, slots=True)
class OrderDenied:
    """The gate refused ``intent``; ``reasons`` lists every check that failed, never empty."""

    intent: OrderIntent
    reasons: tuple[DenialReason, ...]
    decision_id: str
    ts_decided: datetime

    def __post_init__(self) -> None:
        if not self.reasons:
            raise ValueError("OrderDenied needs at least one reason")

    @property
    def codes(self) -> tuple[str, ...]:
        return tuple(r.code for r in self.reasons)


@dataclass(frozen=True, slots=True)
class TradingStateChanged:
    """An account's trading state moved from ``old`` to ``new`` at ``ts`` because of ``reason``."""

    account: str
    old: TradingState
    new: TradingState
    reason: str
    ts: datetime


@dataclass(frozen=True, slots=True)
class CancelAllOrders:
    """Instruction for execution: cancel the account's open orders.

    ``keep_reduce_only`` keeps resting reduce-only orders (stop-losses, take-profits) alive: a
    breaker that halts new risk should not remove the orders that take risk off. The kill switch
    cancels everything.
    """

    account: str
    reason: str
    ts: datetime
    keep_reduce_only: bool


@dataclass(frozen=True, slots=True)
class KillSwitch:
    """Command from a person (CLI, file or Kafka): cancel every open order and halt the account."""

    account: str
    requested_by: str
    reason: str
    ts: datetime


@dataclass(frozen=True, slots=True)
class ResetBreaker:
    """Command from a person: close breaker ``breaker`` (e.g. ``drawdown``, ``kill_switch``)."""

    account: str
    breaker: str
    requested_by: str
    reason: str
    ts: datetime


@dataclass(frozen=True, slots=True)
class PauseStrategy:
    """Command from a person: stop strategy ``strategy`` of ``account`` from opening positions.

    The account keeps trading its other strategies; the paused strategy's entries are denied
    (code ``strategy_paused``) until a :class:`ResumeStrategy` for the same pair arrives, while its
    exits still go to the gate. Open orders and positions are left as they are: pausing is not a
    kill switch. ``account="*"`` pauses the strategy on every account.
    """

    account: str
    strategy: str
    requested_by: str
    reason: str
    ts: datetime


@dataclass(frozen=True, slots=True)
class ResumeStrategy:
    """Command from a person: lift a :class:`PauseStrategy` of ``strategy`` on ``account``."""

    account: str
    strategy: str
    requested_by: str
    reason: str
    ts: datetime
