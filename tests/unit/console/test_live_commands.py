"""Commands on the control topic as the console's live stream shows them."""

from __future__ import annotations

from core.clock import parse_utc
from core.orders import KillSwitch, PauseStrategy, ResetBreaker, ResumeStrategy
from flows.console.live import normalize
from flows.control import CONTROL_TOPIC, encode_command

T = parse_utc("2024-08-09T00:00:00.5Z")


def test_every_command_kind_reaches_the_live_stream_with_its_breaker_or_strategy():
    shown = [
        normalize(CONTROL_TOPIC, encode_command(c))
        for c in (
            KillSwitch("main", "alice", "venue incident", T),
            ResetBreaker("main", "kill_switch", "alice", "over", T),
            PauseStrategy("main", "trend-v1", "carol", "fills look wrong", T),
            ResumeStrategy("main", "trend-v1", "carol", "venue fixed", T),
        )
    ]
    assert [(s["kind"], s["breaker"], s["strategy"]) for s in shown] == [
        ("kill_switch", None, None),
        ("reset_breaker", "kill_switch", None),
        ("pause_strategy", None, "trend-v1"),
        ("resume_strategy", None, "trend-v1"),
    ]
    assert {s["type"] for s in shown} == {"command"}
    assert shown[2]["ts"] == "2024-08-09T00:00:00.500000Z" and shown[2]["requested_by"] == "carol"
