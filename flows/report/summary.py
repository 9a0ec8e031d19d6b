"""The report's content as data: the summary metrics (one list shared by the HTML table and the
JSON, so neither can miss a metric), the per-symbol and trade rows, and the JSON document.

Values in the JSON: money as decimal strings, ratios as floats, durations in seconds, times as
ISO-8601 UTC, undefined values as null.

>>> fmt_money(Decimal("12345.678"))
'12,345.68'
>>> fmt_pct(0.0827), fmt_pct(None)
('8.27%', 'n/a')
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import ROUND_HALF_EVEN, Decimal
from typing import Any

from flows.report.metrics import ClosedTrade, ReportMetrics, SymbolMetrics, TradeStats
from flows.report.results import RunResults, metadata_record

JSON_VERSION = 1
NA = "n/a"
CENT = Decimal("0.01")


def fmt_money(value: Decimal | None) -> str:
    if value is None:
        return NA
    return f"{value.quantize(CENT, rounding=ROUND_HALF_EVEN):,}"


def fmt_price(value: Decimal) -> str:
    return f"{value.normalize():,f}"


def fmt_pct(value: float | None) -> str:
    return NA if value is None else f"{value * 100:.2f}%"


def fmt_ratio(value: float | None) -> str:
    return NA if value is None else f"{value:.2f}"


def fmt_duration(value: timedelta | None) -> str:
    if value is None:
        return NA
    hours = value.total_seconds() / 3600
    return f"{hours / 24:.1f} d" if hours >= 48 else f"{hours:.1f} h"


def fmt_time(value: datetime | None) -> str:
    return NA if value is None else value.strftime("%Y-%m-%d %H:%M UTC")


def _iso(value: datetime | None) -> str | None:
    return None if value is None else value.isoformat()


def _dec(value: Decimal | None) -> str | None:
    return None if value is None else str(value)


def _secs(value: timedelta | None) -> float | None:
    return None if value is None else value.total_seconds()


@dataclass(frozen=True, slots=True)
class Metric:
    """One summary metric: ``key`` in the JSON, ``label`` and ``text`` in the HTML table."""

    key: str
    label: str
    text: str
    value: Any  # JSON-ready


def summary_metrics(m: ReportMetrics, quote: str) -> list[Metric]:
    """Every headline metric of the run, in display order."""
    st, dd = m.stats, m.drawdown
    other_fees = "; ".join(f"{amount} {ccy}" for ccy, amount in m.fees_other_currencies)
    rows = [
        Metric("initial_equity", f"Initial equity ({quote})", fmt_money(m.initial_equity), str(m.initial_equity)),
        Metric("final_equity", f"Final equity ({quote})", fmt_money(m.final_equity), str(m.final_equity)),
        Metric("net_profit", f"Net profit ({quote})", fmt_money(m.net_profit), str(m.net_profit)),
        Metric("total_return", "Total return", fmt_pct(m.total_return), m.total_return),
        Metric("cagr", "CAGR", fmt_pct(m.cagr), m.cagr),
        Metric(
            "buy_and_hold_return",
            "Buy-and-hold return (equal weight)",
            fmt_pct(m.buy_and_hold_return),
            m.buy_and_hold_return,
        ),
        Metric("sharpe", "Sharpe (daily, annualised √365)", fmt_ratio(m.sharpe), m.sharpe),
        Metric("sortino", "Sortino (daily, annualised √365)", fmt_ratio(m.sortino), m.sortino),
        Metric("calmar", "Calmar (CAGR / max drawdown)", fmt_ratio(m.calmar), m.calmar),
        Metric("max_drawdown_pct", "Max drawdown", fmt_pct(dd.pct), dd.pct),
        Metric("max_drawdown_value", f"Max drawdown ({quote})", fmt_money(dd.value), str(dd.value)),
        Metric("max_drawdown_peak", "Drawdown peak", fmt_time(dd.peak), _iso(dd.peak)),
        Metric("max_drawdown_trough", "Drawdown trough", fmt_time(dd.trough), _iso(dd.trough)),
        Metric(
            "max_drawdown_recovery",
            "Drawdown recovered",
            fmt_time(dd.recovery) if dd.recovery or not dd.trough else "not recovered",
            _iso(dd.recovery),
        ),
        Metric("trades", "Closed trades", str(st.trades), st.trades),
        Metric("wins", "Winning trades", str(st.wins), st.wins),
        Metric("losses", "Losing trades", str(st.losses), st.losses),
        Metric("win_rate", "Win rate", fmt_pct(st.win_rate), st.win_rate),
        Metric("profit_factor", "Profit factor", fmt_ratio(st.profit_factor), st.profit_factor),
        Metric("avg_win", f"Average win ({quote})", fmt_money(st.avg_win), _dec(st.avg_win)),
        Metric("avg_loss", f"Average loss ({quote})", fmt_money(st.avg_loss), _dec(st.avg_loss)),
        Metric("expectancy", f"Expectancy per trade ({quote})", fmt_money(st.expectancy), _dec(st.expectancy)),
        Metric("trade_pnl", f"Closed-trade PnL ({quote})", fmt_money(st.net_pnl), str(st.net_pnl)),
        Metric("avg_trade_duration_s", "Average trade duration", fmt_duration(st.avg_duration), _secs(st.avg_duration)),
        Metric("exposure_time", "Time in market", fmt_pct(m.exposure_time), m.exposure_time),
        Metric(
            "avg_gross_exposure", "Average gross exposure / equity", fmt_pct(m.avg_gross_exposure), m.avg_gross_exposure
        ),
        Metric("turnover", "Turnover (traded notional / mean equity)", fmt_ratio(m.turnover), m.turnover),
        Metric("traded_notional", f"Traded notional ({quote})", fmt_money(m.traded_notional), str(m.traded_notional)),
        Metric("fees", f"Fees ({quote})", fmt_money(m.fees), str(m.fees)),
        Metric(
            "fees_other_currencies",
            "Fees in other currencies",
            other_fees or "none",
            {ccy: str(amount) for ccy, amount in m.fees_other_currencies},
        ),
        Metric("open_positions", "Open positions at end", str(len(m.open_positions)), len(m.open_positions)),
        Metric("risk_approvals", "Orders approved by the risk gate", str(m.risk.approvals), m.risk.approvals),
        Metric("risk_denials", "Orders denied by the risk gate", str(m.risk.denials), m.risk.denials),
        Metric(
            "risk_state_changes",
            "Trading-state changes (breakers)",
            str(len(m.risk.state_changes)),
            len(m.risk.state_changes),
        ),
        Metric("days", "Days (daily returns)", str(m.days), m.days),
    ]
    return rows


def _stats_json(st: TradeStats) -> dict[str, Any]:
    return {
        "trades": st.trades,
        "wins": st.wins,
        "losses": st.losses,
        "draws": st.draws,
        "win_rate": st.win_rate,
        "gross_profit": str(st.gross_profit),
        "gross_loss": str(st.gross_loss),
        "net_pnl": str(st.net_pnl),
        "profit_factor": st.profit_factor,
        "avg_win": _dec(st.avg_win),
        "avg_loss": _dec(st.avg_loss),
        "expectancy": _dec(st.expectancy),
        "best": _dec(st.best),
        "worst": _dec(st.worst),
        "avg_duration_s": _secs(st.avg_duration),
    }


def symbol_json(s: SymbolMetrics) -> dict[str, Any]:
    return {
        "symbol": s.symbol,
        **_stats_json(s.stats),
        "fees": str(s.fees),
        "traded_notional": str(s.traded_notional),
        "fills": s.fills,
        "buy_and_hold_return": s.buy_and_hold_return,
    }


def trade_json(t: ClosedTrade) -> dict[str, Any]:
    return {
        "symbol": t.symbol,
        "side": t.side,
        "entry_ts": t.entry_ts.isoformat(),
        "exit_ts": t.exit_ts.isoformat(),
        "entry_price": str(t.entry_price),
        "exit_price": str(t.exit_price),
        "amount": str(t.amount),
        "fees": str(t.fees),
        "gross_pnl": str(t.gross_pnl),
        "net_pnl": str(t.net_pnl),
        "return": t.return_pct,
    }


def daily_curve(m: ReportMetrics, samples: Sequence[tuple[datetime, Decimal, float]]) -> list[dict[str, Any]]:
    """The equity, buy-and-hold and drawdown at the last sample of each UTC day (the JSON keeps a
    daily curve, not every sample)."""
    bh = dict(m.buy_and_hold)
    last_of_day: dict[str, tuple[datetime, Decimal, float]] = {}
    for ts, equity, dd in samples:
        last_of_day[ts.date().isoformat()] = (ts, equity, dd)
    return [
        {"ts": ts.isoformat(), "equity": str(eq), "buy_and_hold": _dec(bh.get(ts)), "drawdown": dd}
        for ts, eq, dd in last_of_day.values()
    ]


def report_document(results: RunResults, m: ReportMetrics, curve: list[dict[str, Any]]) -> dict[str, Any]:
    """The machine-readable report (what ``report.json`` holds)."""
    quote = results.metadata.quote_currency
    return {
        "v": JSON_VERSION,
        "metadata": metadata_record(results.metadata),
        "metrics": {x.key: x.value for x in summary_metrics(m, quote)},
        "trade_stats": _stats_json(m.stats),
        "per_symbol": [symbol_json(s) for s in m.per_symbol],
        "trades": [trade_json(t) for t in m.trades],
        "open_positions": [
            {
                "symbol": p.symbol,
                "side": p.side,
                "amount": str(p.amount),
                "avg_entry_price": str(p.avg_entry_price),
                "first_entry_ts": p.first_entry_ts.isoformat(),
                "entry_fees": str(p.entry_fees),
            }
            for p in m.open_positions
        ],
        "risk": {
            "approvals": m.risk.approvals,
            "denials": m.risk.denials,
            "cancel_alls": m.risk.cancel_alls,
            "denials_by_reason": dict(m.risk.denials_by_reason),
            "time_in_state": dict(m.risk.time_in_state),
            "state_changes": [
                {"ts": c.ts.isoformat(), "old": c.old.value, "new": c.new.value, "reason": c.reason}
                for c in m.risk.state_changes
            ],
        },
        "dead_letters": [
            {"stage": d.stage, "reason": d.reason, "count": d.count, "samples": list(d.samples)}
            for d in sorted(results.dead_letters, key=lambda d: (d.stage, d.reason))
        ],
        "equity_daily": curve,
    }
