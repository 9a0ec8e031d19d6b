"""Stopping a flow process on SIGINT or SIGTERM: at an epoch boundary, with nothing lost or redone.

Bytewax 0.21's own answer to Ctrl-C is abrupt. With one worker (``run_main``, what ``bot4 run``
runs by default) the ``KeyboardInterrupt`` is raised wherever the worker thread happens to be: in a
source's ``next_batch``, in the middle of a sink's ``write_batch`` or of an exchange call, and the
worker dies in a Rust panic (a backtrace on stderr, exit code 1). SIGTERM is not handled at all.

:func:`graceful_stop` replaces both signals' handlers while a flow runs. The first signal only
*requests* a stop; every source partition that takes part (:class:`EpochStop`, used by the Kafka
partitions and the kill-file partition) then hands over nothing more, and the first partition that
is asked for a batch after its next snapshot ends the run. That point is safe: Bytewax snapshots a
partition when its epoch ends, and asks it for the next epoch's first batch only once every step
and every sink has finished all earlier epochs and their snapshots are written (its backpressure
rule), and every record handed over before the stop belongs to one of those epochs (a source is
only asked for a batch of epoch ``e`` once every input is at ``e`` or later). So at that point all
of it has gone through the flow, every Kafka message produced from it is acknowledged (the sink
flushes each batch), every row is written, and the recovery store has the state after it: a
restart resumes exactly there, nothing is redone. The run ends through Bytewax's own
``AbortExecution`` (one worker: the worker stops, the partitions and sinks are closed, ``cli_main``
returns) or, with several workers, through its interrupt (every worker stops between two steps;
a worker may hold no partition, so an abort in one worker would leave the others waiting).

The stop takes until the current epoch ends (``epoch_interval``: 1 s for the ``bot4`` flows) plus
whatever the worker is doing then (a batch being written, an exchange call in flight: each bounded
by its own timeout). A second signal while it waits stops at once, the old way (as a crash: the
recovery store's last epoch is where a restart resumes).
"""

from __future__ import annotations

import _thread
import logging
import signal
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from enum import Enum
from types import FrameType

from bytewax.inputs import AbortExecution

log = logging.getLogger(__name__)

SIGNALS = (signal.SIGINT, signal.SIGTERM)


class StopOutcome(Enum):
    """How a run under :func:`graceful_stop` ended."""

    RUNNING = "running"  # not stopped by a signal
    GRACEFUL = "graceful"  # stopped at an epoch boundary after a signal
    FORCED = "forced"  # a second signal: stopped at once


@dataclass
class _StopState:
    requested: threading.Event = field(default_factory=threading.Event)
    cluster: bool = False  # several workers (cluster_main): end through Bytewax's interrupt
    safe: bool = False  # everything handed over before the stop is through the flow
    interrupted: bool = False  # the KeyboardInterrupt for Bytewax was raised
    forced: int = 0  # the signal number of a second signal (stop at once)
    signal_name: str = ""
    active: bool = False  # inside graceful_stop
    # Reentrant: with one worker the flow runs in the main thread, where the handler interrupts it.
    lock: threading.RLock = field(default_factory=threading.RLock)
    closers: list[Callable[[], None]] = field(default_factory=list)

    def start(self, *, cluster: bool) -> None:
        """A new run: nothing requested yet."""
        with self.lock:
            self.requested.clear()
            self.cluster, self.active = cluster, True
            self.safe = self.interrupted = False
            self.forced, self.signal_name = 0, ""
            self.closers = []


_state = _StopState()


def stop_requested() -> bool:
    """True once SIGINT or SIGTERM asked the running flow to stop."""
    return _state.requested.is_set()


def close_at_stop(close: Callable[[], None]) -> None:
    """Call ``close`` when the flow run by :func:`graceful_stop` has ended (an exchange connection:
    its client and its event loop thread); nothing of the flow runs any more then. Outside such a
    run (tests, backtests) the caller closes what it opened."""
    with _state.lock:
        if _state.active:
            _state.closers.append(close)


class EpochStop:
    """A source partition's part in a graceful stop; each partition holds its own.

    Call :meth:`pending` first in ``next_batch`` (True: return an empty batch) and
    :meth:`snapshotted` in ``snapshot``.
    """

    __slots__ = ("_epoch_ended",)

    def __init__(self) -> None:
        self._epoch_ended = False

    def snapshotted(self) -> None:
        """The partition's epoch ended (Bytewax snapshots a partition at the end of each epoch)."""
        if _state.requested.is_set():
            self._epoch_ended = True

    def pending(self) -> bool:
        """Whether a stop is pending (hand over nothing); ends the run once it is safe to.

        Raises :class:`bytewax.inputs.AbortExecution` when this partition is asked for a batch
        after an epoch ended since the stop was requested (see the module docstring).
        """
        if not _state.requested.is_set():
            return False
        if self._epoch_ended:
            _end_run()
        return True


def _end_run() -> None:
    with _state.lock:
        first = not _state.safe
        _state.safe = True
    if first:
        log.info("stop: every record read before the %s is through the flow; stopping", _state.signal_name)
        if _state.cluster:
            # Several workers: Bytewax stops them all when its main thread sees a KeyboardInterrupt
            # (our handler raises it now that it is safe).
            _thread.interrupt_main(signal.SIGINT)
    raise AbortExecution("graceful stop")


def _on_signal(signum: int, frame: FrameType | None) -> None:
    name = signal.Signals(signum).name
    with _state.lock:
        if _state.safe:
            # The run is ending. With several workers this is the interrupt _end_run asked for (or a
            # signal that beat it): Bytewax stops every worker on it. With one, the abort ends it.
            if _state.interrupted or not _state.cluster:
                return
            _state.interrupted = True
            raise KeyboardInterrupt
        if _state.requested.is_set():
            _state.forced = signum
            _state.interrupted = True
            log.warning("stop: second %s; stopping at once (a restart resumes from the last snapshot)", name)
            raise KeyboardInterrupt
        _state.signal_name = name
        _state.requested.set()
    log.warning("stop: %s received; stopping once the current epoch is through the flow (again to stop at once)", name)


class RunStop:
    """How the run inside :func:`graceful_stop` ended, and the exit code for it."""

    def __init__(self) -> None:
        self._final: tuple[StopOutcome, str, int] | None = None  # kept when the block is left

    def _now(self) -> tuple[StopOutcome, str, int]:
        if self._final is not None:
            return self._final
        if _state.forced:
            return StopOutcome.FORCED, _state.signal_name, _state.forced
        return StopOutcome.GRACEFUL if _state.safe else StopOutcome.RUNNING, _state.signal_name, 0

    def _keep(self) -> None:
        self._final = self._now()

    @property
    def outcome(self) -> StopOutcome:
        """FORCED after a second signal; GRACEFUL once the run reached its safe end; else RUNNING
        (also when a stop was requested but the run ended before that point, e.g. with an error)."""
        return self._now()[0]

    @property
    def signal_name(self) -> str:
        return self._now()[1]

    @property
    def exit_code(self) -> int:
        """0, or 128 + the signal's number after a second signal (130 for SIGINT, 143 for SIGTERM)."""
        forced = self._now()[2]
        return 128 + forced if forced else 0


@contextmanager
def graceful_stop(*, workers: int) -> Iterator[RunStop]:
    """Handle SIGINT and SIGTERM as the module docstring describes while the block runs (call it in
    the main thread: Python runs signal handlers there); ``workers`` is the worker count of the run.

    On leaving, the previous handlers come back, what :func:`close_at_stop` registered is closed
    (not after a second signal: an exchange call may still be in flight there), and the stop is
    forgotten: a later flow of the same process runs normally.
    """
    _state.start(cluster=workers > 1)
    previous = {sig: signal.signal(sig, _on_signal) for sig in SIGNALS}
    stop = RunStop()
    try:
        yield stop
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
        stop._keep()
        with _state.lock:
            closers, forced = _state.closers, _state.forced
            _state.start(cluster=False)
            _state.active = False
        if not forced:
            for close in closers:
                close()
