"""The one place where ccxt exceptions become Bot4 actions for order traffic (retry, reject, halt).

Translation table of :func:`translate_ccxt_error`, most specific first (ccxt exception, venue
answer -> Bot4 error -> action). Venue answers: Binance ``{"code":..,"msg":..}``; Kraken
``{"error":["EOrder:Insufficient funds"]}`` (HTTP 200; code ``EOrder``, message after the first
colon); Coinbase ``{"success":false,"error_response":{"error":..,"message":..}}`` on a create,
``{"error":..,"message":..}`` or ``{"errors":[{"id":..,"message":..}]}`` otherwise.

1. ``InsufficientFunds`` (Binance -2010 "Account has insufficient balance...", Kraken
   "EOrder:Insufficient funds") -> :class:`OrderRejected` ``insufficient_balance``: reject.
2. ``OrderNotFound`` (Binance -2011 "Unknown order sent.", -2013 "Order does not exist."), Kraken
   "EOrder:Unknown order" (ccxt raises InvalidOrder), Coinbase "order with this orderID was not
   found" (ccxt 4.5.90's Python table spells it "self orderID" and raises a plain ExchangeError) ->
   :class:`OrderNotAtVenue`: a fetch answers None, a cancel is refused.
2b. a Coinbase create answered ``success: false`` with an ``error_response`` (ccxt raises a plain
   ``ExchangeError`` from its generic handler before its own table): :class:`OrderRejected`,
   ``insufficient_balance`` for INSUFFICIENT_FUND, else ``invalid_order``; the venue's code and
   message are kept.
3. ``DuplicateOrderId`` or "Duplicate order sent." (Binance -2010) -> :class:`OrderRejected`
   ``duplicate_client_order_id``: the order manager adopts the venue's order, never resends.
4. ``BadSymbol`` / ``NotSupported`` / ``ArgumentsRequired`` -> ``ConfigError``: fix the settings.
5. ``InvalidOrder``, or ``BadRequest`` on a submit (Binance -1013 "Filter failure: X", other -2010;
   Kraken "EOrder:Order minimum not met", "EGeneral:Invalid arguments") -> :class:`OrderRejected`:
   ``below_min_notional`` (MIN_NOTIONAL / NOTIONAL), ``bad_amount_precision`` (LOT_SIZE /
   MARKET_LOT_SIZE), ``bad_price_precision`` (PRICE_FILTER), ``filter_<name>`` (another filter),
   ``below_min_amount`` (Kraken's order minimum), ``invalid_order``: reject.
6. ``InvalidNonce`` (Binance -1021, clock skew) -> :class:`RetryVenueCall` ``clock_skew``.
7. ``RateLimitExceeded`` / ``DDoSProtection`` (HTTP 429 / 418, Binance -1003, -1015, Kraken
   "EAPI:Rate limit exceeded", "EOrder:Rate limit exceeded", "EGeneral:Too many requests") ->
   :class:`RetryVenueCall` ``rate_limited``: wait Retry-After.
8. ``RequestTimeout`` / ``TimeoutError`` (Binance -1007) -> ``timeout``.
9. ``OnMaintenance`` / ``ExchangeNotAvailable`` (5xx; Kraken "EService:Unavailable", "EService:Busy",
   "EGeneral:Internal error", HTTP 520) -> ``unavailable``.
10. ``NetworkError`` / ``OSError`` (reset connection) -> ``network``.
11. ``BadResponse`` (``NullResponse``) -> ``bad_response``.
12. ``OperationFailed`` (Binance -1001, -1006, -1008) -> ``operation_failed``.
13. ``AuthenticationError`` / ``PermissionDenied`` / ``AccountSuspended`` -> ``HaltAndAlert``: keys,
    IP whitelist or account.
14. a generic ``ExchangeError`` answered with HTTP 429/418 or 5xx -> ``rate_limited`` / ``unavailable``.
15. anything else (a ``BadRequest`` on a read included) -> ``HaltAndAlert``: read the venue's answer.

Whether a :class:`RetryVenueCall` may be retried is the caller's decision: reads and cancels are
idempotent and are retried with backoff; a submit is retried only when the venue said it did not
process it (``rate_limited``: Binance answers 429/418 before the matching engine sees the order),
otherwise its outcome is unknown and it is looked up by client order id, never resent. Only
Binance documents that; for Kraken and Coinbase a ``rate_limited`` submit is looked up too.

>>> import ccxt
>>> err = translate_ccxt_error(ccxt.InvalidOrder('binance {"code":-1013,"msg":"Filter failure: MIN_NOTIONAL"}'),
...                            exchange="binance", operation="create_order")
>>> err.reason, err.venue_code, err.venue_message
('below_min_notional', '-1013', 'Filter failure: MIN_NOTIONAL')
>>> translate_ccxt_error(ccxt.DDoSProtection("429"), exchange="binance", operation="create_order",
...                      retry_after_s=1.5).retry_after_s
1.5
"""

from __future__ import annotations

import contextvars
import email.utils
import json
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Protocol

import ccxt

from core.errors import Bot4Error, ConfigError, HaltAndAlert, RetryLater
from execution.venue import DUPLICATE_CLIENT_ORDER_ID

SUBMIT = "create_order"


class RetryVenueCall(RetryLater):
    """A transient failure: an idempotent call may be retried after a backoff (or Retry-After).

    ``reason``: rate_limited, timeout, unavailable, network, bad_response, operation_failed,
    clock_skew. ``http_status`` is the status of the answer when one arrived (None: no answer).
    """

    def __init__(
        self, message: str, *, reason: str, retry_after_s: float | None = None, http_status: int | None = None
    ) -> None:
        super().__init__(message, retry_after_s)
        self.reason = reason
        self.http_status = http_status


class OrderRejected(Bot4Error):
    """The venue refused the order; it does not exist there. Not retried: the strategy decides.

    ``reason`` is a stable code; ``venue_code`` / ``venue_message`` are what the venue said.
    """

    def __init__(self, message: str, *, reason: str, venue_code: str = "", venue_message: str = "") -> None:
        super().__init__(message)
        self.reason = reason
        self.venue_code = venue_code
        self.venue_message = venue_message

    @property
    def report_reason(self) -> str:
        """The reason carried by the REJECT report: the stable code, then the venue's own words."""
        if self.reason == DUPLICATE_CLIENT_ORDER_ID or not self.venue_message:
            return self.reason
        return f"{self.reason}: {self.venue_code} {self.venue_message}".strip()


class OrderNotAtVenue(Bot4Error):
    """The venue has no (open) order with the id asked for (Binance -2011 / -2013)."""


def venue_answer(exc: BaseException, body: str | None = None) -> tuple[str, str]:
    """The venue's ``(code, message)``: from the answer's ``body`` when there was one, else from the
    ccxt exception text (``'binance {"code":..,"msg":..}'``).

    >>> venue_answer(ccxt.InvalidOrder('binance {"code":-2010,"msg":"Duplicate order sent."}'))
    ('-2010', 'Duplicate order sent.')
    >>> venue_answer(ccxt.InsufficientFunds("binance Account has insufficient balance"),
    ...              '{"code":-2010,"msg":"Account has insufficient balance"}')
    ('-2010', 'Account has insufficient balance')
    >>> venue_answer(ccxt.InsufficientFunds('kraken {"error":["EOrder:Insufficient funds"]}'))
    ('EOrder', 'Insufficient funds')
    >>> venue_answer(ccxt.ExchangeError("coinbase"), '{"success":false,"error_response":'
    ...              '{"error":"INSUFFICIENT_FUND","message":"Insufficient balance in source account"}}')
    ('INSUFFICIENT_FUND', 'Insufficient balance in source account')
    >>> venue_answer(ccxt.NetworkError("reset"))
    ('', '')
    """
    if body:
        code, message = _json_answer(body)
        if code or message:
            return code, message
    return _json_answer(str(exc))


def _json_answer(text: str) -> tuple[str, str]:
    start, end = text.find("{"), text.rfind("}")
    if start < 0 or end < start:
        return "", ""
    try:
        body = json.loads(text[start : end + 1])
    except ValueError:
        return "", ""
    if not isinstance(body, dict):
        return "", ""
    errors = body.get("error")
    if isinstance(errors, list):  # Kraken: {"error": ["EOrder:Insufficient funds"], ...}
        if not errors:
            return "", ""
        code, _, message = str(errors[0]).partition(":")
        return code, message
    nested = body.get("error_response")
    if isinstance(nested, dict):  # Coinbase create: {"success": false, "error_response": {...}}
        body = nested
    listed = body.get("errors")
    if isinstance(listed, list) and listed and isinstance(listed[0], dict):  # Coinbase v2
        return str(listed[0].get("id") or ""), str(listed[0].get("message") or "")
    raw_code = body.get("code", body.get("error"))
    return ("" if raw_code is None else str(raw_code)), str(body.get("msg", body.get("message", "")))


def _refused_create(text: str | None) -> bool:
    """A Coinbase create answer that refuses the order: ``success`` false with an ``error_response``."""
    if not text:
        return False
    start = text.find("{")
    try:
        body = json.loads(text[start:]) if start >= 0 else None
    except ValueError:
        return False
    return isinstance(body, dict) and body.get("success") is False and isinstance(body.get("error_response"), dict)


_FILTER_REASONS = {
    "MIN_NOTIONAL": "below_min_notional",
    "NOTIONAL": "below_min_notional",
    "LOT_SIZE": "bad_amount_precision",
    "MARKET_LOT_SIZE": "bad_amount_precision",
    "PRICE_FILTER": "bad_price_precision",
}


#: Venue reject codes and messages (Kraken, Coinbase) with a reason of their own.
_VENUE_REJECTS = {
    "Order minimum not met": "below_min_amount",  # Kraken EOrder
    "INSUFFICIENT_FUND": "insufficient_balance",  # Coinbase
    "PREVIEW_INSUFFICIENT_FUND": "insufficient_balance",  # Coinbase
}


def _reject_reason(message: str, code: str = "") -> str:
    if message == "Duplicate order sent.":
        return DUPLICATE_CLIENT_ORDER_ID
    for key in (message, code):
        if key in _VENUE_REJECTS:
            return _VENUE_REJECTS[key]
    _, sep, name = message.partition("Filter failure: ")
    if sep:
        name = name.strip()
        return _FILTER_REASONS.get(name, f"filter_{name.lower()}")
    return "invalid_order"


def translate_ccxt_error(
    exc: BaseException,
    *,
    exchange: str,
    operation: str,
    retry_after_s: float | None = None,
    http_status: int | None = None,
    body: str | None = None,
) -> Bot4Error:
    """What must be done about ``exc`` raised by ccxt during ``operation`` (table in the module doc);
    ``http_status`` and ``body`` are those of the venue's answer when one arrived."""
    where = f"{exchange} {operation}"
    code, message = venue_answer(exc, body)

    def retry(reason: str) -> RetryVenueCall:
        return RetryVenueCall(
            f"{where}: {reason}: {exc}", reason=reason, retry_after_s=retry_after_s, http_status=http_status
        )

    def reject(reason: str) -> OrderRejected:
        return OrderRejected(f"{where} refused: {exc}", reason=reason, venue_code=code, venue_message=message)

    if isinstance(exc, ccxt.InsufficientFunds):
        return reject("insufficient_balance")
    if (
        isinstance(exc, ccxt.OrderNotFound)
        or (code, message) == ("EOrder", "Unknown order")
        or "orderID was not found" in message
    ):
        return OrderNotAtVenue(f"{where}: {exc}")
    if operation == SUBMIT and _refused_create(body or str(exc)):
        return reject(_reject_reason(message, code))
    if isinstance(exc, ccxt.DuplicateOrderId) or message == "Duplicate order sent.":
        return reject(DUPLICATE_CLIENT_ORDER_ID)
    # BadSymbol is a BadRequest: checked before the order rejects.
    if isinstance(exc, ccxt.BadSymbol | ccxt.NotSupported | ccxt.ArgumentsRequired):
        return ConfigError(f"{where}: {type(exc).__name__}: {exc}")
    if isinstance(exc, ccxt.InvalidOrder) or (operation == SUBMIT and isinstance(exc, ccxt.BadRequest)):
        return reject(_reject_reason(message, code))
    if isinstance(exc, ccxt.InvalidNonce):
        return retry("clock_skew")
    if isinstance(exc, ccxt.RateLimitExceeded | ccxt.DDoSProtection):
        return retry("rate_limited")
    if isinstance(exc, ccxt.RequestTimeout | TimeoutError):
        return retry("timeout")
    if isinstance(exc, ccxt.OnMaintenance | ccxt.ExchangeNotAvailable):
        return retry("unavailable")
    if isinstance(exc, ccxt.NetworkError | ConnectionError | OSError):
        return retry("network")
    if isinstance(exc, ccxt.BadResponse):
        return retry("bad_response")
    if isinstance(exc, ccxt.OperationFailed):
        return retry("operation_failed")
    if isinstance(exc, ccxt.AuthenticationError | ccxt.PermissionDenied | ccxt.AccountSuspended):
        return HaltAndAlert(
            f"{where}: the venue refused our credentials or account: {exc}",
            operator_action=(
                f"Check the {exchange} API key and secret (BOT4_EXCHANGE__API_KEY / BOT4_EXCHANGE__API_SECRET), "
                "their trading permission and IP whitelist, and the account's status; then reset the halt."
            ),
        )
    if type(exc) is ccxt.ExchangeError and http_status is not None:
        if http_status in (418, 429):
            return retry("rate_limited")
        if http_status >= 500:
            return retry("unavailable")
    return HaltAndAlert(
        f"{where} failed with {type(exc).__name__}: {exc}",
        operator_action=(
            f"Read the {exchange} answer above; reconcile the account (OrderManager.reconcile) before "
            "resetting the halt. If the venue changed its API, pin or upgrade ccxt."
        ),
    )


# ----------------------------------------------------------------------------------------------
# The HTTP status and headers of the answer behind an exception (ccxt does not attach them)


@dataclass
class ResponseNote:
    """Status and headers of the last HTTP answer of the current call."""

    status: int | None = None
    headers: Mapping[str, str] | None = None
    body: str | None = None


LAST_RESPONSE: contextvars.ContextVar[ResponseNote | None] = contextvars.ContextVar(
    "bot4_ccxt_order_last_response", default=None
)


def record_response(code: int, headers: Mapping[str, str], body: str | None) -> None:
    """Called from the ccxt client's ``on_rest_response`` hook."""
    note = LAST_RESPONSE.get()
    if note is not None:
        note.status, note.headers, note.body = code, headers, body


def parse_retry_after(value: str | None, now: datetime) -> float | None:
    """Seconds to wait from a Retry-After header (delta-seconds or an HTTP date).

    >>> from core.clock import parse_utc
    >>> parse_retry_after("3", parse_utc("2024-01-01T00:00:00Z"))
    3.0
    >>> parse_retry_after("Mon, 01 Jan 2024 00:00:05 GMT", parse_utc("2024-01-01T00:00:00Z"))
    5.0
    """
    if value is None or not value.strip():
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        return None
    return max(0.0, (when - now).total_seconds())


class Rng(Protocol):
    """Source of jitter: ``random()`` in [0, 1)."""

    def random(self) -> float: ...


class Backoff:
    """Exponential backoff with jitter in ``[initial, maximum]``; a longer Retry-After wins.

    >>> class Mid:
    ...     def random(self) -> float:
    ...         return 0.5
    >>> b = Backoff(0.5, 30.0, 2.0, 0.2, Mid())
    >>> [round(b.next_delay(), 3) for _ in range(4)], b.next_delay(retry_after_s=60.0)
    ([0.5, 0.9, 1.8, 3.6], 60.0)
    """

    def __init__(self, initial: float, maximum: float, multiplier: float, jitter: float, rng: Rng) -> None:
        self.initial, self.maximum, self.multiplier, self.jitter = initial, maximum, multiplier, jitter
        self.rng = rng
        self.attempt = 0

    def next_delay(self, retry_after_s: float | None = None) -> float:
        base = min(self.maximum, self.initial * self.multiplier**self.attempt)
        self.attempt += 1
        delay = min(self.maximum, max(self.initial, base * (1.0 - self.jitter * self.rng.random())))
        if retry_after_s is not None and retry_after_s > delay:
            return retry_after_s
        return delay

    def reset(self) -> None:
        self.attempt = 0


def headers_lower(note: ResponseNote) -> dict[str, Any]:
    """The note's headers with lower-case names."""
    return {k.lower(): v for k, v in (note.headers or {}).items()}
