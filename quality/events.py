"""The event a failed validation publishes, for the risk gate's stale-or-invalid-data breaker.

>>> from datetime import UTC, datetime
>>> event = ValidationFailed(
...     run_id="r1", backend="postgresql", symbol=None,
...     failures=(FailedCheck("md_trades", "2024-08-08", "price_positive", 1),),
...     ts_event=datetime(2024, 8, 9, tzinfo=UTC))
>>> event.tables
('md_trades',)
>>> event.to_dict()["failures"][0]["check"]
'price_positive'
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from datetime import datetime
from typing import Any

from core.clock import require_utc


@dataclass(frozen=True, slots=True)
class FailedCheck:
    """One check that failed on one batch (table and UTC day), with how many rows broke it."""

    table: str
    day: str
    check: str
    unexpected_count: int | None


@dataclass(frozen=True, slots=True)
class ValidationFailed:
    """Stored data broke at least one critical check.

    Operator action: open the run's report (``report_path``), fix or quarantine the named rows,
    and re-run ``bot4 validate`` before trusting these tables for trading decisions.
    """

    run_id: str
    backend: str
    symbol: str | None
    failures: tuple[FailedCheck, ...]
    ts_event: datetime
    reason: str = "invalid_data"
    report_path: str | None = None

    def __post_init__(self) -> None:
        require_utc(self.ts_event, "ts_event")
        if not self.failures:
            raise ValueError("a ValidationFailed event needs at least one failed check")

    @property
    def tables(self) -> tuple[str, ...]:
        return tuple(dict.fromkeys(f.table for f in self.failures))

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["ts_event"] = self.ts_event.isoformat()
        data["tables"] = list(self.tables)
        return data
