"""The operator command path: kill switch, breaker resets, strategy pause and resume.

Every way a person stops or resumes trading ends in the same place: a command on the compacted
topic ``control.commands.v1``, keyed by account, and a row in the ``operator_commands`` audit
table (who, when, why). The trading flow reads that topic and hands each command to the account's
:class:`~risk.engine.RiskEngine`, which halts and returns the cancel-all instruction for execution.

- CLI: ``bot4 kill --account A --reason "..."``, ``bot4 reset --account A --breaker drawdown
  --reason "..."``, ``bot4 pause --account A --strategy S --reason "..."`` and ``bot4 resume ...``.
- Console: the authenticated command endpoints of ``bot4 serve`` (``flows.console``).
- File: creating ``$BOT4_DATA_DIR/KILL`` (its first line, if any, is the reason) is noticed by
  :class:`KillFile` and becomes a kill switch for every account (``account="*"``), so it works
  when nothing but a shell is left. :func:`control_source` is the trading flow's command input:
  the control topic plus this file, polled by the flow itself, so the file halts trading even
  while Kafka is down.
- Kafka: any producer writing the v1 JSON below to ``control.commands.v1``.

Wire format v1 (times in integer microseconds since the epoch, UTC)::

    {"type": "kill_switch", "v": 1, "account": "main", "requested_by": "alice",
     "reason": "venue incident", "ts": 1723161255342000}
    {"type": "reset_breaker", "v": 1, "account": "main", "breaker": "drawdown", ...}
    {"type": "pause_strategy", "v": 1, "account": "main", "strategy": "trend-v1", ...}
    {"type": "resume_strategy", "v": 1, "account": "main", "strategy": "trend-v1", ...}

A paused strategy's entries are denied with code ``strategy_paused`` until it is resumed (its
exits still go to the risk gate); the account's other strategies, its open orders and its
positions are not touched. ``account="*"`` pauses or resumes the strategy on every account.
"""

from __future__ import annotations

import getpass
import os
import socket
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path

import orjson
import psycopg
from bytewax.inputs import FixedPartitionedSource, StatefulSourcePartition

from core.clock import Clock, SystemClock, from_epoch_us, to_epoch_us
from core.deadletter import DeadLetter
from core.errors import WireFormatError
from core.orders import KillSwitch, PauseStrategy, ResetBreaker, ResumeStrategy
from flows.dlq import Inbound
from flows.kafka_io import CheckedProducer, InboundKafkaSource, producer_config
from flows.settings import Bot4Settings
from flows.shutdown import EpochStop

CONTROL_TOPIC = "control.commands.v1"
#: ``account`` of a command meant for every account (the kill file's).
ALL_ACCOUNTS = "*"

Command = KillSwitch | ResetBreaker | PauseStrategy | ResumeStrategy

#: Wire ``type`` of each command class (also the ``kind`` of its audit row).
_KINDS: dict[type, str] = {
    KillSwitch: "kill_switch",
    ResetBreaker: "reset_breaker",
    PauseStrategy: "pause_strategy",
    ResumeStrategy: "resume_strategy",
}
#: Per wire ``type``, the string fields it carries beyond account, requested_by and reason.
_EXTRA_FIELDS: dict[str, tuple[str, ...]] = {
    "kill_switch": (),
    "reset_breaker": ("breaker",),
    "pause_strategy": ("strategy",),
    "resume_strategy": ("strategy",),
}


def command_kind(command: Command) -> str:
    """The wire ``type`` of ``command`` (also the ``kind`` of its audit row).

    >>> from core.clock import parse_utc
    >>> command_kind(PauseStrategy("main", "trend-v1", "alice", "review", parse_utc("2024-01-01T00:00:00Z")))
    'pause_strategy'
    """
    return _KINDS[type(command)]


def encode_command(command: Command) -> bytes:
    body: dict[str, object] = {
        "type": command_kind(command),
        "v": 1,
        "account": command.account,
        "requested_by": command.requested_by,
        "reason": command.reason,
        "ts": to_epoch_us(command.ts),
    }
    if isinstance(command, ResetBreaker):
        body["breaker"] = command.breaker
    if isinstance(command, PauseStrategy | ResumeStrategy):
        body["strategy"] = command.strategy
    return orjson.dumps(body)


def decode_command(data: bytes) -> Command:
    """Parse a v1 command or raise :class:`WireFormatError` naming what is wrong."""
    try:
        obj = orjson.loads(data)
    except orjson.JSONDecodeError as exc:
        raise WireFormatError("malformed_json", f"command is not valid JSON: {exc}") from None
    if not isinstance(obj, dict) or obj.get("v") != 1:
        raise WireFormatError("unsupported_version", f"command is not a v1 object: {str(obj)[:80]}")
    kind = obj.get("type")
    if not isinstance(kind, str) or kind not in _EXTRA_FIELDS:
        raise WireFormatError("unknown_type", f"command type {kind!r} is not one of {', '.join(_EXTRA_FIELDS)}")
    for name in ("account", "requested_by", "reason", *_EXTRA_FIELDS[kind]):
        if not isinstance(obj.get(name), str) or not obj[name].strip():
            raise WireFormatError("missing_field", f"command field {name!r} must be a non-empty string")
    ts = obj.get("ts")
    if not isinstance(ts, int) or isinstance(ts, bool):
        raise WireFormatError("wrong_type", f"command field 'ts' must be integer microseconds, got {ts!r}")
    when = from_epoch_us(ts)
    if kind == "kill_switch":
        return KillSwitch(obj["account"], obj["requested_by"], obj["reason"], when)
    if kind == "reset_breaker":
        return ResetBreaker(obj["account"], obj["breaker"], obj["requested_by"], obj["reason"], when)
    if kind == "pause_strategy":
        return PauseStrategy(obj["account"], obj["strategy"], obj["requested_by"], obj["reason"], when)
    return ResumeStrategy(obj["account"], obj["strategy"], obj["requested_by"], obj["reason"], when)


def operator_name() -> str:
    """Who is asking: ``BOT4_OPERATOR`` if set, else the login name."""
    return os.environ.get("BOT4_OPERATOR") or getpass.getuser()


def publish_command(settings: Bot4Settings, command: Command, *, via: str) -> None:
    """Put ``command`` on the control topic (acknowledged before returning) and audit it.

    ``via`` says which path it came by (``cli``, ``file``, ``api``). Kafka goes first: the command
    must reach the flows even if the audit write fails, and the failure is then raised.
    """
    producer = CheckedProducer(producer_config(settings.kafka))
    producer.produce(settings.kafka.topic(CONTROL_TOPIC), command.account.encode(), encode_command(command))
    producer.flush()
    audit_command(settings, command, via=via)


def audit_command(settings: Bot4Settings, command: Command, *, via: str) -> None:
    with psycopg.connect(settings.postgres.conninfo()) as conn:
        conn.execute(
            "INSERT INTO operator_commands (kind, account, breaker, strategy, requested_by, reason, via, ts) "
            "VALUES (%s, %s, %s, %s, %s, %s, %s, %s)",
            (
                command_kind(command),
                command.account,
                command.breaker if isinstance(command, ResetBreaker) else None,
                command.strategy if isinstance(command, PauseStrategy | ResumeStrategy) else None,
                command.requested_by,
                command.reason,
                via,
                command.ts,
            ),
        )


@dataclass
class KillFile:
    """The file trigger: ``path`` appearing (or being touched again) is a kill switch for every
    account. Each distinct modification time fires once, so a flow that polls it every second
    does not halt again and again for the same file.

    >>> import tempfile
    >>> from core.clock import ManualClock, parse_utc
    >>> folder = Path(tempfile.mkdtemp())
    >>> trigger = KillFile(folder / "KILL")
    >>> clock = ManualClock(parse_utc("2024-08-09T00:00:00Z"))
    >>> trigger.poll(clock) is None
    True
    >>> _ = (folder / "KILL").write_text("exchange outage\\n")
    >>> cmd = trigger.poll(clock)
    >>> cmd.account, cmd.reason, cmd.requested_by
    ('*', 'exchange outage', 'kill-file')
    >>> trigger.poll(clock) is None
    True
    """

    path: Path
    _fired_mtime_ns: int | None = None

    def poll(self, clock: Clock) -> KillSwitch | None:
        try:
            stat = self.path.stat()
        except FileNotFoundError:
            return None
        if stat.st_mtime_ns == self._fired_mtime_ns:
            return None
        self._fired_mtime_ns = stat.st_mtime_ns
        text = self.path.read_text(encoding="utf-8", errors="replace").strip()
        reason = text.splitlines()[0].strip() if text else f"kill file {self.path} present"
        return KillSwitch(ALL_ACCOUNTS, "kill-file", reason, clock.now())


#: Seconds between two looks at the kill file while the flow follows its inputs.
KILL_FILE_POLL_S = 0.5


class _KillFilePartition(StatefulSourcePartition[Inbound | DeadLetter, int | None]):
    """Polls the kill file; a new one becomes the kill command, as if it came from the topic.

    The state is the modification time already fired, so a restart from a snapshot taken after
    the kill does not fire it again, and one taken before it does (the account state restored
    with it is not yet halted).
    """

    def __init__(self, path: Path, fired_mtime_ns: int | None, *, tail: bool, clock: Clock) -> None:
        self._trigger = KillFile(path, fired_mtime_ns)
        self._tail = tail
        self._clock = clock
        self._done = False
        self._stop = EpochStop()

    def next_batch(self) -> list[Inbound | DeadLetter]:
        if self._done:
            raise StopIteration
        if self._stop.pending():
            return []
        self._done = not self._tail  # drain mode: one look at start, then this input ends
        command = self._trigger.poll(self._clock)
        if command is None:
            return []
        origin = str(self._trigger.path)
        return [Inbound(f"file:{origin}", 0, 0, command.account.encode(), encode_command(command))]

    def next_awake(self) -> datetime | None:
        return self._clock.now() + timedelta(seconds=KILL_FILE_POLL_S) if self._tail else None

    def snapshot(self) -> int | None:
        self._stop.snapshotted()
        return self._trigger._fired_mtime_ns


class ControlSource(FixedPartitionedSource[Inbound | DeadLetter, int | None]):
    """Operator commands: the control topic's partitions and this host's kill file.

    The kill file partition is named after the host, and a process lists only its own host's, so
    on several hosts each host's ``$BOT4_DATA_DIR/KILL`` is watched (Bytewax asks each process for
    the partitions it can reach). A kill for ``*`` halts every account wherever it runs.
    """

    def __init__(self, topic: InboundKafkaSource, kill_file: Path, *, tail: bool, clock: Clock | None = None) -> None:
        self._topic = topic
        self._kill_file = kill_file
        self._tail = tail
        self._clock = clock or SystemClock()
        self._part = f"kill-file@{socket.gethostname()}"

    def list_parts(self) -> list[str]:
        return [*self._topic.list_parts(), self._part]

    def build_part(
        self, step_id: str, for_part: str, resume_state: int | None
    ) -> StatefulSourcePartition[Inbound | DeadLetter, int | None]:
        if for_part.startswith("kill-file@"):
            return _KillFilePartition(self._kill_file, resume_state, tail=self._tail, clock=self._clock)
        return self._topic.build_part(step_id, for_part, resume_state)  # type: ignore[return-value]


def control_source(settings: Bot4Settings, *, tail: bool, clock: Clock | None = None) -> ControlSource:
    """The trading flow's command input: ``control.commands.v1`` and ``$BOT4_DATA_DIR/KILL``."""
    kafka = settings.kafka
    topic = InboundKafkaSource(kafka, [kafka.topic(CONTROL_TOPIC)], tail=tail, clock=clock)
    return ControlSource(topic, settings.data_dir / "KILL", tail=tail, clock=clock)
