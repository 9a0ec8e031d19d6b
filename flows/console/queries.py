"""The console's reads of PostgreSQL: each function takes a connection and returns API models.

Positions are not stored: they are rebuilt from the ``fills`` table by the same
:class:`~execution.portfolio.Portfolio` the execution step keeps, and marked at the newest stored
trade of each instrument (at the last fill price when no trade is stored). :class:`PositionBooks`
keeps the rebuilt books between requests and applies only the fills stored since.
"""

from __future__ import annotations

import re
import threading
from collections import defaultdict
from dataclasses import dataclass, field, replace
from datetime import datetime
from decimal import Decimal
from typing import Any

import psycopg
from psycopg.rows import dict_row
from psycopg.types.json import Jsonb

from core.events import Side
from core.fills import Fill as DomainFill
from core.fills import Liquidity, OrderStatus
from core.symbols import timeframe_seconds
from execution.portfolio import Holding, Portfolio
from execution.venue import split_symbol
from flows.console import schema
from flows.console.convert import dec, utc

Conn = psycopg.Connection[Any]
MAX_LIMIT = 5000
_ZERO = Decimal(0)


def _rows(conn: Conn, sql: str, params: Any = ()) -> list[dict[str, Any]]:
    with conn.cursor(row_factory=dict_row) as cur:
        cur.execute(sql, params)
        return cur.fetchall()


def _where(filters: dict[str, Any]) -> tuple[str, list[Any]]:
    """``WHERE a = %s AND ...`` for the filters given (None means no filter on that column)."""
    used = {k: v for k, v in filters.items() if v is not None}
    if not used:
        return "", []
    return " WHERE " + " AND ".join(f"{k} = %s" for k in used), list(used.values())


#: Statuses of orders still working (OrderStatus values whose is_open is true).
_OPEN_STATUSES = ", ".join(f"'{s.value}'" for s in OrderStatus if s.is_open)


def accounts(conn: Conn) -> list[schema.Account]:
    rows = _rows(
        conn,
        f"""
        WITH latest AS (
            SELECT DISTINCT ON (account) account, trading_state, ts_event
            FROM risk_decisions ORDER BY account, ts_event DESC, decision_id DESC
        ), o AS (
            SELECT account, count(*) AS orders,
                   count(*) FILTER (WHERE status IN ({_OPEN_STATUSES})) AS open_orders
            FROM orders GROUP BY account
        ), f AS (SELECT account, count(*) AS fills, max(ts_event) AS last_fill_at FROM fills GROUP BY account),
        names AS (
            -- from the per-account aggregates above, not a UNION of every row of every table
            SELECT account FROM o UNION SELECT account FROM f UNION SELECT account FROM latest
            UNION SELECT DISTINCT account FROM equity
            UNION SELECT account FROM operator_commands WHERE account <> '*'
        )
        SELECT n.account, l.trading_state, l.ts_event AS state_since, coalesce(o.orders, 0) AS orders,
               coalesce(o.open_orders, 0) AS open_orders, coalesce(f.fills, 0) AS fills, f.last_fill_at
        FROM names n LEFT JOIN latest l USING (account) LEFT JOIN o USING (account) LEFT JOIN f USING (account)
        ORDER BY n.account
        """,
    )
    return [
        schema.Account(**{**r, "state_since": utc(r["state_since"]), "last_fill_at": utc(r["last_fill_at"])})
        for r in rows
    ]


def _fill(r: dict[str, Any]) -> schema.Fill:
    return schema.Fill(
        exchange=r["exchange"],
        fill_id=r["fill_id"],
        client_order_id=r["client_order_id"],
        account=r["account"],
        symbol=r["symbol"],
        side=r["side"],
        price=dec(r["price"]),
        amount=dec(r["amount"]),
        notional=dec(r["price"] * r["amount"]),
        fee=dec(r["fee"]),
        fee_currency=r["fee_currency"],
        liquidity=r["liquidity"],
        ts_event=utc(r["ts_event"]),
    )


_FILL_ORDER = "ORDER BY ts_event, exchange, fill_id"


@dataclass
class _Books:
    """Every account's books after ``applied`` fills, the last of them at ``last`` (the sort key)."""

    books: dict[tuple[str, str], Portfolio] = field(default_factory=dict)
    counts: dict[tuple[str, str, str], int] = field(default_factory=lambda: defaultdict(int))
    fees: dict[tuple[str, str, str], Decimal] = field(default_factory=lambda: defaultdict(lambda: _ZERO))
    applied: int = 0
    last: tuple[datetime, str, str] | None = None

    def apply(self, rows: list[dict[str, Any]]) -> None:
        for r in rows:
            quote = split_symbol(r["symbol"])[1]
            book = self.books.setdefault((r["account"], quote), Portfolio(r["account"], _ZERO, quote))
            book.apply_fill(
                DomainFill(
                    r["exchange"],
                    r["fill_id"],
                    r["client_order_id"],
                    r["account"],
                    r["symbol"],
                    Side(r["side"]),
                    r["price"],
                    r["amount"],
                    r["fee"],
                    r["fee_currency"] or quote,
                    Liquidity(r["liquidity"] or "taker"),
                    utc(r["ts_event"]),
                )
            )
            key = (r["account"], r["exchange"], r["symbol"])
            self.counts[key] += 1
            self.fees[key] += r["fee"] if (r["fee_currency"] or quote) == quote else r["fee"] * r["price"]
            self.last = (r["ts_event"], r["exchange"], r["fill_id"])
        self.applied += len(rows)

    def snapshot(self) -> _Positions:
        # Holding is a frozen copy: callers mark it with dataclasses.replace, the books stay as they are.
        return _Positions(
            {k: list(b.holdings().values()) for k, b in self.books.items()}, dict(self.counts), dict(self.fees)
        )


@dataclass(frozen=True)
class _Positions:
    holdings: dict[tuple[str, str], list[Holding]]
    counts: dict[tuple[str, str, str], int]
    fees: dict[tuple[str, str, str], Decimal]


class PositionBooks:
    """The books rebuilt from the stored fills, kept between requests.

    Fills are append-only (natural keys, ``ON CONFLICT DO NOTHING``), so a request reads only the
    fills sorted after the last one applied, and checks that the count adds up: a fill stored late
    with an older time (or anything else that breaks the count) makes it rebuild from every fill.
    With 100k orders this turns the positions read from a replay of every fill per request into a
    count and an index range scan (benchmarks/bench_console.py).
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._state = _Books()

    def current(self, conn: Conn) -> _Positions:
        """The holdings, fill counts and fees, up to date with the ``fills`` table (read-only copies)."""
        with self._lock:
            total = conn.execute("SELECT count(*) FROM fills").fetchone()
            stored = int(total[0]) if total else 0
            state = self._state
            if state.last is not None and stored >= state.applied:
                newer = _rows(
                    conn,
                    f"SELECT * FROM fills WHERE (ts_event, exchange, fill_id) > (%s, %s, %s) {_FILL_ORDER}",
                    state.last,
                )
                if state.applied + len(newer) == stored:
                    state.apply(newer)
                    return state.snapshot()
            state = _Books()
            state.apply(_rows(conn, f"SELECT * FROM fills {_FILL_ORDER}"))
            self._state = state
            return state.snapshot()


def positions(conn: Conn, account: str | None = None, books: PositionBooks | None = None) -> list[schema.Position]:
    """Positions per account and instrument (``books`` keeps the rebuilt books between calls)."""
    state = (books or PositionBooks()).current(conn)
    chosen = {k: h for k, h in state.holdings.items() if account is None or k[0] == account}
    marks = _latest_trades(conn, sorted({(h.exchange, h.symbol) for hs in chosen.values() for h in hs}))
    out: list[schema.Position] = []
    for (acct, quote), holdings in sorted(chosen.items()):
        for kept in sorted(holdings, key=lambda h: h.key):
            key = (acct, kept.exchange, kept.symbol)
            mark_row = marks.get((kept.exchange, kept.symbol))
            holding = replace(kept, mark=mark_row[0]) if mark_row is not None else kept
            avg = holding.average_price
            out.append(
                schema.Position(
                    account=acct,
                    exchange=holding.exchange,
                    symbol=holding.symbol,
                    quote_currency=quote,
                    amount=dec(holding.amount),
                    average_price=dec(avg.quantize(Decimal("1e-12")).normalize()) if avg is not None else None,
                    mark=dec(holding.mark),
                    mark_source="trade" if mark_row is not None else "fill",
                    mark_at=utc(mark_row[1]) if mark_row is not None else None,
                    notional=dec(holding.amount * holding.mark),
                    realized_pnl=dec(holding.realized_pnl),
                    unrealized_pnl=dec(holding.unrealized_pnl),
                    fees=dec(state.fees.get(key, _ZERO)),
                    fills=state.counts.get(key, 0),
                )
            )
    return out


def _latest_trades(conn: Conn, instruments: list[tuple[str, str]]) -> dict[tuple[str, str], tuple[Decimal, datetime]]:
    out: dict[tuple[str, str], tuple[Decimal, datetime]] = {}
    for exchange, symbol in instruments:
        row = conn.execute(
            "SELECT price, ts_event FROM md_trades WHERE exchange = %s AND symbol = %s ORDER BY ts_event DESC LIMIT 1",
            (exchange, symbol),
        ).fetchone()
        if row is not None:
            out[(exchange, symbol)] = (row[0], row[1])
    return out


_ORDER_COLUMNS = (
    "o.client_order_id, o.account, o.strategy, o.exchange, o.symbol, o.side, o.order_type, o.amount, o.limit_price,"
    " o.status, o.venue_order_id, o.ts_created, o.ts_updated,"
    " coalesce((SELECT sum(f.amount) FROM fills f WHERE f.client_order_id = o.client_order_id), 0) AS filled"
)


def _order(r: dict[str, Any]) -> schema.Order:
    return schema.Order(
        **{
            **r,
            "amount": dec(r["amount"]),
            "limit_price": dec(r["limit_price"]),
            "filled": dec(r["filled"]),
            "ts_created": utc(r["ts_created"]),
            "ts_updated": utc(r["ts_updated"]),
        }
    )


def orders(
    conn: Conn,
    *,
    account: str | None = None,
    symbol: str | None = None,
    status: str | None = None,
    side: str | None = None,
    limit: int = 200,
) -> list[schema.Order]:
    where, params = _where({"o.account": account, "o.symbol": symbol, "o.status": status, "o.side": side})
    rows = _rows(
        conn,
        f"SELECT {_ORDER_COLUMNS} FROM orders o{where} ORDER BY o.ts_created DESC, o.client_order_id LIMIT %s",
        [*params, min(limit, MAX_LIMIT)],
    )
    return [_order(r) for r in rows]


def order_detail(conn: Conn, client_order_id: str) -> schema.OrderDetail | None:
    rows = _rows(conn, f"SELECT {_ORDER_COLUMNS} FROM orders o WHERE o.client_order_id = %s", [client_order_id])
    if not rows:
        return None
    events = _rows(conn, "SELECT * FROM order_events WHERE client_order_id = %s ORDER BY seq", [client_order_id])
    fills = _rows(conn, "SELECT * FROM fills WHERE client_order_id = %s ORDER BY ts_event, fill_id", [client_order_id])
    return schema.OrderDetail(
        order=_order(rows[0]),
        events=[
            schema.OrderEvent(
                seq=e["seq"],
                event=e["event"],
                status_before=e["status_before"],
                status_after=e["status_after"],
                detail=e["detail"],
                ts_event=utc(e["ts_event"]),
            )
            for e in events
        ],
        fills=[_fill(f) for f in fills],
    )


def fills(
    conn: Conn,
    *,
    account: str | None = None,
    symbol: str | None = None,
    side: str | None = None,
    client_order_id: str | None = None,
    limit: int = 200,
) -> list[schema.Fill]:
    where, params = _where({"account": account, "symbol": symbol, "side": side, "client_order_id": client_order_id})
    rows = _rows(
        conn, f"SELECT * FROM fills{where} ORDER BY ts_event DESC, fill_id LIMIT %s", [*params, min(limit, MAX_LIMIT)]
    )
    return [_fill(r) for r in rows]


def equity(conn: Conn, account: str, limit: int = 5000) -> schema.EquityCurve:
    rows = _rows(
        conn,
        "SELECT * FROM (SELECT * FROM equity WHERE account = %s ORDER BY ts_event DESC LIMIT %s) t ORDER BY ts_event",
        [account, min(limit, 50_000)],
    )
    worst = max((r["drawdown"] for r in rows), default=None)
    return schema.EquityCurve(
        account=account,
        points=[
            schema.EquityPoint.model_validate(
                {k: dec(v) for k, v in r.items() if k not in {"account", "ts_event"}} | {"ts_event": utc(r["ts_event"])}
            )
            for r in rows
        ],
        max_drawdown=dec(worst),
    )


def _decision(r: dict[str, Any]) -> schema.Decision:
    return schema.Decision(
        decision_id=r["decision_id"],
        account=r["account"],
        client_order_id=r["client_order_id"],
        kind=r["kind"],
        trading_state=r["trading_state"],
        reasons=[schema.Reason(code=x["code"], message=x["message"]) for x in r["reasons"]],
        detail=r["detail"],
        ts_event=utc(r["ts_event"]),
    )


def decisions(
    conn: Conn,
    *,
    account: str | None = None,
    kind: str | None = None,
    reason: str | None = None,
    limit: int = 200,
) -> list[schema.Decision]:
    where, params = _where({"account": account, "kind": kind})
    if reason is not None:
        where += (" AND" if where else " WHERE") + " reasons @> %s::jsonb"
        params.append(Jsonb([{"code": reason}]))
    rows = _rows(
        conn,
        f"SELECT * FROM risk_decisions{where} ORDER BY ts_event DESC, decision_id LIMIT %s",
        [*params, min(limit, MAX_LIMIT)],
    )
    return [_decision(r) for r in rows]


_BREAKER_CHANGE = re.compile(r"(?P<name>[a-z_]+) (?P<before>[a-z_]+)->(?P<after>[a-z_]+): (?P<reason>.*)")


def breakers_from_reason(reason: str, ts: datetime) -> list[schema.Breaker]:
    """The breaker transitions the risk state machine wrote into a state change's reason.

    >>> from core.clock import parse_utc
    >>> t = parse_utc("2024-08-09T00:00:00Z")
    >>> [(b.name, b.status, b.reason) for b in breakers_from_reason(
    ...     "kill_switch closed->open: kill switch by alice: drill; drawdown closed->open: 16% down", t)]
    [('kill_switch', 'open', 'kill switch by alice: drill'), ('drawdown', 'open', '16% down')]
    """
    out = []
    for part in reason.split("; "):
        match = _BREAKER_CHANGE.fullmatch(part.strip())
        if match:
            out.append(schema.Breaker(name=match["name"], status=match["after"], reason=match["reason"], since=ts))
    return out


def _command(r: dict[str, Any]) -> schema.CommandRecord:
    return schema.CommandRecord(**{**r, "ts": utc(r["ts"]), "recorded_at": utc(r["recorded_at"])})


#: How long a command counts as awaiting the risk engine (after that the audit has it, not the state).
PENDING_WINDOW = "10 minutes"


def _acted_on(command: dict[str, Any], reasons: list[str]) -> bool:
    """Whether the risk engine recorded acting on ``command``: its kill or reset note is in a reason."""
    verb = "kill switch by" if command["kind"] == "kill_switch" else "reset by"
    note = f"{verb} {command['requested_by']}: {command['reason']}"
    return any(note in r for r in reasons)


def risk_states(conn: Conn) -> list[schema.RiskState]:
    changes = _rows(
        conn,
        "SELECT account, trading_state, detail, ts_event FROM risk_decisions WHERE kind = 'state_changed'"
        " ORDER BY account, ts_event, decision_id",
    )
    latest = {
        r["account"]: r
        for r in _rows(
            conn,
            "SELECT DISTINCT ON (account) account, trading_state, ts_event FROM risk_decisions"
            " ORDER BY account, ts_event DESC, decision_id DESC",
        )
    }
    # Decisions are in the flow's clock (event time in a replay), commands in wall time: a command is
    # matched to the decision that names it, not by comparing the two clocks.
    # Strategy pauses do not change the trading state: they are shown by strategies(), not here.
    recent = _rows(
        conn,
        f"SELECT * FROM operator_commands WHERE recorded_at > now() - interval '{PENDING_WINDOW}'"
        " AND kind IN ('kill_switch', 'reset_breaker') ORDER BY ts, id",
    )
    notes: dict[str, list[str]] = defaultdict(list)
    for r in _rows(
        conn,
        "SELECT account, detail->>'reason' AS reason FROM risk_decisions WHERE kind IN ('state_changed', 'cancel_all')"
        " AND (detail->>'reason' LIKE '%%kill switch by %%' OR detail->>'reason' LIKE '%%reset by %%')",
    ):
        notes[r["account"]].append(r["reason"] or "")
    commanded = {r[0] for r in conn.execute("SELECT DISTINCT account FROM operator_commands WHERE account <> '*'")}
    per_account: dict[str, dict[str, schema.Breaker]] = defaultdict(dict)
    last_change: dict[str, dict[str, Any]] = {}
    for c in changes:
        for breaker in breakers_from_reason(c["detail"].get("reason", ""), utc(c["ts_event"])):
            per_account[c["account"]][breaker.name] = breaker
        last_change[c["account"]] = c
    out = []
    for acct in sorted(set(latest) | commanded):
        change = last_change.get(acct)
        newest = latest.get(acct)
        pending = [_command(c) for c in recent if c["account"] in {acct, "*"} and not _acted_on(c, notes[acct])]
        out.append(
            schema.RiskState(
                account=acct,
                trading_state=newest["trading_state"] if newest else None,
                since=utc(change["ts_event"]) if change else None,
                last_change_reason=change["detail"].get("reason") if change else None,
                breakers=sorted(per_account[acct].values(), key=lambda b: b.name),
                pending_commands=pending,
            )
        )
    return out


def model_scores(conn: Conn) -> list[schema.ModelScore]:
    rows = _rows(
        conn,
        """
        WITH latest AS (
            SELECT DISTINCT ON (model_version, symbol) * FROM model_scores
            ORDER BY model_version, symbol, ts_event DESC, n_labels DESC
        ), drift AS (
            SELECT DISTINCT ON (model_version, symbol) model_version, symbol, action AS last_drift_action,
                   ts_event AS last_drift_at, count(*) OVER (PARTITION BY model_version, symbol) AS drift_events
            FROM model_drift_events ORDER BY model_version, symbol, ts_event DESC
        )
        SELECT l.model, l.model_version, l.symbol, l.ts_event, l.n_labels, l.window_size, l.log_loss, l.roc_auc,
               l.accuracy, l.brier, l.rolling_log_loss, l.rolling_roc_auc, l.rolling_accuracy, l.rolling_brier,
               coalesce(d.drift_events, 0) AS drift_events, d.last_drift_action, d.last_drift_at
        FROM latest l LEFT JOIN drift d USING (model_version, symbol) ORDER BY l.symbol, l.model_version
        """,
    )
    return [
        schema.ModelScore(**{**r, "ts_event": utc(r["ts_event"]), "last_drift_at": utc(r["last_drift_at"])})
        for r in rows
    ]


def strategies(conn: Conn) -> list[schema.StrategyStatus]:
    """Every (account, strategy) with stored signals or a pause/resume command, paused or not.

    "Paused" is what the operators asked for last (the audit of the command path): the latest
    pause/resume naming the strategy on the account or on ``*`` (every account). The trading flow
    applies it as it reads the command: a paused strategy's entries are denied (strategy_paused).
    """
    rows = _rows(
        conn,
        """
        WITH seen AS (
            SELECT account, strategy, count(*) AS signals, max(ts_event) AS last_signal_at
            FROM signals GROUP BY account, strategy
        ), pairs AS (
            SELECT account, strategy FROM seen
            UNION SELECT account, strategy FROM operator_commands WHERE kind IN ('pause_strategy', 'resume_strategy')
        )
        SELECT p.account AS pair_account, p.strategy AS pair_strategy, coalesce(s.signals, 0) AS pair_signals,
               s.last_signal_at AS pair_last_signal_at, c.*
        FROM pairs p
        LEFT JOIN seen s ON s.account = p.account AND s.strategy = p.strategy
        LEFT JOIN LATERAL (
            SELECT * FROM operator_commands o
            WHERE o.kind IN ('pause_strategy', 'resume_strategy') AND o.strategy = p.strategy
              AND o.account IN (p.account, '*')
            ORDER BY o.ts DESC, o.id DESC LIMIT 1
        ) c ON true
        ORDER BY p.account, p.strategy
        """,
    )
    out = []
    for r in rows:
        command = _command({k: v for k, v in r.items() if not k.startswith("pair_")}) if r["id"] is not None else None
        out.append(
            schema.StrategyStatus(
                account=r["pair_account"],
                strategy=r["pair_strategy"],
                paused=command is not None and command.kind == "pause_strategy",
                last_command=command,
                signals=r["pair_signals"],
                last_signal_at=utc(r["pair_last_signal_at"]),
            )
        )
    return out


def commands(conn: Conn, limit: int = 100) -> list[schema.CommandRecord]:
    rows = _rows(conn, "SELECT * FROM operator_commands ORDER BY ts DESC, id DESC LIMIT %s", [min(limit, MAX_LIMIT)])
    return [_command(r) for r in rows]


# The md_* tables can hold billions of rows: the newest row per instrument is found by a skip scan
# over the primary key (exchange, symbol, ts_event, ...) instead of a GROUP BY over the whole table.
_SKIP_SCAN = """
WITH RECURSIVE keys AS (
    (SELECT exchange, symbol FROM {table} ORDER BY exchange, symbol LIMIT 1)
    UNION ALL
    SELECT n.exchange, n.symbol FROM keys k CROSS JOIN LATERAL (
        SELECT exchange, symbol FROM {table} t WHERE (t.exchange, t.symbol) > (k.exchange, k.symbol)
        ORDER BY exchange, symbol LIMIT 1) n
)
SELECT k.exchange, k.symbol,
       (SELECT max(ts_event) FROM {table} t WHERE t.exchange = k.exchange AND t.symbol = k.symbol) AS newest
FROM keys k
"""


def freshness(conn: Conn, now: datetime) -> list[schema.Freshness]:
    newest: dict[tuple[str, str], dict[str, datetime | None]] = defaultdict(dict)
    for table, column in (
        ("md_trades", "last_trade_at"),
        ("md_quotes", "last_quote_at"),
        ("md_candles", "last_candle_at"),
    ):
        for r in _rows(conn, _SKIP_SCAN.format(table=table)):
            newest[(r["exchange"], r["symbol"])][column] = utc(r["newest"])
    dead = {
        r["key"]: r["n"]
        for r in _rows(
            conn, "SELECT convert_from(msg_key, 'UTF8') AS key, count(*) AS n FROM dead_letters GROUP BY msg_key"
        )
    }
    out = []
    for (exchange, symbol), times in sorted(newest.items()):
        key = f"{exchange}:{symbol}"
        stamps = [t for t in times.values() if t is not None]
        age = (now - max(stamps)).total_seconds() if stamps else None
        out.append(
            schema.Freshness(
                key=key,
                exchange=exchange,
                symbol=symbol,
                last_trade_at=times.get("last_trade_at"),
                last_quote_at=times.get("last_quote_at"),
                last_candle_at=times.get("last_candle_at"),
                age_seconds=age,
                dead_letters=dead.get(key, 0),
            )
        )
    return out


def dead_letters(conn: Conn) -> list[schema.DeadLetterCount]:
    rows = _rows(
        conn,
        "SELECT convert_from(msg_key, 'UTF8') AS key, stage, reason, count(*) AS count, max(ts_recv) AS last_at"
        " FROM dead_letters GROUP BY msg_key, stage, reason ORDER BY count DESC, stage, reason",
    )
    return [schema.DeadLetterCount(**{**r, "last_at": utc(r["last_at"])}) for r in rows]


def validation_runs(conn: Conn, limit: int = 100) -> list[schema.ValidationRun]:
    rows = _rows(conn, "SELECT * FROM quality_runs ORDER BY started_at DESC LIMIT %s", [min(limit, MAX_LIMIT)])
    return [
        schema.ValidationRun(
            run_id=r["run_id"],
            backend=r["backend"],
            tables=list(r["tables"]),
            symbol=r["symbol"],
            range_start=utc(r["range_start"]),
            range_end=utc(r["range_end"]),
            started_at=utc(r["started_at"]),
            finished_at=utc(r["finished_at"]),
            success=r["success"],
            batches=r["batches"],
            rows_validated=r["rows_validated"],
            failed_checks=r["failed_checks"],
            report_url=f"/api/validation/{r['run_id']}/report/index.html" if r["report_path"] else None,
        )
        for r in rows
    ]


def validation_report_path(conn: Conn, run_id: str) -> str | None:
    row = conn.execute("SELECT report_path FROM quality_runs WHERE run_id = %s", (run_id,)).fetchone()
    return None if row is None else row[0]


def stored_candles(conn: Conn, exchange: str, symbol: str, interval_seconds: int, limit: int) -> list[schema.Candle]:
    """The newest ``limit`` closed candles stored for the instrument in the timeframe of ``interval_seconds``."""
    frames = [
        r[0]
        for r in conn.execute(
            "SELECT DISTINCT timeframe FROM md_candles WHERE exchange = %s AND symbol = %s", (exchange, symbol)
        )
        if _seconds(r[0]) == interval_seconds
    ]
    if not frames:
        return []
    rows = _rows(
        conn,
        "SELECT * FROM (SELECT ts_event, open, high, low, close, volume FROM md_candles WHERE exchange = %s"
        " AND symbol = %s AND timeframe = %s AND closed ORDER BY ts_event DESC LIMIT %s) c ORDER BY ts_event",
        [exchange, symbol, frames[0], min(limit, 5000)],
    )
    return [
        schema.Candle(
            ts=utc(r["ts_event"]),
            open=dec(r["open"]),
            high=dec(r["high"]),
            low=dec(r["low"]),
            close=dec(r["close"]),
            volume=dec(r["volume"]),
            trades=0,
        )
        for r in rows
    ]


def _seconds(timeframe: str) -> int | None:
    try:
        return timeframe_seconds(timeframe)
    except ValueError:
        return None


def signals_between(conn: Conn, exchange: str, symbol: str, start: datetime) -> list[schema.SignalMark]:
    rows = _rows(
        conn,
        "SELECT strategy, account, side, strength, confidence, model_version, ts_event FROM signals"
        " WHERE exchange = %s AND symbol = %s AND ts_event >= %s ORDER BY ts_event, strategy",
        [exchange, symbol, start],
    )
    return [schema.SignalMark(**{**r, "ts_event": utc(r["ts_event"])}) for r in rows]


def candles(conn: Conn, exchange: str, symbol: str, interval_seconds: int, limit: int) -> list[schema.Candle]:
    """OHLCV bars built from the stored trades (the newest ``limit`` bars of ``interval_seconds``)."""
    rows = _rows(
        conn,
        """
        WITH last AS (SELECT max(ts_event) AS t FROM md_trades WHERE exchange = %(e)s AND symbol = %(s)s),
        t AS (
            SELECT date_bin(make_interval(secs => %(i)s), ts_event, timestamptz '2000-01-01 00:00:00+00') AS bucket,
                   price, amount, ts_event, trade_id
            FROM md_trades, last
            WHERE exchange = %(e)s AND symbol = %(s)s AND ts_event > last.t - make_interval(secs => %(i)s * %(n)s)
        )
        SELECT bucket AS ts,
               (array_agg(price ORDER BY ts_event, trade_id))[1] AS open, max(price) AS high, min(price) AS low,
               (array_agg(price ORDER BY ts_event DESC, trade_id DESC))[1] AS close,
               sum(amount) AS volume, count(*) AS trades
        FROM t GROUP BY bucket ORDER BY bucket
        """,
        {"e": exchange, "s": symbol, "i": interval_seconds, "n": min(limit, 5000)},
    )
    return [
        schema.Candle(
            ts=utc(r["ts"]),
            open=dec(r["open"]),
            high=dec(r["high"]),
            low=dec(r["low"]),
            close=dec(r["close"]),
            volume=dec(r["volume"]),
            trades=r["trades"],
        )
        for r in rows
    ]


def fills_between(conn: Conn, exchange: str, symbol: str, start: datetime) -> list[schema.Fill]:
    rows = _rows(
        conn,
        "SELECT * FROM fills WHERE exchange = %s AND symbol = %s AND ts_event >= %s ORDER BY ts_event, fill_id",
        [exchange, symbol, start],
    )
    return [_fill(r) for r in rows]
