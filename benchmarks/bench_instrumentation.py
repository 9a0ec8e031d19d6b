"""Cost of the Prometheus instrumentation on the features flow: metrics on vs off, same run.

The flow and input are bench_features.py's (the real Binance BTC/USDT and ETH/USDT captures of
2024-08-08/09 under ``BOT4_SHARED_DATA``: 179k trades, depth diffs and quotes, wire-encoded,
batches of 5000, one worker): decode + contracts + per-key ordering + FeatureEngine. The
instrumentation on that path is the storage contract step's (events counter, freshness gauge
through the instrument-label cap, latency histogram once per batch) and the dead-letter counters.
"Off" swaps those metric objects in ``flows.store`` and ``flows.dlq`` for ones that do nothing,
for the length of the run; "on" is the code as shipped. The two alternate (on/off, then off/on) so
drift on a shared machine hits both; the best and the median of each are reported, as wall time
and as this process' CPU time (steadier when other processes compete for the cores). Because the
difference is below the noise of a shared 2-core machine, the script also counts the metric calls
a run makes (batches and dead letters, from the counters themselves) and times those exact calls
in a loop: calls x cost / run CPU is the instrumentation's share, independent of the noise.

    .venv/bin/python benchmarks/bench_instrumentation.py [--repeat 5] [--trades-only]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

from bench_features import features_dataflow, load_records  # noqa: E402
from bytewax.testing import run_main  # noqa: E402
from prometheus_client import REGISTRY  # noqa: E402

import flows.dlq  # noqa: E402
import flows.store  # noqa: E402
from flows.settings import load_settings  # noqa: E402


class _MetricOff:
    """Accepts the calls the flows make on a metric and records nothing."""

    def labels(self, *values: str) -> _MetricOff:
        return self

    def inc(self, amount: float = 1) -> None:
        return None

    def set(self, value: float) -> None:
        return None

    def observe(self, value: float) -> None:
        return None


@contextmanager
def metrics_off() -> Iterator[None]:
    off = _MetricOff()
    saved = {
        (flows.store, "EVENTS"): flows.store.EVENTS,
        (flows.store, "LAST_EVENT_TIME"): flows.store.LAST_EVENT_TIME,
        (flows.store, "STAGE_LATENCY"): flows.store.STAGE_LATENCY,
        (flows.store, "instrument_label"): flows.store.instrument_label,
        (flows.dlq, "EVENTS"): flows.dlq.EVENTS,
        (flows.dlq, "DEAD_LETTERS"): flows.dlq.DEAD_LETTERS,
    }
    try:
        for module, name in saved:
            setattr(module, name, str if name == "instrument_label" else off)
        yield
    finally:
        for (module, name), original in saved.items():
            setattr(module, name, original)


def storage_ok() -> float:
    return REGISTRY.get_sample_value("bot4_events_total", {"stage": "storage", "outcome": "ok"}) or 0.0


def instrumented_calls() -> tuple[float, float]:
    """(contract batches that ran the metric calls, dead letters counted) so far in this process."""
    batches = REGISTRY.get_sample_value("bot4_stage_latency_seconds_count", {"stage": "storage"}) or 0.0
    dead = sum(
        sample.value
        for family in REGISTRY.collect()
        if family.name == "bot4_dead_letters"
        for sample in family.samples
        if sample.name == "bot4_dead_letters_total"
    )
    return batches, dead


def per_call_cost_us(iterations: int = 200_000) -> tuple[float, float]:
    """CPU microseconds of the metric calls one contract batch makes, and of one dead letter's."""
    from datetime import UTC, datetime

    from flows.metrics import DEAD_LETTERS, EVENTS, LAST_EVENT_TIME, STAGE_LATENCY, instrument_label

    key, ts = "binance:BTC/USDT", datetime(2024, 8, 8, tzinfo=UTC)
    started = time.process_time()
    for _ in range(iterations):
        EVENTS.labels("bench", "ok").inc(5000)
        LAST_EVENT_TIME.labels("bench", instrument_label(key)).set(ts.timestamp())
        STAGE_LATENCY.labels("bench").observe(0.003)
    batch_us = (time.process_time() - started) / iterations * 1e6
    started = time.process_time()
    for _ in range(iterations):
        DEAD_LETTERS.labels("bench", "out_of_order").inc()
        EVENTS.labels("bench", "dead_letter").inc()
    dead_us = (time.process_time() - started) / iterations * 1e6
    return batch_us, dead_us


def run_once(records, quality, *, instrumented: bool) -> tuple[float, float, int, float]:  # type: ignore[no-untyped-def]
    """(wall s, CPU s of this process, vectors out, storage events counted) of one run."""
    flow, sink = features_dataflow(records, quality)
    before = storage_ok()
    wall, cpu = time.perf_counter(), time.process_time()
    if instrumented:
        run_main(flow)
    else:
        with metrics_off():
            run_main(flow)
    return time.perf_counter() - wall, time.process_time() - cpu, sink.counter[0], storage_ok() - before


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--trades-only", action="store_true")
    args = parser.parse_args()
    records, trades = load_records()
    if args.trades_only:
        records = [r for r in records if r.topic == "md.trades.v1"]
    quality = load_settings().quality
    on: list[float] = []
    off: list[float] = []
    on_cpu: list[float] = []
    off_cpu: list[float] = []
    vectors = set()
    calls_before = instrumented_calls()
    for i in range(args.repeat):
        order = (True, False) if i % 2 == 0 else (False, True)
        for instrumented in order:
            seconds, cpu, out, counted = run_once(records, quality, instrumented=instrumented)
            vectors.add(out)
            # The switch really switches: only the instrumented run moves the counter.
            assert (counted > 0) == instrumented, (instrumented, counted)
            (on if instrumented else off).append(seconds)
            (on_cpu if instrumented else off_cpu).append(cpu)
    assert len(vectors) == 1, f"on and off runs produced different outputs: {vectors}"
    calls_after = instrumented_calls()
    batches = (calls_after[0] - calls_before[0]) / args.repeat
    dead = (calls_after[1] - calls_before[1]) / args.repeat
    batch_us, dead_us = per_call_cost_us()
    metric_cpu_s = (batches * batch_us + dead * dead_us) / 1e6
    result = {
        "machine": {
            "python": platform.python_version(),
            "cpu": platform.processor() or platform.machine(),
            "cores": os.cpu_count(),
        },
        "events": len(records),
        "trades": trades,
        "vectors": vectors.pop(),
        "repeat": args.repeat,
        "on_s": [round(s, 3) for s in on],
        "off_s": [round(s, 3) for s in off],
        "best_on_s": round(min(on), 3),
        "best_off_s": round(min(off), 3),
        "ratio_best_on_over_off": round(min(on) / min(off), 4),
        "ratio_median_on_over_off": round(statistics.median(on) / statistics.median(off), 4),
        "on_cpu_s": [round(s, 3) for s in on_cpu],
        "off_cpu_s": [round(s, 3) for s in off_cpu],
        "ratio_best_cpu_on_over_off": round(min(on_cpu) / min(off_cpu), 4),
        "ratio_median_cpu_on_over_off": round(statistics.median(on_cpu) / statistics.median(off_cpu), 4),
        "instrumented_batches_per_run": batches,
        "dead_letters_per_run": dead,
        "metric_calls_us_per_batch": round(batch_us, 3),
        "metric_calls_us_per_dead_letter": round(dead_us, 3),
        "metric_cpu_s_per_run": round(metric_cpu_s, 4),
        "metric_cpu_share_of_best_on_cpu": round(metric_cpu_s / min(on_cpu), 5),
        "events_per_s_on": round(len(records) / min(on)),
        "events_per_s_off": round(len(records) / min(off)),
    }
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
