"""How values leave the API: money and amounts as plain decimal strings, times as aware UTC."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal
from typing import overload


@overload
def dec(value: Decimal) -> str: ...
@overload
def dec(value: None) -> None: ...
@overload
def dec(value: Decimal | None) -> str | None: ...
def dec(value: Decimal | None) -> str | None:
    """A Decimal as a plain string, never in exponent form; None stays None.

    >>> dec(Decimal("61837.63000000")), dec(Decimal("0E-8")), dec(Decimal("-1.5E+3")), dec(None)
    ('61837.63000000', '0.00000000', '-1500', None)
    """
    if value is None:
        return None
    return format(value, "f")


@overload
def utc(value: datetime) -> datetime: ...
@overload
def utc(value: None) -> None: ...
@overload
def utc(value: datetime | None) -> datetime | None: ...
def utc(value: datetime | None) -> datetime | None:
    """An aware time moved to UTC (PostgreSQL hands back the session's zone); naive is refused.

    >>> from datetime import timedelta, timezone
    >>> utc(datetime(2024, 8, 9, 1, 0, tzinfo=timezone(timedelta(hours=1)))).isoformat()
    '2024-08-09T00:00:00+00:00'
    """
    if value is None:
        return None
    if value.tzinfo is None:
        raise ValueError(f"time {value.isoformat()} has no zone; every stored time is timestamptz")
    return value.astimezone(UTC)
