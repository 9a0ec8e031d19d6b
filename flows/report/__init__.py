"""The trading / backtest report: ``report.html`` (opens offline, charts inline) and ``report.json``.

:func:`build_report` turns a run's :class:`~flows.report.results.RunResults` into both files;
:func:`rebuild_report` does the same from results stored with
:func:`~flows.report.results.save_results` (what ``bot4 report <dir>`` calls). The output depends
only on the results: two builds from the same results are byte-identical.

>>> import tempfile
>>> from decimal import Decimal
>>> from pathlib import Path
>>> from core.clock import parse_utc
>>> t0, t1 = parse_utc("2024-01-01T00:00:00Z"), parse_utc("2024-01-03T00:00:00Z")
>>> meta = RunMetadata("run-1", "backtest", ("ema",), "binance", ("BTC/USDT",), "1h", t0, t1, Decimal(1000), "USDT")
>>> res = RunResults(meta, (EquitySample(t0, Decimal(1000), Decimal(1000), Decimal(0)),
...                         EquitySample(t1, Decimal(1100), Decimal(1100), Decimal(0))))
>>> with tempfile.TemporaryDirectory() as tmp:
...     paths = build_report(res, tmp)
...     (paths.html.name, paths.json.name, "http" in paths.html.read_text())
('report.html', 'report.json', False)
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from flows.report.html import render
from flows.report.metrics import ReportMetrics, compute, drawdown_series
from flows.report.results import (
    DeadLetterCount,
    EquitySample,
    PricePoint,
    RunMetadata,
    RunResults,
    dead_letter_counts,
    load_results,
    save_results,
)
from flows.report.summary import daily_curve, report_document

__all__ = [
    "DeadLetterCount",
    "EquitySample",
    "PricePoint",
    "ReportPaths",
    "RunMetadata",
    "RunResults",
    "build_report",
    "dead_letter_counts",
    "load_results",
    "rebuild_report",
    "save_results",
]


@dataclass(frozen=True, slots=True)
class ReportPaths:
    html: Path
    json: Path


def build_report(results: RunResults, out_dir: str | Path) -> ReportPaths:
    """Compute every metric and write ``report.html`` and ``report.json`` into ``out_dir``."""
    folder = Path(out_dir)
    folder.mkdir(parents=True, exist_ok=True)
    metrics: ReportMetrics = compute(results)
    samples = sorted(results.equity, key=lambda s: s.ts)
    drawdown = drawdown_series(samples)
    curve = daily_curve(metrics, [(s.ts, s.equity, dd) for s, (_, dd) in zip(samples, drawdown, strict=True)])
    document = report_document(results, metrics, curve)
    paths = ReportPaths(folder / "report.html", folder / "report.json")
    paths.json.write_text(
        json.dumps(document, sort_keys=True, indent=1, ensure_ascii=False, allow_nan=False) + "\n", encoding="utf-8"
    )
    paths.html.write_text(render(results, metrics, drawdown), encoding="utf-8")
    return paths


def rebuild_report(results_dir: str | Path, out_dir: str | Path | None = None) -> ReportPaths:
    """Rebuild the report from results stored by :func:`save_results` (into ``results_dir`` unless
    ``out_dir`` is given); this is ``bot4 report <dir>``."""
    return build_report(load_results(results_dir), results_dir if out_dir is None else out_dir)
