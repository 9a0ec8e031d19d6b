from __future__ import annotations

import os

import orjson
import pytest

from core.clock import ManualClock, parse_utc
from core.errors import WireFormatError
from core.orders import KillSwitch, PauseStrategy, ResetBreaker, ResumeStrategy
from flows.control import KillFile, command_kind, decode_command, encode_command

T = parse_utc("2024-08-09T00:00:00.123456Z")


@pytest.mark.parametrize(
    "command",
    [
        KillSwitch("main", "alice", "venue incident", T),
        ResetBreaker("main", "drawdown", "bob", "reviewed", T),
        PauseStrategy("main", "trend-v1", "carol", "fills look wrong", T),
        ResumeStrategy("main", "trend-v1", "carol", "venue fixed", T),
    ],
)
def test_commands_round_trip_exactly(command):
    assert decode_command(encode_command(command)) == command


def test_pause_and_resume_travel_as_v1_objects_naming_the_strategy():
    pause = orjson.loads(encode_command(PauseStrategy("main", "trend-v1", "carol", "fills look wrong", T)))
    assert pause == {
        "type": "pause_strategy",
        "v": 1,
        "account": "main",
        "strategy": "trend-v1",
        "requested_by": "carol",
        "reason": "fills look wrong",
        "ts": 1723161600123456,
    }
    resume = orjson.loads(encode_command(ResumeStrategy("main", "trend-v1", "carol", "venue fixed", T)))
    assert resume["type"] == "resume_strategy" and resume["strategy"] == "trend-v1"
    assert command_kind(ResumeStrategy("main", "trend-v1", "carol", "venue fixed", T)) == "resume_strategy"


def test_a_resume_written_by_another_producer_decodes_to_the_same_command():
    raw = (
        b'{"type": "resume_strategy", "v": 1, "account": "main", "strategy": "mr-v2", "requested_by": "ops",'
        b' "reason": "checked", "ts": 1723161600123456}'
    )
    assert decode_command(raw) == ResumeStrategy("main", "mr-v2", "ops", "checked", T)


@pytest.mark.parametrize(
    ("raw", "reason"),
    [
        (b"{not json", "malformed_json"),
        (b'{"type": "kill_switch", "v": 2}', "unsupported_version"),
        (
            b'{"type": "kill_switch", "v": 1, "account": "main", "requested_by": "a", "reason": " ", "ts": 1}',
            "missing_field",
        ),
        (
            b'{"type": "reset_breaker", "v": 1, "account": "m", "requested_by": "a", "reason": "r", "ts": 1}',
            "missing_field",
        ),
        (
            b'{"type": "kill_switch", "v": 1, "account": "m", "requested_by": "a", "reason": "r", "ts": "now"}',
            "wrong_type",
        ),
        (
            b'{"type": "pause_strategy", "v": 1, "account": "m", "requested_by": "a", "reason": "r", "ts": 1}',
            "missing_field",
        ),
        (
            b'{"type": "resume_strategy", "v": 1, "account": "m", "strategy": "  ", "requested_by": "a",'
            b' "reason": "r", "ts": 1}',
            "missing_field",
        ),
        (
            b'{"type": "pause_strategy", "v": 1, "account": "m", "strategy": 7, "requested_by": "a",'
            b' "reason": "r", "ts": 1}',
            "missing_field",
        ),
        (
            b'{"type": "pause_strategy", "v": 1, "account": "m", "strategy": "s", "requested_by": "a",'
            b' "reason": "r", "ts": true}',
            "wrong_type",
        ),
        (
            b'{"type": ["kill_switch"], "v": 1, "account": "m", "requested_by": "a", "reason": "r", "ts": 1}',
            "unknown_type",
        ),
        (b'{"type": "launch", "v": 1, "account": "m", "requested_by": "a", "reason": "r", "ts": 1}', "unknown_type"),
    ],
)
def test_a_bad_command_is_refused_with_its_reason(raw, reason):
    with pytest.raises(WireFormatError) as info:
        decode_command(raw)
    assert info.value.reason == reason


def test_kill_file_fires_once_per_modification_and_reads_the_reason(tmp_path):
    clock = ManualClock(T)
    trigger = KillFile(tmp_path / "KILL")
    assert trigger.poll(clock) is None
    (tmp_path / "KILL").write_text("")
    first = trigger.poll(clock)
    assert first is not None and first.account == "*" and "present" in first.reason
    assert trigger.poll(clock) is None
    (tmp_path / "KILL").write_text("feed frozen\nmore detail\n")
    stat = (tmp_path / "KILL").stat()
    os.utime(tmp_path / "KILL", ns=(stat.st_atime_ns, stat.st_mtime_ns + 1_000_000))
    second = trigger.poll(clock)
    assert second is not None and second.reason == "feed frozen"
    assert orjson.loads(encode_command(second))["account"] == "*"
