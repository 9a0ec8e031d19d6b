"""report.html of the real freqtrade run, opened in real headless Chromium with the network off.

The report itself has no script. The test opens a copy with one measuring script appended (it
writes what the browser laid out into the DOM), so the sizes come from Chromium's own layout.
"""

from __future__ import annotations

import json
import re
from html import unescape
from pathlib import Path

import pytest

from flows.report import ReportPaths
from tests.support.report_browser import CHROMIUM, dump_dom

MEASURE = """<script>
const svgs = [...document.querySelectorAll("svg")].map((svg) => {
  const box = svg.getBoundingClientRect();
  const lines = [...svg.querySelectorAll("polyline")].map((p) => {
    const b = p.getBBox();
    return [b.width, b.height];
  });
  return {label: svg.getAttribute("aria-label"), width: box.width, height: box.height, lines};
});
const th = document.querySelector("#summary th");
const out = {svgs, summaryRows: document.querySelectorAll("#summary tr").length,
             thBackground: th ? getComputedStyle(th).backgroundColor : null};
const pre = document.createElement("pre");
pre.id = "measured";
pre.textContent = JSON.stringify(out);
document.body.appendChild(pre);
</script>"""


@pytest.mark.skipif(CHROMIUM is None, reason="chromium is not installed (Debian: apt-get install -y chromium)")
@pytest.mark.timeout(60)
def test_report_lays_out_its_summary_and_charts_in_headless_chromium_offline(ft_report: ReportPaths, tmp_path: Path):
    html = ft_report.html.read_text()
    page = tmp_path / "measured.html"
    page.write_text(html.replace("</body>", MEASURE + "</body>"))

    dom = dump_dom(page)

    assert '<table id="summary">' in dom
    for label in ("Sharpe", "Sortino", "Calmar", "Max drawdown", "Win rate", "Profit factor", "Turnover"):
        assert label in dom, label
    found = re.search(r'<pre id="measured">(.*?)</pre>', dom, re.S)
    assert found, "the measuring script did not run"
    measured = json.loads(unescape(found.group(1)))
    assert measured["summaryRows"] == html.count("<tr data-metric=")
    assert measured["thBackground"] == "rgb(246, 248, 250)"  # the inline style sheet applied
    svgs = measured["svgs"]
    assert [s["label"] for s in svgs] == [
        "Equity (USDT)",
        "Equity vs buy and hold (USDT, log scale)",
        "Drawdown from peak",
        "BTC/USDT close with trades",
        "Risk decisions and trading state",
    ]
    for svg in svgs:
        assert svg["width"] > 900 and svg["height"] > 100, svg["label"]
        for width, height in svg["lines"]:  # every line spans the time axis and moves
            assert width > 500 and height > 5, svg["label"]
