"""What one call to a venue came to: the input of the venue-error, latency and disconnect breakers.

The order manager (``execution.manager.OrderManager``) records one :class:`VenueCallOutcome` per
call it makes to its venue (submit, cancel, fetch, poll) and hands them over with
``drain_outcomes()``; :meth:`risk.breakers.RiskStateMachine.on_venue_outcomes` judges them
(a poll that returned is not evidence: :attr:`VenueCallOutcome.is_evidence`). They
live here, not in ``execution``, because ``risk`` may import only ``core``.

- ``OK``: the venue answered, whatever it said (a business reject such as insufficient balance is
  an answer: the venue works);
- ``ERROR``: the call failed, or the venue refused to process it for reasons of its own
  (rate limited, 5xx, timeout); ``error`` names the class (``rate_limited``, ``unavailable``,
  ``timeout``, ``network``, ... or the exception's type);
- ``DISCONNECTED``: no answer arrived at all because the connection failed (refused, reset):
  an error that also means the venue is unreachable.

>>> from datetime import timedelta
>>> from core.clock import parse_utc
>>> t = parse_utc("2024-08-08T23:54:15Z")
>>> o = VenueCallOutcome(VenueCall.SUBMIT, CallResult.OK, timedelta(milliseconds=42), t, client_order_id="b4-1")
>>> o.ok, o.connected, o.is_order_round_trip, o.is_evidence
(True, True, True, True)
>>> VenueCallOutcome(VenueCall.POLL, CallResult.OK, timedelta(0), t).is_evidence
False
>>> VenueCallOutcome(VenueCall.CANCEL, CallResult.DISCONNECTED, timedelta(seconds=3), t, "unavailable").connected
False
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from datetime import datetime, timedelta


class VenueCall(enum.StrEnum):
    """The kind of call made to the venue."""

    SUBMIT = "submit"
    CANCEL = "cancel"
    FETCH_ORDER = "fetch_order"
    FETCH_OPEN_ORDERS = "fetch_open_orders"
    POLL = "poll"


class CallResult(enum.StrEnum):
    """How the call ended (see the module docstring)."""

    OK = "ok"
    ERROR = "error"
    DISCONNECTED = "disconnected"


@dataclass(frozen=True, slots=True)
class VenueCallOutcome:
    """One venue call: what it was, how it ended, how long it took and when it ended.

    ``round_trip`` is from the request leaving to the answer (or the failure) coming back;
    ``error`` is empty for an OK call.
    """

    call: VenueCall
    result: CallResult
    round_trip: timedelta
    ts: datetime
    error: str = ""
    client_order_id: str = ""

    @property
    def ok(self) -> bool:
        """True when the venue answered (the error-rate breaker counts the others)."""
        return self.result is CallResult.OK

    @property
    def connected(self) -> bool:
        """False only when the call could not reach the venue at all."""
        return self.result is not CallResult.DISCONNECTED

    @property
    def is_evidence(self) -> bool:
        """False for a poll that returned: a venue answers most polls from what it already queued
        (the ccxt venue asks the exchange only every ``poll_interval_s``; the paper venue never
        does), so a returned poll says nothing about the venue and would dilute its error rate or
        pass for a live connection. A failed poll did reach out, and counts."""
        return self.call is not VenueCall.POLL or self.result is not CallResult.OK

    @property
    def is_order_round_trip(self) -> bool:
        """True for a submit the venue answered: the sample the latency breaker reads (a failed
        submit is the error-rate breaker's business, and its time says nothing about the venue's)."""
        return self.call is VenueCall.SUBMIT and self.result is CallResult.OK
