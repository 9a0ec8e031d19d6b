"""Errors named by what the operator (or the calling code) must do about them.

Every Bot4 exception derives from :class:`Bot4Error`. The subclass says the action:

- :class:`QuarantineRecord`: this one record is bad; send it to the dead-letter topic with the
  reason and keep the flow running.
- :class:`RetryLater`: a transient condition (network, rate limit); an idempotent call may be retried.
- :class:`HaltAndAlert`: continuing could lose money or data; stop trading and page a person.
- :class:`ConfigError`: the configuration is wrong; the process must not start.

An exception that needs a human carries its runbook in ``operator_action``.
"""

from __future__ import annotations


class Bot4Error(Exception):
    """Base of every Bot4 error."""

    operator_action: str = ""

    def __str__(self) -> str:
        base = super().__str__()
        if self.operator_action:
            return f"{base}\nOperator action: {self.operator_action}"
        return base


class QuarantineRecord(Bot4Error):
    """One input record is unusable; it goes to the DLQ with ``reason``, the flow continues.

    >>> err = QuarantineRecord("price_not_positive", "price -1 must be > 0")
    >>> err.reason
    'price_not_positive'
    """

    def __init__(self, reason: str, detail: str) -> None:
        super().__init__(f"{reason}: {detail}")
        self.reason = reason
        self.detail = detail


class WireFormatError(QuarantineRecord):
    """Bytes that do not decode into a known event of a known wire version."""


class RetryLater(Bot4Error):
    """A transient failure; retry an idempotent call after ``retry_after_s`` seconds if given."""

    def __init__(self, message: str, retry_after_s: float | None = None) -> None:
        super().__init__(message)
        self.retry_after_s = retry_after_s


class HaltAndAlert(Bot4Error):
    """A condition where continuing risks money or data: trading halts and a person is paged."""

    def __init__(self, message: str, operator_action: str) -> None:
        super().__init__(message)
        self.operator_action = operator_action


class ConfigError(Bot4Error):
    """Invalid configuration; raised at start-up, naming the field and the reason."""

    operator_action = "Fix the named setting (environment variable BOT4_* or the config file) and restart."
