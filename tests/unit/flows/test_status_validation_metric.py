"""bot4_validation_failed comes from the summary.json that `bot4 validate` writes, read at scrape."""

from __future__ import annotations

import json

from prometheus_client import CollectorRegistry, generate_latest

from flows.metrics import ValidationSummaryCollector


def summary(tmp_path, tables):
    path = tmp_path / "quality" / "summary.json"
    path.parent.mkdir(parents=True)
    path.write_text(json.dumps({"run_id": "r1", "success": False, "tables": tables}))
    return path


def samples(collector) -> dict[str, float]:
    registry = CollectorRegistry()
    registry.register(collector)
    return {
        s.labels["table"]: s.value for family in registry.collect() for s in family.samples if s.name == collector.NAME
    }


def test_failed_tables_are_1_passed_0_and_tables_without_rows_are_left_out(tmp_path):
    path = summary(
        tmp_path,
        [
            {"table": "md_trades", "status": "failed", "rows": 10},
            {"table": "md_book_deltas", "status": "passed", "rows": 5},
            {"table": "md_candles", "status": "no_rows", "rows": 0},
            {"table": "md_quotes", "status": "absent", "rows": 0},
        ],
    )
    collector = ValidationSummaryCollector(path)
    assert samples(collector) == {"md_trades": 1.0, "md_book_deltas": 0.0}
    # Read again at every scrape: a later run that passes clears the failure.
    path.write_text(json.dumps({"tables": [{"table": "md_trades", "status": "passed"}]}))
    assert samples(collector) == {"md_trades": 0.0}


def test_no_summary_yet_or_a_broken_one_gives_no_series_but_still_the_family(tmp_path):
    collector = ValidationSummaryCollector(tmp_path / "missing.json")
    assert samples(collector) == {}
    broken = tmp_path / "broken.json"
    broken.write_text("{not json")
    collector.watch(broken)
    registry = CollectorRegistry()
    registry.register(collector)
    assert b"# TYPE bot4_validation_failed gauge" in generate_latest(registry)
    assert samples(collector) == {}
