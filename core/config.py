"""Base type for component configuration: frozen, strict, unknown keys refused.

Each package declares its own config as a subclass; ``flows.settings`` composes them once from
the environment at start-up, so a bad value fails there, naming the field and the reason.

>>> class Limits(StrictConfig):
...     max_open_orders: int = 10
>>> Limits(max_open_orders=3).max_open_orders
3
>>> Limits(max_orders=3)
Traceback (most recent call last):
...
pydantic_core._pydantic_core.ValidationError: 1 validation error for Limits
max_orders
  Extra inputs are not permitted [type=extra_forbidden, input_value=3, input_type=int]
    For further information visit https://errors.pydantic.dev/2.14/v/extra_forbidden
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict


class StrictConfig(BaseModel):
    """Frozen pydantic model that forbids unknown fields and validates defaults."""

    model_config = ConfigDict(frozen=True, extra="forbid", validate_default=True)
