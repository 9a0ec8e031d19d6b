"""Replay of recorded market data: the same events as the live ingest, read from files.

``read_events(path)`` streams one file's events; ``detect_format(path)`` names its format;
``ReplaySource(paths)`` is the Bytewax input (one partition per file, batched, resumable, paced);
``replay_files(paths)`` is the same for plain Python callers.
"""

from __future__ import annotations

from flows.replay._common import Reason, ReplayStats
from flows.replay.formats import FORMATS, detect_format, open_reader, read_events
from flows.replay.pacing import Pacer
from flows.replay.source import ReplayFile, ReplaySource, replay_files

__all__ = [
    "FORMATS",
    "Pacer",
    "Reason",
    "ReplayFile",
    "ReplaySource",
    "ReplayStats",
    "detect_format",
    "open_reader",
    "read_events",
    "replay_files",
]
