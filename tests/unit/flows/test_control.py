from __future__ import annotations

import os

import orjson
import pytest

from core.clock import ManualClock, parse_utc
from core.errors import WireFormatError
from core.orders import KillSwitch, ResetBreaker
from flows.control import KillFile, decode_command, encode_command

T = parse_utc("2024-08-09T00:00:00.123456Z")


@pytest.mark.parametrize(
    "command",
    [KillSwitch("main", "alice", "venue incident", T), ResetBreaker("main", "drawdown", "bob", "reviewed", T)],
)
def test_commands_round_trip_exactly(command):
    assert decode_command(encode_command(command)) == command


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
