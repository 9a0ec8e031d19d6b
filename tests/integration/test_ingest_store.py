"""Recorded capture -> ingest flow -> Kafka -> storage flow -> PostgreSQL, on the real services."""

from __future__ import annotations

import gzip

import pytest
from bytewax.testing import run_main

from flows.ingest import replay_flow
from flows.storage.migrate import migrate
from flows.store import store_flow

from .conftest import make_settings, scalar, topic_message_count

pytestmark = pytest.mark.integration


def count_raw(path, needle: bytes) -> int:
    with gzip.open(path, "rb") as fh:
        return sum(1 for line in fh if needle in line)


def test_capture_lands_exactly_once_in_kafka_and_postgres_and_a_replay_adds_nothing(
    btc_capture, topic_prefix, pg_database, kafka_bootstrap, tmp_path
):
    trades = count_raw(btc_capture, b'"e":"trade"')
    deltas = count_raw(btc_capture, b'"e":"depthUpdate"')
    assert trades == 9757
    settings = make_settings(topic_prefix, pg_database, tmp_path)
    migrate(settings.postgres.conninfo())

    run_main(replay_flow([btc_capture], settings=settings))
    assert topic_message_count(kafka_bootstrap, f"{topic_prefix}md.trades.v1") == trades

    run_main(store_flow(settings, tail=False))
    assert scalar(settings, "SELECT count(*) FROM md_trades") == trades
    assert scalar(settings, "SELECT count(DISTINCT trade_id) FROM md_trades") == trades
    assert scalar(settings, "SELECT count(*) FROM md_book_deltas") == deltas
    assert scalar(settings, "SELECT count(*) FROM md_book_snapshots") == 1
    assert scalar(settings, "SELECT count(*) FROM dead_letters") == 0
    # Decimal exactness survives the whole path: the first trade of the capture.
    assert scalar(settings, "SELECT price::text FROM md_trades WHERE trade_id = '3735683259'") == "61837.63000000"
    assert scalar(settings, "SELECT count(*) FROM md_trade_bars_1m") > 0

    # Replay the same capture again: Kafka holds it twice, PostgreSQL still once.
    run_main(replay_flow([btc_capture], settings=settings))
    assert topic_message_count(kafka_bootstrap, f"{topic_prefix}md.trades.v1") == 2 * trades
    run_main(store_flow(settings, tail=False))
    assert scalar(settings, "SELECT count(*) FROM md_trades") == trades
    # The repeats were not dropped silently: each is a dead letter saying why.
    assert scalar(settings, "SELECT count(*) FROM dead_letters WHERE reason = 'duplicate_trade_id'") == trades
