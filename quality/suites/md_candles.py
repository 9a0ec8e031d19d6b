"""md_candles: the exchange's own OHLCV candles, reconciled with bars built from stored trades."""

from __future__ import annotations

from typing import TYPE_CHECKING

from quality.suites._spec import (
    Column,
    TableSpec,
    Window,
    finite_positive,
    not_finite,
    not_null,
    num,
    query_rows,
    rows_where,
    suite_of,
    unique_key,
)

if TYPE_CHECKING:
    from great_expectations.core.expectation_suite import ExpectationSuite

SPEC = TableSpec(
    table="md_candles",
    columns=(
        Column("exchange", "text"),
        Column("symbol", "text"),
        Column("timeframe", "text"),
        Column("open", "numeric"),
        Column("high", "numeric"),
        Column("low", "numeric"),
        Column("close", "numeric"),
        Column("volume", "numeric"),
        Column("closed", "bool"),
        Column("ts_event", "ts"),
        Column("ts_recv", "ts"),
    ),
    key=("exchange", "symbol", "timeframe", "ts_event"),
    time_column="ts_event",
    scan_prefix=("exchange", "symbol", "timeframe"),
)

#: Relative tolerance of the bar reconciliation: exact decimals in PostgreSQL, but candle files
#: written from floats (and SQLite's REAL sums) carry float noise in the last digits.
RECONCILE_TOLERANCE = 1e-9


def build(window: Window) -> ExpectationSuite:
    """OHLC finite and positive, high/low bound open and close, unique, bars match trades."""
    d = window.dialect
    finite_ohlc = " AND ".join(f"NOT {not_finite(c, d)}" for c in ("open", "high", "low", "close"))
    o, h, lo, c = (num(x, d) for x in ("open", "high", "low", "close"))
    return suite_of(
        "md_candles",
        [
            *not_null(SPEC, d),
            *(e for col in ("open", "high", "low", "close") for e in finite_positive(col, d)),
            *finite_positive("volume", d, allow_zero=True),
            rows_where(f"{finite_ohlc} AND ({h} < {o} OR {h} < {c})", "high_gte_open_close", "high >= open, close"),
            rows_where(f"{finite_ohlc} AND ({lo} > {o} OR {lo} > {c})", "low_lte_open_close", "low <= open, close"),
            rows_where(f"{finite_ohlc} AND {h} < {lo}", "high_gte_low", "high >= low"),
            unique_key(SPEC.key),
            query_rows(
                reconcile_query(window),
                "bars_match_exchange_candles",
                "1m candles equal the 1m bars built from stored trades, for every minute the trades fully cover",
            ),
        ],
    )


def reconcile_query(window: Window) -> str:
    """1m candles whose OHLCV differ from the trade bars of the same minute (complete minutes only).

    A minute counts only when stored trades begin before it and end after it: the first and last
    minute of a capture are partial and would differ for no fault of the data.
    """
    d = window.dialect
    lo, hi = window.literal(window.start), window.literal(window.end)
    if d == "postgresql":
        diff = " OR ".join(
            f"abs(c.{f} - b.{f}) > {RECONCILE_TOLERANCE} * greatest(abs(c.{f}), 1)"
            for f in ("open", "high", "low", "close", "volume")
        )
        return (
            "SELECT c.exchange, c.symbol, c.ts_event, c.open, c.high, c.low, c.close, c.volume, "
            "b.open AS bar_open, b.high AS bar_high, b.low AS bar_low, b.close AS bar_close, b.volume AS bar_volume "
            "FROM {batch} AS c "
            "JOIN md_trade_bars_1m AS b ON b.exchange = c.exchange AND b.symbol = c.symbol AND b.bucket = c.ts_event "
            "JOIN (SELECT exchange, symbol, min(ts_event) AS first_ts, max(ts_event) AS last_ts FROM md_trades "
            f"WHERE ts_event >= {lo} AND ts_event < {hi} GROUP BY exchange, symbol) AS cov "
            "ON cov.exchange = c.exchange AND cov.symbol = c.symbol "
            f"WHERE c.timeframe = '1m' AND b.bucket >= {lo} AND b.bucket < {hi} "
            "AND b.bucket > cov.first_ts AND b.bucket < date_trunc('minute', cov.last_ts) "
            f"AND ({diff})"
        )
    diff = " OR ".join(
        f"abs(CAST(c.{f} AS REAL) - b.{f}) > {RECONCILE_TOLERANCE} * max(abs(CAST(c.{f} AS REAL)), 1)"
        for f in ("open", "high", "low", "close", "volume")
    )
    return (
        "WITH t AS (SELECT exchange, symbol, substr(ts_event, 1, 16) AS minute, ts_event, "
        "CAST(price AS REAL) AS price, CAST(amount AS REAL) AS amount, "
        "FIRST_VALUE(CAST(price AS REAL)) OVER w AS first_price, LAST_VALUE(CAST(price AS REAL)) OVER w AS last_price "
        f"FROM md_trades WHERE ts_event >= {lo} AND ts_event < {hi} "
        "WINDOW w AS (PARTITION BY exchange, symbol, substr(ts_event, 1, 16) ORDER BY ts_event, trade_id "
        "ROWS BETWEEN UNBOUNDED PRECEDING AND UNBOUNDED FOLLOWING)), "
        "b AS (SELECT exchange, symbol, minute, min(first_price) AS open, max(price) AS high, min(price) AS low, "
        "min(last_price) AS close, sum(amount) AS volume FROM t GROUP BY exchange, symbol, minute), "
        "cov AS (SELECT exchange, symbol, min(ts_event) AS first_ts, max(ts_event) AS last_ts FROM t "
        "GROUP BY exchange, symbol) "
        "SELECT c.exchange, c.symbol, c.ts_event, c.open, c.high, c.low, c.close, c.volume, "
        "b.open AS bar_open, b.high AS bar_high, b.low AS bar_low, b.close AS bar_close, b.volume AS bar_volume "
        "FROM {batch} AS c "
        "JOIN b ON b.exchange = c.exchange AND b.symbol = c.symbol AND b.minute = substr(c.ts_event, 1, 16) "
        "JOIN cov ON cov.exchange = c.exchange AND cov.symbol = c.symbol "
        "WHERE c.timeframe = '1m' AND c.ts_event > cov.first_ts AND b.minute < substr(cov.last_ts, 1, 16) "
        f"AND ({diff})"
    )
