"""Validation of the declarative topic list (infra/topics.toml) without a broker.

Why: a wrong partition count, a duplicate or a typo in the topic list would otherwise surface only
when a broker is up, as a confusing produce error. These tests pin the real file's contract and that
every invalid input is refused with a message naming the file, the topic, the field and the value.
"""

from __future__ import annotations

import dataclasses
import re
from pathlib import Path

import pytest

from flows.topics import (
    DEFAULT_TOPICS_FILE,
    EnsureReport,
    ObservedTopic,
    TopicAdminError,
    TopicConfigError,
    TopicSpec,
    diff_topic,
    load_topics,
    main,
    reconcile_topics,
)

MARKET_KEYED = {"md.trades.v1", "md.book.v1", "md.candles.v1", "features.v1"}
ACCOUNT_KEYED = {"risk.decisions.v1", "orders.v1", "fills.v1", "orders.shadow.v1"}

GOOD_TOPIC = """
[[topic]]
name = "md.trades.v1"
partitions = 6
retention_ms = 604800000
cleanup_policy = "delete"
key = "exchange:SYMBOL"
description = "trades"
"""


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "topics.toml"
    path.write_text(text, encoding="utf-8")
    return path


def topic(**fields: object) -> str:
    """A [[topic]] table: GOOD_TOPIC's fields, overridden or removed (value None) by ``fields``."""
    values: dict[str, object] = {
        "name": "md.trades.v1",
        "partitions": 6,
        "retention_ms": 604800000,
        "cleanup_policy": "delete",
        "key": "exchange:SYMBOL",
        "description": "trades",
    }
    values.update(fields)
    lines = ["[[topic]]"]
    for name, value in values.items():
        if value is None:
            continue
        rendered = f'"{value}"' if isinstance(value, str) else str(value).lower()
        lines.append(f"{name} = {rendered}")
    return "\n".join(lines) + "\n"


# ------------------------------------------------------------------------------ the real topic list


def test_the_real_topic_list_declares_the_agreed_topics() -> None:
    topics = {t.name: t for t in load_topics()}
    assert set(topics) == {
        "md.trades.v1",
        "md.book.v1",
        "md.candles.v1",
        "features.v1",
        "signals.v1",
        "risk.decisions.v1",
        "orders.v1",
        "orders.shadow.v1",
        "fills.v1",
        "dlq.v1",
        "control.commands.v1",
    }
    for name in MARKET_KEYED:
        assert topics[name].partitions == 6, name
        assert topics[name].key.startswith("exchange:SYMBOL"), name
    for name in ACCOUNT_KEYED:
        assert topics[name].partitions == 3, name
        assert topics[name].key == "account id", name
    assert topics["dlq.v1"].partitions == 3
    assert topics["control.commands.v1"].cleanup_policy == "compact"
    assert all(t.replication_factor == 1 for t in topics.values())
    assert all(t.description and t.key for t in topics.values())


def test_default_path_is_the_checkouts_infra_file() -> None:
    assert Path(__file__).resolve().parents[3] / "infra" / "topics.toml" == DEFAULT_TOPICS_FILE
    assert load_topics(DEFAULT_TOPICS_FILE) == load_topics()


def test_specs_are_frozen_and_give_the_kafka_config() -> None:
    spec = load_topics()[0]
    with pytest.raises(dataclasses.FrozenInstanceError):
        spec.partitions = 1  # type: ignore[misc]
    assert spec.kafka_config() == {"retention.ms": "604800000", "cleanup.policy": "delete"}


# -------------------------------------------------------------------------------------- validation


def test_a_minimal_file_loads_with_the_default_replication_factor(tmp_path: Path) -> None:
    (spec,) = load_topics(write(tmp_path, GOOD_TOPIC))
    assert spec == TopicSpec("md.trades.v1", 6, 604800000, "delete", "exchange:SYMBOL", "trades", 1)


def test_defaults_table_sets_the_replication_factor_and_a_topic_may_override_it(tmp_path: Path) -> None:
    text = "[defaults]\nreplication_factor = 3\n" + topic() + topic(name="fills.v1", replication_factor=2)
    specs = load_topics(write(tmp_path, text))
    assert [s.replication_factor for s in specs] == [3, 2]


@pytest.mark.parametrize("value", [0, -3, '"6"', "true", "1.5"])
def test_bad_partitions_are_refused_naming_topic_field_and_value(tmp_path: Path, value: object) -> None:
    path = write(tmp_path, GOOD_TOPIC.replace("partitions = 6", f"partitions = {value}"))
    with pytest.raises(TopicConfigError) as err:
        load_topics(path)
    message = str(err.value)
    assert str(path) in message
    assert "[[topic]] #1 ('md.trades.v1')" in message
    assert "partitions = " in message
    assert "expected an integer >= 1" in message


def test_duplicate_names_are_refused_with_both_positions(tmp_path: Path) -> None:
    path = write(tmp_path, topic() + topic(name="fills.v1") + topic())
    with pytest.raises(TopicConfigError, match=r"duplicate topic name 'md.trades.v1' in \[\[topic\]\] #1 and #3"):
        load_topics(path)


def test_names_differing_only_in_dot_and_underscore_collide(tmp_path: Path) -> None:
    path = write(tmp_path, topic(name="md.trades.v1") + topic(name="md_trades_v1"))
    with pytest.raises(TopicConfigError, match=r"'md_trades_v1' \(#2\) collides with 'md.trades.v1' \(#1\)"):
        load_topics(path)


@pytest.mark.parametrize("name", ["", "md trades", "md/trades", "..", "x" * 250, "ordres✓"])
def test_illegal_topic_names_are_refused(tmp_path: Path, name: str) -> None:
    with pytest.raises(TopicConfigError, match="expected 1 to 249 characters of"):
        load_topics(write(tmp_path, topic(name=name)))


@pytest.mark.parametrize("value", [-2, '"7d"'])
def test_bad_retention_is_refused(tmp_path: Path, value: object) -> None:
    path = write(tmp_path, GOOD_TOPIC.replace("retention_ms = 604800000", f"retention_ms = {value}"))
    with pytest.raises(TopicConfigError, match=r"retention_ms = .*expected an integer >= -1"):
        load_topics(path)


def test_bad_cleanup_policy_is_refused(tmp_path: Path) -> None:
    with pytest.raises(TopicConfigError, match=r"cleanup_policy = 'compacted', expected one of"):
        load_topics(write(tmp_path, topic(cleanup_policy="compacted")))


def test_cleanup_policy_order_is_normalised(tmp_path: Path) -> None:
    (spec,) = load_topics(write(tmp_path, topic(cleanup_policy="delete, compact")))
    assert spec.cleanup_policy == "compact,delete"


def test_missing_and_unknown_fields_are_named(tmp_path: Path) -> None:
    with pytest.raises(TopicConfigError, match=r"missing required field\(s\) key"):
        load_topics(write(tmp_path, topic(key=None)))
    with pytest.raises(TopicConfigError, match=r"unknown field\(s\) partition; expected only name, partitions"):
        load_topics(write(tmp_path, topic(partition=6)))


def test_blank_key_or_description_is_refused(tmp_path: Path) -> None:
    with pytest.raises(TopicConfigError, match="key = ' ', expected a non-empty string"):
        load_topics(write(tmp_path, topic(key=" ")))


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("", "expected at least one \\[\\[topic\\]\\] table"),
        ("topic = []\n", "expected at least one \\[\\[topic\\]\\] table"),
        ("topic = [1]\n", "expected a table of fields, got int"),
        ("[topics]\n", "unknown top-level key.s. topics"),
        ("[defaults]\nreplication = 1\n" + GOOD_TOPIC, "unknown key.s. replication in \\[defaults\\]"),
        ("[defaults]\nreplication_factor = 0\n" + GOOD_TOPIC, "replication_factor = 0, expected an integer >= 1"),
        ("[[topic]\nname = 1", "not valid UTF-8 TOML"),
        ('defaults = "rf1"\n' + GOOD_TOPIC, "\\[defaults\\] = 'rf1', expected a table"),
    ],
)
def test_malformed_documents_are_refused(tmp_path: Path, text: str, expected: str) -> None:
    with pytest.raises(TopicConfigError, match=expected):
        load_topics(write(tmp_path, text))


def test_a_missing_file_is_named(tmp_path: Path) -> None:
    missing = tmp_path / "nope.toml"
    with pytest.raises(TopicConfigError, match=re.escape(f"topics file {missing} not found")):
        load_topics(missing)


# --------------------------------------------------------------------------- comparing to a broker


def observed(spec: TopicSpec, **changes: object) -> ObservedTopic:
    fields: dict[str, object] = {
        "name": spec.name,
        "partitions": spec.partitions,
        "replication_factor": spec.replication_factor,
        "config": {**spec.kafka_config(), "segment.bytes": "1073741824"},
    }
    fields.update(changes)
    return ObservedTopic(**fields)  # type: ignore[arg-type]


def test_a_matching_topic_has_no_differences() -> None:
    spec = load_topics()[0]
    assert diff_topic(spec, observed(spec)) == []


def test_fewer_partitions_are_not_a_mismatch_because_ensure_raises_them() -> None:
    spec = load_topics()[0]
    assert diff_topic(spec, observed(spec, partitions=1)) == []


def test_every_other_difference_is_reported() -> None:
    spec = TopicSpec("control.commands.v1", 1, -1, "compact,delete", "scope", "commands")
    problems = diff_topic(
        spec,
        observed(
            spec,
            partitions=4,
            replication_factor=3,
            config={"retention.ms": "604800000", "cleanup.policy": "delete,compact"},
        ),
    )
    assert problems == [
        "control.commands.v1: 4 partitions on the broker, 1 declared; Kafka can not remove partitions "
        "(raise the declaration or recreate the topic)",
        "control.commands.v1: replication factor 3 on the broker, 1 declared",
        "control.commands.v1: retention.ms='604800000' on the broker, '-1' declared",
    ]


# --------------------------------------------------------------------------------------------- CLI


def test_cli_list_prints_every_declared_topic(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["list"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert [line.split("\t")[0] for line in lines] == [t.name for t in load_topics()]


def test_cli_reports_an_invalid_file_and_exits_1(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = write(tmp_path, topic(partitions=0))
    assert main(["ensure", "--bootstrap", "127.0.0.1:1", "--file", str(path)]) == 1
    assert "partitions = 0, expected an integer >= 1" in capsys.readouterr().err


def test_report_summary_counts_everything() -> None:
    report = EnsureReport(created=("a",), grown=(("b", 1, 3),), unchanged=("c", "d"), mismatches=("c: x",))
    assert report.summary() == "1 created, 1 grown, 2 unchanged, 1 mismatch(es)"


# ----------------------------------------------------------------------------------- no broker


def test_an_unreachable_broker_is_named_in_the_error() -> None:
    # Port 1 on loopback: nothing listens, the connection is refused at once.
    with pytest.raises(TopicAdminError, match=re.escape("metadata request to Kafka at 127.0.0.1:1 failed")):
        reconcile_topics("127.0.0.1:1", load_topics(), timeout=1)


def test_cli_ensure_against_an_unreachable_broker_exits_1(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["ensure", "--bootstrap", "127.0.0.1:1", "--timeout", "1"]) == 1
    assert "error: metadata request to Kafka at 127.0.0.1:1 failed" in capsys.readouterr().err
