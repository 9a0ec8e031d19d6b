"""Bot4's Kafka topics: load the declarative list in infra/topics.toml and apply it to a broker.

Why this module exists: topics are declared in one file and the broker runs with
``auto.create.topics.enable=false``, so a misspelt topic fails loudly instead of appearing with one
partition. Everything that needs topic names or partition counts reads them through
:func:`load_topics`, and :func:`ensure_topics` is the only code that creates topics
(``infra/services.sh up`` runs ``python -m flows.topics ensure``).

Applying the list is idempotent and conservative: missing topics are created, a partition count
lower than declared is raised (Kafka can add partitions, never remove them), and every other
difference (more partitions, another replication factor, another retention or cleanup policy) is
reported, never changed, because changing a live topic's layout is an operator's decision.

The module needs only the standard library and confluent-kafka, so it also runs outside the
project's virtualenv (the docker-compose topics job installs just confluent-kafka).
"""

from __future__ import annotations

import argparse
import logging
import re
import sys
import time
import tomllib
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from confluent_kafka import KafkaError, KafkaException

# confluent-kafka's admin package re-exports these without __all__, which mypy treats as private.
from confluent_kafka.admin import (  # type: ignore[attr-defined]
    AdminClient,
    ConfigResource,
    NewPartitions,
    NewTopic,
    ResourceType,
)

__all__ = [
    "DEFAULT_TOPICS_FILE",
    "EnsureReport",
    "ObservedTopic",
    "TopicAdminError",
    "TopicConfigError",
    "TopicSpec",
    "describe_topics",
    "diff_topic",
    "ensure_topics",
    "load_topics",
    "main",
    "parse_topics",
    "reconcile_topics",
]

logger = logging.getLogger(__name__)

#: infra/topics.toml of the checkout this module lives in.
DEFAULT_TOPICS_FILE = Path(__file__).resolve().parent.parent / "infra" / "topics.toml"

#: cleanup.policy values Kafka accepts, in the normalised spelling used here.
CLEANUP_POLICIES = ("delete", "compact", "compact,delete")

# Kafka's own rule for topic names (kafka.common.internals.Topic): legal characters, length <= 249.
_TOPIC_NAME = re.compile(r"[A-Za-z0-9._-]{1,249}")
_REQUIRED_FIELDS = ("name", "partitions", "retention_ms", "cleanup_policy", "key", "description")
_OPTIONAL_FIELDS = ("replication_factor",)
_TOP_LEVEL_KEYS = ("defaults", "topic")
_DEFAULTS_KEYS = ("replication_factor",)


class TopicConfigError(ValueError):
    """The topic list is invalid; the message names the file, the topic, the field and the value."""


class TopicAdminError(RuntimeError):
    """The broker refused or did not answer an admin request (describe, create, add partitions)."""


@dataclass(frozen=True, slots=True)
class TopicSpec:
    """One declared topic, as written in infra/topics.toml (validated)."""

    name: str
    partitions: int
    retention_ms: int
    cleanup_policy: str
    key: str
    description: str
    replication_factor: int = 1

    def kafka_config(self) -> dict[str, str]:
        """Topic-level Kafka settings this declaration pins."""
        return {"retention.ms": str(self.retention_ms), "cleanup.policy": self.cleanup_policy}


@dataclass(frozen=True, slots=True)
class ObservedTopic:
    """A topic as the broker describes it."""

    name: str
    partitions: int
    replication_factor: int
    config: Mapping[str, str]


@dataclass(frozen=True, slots=True)
class EnsureReport:
    """What :func:`reconcile_topics` did and found."""

    created: tuple[str, ...]
    grown: tuple[tuple[str, int, int], ...]  # (topic, partitions before, partitions after)
    unchanged: tuple[str, ...]
    mismatches: tuple[str, ...]

    def summary(self) -> str:
        parts = [f"{len(self.created)} created", f"{len(self.grown)} grown", f"{len(self.unchanged)} unchanged"]
        if self.mismatches:
            parts.append(f"{len(self.mismatches)} mismatch(es)")
        return ", ".join(parts)


# ----------------------------------------------------------------------------------------- loading


def _normalise_cleanup_policy(value: str) -> str:
    return ",".join(sorted(part.strip() for part in value.split(",") if part.strip()))


def _int_field(where: str, field: str, value: object, minimum: int, expected: str) -> int:
    # bool is an int subclass in Python: `partitions = true` must not read as 1.
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise TopicConfigError(f"{where}: {field} = {value!r}, expected {expected}")
    return value


def _str_field(where: str, field: str, value: object) -> str:
    if not isinstance(value, str) or not value.strip():
        raise TopicConfigError(f"{where}: {field} = {value!r}, expected a non-empty string")
    return value.strip()


def _parse_topic(entry: object, index: int, source: str, default_rf: int) -> TopicSpec:
    where = f"{source}: [[topic]] #{index}"
    if not isinstance(entry, dict):
        raise TopicConfigError(f"{where}: expected a table of fields, got {type(entry).__name__}")
    name = entry.get("name")
    if isinstance(name, str):
        where = f"{where} ({name!r})"
    unknown = sorted(set(entry) - set(_REQUIRED_FIELDS) - set(_OPTIONAL_FIELDS))
    if unknown:
        raise TopicConfigError(
            f"{where}: unknown field(s) {', '.join(unknown)}; expected only "
            f"{', '.join(_REQUIRED_FIELDS + _OPTIONAL_FIELDS)}"
        )
    missing = [field for field in _REQUIRED_FIELDS if field not in entry]
    if missing:
        raise TopicConfigError(f"{where}: missing required field(s) {', '.join(missing)}")

    if not isinstance(name, str) or not _TOPIC_NAME.fullmatch(name) or name in {".", ".."}:
        raise TopicConfigError(
            f"{where}: name = {name!r}, expected 1 to 249 characters of [A-Za-z0-9._-] (not '.' or '..')"
        )
    partitions = _int_field(where, "partitions", entry["partitions"], 1, "an integer >= 1")
    retention_ms = _int_field(
        where, "retention_ms", entry["retention_ms"], -1, "an integer >= -1 (milliseconds, -1 = forever)"
    )
    policy_raw = entry["cleanup_policy"]
    policy = _normalise_cleanup_policy(policy_raw) if isinstance(policy_raw, str) else None
    if policy not in CLEANUP_POLICIES:
        raise TopicConfigError(
            f"{where}: cleanup_policy = {policy_raw!r}, expected one of {', '.join(map(repr, CLEANUP_POLICIES))}"
        )
    assert policy is not None  # for mypy: checked just above
    replication_factor = _int_field(
        where, "replication_factor", entry.get("replication_factor", default_rf), 1, "an integer >= 1"
    )
    return TopicSpec(
        name=name,
        partitions=partitions,
        retention_ms=retention_ms,
        cleanup_policy=policy,
        key=_str_field(where, "key", entry["key"]),
        description=_str_field(where, "description", entry["description"]),
        replication_factor=replication_factor,
    )


def parse_topics(document: Mapping[str, Any], source: str = "<topics>") -> tuple[TopicSpec, ...]:
    """Validate an already parsed topics document (the structure of infra/topics.toml)."""
    unknown = sorted(set(document) - set(_TOP_LEVEL_KEYS))
    if unknown:
        raise TopicConfigError(
            f"{source}: unknown top-level key(s) {', '.join(unknown)}; expected only [defaults] and [[topic]]"
        )
    defaults = document.get("defaults", {})
    if not isinstance(defaults, dict):
        raise TopicConfigError(f"{source}: [defaults] = {defaults!r}, expected a table")
    unknown = sorted(set(defaults) - set(_DEFAULTS_KEYS))
    if unknown:
        raise TopicConfigError(
            f"{source}: unknown key(s) {', '.join(unknown)} in [defaults]; expected only {', '.join(_DEFAULTS_KEYS)}"
        )
    default_rf = _int_field(
        f"{source}: [defaults]",
        "replication_factor",
        defaults.get("replication_factor", 1),
        1,
        "an integer >= 1",
    )
    entries = document.get("topic")
    if not isinstance(entries, list) or not entries:
        raise TopicConfigError(f"{source}: expected at least one [[topic]] table, found {entries!r}")

    specs: list[TopicSpec] = []
    first_seen: dict[str, int] = {}
    collisions: dict[str, tuple[int, str]] = {}
    for index, entry in enumerate(entries, start=1):
        spec = _parse_topic(entry, index, source, default_rf)
        if spec.name in first_seen:
            raise TopicConfigError(
                f"{source}: duplicate topic name {spec.name!r} in [[topic]] #{first_seen[spec.name]} "
                f"and #{index}; expected each name once"
            )
        # Kafka refuses topics whose names differ only in '.' versus '_' (they share metric names).
        folded = spec.name.replace(".", "_")
        if folded in collisions:
            other_index, other_name = collisions[folded]
            raise TopicConfigError(
                f"{source}: topic {spec.name!r} (#{index}) collides with {other_name!r} (#{other_index}): "
                "Kafka treats '.' and '_' alike in topic names; expected distinct names"
            )
        first_seen[spec.name] = index
        collisions[folded] = (index, spec.name)
        specs.append(spec)
    return tuple(specs)


def load_topics(path: str | Path | None = None) -> tuple[TopicSpec, ...]:
    """Read and validate the topic list (default: infra/topics.toml of this checkout).

    Raises :class:`TopicConfigError` naming the file, topic, field, value and what was expected.
    """
    file = Path(path) if path is not None else DEFAULT_TOPICS_FILE
    try:
        raw = file.read_bytes()
    except FileNotFoundError:
        raise TopicConfigError(
            f"topics file {file} not found; expected infra/topics.toml of the checkout or an explicit path"
        ) from None
    except OSError as exc:
        raise TopicConfigError(f"topics file {file} can not be read: {exc}") from exc
    try:
        document = tomllib.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, tomllib.TOMLDecodeError) as exc:
        raise TopicConfigError(f"{file}: not valid UTF-8 TOML: {exc}") from exc
    return parse_topics(document, str(file))


# ---------------------------------------------------------------------------------------- applying


def diff_topic(spec: TopicSpec, observed: ObservedTopic) -> list[str]:
    """Differences between a declaration and the broker that ensuring will NOT fix.

    A partition count lower than declared is left out: :func:`reconcile_topics` raises it.
    """
    problems: list[str] = []
    if observed.partitions > spec.partitions:
        problems.append(
            f"{spec.name}: {observed.partitions} partitions on the broker, {spec.partitions} declared; "
            "Kafka can not remove partitions (raise the declaration or recreate the topic)"
        )
    if observed.replication_factor != spec.replication_factor:
        problems.append(
            f"{spec.name}: replication factor {observed.replication_factor} on the broker, "
            f"{spec.replication_factor} declared"
        )
    for key, declared in spec.kafka_config().items():
        actual = observed.config.get(key)
        if key == "cleanup.policy" and actual is not None:
            same = _normalise_cleanup_policy(actual) == declared
        else:
            same = actual == declared
        if not same:
            problems.append(f"{spec.name}: {key}={actual!r} on the broker, {declared!r} declared")
    return problems


def _admin(bootstrap: str) -> AdminClient:
    return AdminClient({"bootstrap.servers": bootstrap, "client.id": "bot4-topics"})


def _list(admin: AdminClient, bootstrap: str, timeout: float) -> dict[str, Any]:
    try:
        return dict(admin.list_topics(timeout=timeout).topics)
    except KafkaException as exc:
        raise TopicAdminError(f"metadata request to Kafka at {bootstrap} failed: {exc}") from exc


def _kafka_error(exc: BaseException) -> KafkaError | None:
    if isinstance(exc, KafkaException) and exc.args and isinstance(exc.args[0], KafkaError):
        return exc.args[0]
    return None


def _observe(
    admin: AdminClient, names: Sequence[str], metadata: Mapping[str, Any], timeout: float
) -> dict[str, ObservedTopic]:
    if not names:
        return {}
    resources = [ConfigResource(ResourceType.TOPIC, name) for name in names]
    futures = admin.describe_configs(resources, request_timeout=timeout)
    observed: dict[str, ObservedTopic] = {}
    for resource, future in futures.items():
        name = resource.name
        try:
            entries = future.result()
        except KafkaException as exc:
            raise TopicAdminError(f"describing the config of topic {name!r} failed: {exc}") from exc
        partitions = metadata[name].partitions
        first = partitions[min(partitions)] if partitions else None
        observed[name] = ObservedTopic(
            name=name,
            partitions=len(partitions),
            replication_factor=len(first.replicas) if first is not None else 0,
            config={key: entry.value for key, entry in entries.items() if entry.value is not None},
        )
    return observed


def describe_topics(bootstrap: str, names: Iterable[str], *, timeout: float = 30.0) -> dict[str, ObservedTopic]:
    """How the broker at ``bootstrap`` sees the named topics; names it does not have are left out."""
    admin = _admin(bootstrap)
    metadata = _list(admin, bootstrap, timeout)
    return _observe(admin, [name for name in names if name in metadata], metadata, timeout)


def _wait_until_visible(admin: AdminClient, bootstrap: str, specs: Sequence[TopicSpec], timeout: float) -> None:
    """Wait until metadata shows every topic with its partitions and a leader for each."""
    deadline = time.monotonic() + timeout
    pending: list[str] = []
    while True:
        metadata = _list(admin, bootstrap, timeout)
        pending = []
        for spec in specs:
            topic = metadata.get(spec.name)
            if (
                topic is None
                or topic.error is not None
                or len(topic.partitions) < spec.partitions
                or any(p.leader < 0 for p in topic.partitions.values())
            ):
                pending.append(spec.name)
        if not pending:
            return
        if time.monotonic() >= deadline:
            raise TopicAdminError(
                f"topics {', '.join(pending)} not visible with all partitions and leaders at {bootstrap} "
                f"after {timeout:.0f}s"
            )
        time.sleep(0.1)


def reconcile_topics(bootstrap: str, topics: Iterable[TopicSpec], *, timeout: float = 30.0) -> EnsureReport:
    """Create missing topics, raise too-low partition counts, report every other difference."""
    specs = tuple(topics)
    admin = _admin(bootstrap)
    metadata = _list(admin, bootstrap, timeout)

    to_create = [spec for spec in specs if spec.name not in metadata]
    created: list[str] = []
    if to_create:
        new_topics = [
            NewTopic(
                spec.name,
                num_partitions=spec.partitions,
                replication_factor=spec.replication_factor,
                config=spec.kafka_config(),
            )
            for spec in to_create
        ]
        futures = admin.create_topics(new_topics, operation_timeout=timeout, request_timeout=timeout)
        for name, future in futures.items():
            try:
                future.result()
            except KafkaException as exc:
                error = _kafka_error(exc)
                if error is not None and error.code() == KafkaError.TOPIC_ALREADY_EXISTS:
                    continue  # created concurrently by someone else: compared below like any other
                raise TopicAdminError(f"creating topic {name!r} at {bootstrap} failed: {exc}") from exc
            created.append(name)
        metadata = _list(admin, bootstrap, timeout)

    existing = [spec for spec in specs if spec.name not in created]
    observed = _observe(admin, [spec.name for spec in existing], metadata, timeout)

    grown: list[tuple[str, int, int]] = []
    mismatches: list[str] = []
    unchanged: list[str] = []
    to_grow = [spec for spec in existing if observed[spec.name].partitions < spec.partitions]
    if to_grow:
        futures = admin.create_partitions(
            [NewPartitions(spec.name, spec.partitions) for spec in to_grow],
            operation_timeout=timeout,
            request_timeout=timeout,
        )
        for spec in to_grow:
            try:
                futures[spec.name].result()
            except KafkaException as exc:
                raise TopicAdminError(
                    f"raising topic {spec.name!r} from {observed[spec.name].partitions} to "
                    f"{spec.partitions} partitions at {bootstrap} failed: {exc}"
                ) from exc
            grown.append((spec.name, observed[spec.name].partitions, spec.partitions))
    grown_names = {name for name, _, _ in grown}
    for spec in existing:
        problems = diff_topic(spec, observed[spec.name])
        mismatches.extend(problems)
        if not problems and spec.name not in grown_names:
            unchanged.append(spec.name)

    _wait_until_visible(admin, bootstrap, specs, timeout)
    return EnsureReport(
        created=tuple(created), grown=tuple(grown), unchanged=tuple(unchanged), mismatches=tuple(mismatches)
    )


def ensure_topics(bootstrap: str, topics: Iterable[TopicSpec], *, timeout: float = 30.0) -> list[str]:
    """Apply the declared topics to the broker at ``bootstrap``; return the names created now.

    Idempotent: existing topics are left alone except that a partition count lower than declared
    is raised; other differences are logged as warnings (see :func:`reconcile_topics` for the full
    report).
    """
    report = reconcile_topics(bootstrap, topics, timeout=timeout)
    for name, before, after in report.grown:
        logger.warning("topic %s: raised partitions from %d to %d as declared", name, before, after)
    for problem in report.mismatches:
        logger.warning("topic mismatch (left unchanged): %s", problem)
    return list(report.created)


# --------------------------------------------------------------------------------------------- CLI


def _build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m flows.topics", description="Apply or show Bot4's declared Kafka topics."
    )
    commands = parser.add_subparsers(dest="command", required=True)
    ensure = commands.add_parser("ensure", help="create missing topics, raise low partition counts")
    ensure.add_argument("--bootstrap", required=True, help="Kafka bootstrap servers, e.g. 127.0.0.1:29092")
    ensure.add_argument("--file", type=Path, default=None, help=f"topic list (default {DEFAULT_TOPICS_FILE})")
    ensure.add_argument("--timeout", type=float, default=30.0, help="seconds per admin request (default 30)")
    ensure.add_argument("--strict", action="store_true", help="exit 2 if a topic differs from its declaration")
    show = commands.add_parser("list", help="print the declared topics")
    show.add_argument("--file", type=Path, default=None, help=f"topic list (default {DEFAULT_TOPICS_FILE})")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = _build_parser().parse_args(argv)
    out, err = sys.stdout, sys.stderr
    try:
        specs = load_topics(args.file)
    except TopicConfigError as exc:
        err.write(f"error: {exc}\n")
        return 1
    if args.command == "list":
        for spec in specs:
            out.write(
                f"{spec.name}\tpartitions={spec.partitions}\tretention.ms={spec.retention_ms}\t"
                f"cleanup.policy={spec.cleanup_policy}\tkey={spec.key}\n"
            )
        return 0
    try:
        report = reconcile_topics(args.bootstrap, specs, timeout=args.timeout)
    except TopicAdminError as exc:
        err.write(f"error: {exc}\n")
        return 1
    for name in report.created:
        out.write(f"topics: created {name}\n")
    for name, before, after in report.grown:
        out.write(f"topics: raised {name} from {before} to {after} partitions\n")
    for problem in report.mismatches:
        err.write(f"topics: mismatch (left unchanged): {problem}\n")
    out.write(f"topics: {len(specs)} declared at {args.bootstrap}: {report.summary()}\n")
    return 2 if args.strict and report.mismatches else 0


if __name__ == "__main__":
    sys.exit(main())
