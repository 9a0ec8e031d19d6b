"""The kill file as a partition of the trading flow's command input (flows.control.ControlSource)."""

from __future__ import annotations

import pytest

from core.clock import ManualClock, parse_utc
from core.orders import KillSwitch
from flows.control import _KillFilePartition, decode_command

CLOCK = ManualClock(parse_utc("2024-08-09T00:00:00Z"))


def test_a_new_kill_file_becomes_one_kill_command_for_every_account(tmp_path):
    part = _KillFilePartition(tmp_path / "KILL", None, tail=True, clock=CLOCK)
    assert part.next_batch() == []
    (tmp_path / "KILL").write_text("venue incident\nsecond line ignored\n")
    [record] = part.next_batch()
    command = decode_command(record.value)
    assert isinstance(command, KillSwitch)
    assert (command.account, command.reason, command.requested_by) == ("*", "venue incident", "kill-file")
    assert record.topic == f"file:{tmp_path / 'KILL'}"
    assert part.next_batch() == []  # the same file fires once
    assert part.next_awake() is not None  # following: looked at again later


def test_a_restart_from_a_snapshot_after_the_kill_does_not_fire_it_again_but_one_before_does(tmp_path):
    (tmp_path / "KILL").write_text("drill\n")
    before = _KillFilePartition(tmp_path / "KILL", None, tail=True, clock=CLOCK)
    snapshot_before = before.snapshot()
    assert len(before.next_batch()) == 1
    snapshot_after = before.snapshot()
    assert _KillFilePartition(tmp_path / "KILL", snapshot_after, tail=True, clock=CLOCK).next_batch() == []
    assert len(_KillFilePartition(tmp_path / "KILL", snapshot_before, tail=True, clock=CLOCK).next_batch()) == 1


def test_in_drain_mode_the_kill_file_is_read_once_then_the_input_ends(tmp_path):
    part = _KillFilePartition(tmp_path / "KILL", None, tail=False, clock=CLOCK)
    assert part.next_batch() == []
    (tmp_path / "KILL").write_text("")
    with pytest.raises(StopIteration):
        part.next_batch()
