"""The report as one self-contained HTML file: inline CSS, charts as inline SVG drawn here, tables.

No script, no font, no image or style sheet from anywhere: the file opens offline and references
no URL (inline SVG in HTML needs no namespace URL either). Every piece of text from the results is
escaped. Long series are thinned for drawing (min and max of each pixel column are kept, so spikes
and drawdowns stay visible); the numbers in the tables come from the full series.

>>> svg = line_chart([Series("equity", "#1f6feb", [(0.0, 1.0), (86400.0, 2.0)])], "Equity", fmt_axis_number)
>>> svg.startswith("<svg") and "<polyline" in svg
True
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from decimal import Decimal
from html import escape

from core.orders import TradingState
from flows.report.metrics import ReportMetrics
from flows.report.results import RunResults
from flows.report.summary import (
    fmt_duration,
    fmt_money,
    fmt_pct,
    fmt_price,
    fmt_ratio,
    fmt_time,
    summary_metrics,
)
from risk.decisions import DecisionKind

MAX_TRADE_ROWS = 500
MAX_STATE_ROWS = 300
MAX_MARKER_TIPS = 2000  # above this many trades per chart, markers carry no hover text
MAX_POINTS = 1600  # per series, after thinning (800 pixel columns x min/max)
WIDTH, LEFT, RIGHT, TOP, BOTTOM = 960, 78, 16, 26, 28
TIMELINE_LEFT = 230  # room for the row labels (denial reason codes)
STATE_COLOURS = {TradingState.ACTIVE: "#d8f0dc", TradingState.REDUCING: "#ffe8a3", TradingState.HALTED: "#f7b6b2"}
ENTRY, EXIT, BH, EQUITY, DD = "#1a7f37", "#cf222e", "#8c959f", "#1f6feb", "#cf222e"

CSS = """
body{font:14px/1.45 system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;margin:24px auto;max-width:1000px;
color:#1f2328;background:#fff;padding:0 16px}
h1{font-size:22px;margin:0 0 4px}h2{font-size:17px;margin:28px 0 8px;border-bottom:1px solid #d0d7de;padding-bottom:4px}
h3{font-size:15px;margin:18px 0 6px}
table{border-collapse:collapse;margin:6px 0 10px;font-size:13px}
th,td{border:1px solid #d0d7de;padding:3px 8px;text-align:left;vertical-align:top}
th{background:#f6f8fa}td.num{text-align:right;font-variant-numeric:tabular-nums}
.pos{color:#1a7f37}.neg{color:#cf222e}.note{color:#57606a;font-size:12px}
.grid{display:grid;grid-template-columns:1fr 1fr;gap:0 28px}
svg.chart{display:block;margin:6px 0 14px;background:#fff}
svg text{font:11px system-ui,sans-serif;fill:#57606a}
.sample{font-family:ui-monospace,monospace;font-size:12px;word-break:break-all}
"""


def fmt_axis_number(value: float) -> str:
    """Short axis label: 12345.6 -> '12.3k'.

    >>> fmt_axis_number(12345.6), fmt_axis_number(0.5), fmt_axis_number(-2500000)
    ('12.3k', '0.5', '-2.5M')
    """
    size = abs(value)
    if size >= 1e6:
        return f"{value / 1e6:.3g}M"
    if size >= 1e4:
        return f"{value / 1e3:.3g}k"
    return f"{value:.4g}"


def fmt_axis_pct(value: float) -> str:
    return f"{value * 100:.3g}%"


def _secs(ts: datetime) -> float:
    return ts.timestamp()  # aware datetimes only (the results' times are aware UTC)


def _date_label(seconds: float, span: float) -> str:
    ts = datetime.fromtimestamp(seconds, UTC)
    if span > 2 * 365 * 86400:
        return ts.strftime("%Y-%m")
    if span > 3 * 86400:
        return ts.strftime("%Y-%m-%d")
    return ts.strftime("%m-%d %H:%M")


def _nice_ticks(lo: float, hi: float, count: int = 5) -> list[float]:
    if hi <= lo:
        return [lo]
    raw = (hi - lo) / count
    mag = 10 ** math.floor(math.log10(raw))
    step = next(m * mag for m in (1, 2, 2.5, 5, 10) if m * mag >= raw)
    first = math.ceil(lo / step) * step
    return [first + i * step for i in range(int((hi - first) / step) + 1)]


def _log_ticks(lo_exp: float, hi_exp: float) -> list[float]:
    """Values 1, 2, 5 x 10^k inside [10^lo_exp, 10^hi_exp] (both in log10 space)."""
    out = []
    for k in range(math.floor(lo_exp), math.ceil(hi_exp) + 1):
        for m in (1, 2, 5):
            v = m * 10.0**k
            if lo_exp <= math.log10(v) <= hi_exp:
                out.append(v)
    return out


def thin(points: Sequence[tuple[float, float]], columns: int = MAX_POINTS // 2) -> list[tuple[float, float]]:
    """At most ``2 * columns`` points: the min and max of each time column, in time order.

    >>> len(thin([(float(i), float(i % 7)) for i in range(10_000)], 100)) <= 200
    True
    """
    if len(points) <= 2 * columns:
        return list(points)
    x0, x1 = points[0][0], points[-1][0]
    width = (x1 - x0) / columns or 1.0
    out: list[tuple[float, float]] = []
    bucket: list[tuple[float, float]] = []
    current = 0
    for p in points:
        col = min(int((p[0] - x0) / width), columns - 1)
        if col != current and bucket:
            out.extend(_extremes(bucket))
            bucket = []
        current = col
        bucket.append(p)
    out.extend(_extremes(bucket))
    return out


def _extremes(bucket: list[tuple[float, float]]) -> list[tuple[float, float]]:
    lo = min(bucket, key=lambda p: p[1])
    hi = max(bucket, key=lambda p: p[1])
    return sorted({lo, hi}, key=lambda p: p[0])


@dataclass(frozen=True, slots=True)
class Series:
    label: str
    colour: str
    points: Sequence[tuple[float, float]]  # (epoch seconds, value)
    fill: bool = False  # shade the area between the line and zero


@dataclass(frozen=True, slots=True)
class Markers:
    label: str
    colour: str
    points: Sequence[tuple[float, float]]
    up: bool  # triangle pointing up (entries) or down (exits)
    titles: Sequence[str] = field(default_factory=tuple)


class _Frame:
    """Maps (time, value) into the plot area of a chart of the given height."""

    def __init__(
        self, x_lo: float, x_hi: float, y_lo: float, y_hi: float, height: int, *, left: int = LEFT, log: bool = False
    ) -> None:
        if log:  # the frame works in log10 space; values are mapped by y()
            y_lo, y_hi = math.log10(y_lo), math.log10(y_hi)
        if x_hi <= x_lo:
            x_lo, x_hi = x_lo - 43200, x_hi + 43200
        if y_hi <= y_lo:
            pad = abs(y_lo) * 0.05 or 1.0
            y_lo, y_hi = y_lo - pad, y_hi + pad
        self.x_lo, self.x_hi, self.y_lo, self.y_hi, self.height = x_lo, x_hi, y_lo, y_hi, height
        self.left, self.log = left, log
        self.plot_w = WIDTH - left - RIGHT
        self.plot_h = height - TOP - BOTTOM

    def x(self, t: float) -> float:
        return self.left + (t - self.x_lo) / (self.x_hi - self.x_lo) * self.plot_w

    def y(self, v: float) -> float:
        if self.log:
            v = math.log10(v)
        return TOP + (self.y_hi - v) / (self.y_hi - self.y_lo) * self.plot_h

    def axes(self, y_fmt: Callable[[float], str], title: str) -> list[str]:
        out = [f'<text x="{self.left}" y="16" style="font-weight:600;fill:#1f2328">{escape(title)}</text>']
        ticks = _log_ticks(self.y_lo, self.y_hi) if self.log else _nice_ticks(self.y_lo, self.y_hi)
        for v in ticks:
            y = self.y(v)
            out.append(f'<line x1="{self.left}" x2="{WIDTH - RIGHT}" y1="{y:.1f}" y2="{y:.1f}" stroke="#eaeef2"/>')
            out.append(f'<text x="{self.left - 6}" y="{y + 4:.1f}" text-anchor="end">{escape(y_fmt(v))}</text>')
        out.extend(self.time_axis())
        return out

    def time_axis(self) -> list[str]:
        span = self.x_hi - self.x_lo
        base = TOP + self.plot_h
        out = [f'<line x1="{self.left}" x2="{WIDTH - RIGHT}" y1="{base}" y2="{base}" stroke="#8c959f"/>']
        for i in range(6):
            t = self.x_lo + span * i / 5
            x = self.x(t)
            anchor = "start" if i == 0 else "end" if i == 5 else "middle"
            out.append(f'<line x1="{x:.1f}" x2="{x:.1f}" y1="{base}" y2="{base + 4}" stroke="#8c959f"/>')
            out.append(f'<text x="{x:.1f}" y="{base + 16}" text-anchor="{anchor}">{_date_label(t, span)}</text>')
        return out


def _legend(items: Sequence[tuple[str, str]]) -> list[str]:
    out, x = [], WIDTH - RIGHT
    for label, colour in reversed(items):
        x -= 14 + 7 * len(label)
        out.append(f'<rect x="{x}" y="7" width="10" height="10" fill="{colour}"/>')
        out.append(f'<text x="{x + 14}" y="16">{escape(label)}</text>')
        x -= 10
    return out


def _svg(height: int, label: str, body: list[str]) -> str:
    return (
        f'<svg class="chart" width="{WIDTH}" height="{height}" viewBox="0 0 {WIDTH} {height}" role="img" '
        f'aria-label="{escape(label)}">' + "".join(body) + "</svg>"
    )


def line_chart(
    series: Sequence[Series],
    title: str,
    y_fmt: Callable[[float], str],
    markers: Sequence[Markers] = (),
    *,
    height: int = 260,
    log: bool = False,
) -> str:
    """A time-series chart: lines (optionally shaded to zero), triangle markers, axes and a legend.

    ``log`` draws the values on a log10 scale (every value must be > 0; the caller checks).
    """
    drawn = [(s, thin(s.points)) for s in series if s.points]
    everything = [p for _, pts in drawn for p in pts] + [p for m in markers for p in m.points]
    if not everything:
        return _svg(60, title, [f'<text x="{LEFT}" y="34">{escape(title)}: no data</text>'])
    xs = [p[0] for p in everything]
    ys = [p[1] for p in everything] + ([0.0] if any(s.fill for s in series) else [])
    frame = _Frame(min(xs), max(xs), min(ys), max(ys), height, log=log)
    body = frame.axes(y_fmt, title)
    for s, pts in drawn:
        coords = " ".join(f"{frame.x(t):.1f},{frame.y(v):.1f}" for t, v in pts)
        if s.fill:
            zero = frame.y(0.0)
            first, last = frame.x(pts[0][0]), frame.x(pts[-1][0])
            body.append(
                f'<polygon points="{first:.1f},{zero:.1f} {coords} {last:.1f},{zero:.1f}" '
                f'fill="{s.colour}" fill-opacity="0.18" stroke="none"/>'
            )
        body.append(f'<polyline points="{coords}" fill="none" stroke="{s.colour}" stroke-width="1.3"/>')
    for m in markers:
        sign = -1 if m.up else 1
        size = 7 if len(m.points) <= 200 else 4  # many trades: smaller marks keep the price visible
        with_tips = len(m.points) <= MAX_MARKER_TIPS
        drawn_at: set[tuple[float, float]] = set()
        for i, (t, v) in enumerate(m.points):
            x, y = round(frame.x(t), 1), round(frame.y(v), 1)
            if not with_tips:
                if (x, y) in drawn_at:
                    continue  # the same pixel again: a long run's file stays small
                drawn_at.add((x, y))
            tip = f"<title>{escape(m.titles[i])}</title>" if with_tips and i < len(m.titles) else ""
            body.append(
                f'<path d="M{x:.1f} {y + sign * 2:.1f}l{-size / 2:g} {sign * size}h{size:g}z" '
                f'fill="{m.colour}" fill-opacity="0.8">{tip}</path>'
            )
    body.extend(_legend([(s.label, s.colour) for s, _ in drawn] + [(m.label, m.colour) for m in markers if m.points]))
    return _svg(height, title, body)


def risk_timeline(results: RunResults, m: ReportMetrics, x_lo: float, x_hi: float) -> str:
    """Trading state as coloured bands, then one row of ticks per kind of decision: approvals,
    cancel-alls, and each denial reason (most frequent first; the rest grouped as 'other')."""
    reasons = [code for code, _ in m.risk.denials_by_reason]
    shown, grouped = reasons[:10], set(reasons[10:])
    rows: list[tuple[str, list[float]]] = [("approved", []), ("cancel all", [])]
    rows += [(f"denied: {code}", []) for code in shown]
    if grouped:
        rows.append(("denied: other", []))
    index = {label: i for i, (label, _) in enumerate(rows)}
    for d in sorted(results.decisions, key=lambda x: (x.ts, x.decision_id)):
        t = _secs(d.ts)
        if d.kind is DecisionKind.APPROVED:
            rows[0][1].append(t)
        elif d.kind is DecisionKind.CANCEL_ALL:
            rows[1][1].append(t)
        elif d.kind is DecisionKind.DENIED:
            for code in sorted({r.code for r in d.reasons}):
                label = f"denied: {code}" if code in shown else "denied: other"
                rows[index[label]][1].append(t)
    row_h = 18
    height = TOP + row_h * (len(rows) + 1) + BOTTOM
    frame = _Frame(x_lo, x_hi, 0.0, 1.0, height, left=TIMELINE_LEFT)
    body = [
        f'<text x="{TIMELINE_LEFT}" y="16" style="font-weight:600;fill:#1f2328">Risk decisions and trading state</text>'
    ]
    # State bands: ACTIVE until the first change, then each change's new state.
    state, since = TradingState.ACTIVE, frame.x_lo
    spans = []
    for c in m.risk.state_changes:
        spans.append((since, _secs(c.ts), state, c.reason))
        state, since = c.new, _secs(c.ts)
    spans.append((since, frame.x_hi, state, ""))
    y0 = TOP
    body.append(f'<text x="{TIMELINE_LEFT - 6}" y="{y0 + 13}" text-anchor="end">state</text>')
    for a, b, st, why in spans:
        xa, xb = frame.x(max(a, frame.x_lo)), frame.x(min(b, frame.x_hi))
        tip = f"<title>{escape(st.value)} {escape(why)}</title>"
        body.append(
            f'<rect x="{xa:.1f}" y="{y0 + 2}" width="{max(xb - xa, 0.6):.1f}" height="{row_h - 4}" '
            f'fill="{STATE_COLOURS[st]}">{tip}</rect>'
        )
    for i, (label, ticks) in enumerate(rows, start=1):
        y = y0 + i * row_h
        colour = ENTRY if label == "approved" else "#9a6700" if label == "cancel all" else EXIT
        body.append(
            f'<line x1="{TIMELINE_LEFT}" x2="{WIDTH - RIGHT}" y1="{y + row_h / 2}" y2="{y + row_h / 2}" '
            'stroke="#f0f2f4"/>'
        )
        body.append(
            f'<text x="{TIMELINE_LEFT - 6}" y="{y + 13}" text-anchor="end">{escape(label[:30])} ({len(ticks)})</text>'
        )
        if ticks:
            columns = sorted({round(frame.x(t), 1) for t in ticks})  # one tick per position drawn
            path = "".join(f"M{x:.1f} {y + 3}v{row_h - 6}" for x in columns)
            body.append(f'<path d="{path}" stroke="{colour}" stroke-width="1.2"><title>{escape(label)}</title></path>')
    body.extend(frame.time_axis())
    body.extend(_legend([(s.value, STATE_COLOURS[s]) for s in TradingState]))
    return _svg(height, "Risk decisions and trading state", body)


def _table(table_id: str, headers: Sequence[str], rows: Sequence[Sequence[tuple[str, str]]]) -> str:
    """Rows of (text, css class) cells; the text is escaped here."""
    head = "".join(f"<th>{escape(h)}</th>" for h in headers)
    body = "".join(
        "<tr>"
        + "".join(f'<td class="{c}">{escape(t)}</td>' if c else f"<td>{escape(t)}</td>" for t, c in row)
        + "</tr>"
        for row in rows
    )
    return f'<table id="{table_id}"><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>'


def _signed(value: Decimal) -> str:
    return "num pos" if value > 0 else "num neg" if value < 0 else "num"


def render(results: RunResults, m: ReportMetrics, drawdown: Sequence[tuple[datetime, float]]) -> str:
    """The whole report page."""
    meta = results.metadata
    quote = meta.quote_currency
    samples = sorted(results.equity, key=lambda s: s.ts)
    equity_pts = [(_secs(s.ts), float(s.equity)) for s in samples]
    bh_pts = [(_secs(ts), float(v)) for ts, v in m.buy_and_hold]
    x_lo = min([_secs(meta.start), *(p[0] for p in equity_pts)])
    x_hi = max([_secs(meta.end), *(p[0] for p in equity_pts)])

    parts = [
        "<!DOCTYPE html>",
        '<html lang="en"><head><meta charset="utf-8">',
        '<meta name="viewport" content="width=device-width, initial-scale=1">',
        f"<title>Bot4 report {escape(meta.run_id)}</title><style>{CSS}</style></head><body>",
        f"<h1>Bot4 {escape(meta.mode)} report: {escape(', '.join(meta.strategies))}</h1>",
        f'<p class="note">Run <b>{escape(meta.run_id)}</b> on {escape(meta.exchange)} '
        f"{escape(', '.join(meta.symbols))} ({escape(meta.timeframe)}), {escape(fmt_time(meta.start))} to "
        f"{escape(fmt_time(meta.end))}; {meta.events_processed:,} events in {meta.wall_time_s:.1f} s.</p>",
        "<h2>Summary</h2>",
        _summary_table(m, quote),
        "<h2>Equity</h2>",
        line_chart([Series("strategy", EQUITY, equity_pts)], f"Equity ({quote})", fmt_axis_number),
        _versus_buy_and_hold(equity_pts, bh_pts, quote),
        line_chart(
            [Series("drawdown", DD, [(_secs(t), -d) for t, d in drawdown], fill=True)],
            "Drawdown from peak",
            fmt_axis_pct,
            height=180,
        ),
        "<h2>Per symbol</h2>",
        _per_symbol_table(m, quote),
    ]
    for sym in sorted(set(results.prices) | {t.symbol for t in m.trades}):
        pts = [(_secs(p.ts), float(p.close)) for p in sorted(results.prices.get(sym, ()), key=lambda p: p.ts)]
        trades = [t for t in m.trades if t.symbol == sym]
        entries = Markers(
            "entry",
            ENTRY,
            [(_secs(t.entry_ts), float(t.entry_price)) for t in trades],
            up=True,
            titles=[f"{t.side} entry {fmt_price(t.entry_price)} at {fmt_time(t.entry_ts)}" for t in trades],
        )
        exits = Markers(
            "exit",
            EXIT,
            [(_secs(t.exit_ts), float(t.exit_price)) for t in trades],
            up=False,
            titles=[
                f"exit {fmt_price(t.exit_price)} at {fmt_time(t.exit_ts)}, PnL {fmt_money(t.net_pnl)}" for t in trades
            ],
        )
        parts.append(
            line_chart(
                [Series(sym, "#57606a", pts)], f"{sym} close with trades", fmt_axis_number, [entries, exits], height=240
            )
        )
    parts += [
        "<h2>Risk</h2>",
        risk_timeline(results, m, x_lo, x_hi),
        '<div class="grid"><div><h3>Denials by reason</h3>',
        _table("denials", ["reason", "denials"], [[(c, ""), (str(n), "num")] for c, n in m.risk.denials_by_reason])
        if m.risk.denials_by_reason
        else '<p class="note" id="denials">No order was denied.</p>',
        "</div><div><h3>Time in trading state</h3>",
        _table(
            "time-in-state",
            ["state", "share of run"],
            [[(s, ""), (fmt_pct(v), "num")] for s, v in m.risk.time_in_state],
        ),
        "</div></div>",
        "<h3>Trading-state changes (breaker events)</h3>",
        _state_table(m),
        "<h2>Bad input (dead letters)</h2>",
        _dead_letter_table(results),
        "<h2>Trades</h2>",
        _trades_table(m, quote),
        "<h2>Run</h2>",
        _table(
            "settings",
            ["setting", "value"],
            [[(k, ""), (str(v), "")] for k, v in sorted(meta.settings.items())]
            + [[("data source", ""), (src, "")] for src in meta.data_sources],
        ),
        "</body></html>",
    ]
    return "\n".join(parts) + "\n"


def _versus_buy_and_hold(equity: list[tuple[float, float]], bh: list[tuple[float, float]], quote: str) -> str:
    """Strategy against equal-weight buy-and-hold; on a log scale when the two span more than 5x
    (a linear scale would flatten the smaller curve into a line)."""
    values = [v for _, v in equity + bh]
    log = bool(values) and min(values) > 0 and max(values) / min(values) > 5
    title = f"Equity vs buy and hold ({quote}{', log scale' if log else ''})"
    series = [Series("strategy", EQUITY, equity), Series("buy and hold (equal weight)", BH, bh)]
    return line_chart(series, title, fmt_axis_number, log=log)


def _summary_table(m: ReportMetrics, quote: str) -> str:
    rows = "".join(
        f'<tr data-metric="{escape(x.key)}"><th>{escape(x.label)}</th><td class="num">{escape(x.text)}</td></tr>'
        for x in summary_metrics(m, quote)
    )
    return f'<table id="summary"><tbody>{rows}</tbody></table>'


def _per_symbol_table(m: ReportMetrics, quote: str) -> str:
    headers = [
        "symbol",
        "trades",
        "win rate",
        "profit factor",
        f"net PnL ({quote})",
        f"fees ({quote})",
        f"traded ({quote})",
        "fills",
        "buy & hold",
    ]
    rows = [
        [
            (s.symbol, ""),
            (str(s.stats.trades), "num"),
            (fmt_pct(s.stats.win_rate), "num"),
            (fmt_ratio(s.stats.profit_factor), "num"),
            (fmt_money(s.stats.net_pnl), _signed(s.stats.net_pnl)),
            (fmt_money(s.fees), "num"),
            (fmt_money(s.traded_notional), "num"),
            (str(s.fills), "num"),
            (fmt_pct(s.buy_and_hold_return), "num"),
        ]
        for s in m.per_symbol
    ]
    return _table("per-symbol", headers, rows)


def _trades_table(m: ReportMetrics, quote: str) -> str:
    shown = m.trades[:MAX_TRADE_ROWS]
    note = (
        f'<p class="note">Showing the first {len(shown)} of {len(m.trades)} trades; report.json lists them all.</p>'
        if len(m.trades) > len(shown)
        else ""
    )
    rows = [
        [
            (t.symbol, ""),
            (t.side, ""),
            (fmt_time(t.entry_ts), ""),
            (fmt_time(t.exit_ts), ""),
            (fmt_price(t.entry_price), "num"),
            (fmt_price(t.exit_price), "num"),
            (fmt_price(t.amount), "num"),
            (fmt_money(t.fees), "num"),
            (fmt_money(t.net_pnl), _signed(t.net_pnl)),
            (fmt_pct(t.return_pct), "num"),
            (fmt_duration(t.duration), "num"),
        ]
        for t in shown
    ]
    headers = [
        "symbol",
        "side",
        "entry",
        "exit",
        "entry price",
        "exit price",
        "amount",
        f"fees ({quote})",
        f"net PnL ({quote})",
        "return",
        "held",
    ]
    table = _table("trades", headers, rows) if rows else '<p class="note" id="trades">No closed trade.</p>'
    still = ""
    if m.open_positions:
        still = "<h3>Open at the end</h3>" + _table(
            "open-positions",
            ["symbol", "side", "amount", "avg entry price", "since", f"entry fees ({quote})"],
            [
                [
                    (p.symbol, ""),
                    (p.side, ""),
                    (fmt_price(p.amount), "num"),
                    (fmt_price(p.avg_entry_price), "num"),
                    (fmt_time(p.first_entry_ts), ""),
                    (fmt_money(p.entry_fees), "num"),
                ]
                for p in m.open_positions
            ],
        )
    return note + table + still


def _state_table(m: ReportMetrics) -> str:
    changes = m.risk.state_changes
    if not changes:
        return '<p class="note" id="state-changes">The account stayed ACTIVE: no breaker tripped.</p>'
    shown = changes[:MAX_STATE_ROWS]
    note = (
        f'<p class="note">Showing the first {len(shown)} of {len(changes)} changes.</p>'
        if len(changes) > len(shown)
        else ""
    )
    rows = [[(fmt_time(c.ts), ""), (c.old.value, ""), (c.new.value, ""), (c.reason, "")] for c in shown]
    return note + _table("state-changes", ["time", "from", "to", "why"], rows)


def _dead_letter_table(results: RunResults) -> str:
    letters = sorted(results.dead_letters, key=lambda d: (d.stage, d.reason))
    if not letters:
        return '<p class="note" id="dead-letters">No record was refused: no dead letters.</p>'
    head = "<tr><th>stage</th><th>reason</th><th>count</th><th>samples</th></tr>"
    body = "".join(
        f'<tr><td>{escape(d.stage)}</td><td>{escape(d.reason)}</td><td class="num">{d.count:,}</td>'
        f"<td>{_samples(d.samples)}</td></tr>"
        for d in letters
    )
    return f'<table id="dead-letters"><thead>{head}</thead><tbody>{body}</tbody></table>'


def _samples(samples: Sequence[str]) -> str:
    return "".join(f'<div class="sample">{escape(s)}</div>' for s in samples)
