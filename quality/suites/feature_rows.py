"""feature_rows: the features flow's history, one column per feature of ``features/schema.py``.

Besides keys and times, two checks read the feature declarations themselves:

- ``feature_in_declared_range``: every present value inside the inclusive ``[min, max]`` its
  :class:`~features.schema.FeatureSpec` declares (``features_finite`` catches NaN and infinities,
  which no feature may hold: a missing value is NULL);
- ``feature_present_after_warmup``: once a series (symbol, timeframe, schema version) has had as
  many traded bars as a feature needs (:data:`WARMUP_BARS`), the feature is never NULL again (on
  traded bars only, for the bar's own prices and returns, which an empty bar does not have).

Warm-up is counted in traded bars of a run of contiguous bars (each ``bar_start`` equal to the
previous row's ``event_timestamp``): a gap in the rows is a restart of the flow, whose state starts
over. The count looks back :data:`WARMUP_LOOKBACK` before the day; a run that began earlier is
counted from there, which can only count fewer bars than there were (a check skipped, never a false
failure). A feature whose column is NULL on every row of a series in that window is taken as not
computed by its writer (backtests compute only the indicators their strategies read) and is not
checked. The features with no warm-up rule: the book's (absent without a book, None while it
resyncs), the trade flow's (absent without trades) and the bar fields that exchange candles lack.

The embedded store has no ``feature_rows`` table; the suite runs on PostgreSQL.

>>> WARMUP_BARS["macd_12_26"], WARMUP_BARS["rsi_14"], WARMUP_BARS["return_1"]
(34, 15, 2)
>>> sorted(TRADED_ONLY)[:2]
['bar_close', 'bar_high']
"""

from __future__ import annotations

import math
from datetime import timedelta
from typing import TYPE_CHECKING

from features.schema import FEATURES, FeatureSpec
from quality.suites._spec import (
    Column,
    Dialect,
    Kind,
    TableSpec,
    Window,
    not_null,
    query_rows,
    rows_where,
    suite_of,
    unique_key,
)

if TYPE_CHECKING:
    from great_expectations.core.expectation_suite import ExpectationSuite

_KINDS: dict[str, Kind] = {"float64": "float", "int64": "int", "bool": "bool"}

SPEC = TableSpec(
    table="feature_rows",
    columns=(
        # exchange:SYMBOL (the Feast entity), so a ``--symbol BTC/USDT`` filter does not apply.
        Column("symbol", "text"),
        Column("timeframe", "text"),
        Column("schema_version", "int"),
        Column("event_timestamp", "ts"),
        Column("bar_start", "ts"),
        *(Column(f.name, _KINDS[f.dtype], nullable=True) for f in FEATURES),
    ),
    key=("symbol", "timeframe", "schema_version", "event_timestamp"),
    time_column="event_timestamp",
    symbol_column=None,
    scan_prefix=("symbol", "timeframe", "schema_version"),
)

#: Traded bars a series needs before the feature has a value: the bar that brings the value is
#: the N-th traded bar (TA-Lib's first output; tests/unit/quality/test_feature_rows.py feeds the
#: real FeatureEngine to hold these numbers to it).
WARMUP_BARS: dict[str, int] = {
    "bar_open": 1,
    "bar_high": 1,
    "bar_low": 1,
    "bar_close": 1,
    "bar_volume": 1,
    "return_1": 2,
    "log_return_1": 2,
    "sma_20": 20,
    "ema_20": 20,
    "rsi_14": 15,
    "macd_12_26": 34,
    "macd_signal_9": 34,
    "macd_hist": 34,
    "bb_upper_20_2": 20,
    "bb_middle_20": 20,
    "bb_lower_20_2": 20,
    "atr_14": 15,
    "vwap_20": 20,
    "stoch_k_14_3": 18,
    "stoch_d_3": 18,
    "obv": 1,
    "realized_vol_20": 21,
    "zscore_20": 20,
}

#: Present only on bars with trades: an empty bar has no prices and no returns.
TRADED_ONLY = frozenset({"bar_open", "bar_high", "bar_low", "bar_close", "return_1", "log_return_1"})

#: How far before the day the warm-up count starts (1,440 bars of 1m; 24 of 1h).
WARMUP_LOOKBACK = timedelta(days=1)

_SERIES = ("symbol", "timeframe", "schema_version")


def _number(value: float) -> str:
    return repr(float(value))


def _bounded(spec: FeatureSpec) -> bool:
    return spec.dtype != "bool" and (math.isfinite(spec.min) or math.isfinite(spec.max))


def _not_finite(column: str, dialect: Dialect) -> str:
    if dialect == "sqlite":
        return f"({column} IN (9e999, -9e999))"
    return f"({column} IN ('NaN'::float8, 'Infinity'::float8, '-Infinity'::float8))"


def range_query(dialect: Dialect) -> str:
    """One row per (row, feature) whose finite value lies outside the declared range."""
    parts = []
    for spec in FEATURES:
        if not _bounded(spec):
            continue
        column = f'"{spec.name}"'
        outside = []
        if math.isfinite(spec.min):
            outside.append(f"{column} < {_number(spec.min)}")
        if math.isfinite(spec.max):
            outside.append(f"{column} > {_number(spec.max)}")
        parts.append(
            f"SELECT symbol, timeframe, event_timestamp, '{spec.name}' AS feature, "
            f"CAST({column} AS DOUBLE PRECISION) AS value, "
            f"CAST({_number(spec.min) if math.isfinite(spec.min) else 'NULL'} AS DOUBLE PRECISION) AS min_value, "
            f"CAST({_number(spec.max) if math.isfinite(spec.max) else 'NULL'} AS DOUBLE PRECISION) AS max_value "
            f"FROM {{batch}} WHERE {column} IS NOT NULL AND NOT {_not_finite(column, dialect)} "
            f"AND ({' OR '.join(outside)})"
        )
    return " UNION ALL ".join(parts)


def finite_query(dialect: Dialect) -> str:
    """One row per (row, feature) holding NaN or an infinity."""
    parts = []
    for spec in FEATURES:
        if spec.dtype == "float64":
            column = f'"{spec.name}"'
            parts.append(
                f"SELECT symbol, timeframe, event_timestamp, '{spec.name}' AS feature FROM {{batch}} "
                f"WHERE {column} IS NOT NULL AND {_not_finite(column, dialect)}"
            )
    return " UNION ALL ".join(parts)


def warmup_query(window: Window) -> str:
    """One row per (row, feature) that is NULL although its series is past the feature's warm-up."""
    series = ", ".join(_SERIES)
    lo, hi = window.literal(window.start), window.literal(window.end)
    since = window.literal(window.start - WARMUP_LOOKBACK)
    names = list(WARMUP_BARS)
    columns = ", ".join(f'"{n}"' for n in names)
    present = ", ".join(f'count("{n}") OVER (PARTITION BY {series}) AS "has_{n}"' for n in names)
    checks = " UNION ALL ".join(
        f"SELECT symbol, timeframe, event_timestamp, '{n}' AS feature, traded_bars FROM counted "
        f'WHERE "{n}" IS NULL AND "has_{n}" > 0 AND traded_bars >= {WARMUP_BARS[n]}'
        + (" AND NOT bar_empty" if n in TRADED_ONLY else "")
        for n in names
    )
    return (
        # Rows of the day's series from the lookback on; a run starts where a bar does not begin
        # at the previous row's end.
        f"WITH rows_in AS (SELECT {series}, event_timestamp, bar_start, bar_empty, {columns}, "
        f"LAG(event_timestamp) OVER (PARTITION BY {series} ORDER BY event_timestamp) AS prev_end "
        f"FROM feature_rows WHERE event_timestamp >= {since} AND event_timestamp < {hi} "
        f"AND ({series}) IN (SELECT DISTINCT {series} FROM {{batch}})), "
        f"runs AS (SELECT *, sum(CASE WHEN prev_end IS NULL OR bar_start <> prev_end THEN 1 ELSE 0 END) "
        f"OVER (PARTITION BY {series} ORDER BY event_timestamp ROWS UNBOUNDED PRECEDING) AS run FROM rows_in), "
        f"counted AS (SELECT *, sum(CASE WHEN bar_empty THEN 0 ELSE 1 END) "
        f"OVER (PARTITION BY {series}, run ORDER BY event_timestamp ROWS UNBOUNDED PRECEDING) AS traded_bars, "
        f"{present} FROM runs WHERE event_timestamp < {hi}) "
        f"SELECT * FROM ({checks}) AS missing WHERE event_timestamp >= {lo}"
    )


def build(window: Window) -> ExpectationSuite:
    """Not-null keys, unique, bar times, finite values inside their ranges, present after warm-up."""
    d = window.dialect
    return suite_of(
        "feature_rows",
        [
            *not_null(SPEC, d),
            unique_key(SPEC.key),
            rows_where("schema_version < 1", "schema_version_positive", "schema_version >= 1"),
            rows_where("bar_start >= event_timestamp", "bar_ends_after_start", "bar_start < event_timestamp"),
            query_rows(finite_query(d), "features_finite", "no feature holds NaN or an infinity (missing is NULL)"),
            query_rows(
                range_query(d),
                "feature_in_declared_range",
                "every feature value inside the [min, max] features/schema.py declares (one row per value)",
            ),
            query_rows(
                warmup_query(window),
                "feature_present_after_warmup",
                "no feature is NULL once its series is past the feature's warm-up (one row per value)",
            ),
        ],
    )
