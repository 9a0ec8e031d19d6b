"""The validation report: static HTML pages with inline CSS, readable offline, plus ``summary.json``.

Why our own pages rather than GE's Data Docs: GE 1.24's Data Docs templates load Bootstrap,
jQuery, Font Awesome and Vega from CDNs, and the installed package bundles only its own CSS,
fonts and logos, not those libraries; offline the pages come out unstyled. Vendoring the four
libraries would add third-party assets to keep up to date. These pages need no script and no
external file at all: one ``index.html`` (the run, every table's status) and one page per table
(each day's batch, each check with its count and sample rows), all links relative.
"""

from __future__ import annotations

import json
from html import escape
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from quality.validate import BatchResult, CheckResult, TableResult, ValidationRun

CSS = """
:root { --ok: #1a7f37; --bad: #cf222e; --info: #9a6700; --muted: #57606a; --line: #d0d7de; }
* { box-sizing: border-box; }
body { font: 14px/1.45 system-ui, -apple-system, "Segoe UI", Roboto, "Helvetica Neue", Arial, sans-serif;
       margin: 0; color: #1f2328; background: #f6f8fa; }
header { background: #24292f; color: #fff; padding: 16px 32px; }
header h1 { margin: 0; font-size: 20px; }
header p { margin: 4px 0 0; color: #d0d7de; }
main { padding: 24px 32px; max-width: 1280px; }
a { color: #0969da; }
.badge { display: inline-block; padding: 2px 10px; border-radius: 12px; font-weight: 600; color: #fff;
         font-size: 12px; text-transform: uppercase; letter-spacing: .03em; }
.passed { background: var(--ok); } .failed { background: var(--bad); }
.no_rows, .absent { background: var(--muted); } .info { background: var(--info); }
.cards { display: flex; gap: 16px; flex-wrap: wrap; margin-bottom: 24px; }
.card { background: #fff; border: 1px solid var(--line); border-radius: 8px; padding: 12px 18px; min-width: 150px; }
.card b { display: block; font-size: 22px; }
.card .label { color: var(--muted); font-size: 12px; text-transform: uppercase; }
table { border-collapse: collapse; width: 100%; background: #fff; border: 1px solid var(--line);
        border-radius: 8px; overflow: hidden; margin-bottom: 24px; }
th, td { text-align: left; padding: 7px 12px; border-bottom: 1px solid var(--line); vertical-align: top; }
th { background: #eaeef2; font-size: 12px; text-transform: uppercase; color: var(--muted); }
tr.fail td { background: #ffebe9; } tr.note td { background: #fff8c5; }
td.num { text-align: right; font-variant-numeric: tabular-nums; }
code, pre { font: 12px ui-monospace, SFMono-Regular, Menlo, Consolas, monospace; }
pre { margin: 0; white-space: pre-wrap; max-width: 520px; max-height: 160px; overflow: auto; }
h2 { font-size: 17px; margin: 28px 0 10px; }
.muted { color: var(--muted); }
"""


def _page(title: str, subtitle: str, body: str) -> str:
    return (
        '<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
        f'<meta name="viewport" content="width=device-width, initial-scale=1"><title>{escape(title)}</title>'
        f"<style>{CSS}</style></head><body><header><h1>{escape(title)}</h1><p>{escape(subtitle)}</p></header>"
        f"<main>{body}</main></body></html>\n"
    )


def _badge(status: str) -> str:
    return f'<span class="badge {escape(status)}">{escape(status.replace("_", " "))}</span>'


def _card(value: object, label: str) -> str:
    return f'<div class="card"><b>{escape(str(value))}</b><span class="label">{escape(label)}</span></div>'


def _subtitle(run: ValidationRun) -> str:
    scope = f"symbol {run.symbol}" if run.symbol else "all symbols"
    span = f"{run.start.isoformat() if run.start else '…'} to {run.end.isoformat() if run.end else '…'}"
    return f"run {run.run_id} · {run.backend} {run.target} · {scope} · {span}"


def _status_card(status: str, label: str) -> str:
    return f'<div class="card"><b>{_badge(status)}</b><span class="label">{escape(label)}</span></div>'


def index_html(run: ValidationRun) -> str:
    summary = run.summary()
    cards = "".join(
        [
            _status_card("passed" if run.success else "failed", "result"),
            _card(len(run.tables), "tables"),
            _card(summary["batches"], "batches"),
            _card(f"{summary['rows_validated']:,}", "rows validated"),
            _card(len(run.failures), "failed checks"),
            _card(f"{summary['seconds']} s", "duration"),
        ]
    )
    rows = "".join(_table_row(t) for t in run.tables)
    tables = (
        '<h2>Tables</h2><table id="tables"><thead><tr><th>table</th><th>status</th><th>days</th>'
        "<th>rows</th><th>failed checks</th><th>reported (info)</th></tr></thead>"
        f"<tbody>{rows}</tbody></table>"
    )
    failures = ""
    if run.failures:
        items = "".join(
            f'<tr class="fail"><td><a href="{escape(f.table)}.html#{escape(f.day)}">{escape(f.table)}</a></td>'
            f"<td>{escape(f.day)}</td><td><code>{escape(f.check)}</code></td>"
            f'<td class="num">{"" if f.unexpected_count is None else f.unexpected_count}</td></tr>'
            for f in run.failures
        )
        failures = (
            '<h2>Failed checks</h2><table id="failures"><thead><tr><th>table</th><th>day</th><th>check</th>'
            f"<th>unexpected rows</th></tr></thead><tbody>{items}</tbody></table>"
        )
    return _page("Bot4 data validation", _subtitle(run), f'<div class="cards">{cards}</div>{failures}{tables}')


def _table_row(t: TableResult) -> str:
    days = sum(1 for b in t.batches if b.day != "schema")
    failed = sum(1 for b in t.batches for c in b.checks if c.failed)
    noted = sum(1 for b in t.batches for c in b.checks if c.severity == "info" and not c.success)
    name = f'<a href="{escape(t.table)}.html">{escape(t.table)}</a>' if t.batches else escape(t.table)
    css = ' class="fail"' if t.status == "failed" else ""
    return (
        f'<tr{css}><td>{name}</td><td>{_badge(t.status)}</td><td class="num">{days}</td>'
        f'<td class="num">{t.rows:,}</td><td class="num">{failed}</td><td class="num">{noted}</td></tr>'
    )


def table_html(run: ValidationRun, t: TableResult) -> str:
    sections = "".join(_batch_section(b) for b in t.batches)
    nav = '<p><a href="index.html">&larr; all tables</a></p>'
    cards = '<div class="cards">' + _status_card(t.status, t.table)
    cards += _card(f"{t.rows:,}", "rows") + _card(len(t.batches) - 1, "days") + "</div>"
    return _page(f"{t.table} · Bot4 data validation", _subtitle(run), nav + cards + sections)


def _batch_section(b: BatchResult) -> str:
    title = "Columns and types" if b.day == "schema" else f"{b.day} (UTC) · {b.rows:,} rows"
    rows = "".join(_check_row(c) for c in b.checks)
    return (
        f'<h2 id="{escape(b.day)}">{escape(title)} {_badge("passed" if b.success else "failed")} '
        f'<span class="muted">{b.seconds:.2f} s</span></h2>'
        "<table><thead><tr><th>check</th><th>expectation</th><th>severity</th><th>result</th>"
        "<th>unexpected</th><th>observed / sample</th></tr></thead>"
        f"<tbody>{rows}</tbody></table>"
    )


def _check_row(c: CheckResult) -> str:
    if c.success:
        css, status = "", "passed"
    elif c.severity == "info":
        css, status = ' class="note"', "info"
    else:
        css, status = ' class="fail"', "failed"
    detail: Any = c.error or (c.sample if c.sample else c.observed)
    shown = "" if detail in (None, [], "") else json.dumps(detail, indent=1, default=str)[:2000]
    described = f'<br><span class="muted">{escape(c.description)}</span>' if c.description else ""
    return (
        f"<tr{css}><td><code>{escape(c.check)}</code>{described}</td><td><code>{escape(c.expectation)}</code></td>"
        f"<td>{escape(c.severity)}</td><td>{_badge(status)}</td>"
        f'<td class="num">{"" if c.unexpected_count is None else c.unexpected_count}</td>'
        f"<td><pre>{escape(shown)}</pre></td></tr>"
    )


def write_report(run: ValidationRun, out_dir: Path) -> Path:
    """Write ``index.html``, one page per validated table and ``summary.json``; return the index path."""
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / "summary.json").write_text(json.dumps(run.summary(), indent=2, default=str) + "\n", encoding="utf-8")
    for t in run.tables:
        if t.batches:
            (out_dir / f"{t.table}.html").write_text(table_html(run, t), encoding="utf-8")
    index = out_dir / "index.html"
    index.write_text(index_html(run), encoding="utf-8")
    return index
