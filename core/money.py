"""Decimal helpers. Money, prices and quantities are ``Decimal``, never ``float``.

>>> to_decimal("61837.63000000")
Decimal('61837.63000000')
>>> to_decimal(0.1)
Traceback (most recent call last):
...
TypeError: refusing float 0.1 for a money value: pass a str or int
"""

from __future__ import annotations

import math
from decimal import ROUND_DOWN, ROUND_HALF_EVEN, Decimal, InvalidOperation

ZERO = Decimal(0)


def to_decimal(value: object, *, name: str = "value") -> Decimal:
    """Parse a str/int/Decimal into a finite Decimal; floats are refused (they carry binary error)."""
    if isinstance(value, bool):
        raise TypeError(f"refusing bool {value!r} for {name}")
    if isinstance(value, float):
        raise TypeError(f"refusing float {value!r} for a money value: pass a str or int")
    if isinstance(value, Decimal):
        result = value
    elif isinstance(value, (str, int)):
        try:
            result = Decimal(value)
        except InvalidOperation as exc:
            raise ValueError(f"{name} {value!r} is not a decimal number") from exc
    else:
        raise TypeError(f"{name} must be str, int or Decimal, got {type(value).__name__}")
    if not result.is_finite():
        raise ValueError(f"{name} {value!r} is not finite")
    return result


def float_to_decimal(value: float, *, name: str = "value") -> Decimal:
    """Convert a float from an external source through its shortest repr (``0.1`` -> ``Decimal('0.1')``).

    >>> float_to_decimal(0.1)
    Decimal('0.1')
    """
    if not math.isfinite(value):
        raise ValueError(f"{name} {value!r} is not finite")
    return Decimal(repr(value))


def quantize_down(value: Decimal, step: Decimal) -> Decimal:
    """Round ``value`` down to a multiple of ``step`` (lot size, tick size).

    >>> quantize_down(Decimal("0.123456"), Decimal("0.001"))
    Decimal('0.123')
    """
    if step <= 0:
        raise ValueError(f"step must be > 0, got {step}")
    return (value / step).to_integral_value(rounding=ROUND_DOWN) * step


def round_half_even(value: Decimal, places: int) -> Decimal:
    """Banker's rounding to ``places`` decimals (for reporting, not for venue precision)."""
    return value.quantize(Decimal(1).scaleb(-places), rounding=ROUND_HALF_EVEN)
