"""Small numeric helpers shared by the indicators."""

from __future__ import annotations

from collections.abc import Iterable


def sequential_sum(values: Iterable[float]) -> float:
    """Left-to-right float sum, the order TA-Lib uses for its SMA seeds.

    ``sum()`` is not used on purpose: from Python 3.12 it compensates rounding, which would
    make the seeds differ from TA-Lib's in the last bits.

    >>> sequential_sum([0.1, 0.2, 0.3])
    0.6000000000000001
    """
    total = 0.0
    for value in values:
        total += value
    return total


def check_period(name: str, period: int, minimum: int = 1) -> int:
    """Return ``period`` if it is an int >= ``minimum``, else raise ``ValueError`` naming it.

    >>> check_period("period", 14)
    14
    """
    if isinstance(period, bool) or not isinstance(period, int) or period < minimum:
        raise ValueError(f"{name} must be an integer >= {minimum}, got {period!r}")
    return period
