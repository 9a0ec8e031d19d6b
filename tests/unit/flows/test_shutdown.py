"""The graceful stop (flows.shutdown) in-process, on Bytewax's own runtime: a counting source whose
partitions take part, a SIGINT sent to this process while it runs, and the recovery store after it.

With one worker the run ends at the next epoch boundary and ``cli_main`` returns; with three
workers and two partitions (one worker holds none: an abort in the workers that do would leave it
waiting forever) it ends through Bytewax's interrupt. Either way every item handed over before the
stop is written, and a run resumed from the recovery folder starts right after the last of them.
"""

from __future__ import annotations

import signal
import threading
from datetime import timedelta
from pathlib import Path

import bytewax.operators as op
import pytest
from bytewax.dataflow import Dataflow
from bytewax.inputs import FixedPartitionedSource, StatefulSourcePartition
from bytewax.outputs import DynamicSink, StatelessSinkPartition
from bytewax.recovery import RecoveryConfig, init_db_dir
from bytewax.run import cli_main

from flows.shutdown import EpochStop, StopOutcome, close_at_stop, graceful_stop, stop_requested

PARTS = ("a", "b")


class _Counting(StatefulSourcePartition[tuple[str, int], int]):
    """Hands over (part, 1), (part, 2), ...; the signalling partition sends SIGINT to the process
    once it has handed over ``signal_after`` and every partition of the run has handed over one
    (with several workers the other partition's worker may start late; a stop before its first item
    would leave nothing of it to compare)."""

    def __init__(
        self,
        part: str,
        resume: int | None,
        signal_after: int | None,
        started: dict[str, threading.Event],
        again: signal.Signals | None = None,
    ) -> None:
        self._part, self._n = part, resume or 0
        self._signal_after, self._again, self._started = signal_after, again, started
        self._stop = EpochStop()

    def next_batch(self) -> list[tuple[str, int]]:
        if self._stop.pending():
            return []
        self._n += 1
        self._started[self._part].set()
        if (
            self._signal_after is not None
            and self._n >= self._signal_after
            and all(e.is_set() for e in self._started.values())
        ):
            self._signal_after = None
            signal.raise_signal(signal.SIGINT)  # as the operator's Ctrl-C, in the middle of a batch
            if self._again is not None:
                signal.raise_signal(self._again)
        return [(self._part, self._n)]

    def snapshot(self) -> int:
        self._stop.snapshotted()
        return self._n


class _Source(FixedPartitionedSource[tuple[str, int], int]):
    def __init__(self, signal_after: int | None, again: signal.Signals | None = None) -> None:
        self._signal_after, self._again = signal_after, again
        self._started = {p: threading.Event() for p in PARTS}

    def list_parts(self) -> list[str]:
        return list(PARTS)

    def build_part(self, step_id: str, for_part: str, resume_state: int | None) -> _Counting:
        if for_part == "a":
            return _Counting(for_part, resume_state, self._signal_after, self._started, self._again)
        return _Counting(for_part, resume_state, None, self._started)


class _Collect(StatelessSinkPartition[tuple[str, int]]):
    def __init__(self, out: list[tuple[str, int]], lock: threading.Lock) -> None:
        self._out, self._lock = out, lock

    def write_batch(self, items: list[tuple[str, int]]) -> None:
        with self._lock:
            self._out.extend(items)


class _Sink(DynamicSink[tuple[str, int]]):
    def __init__(self) -> None:
        self.items: list[tuple[str, int]] = []
        self._lock = threading.Lock()

    def build(self, step_id: str, worker_index: int, worker_count: int) -> _Collect:
        return _Collect(self.items, self._lock)


def _run(recovery: Path, workers: int, signal_after: int | None) -> tuple[list[tuple[str, int]], StopOutcome]:
    flow = Dataflow("stop_test")
    sink = _Sink()
    op.output("out", op.input("in", flow, _Source(signal_after)), sink)
    closed: list[bool] = []
    before = signal.getsignal(signal.SIGINT)  # Python's own, or SIG_IGN in a shell's background job
    with graceful_stop(workers=workers) as stop:
        close_at_stop(lambda: closed.append(True))
        try:
            cli_main(
                flow,
                workers_per_process=workers,
                epoch_interval=timedelta(milliseconds=200),
                recovery_config=RecoveryConfig(str(recovery)),
            )
        except KeyboardInterrupt:
            assert stop.outcome is StopOutcome.GRACEFUL  # several workers: Bytewax's interrupt ends it
    assert closed == [True]
    assert stop.exit_code == 0
    assert signal.getsignal(signal.SIGINT) is before  # the handlers are back
    assert not stop_requested()  # and the stop is forgotten: a later flow of the process runs normally
    return sink.items, stop.outcome


@pytest.mark.parametrize("workers", [1, 3])
def test_sigint_stops_at_an_epoch_boundary_with_everything_written_and_the_restart_resumes_after_it(workers, tmp_path):
    init_db_dir(tmp_path, 1)
    first, outcome = _run(tmp_path, workers, signal_after=50)
    assert outcome is StopOutcome.GRACEFUL
    per_part = {p: sorted(n for q, n in first if q == p) for p in PARTS}
    for numbers in per_part.values():
        assert numbers == list(range(1, len(numbers) + 1))  # nothing skipped, nothing twice
    assert len(per_part["a"]) >= 50

    # Resumed: each partition goes on right after the last item the stopped run wrote.
    second, _ = _run(tmp_path, workers, signal_after=len(per_part["a"]) + 20)
    for part in PARTS:
        resumed = sorted(n for q, n in second if q == part)
        assert resumed[0] == len(per_part[part]) + 1, (part, resumed[:3], len(per_part[part]))


def test_a_second_signal_stops_at_once_with_128_plus_its_number_and_closes_nothing(tmp_path):
    flow = Dataflow("stop_test")
    op.output("out", op.input("in", flow, _Source(5, again=signal.SIGTERM)), _Sink())
    closed: list[bool] = []
    with graceful_stop(workers=2) as stop:
        close_at_stop(lambda: closed.append(True))
        with pytest.raises(KeyboardInterrupt):
            cli_main(flow, workers_per_process=2, epoch_interval=timedelta(seconds=30))
    assert stop.outcome is StopOutcome.FORCED
    assert stop.exit_code == 128 + signal.SIGTERM
    assert closed == []  # an exchange call may still be in flight: nothing is closed under it
