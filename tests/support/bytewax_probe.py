"""A small real dataflow run the way ``bot4 run`` runs one (``flows.metrics.ensure_server``, then
Bytewax's ``cli_main``), in a process of its own: Bytewax 0.21 allows one ``cli_main`` with its
dataflow API per process, so tests never start one in the pytest process.

    python -m tests.support.bytewax_probe METRICS_PORT RELEASE_FILE FLOW_NAME

The source emits ``BATCHES`` batches of ``BATCH`` numbers, then idles until ``RELEASE_FILE``
exists (or 60 s passed); a filter keeps the even ones. The test reads the metrics meanwhile.
"""

from __future__ import annotations

import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import bytewax.operators as op
from bytewax.connectors.stdio import StdOutSink
from bytewax.dataflow import Dataflow
from bytewax.inputs import DynamicSource, StatelessSourcePartition

BATCHES, BATCH = 3, 100
HOLD_S = 60.0


class _HoldingPartition(StatelessSourcePartition[int]):
    def __init__(self, release: Path) -> None:
        self._sent = 0
        self._release = release
        self._deadline = time.monotonic() + HOLD_S

    def next_batch(self) -> list[int]:
        if self._sent < BATCHES:
            self._sent += 1
            return list(range(BATCH))
        if self._release.exists() or time.monotonic() > self._deadline:
            raise StopIteration
        return []

    def next_awake(self) -> datetime | None:
        # Idle between polls outside Python, so the threads serving the metrics get the GIL.
        return None if self._sent < BATCHES else datetime.now(UTC) + timedelta(milliseconds=50)


class HoldingSource(DynamicSource[int]):
    def __init__(self, release: Path) -> None:
        self._release = release

    def build(self, step_id: str, worker_index: int, worker_count: int) -> _HoldingPartition:
        return _HoldingPartition(self._release)


def probe_flow(name: str, release: Path) -> Dataflow:
    flow = Dataflow(name)
    evens = op.filter("evens", op.input("inp", flow, HoldingSource(release)), lambda x: x % 2 == 0)
    op.output("out", op.map("count", evens, lambda _: "."), StdOutSink())
    return flow


def main(argv: list[str]) -> None:
    from bytewax.run import cli_main

    from flows import metrics

    port, release, name = int(argv[0]), Path(argv[1]), argv[2]
    metrics.VALIDATION_FAILED.watch(release.with_name("summary.json"))  # no settings load in a scrape
    assert metrics.ensure_server(port, attempts=1) == port
    cli_main(probe_flow(name, release), workers_per_process=1, epoch_interval=timedelta(seconds=1))


if __name__ == "__main__":
    main(sys.argv[1:])
