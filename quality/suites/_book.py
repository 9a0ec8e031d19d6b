"""SQL over the stored book levels (JSON arrays of ``[price, amount]`` text pairs)."""

from __future__ import annotations

from quality.suites._spec import Dialect


def level_values(column: str, index: int, dialect: Dialect) -> tuple[str, str]:
    """(FROM clause over the levels of ``column``, the SQL of element ``index`` as a number)."""
    if dialect == "sqlite":
        return f"json_each({column})", f"CAST(json_extract(value, '$[{index}]') AS REAL)"
    return f"jsonb_array_elements({column}) AS lv", f"(lv->>{index})::numeric"


def best(column: str, agg: str, dialect: Dialect) -> str:
    """Best price of one side (``max`` for bids, ``min`` for asks) over levels with amount > 0."""
    source, price = level_values(column, 0, dialect)
    _, amount = level_values(column, 1, dialect)
    return f"(SELECT {agg}({price}) FROM {source} WHERE {amount} > 0)"


def crossed(dialect: Dialect) -> str:
    return f"{best('bids', 'max', dialect)} >= {best('asks', 'min', dialect)}"


def bad_level(dialect: Dialect) -> str:
    """True where a level has a price <= 0 or a negative amount, on either side."""
    parts = []
    for column in ("bids", "asks"):
        source, price = level_values(column, 0, dialect)
        _, amount = level_values(column, 1, dialect)
        parts.append(f"EXISTS (SELECT 1 FROM {source} WHERE {price} <= 0 OR {amount} < 0)")
    return " OR ".join(parts)
