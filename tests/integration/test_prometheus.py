"""The real Prometheus (started by `infra/services.sh up`) scrapes a flow process and its numbers
agree with what landed in Kafka and PostgreSQL; instrument labels stay bounded."""

from __future__ import annotations

import json
import re
import socket
import urllib.request
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest
from bytewax.testing import run_main
from confluent_kafka import Producer
from prometheus_client import REGISTRY

from core.events import Side, Trade
from core.wire import encode
from flows import metrics
from flows.ingest import replay_flow
from flows.settings import QualitySettings
from flows.storage.migrate import migrate
from flows.store import store_flow
from tests.support.bytewax_probe import BATCH, BATCHES
from tests.support.prom import (
    SCRAPED_PORTS,
    prometheus_url,
    query,
    rule_exprs,
    scraped_metrics_server,
    wait_until_scraped,
)
from tests.unit.flows.test_bytewax_metrics import probe_process

from .conftest import make_settings, scalar, topic_message_count

pytestmark = pytest.mark.integration

MD_TOPICS = ("md.trades.v1", "md.book.v1", "md.candles.v1")
MD_TABLES = ("md_trades", "md_quotes", "md_book_deltas", "md_book_snapshots", "md_candles")


@pytest.fixture(scope="module")
def scraped_instance() -> Iterator[str]:
    with scraped_metrics_server() as instance:
        yield instance


def local(name: str, **labels: str) -> float | None:
    return REGISTRY.get_sample_value(name, labels)


def test_scraped_event_counters_equal_the_records_in_kafka_and_postgres(
    scraped_instance, btc_capture, topic_prefix, pg_database, kafka_bootstrap, tmp_path
):
    settings = make_settings(topic_prefix, pg_database, tmp_path)
    migrate(settings.postgres.conninfo())
    ingest_q = f'bot4_events_total{{instance="{scraped_instance}",stage="ingest",outcome="ok"}}'
    store_q = f'bot4_events_total{{instance="{scraped_instance}",stage="storage",outcome="ok"}}'
    # Counters are per process and other tests in it may have counted before: compare deltas, and
    # only once Prometheus reports exactly the process' value.
    ingest_before = wait_until_scraped(ingest_q, local("bot4_events_total", stage="ingest", outcome="ok")) or 0.0
    store_before = wait_until_scraped(store_q, local("bot4_events_total", stage="storage", outcome="ok")) or 0.0

    run_main(replay_flow([btc_capture], settings=settings))
    run_main(store_flow(settings, tail=False))

    in_kafka = sum(topic_message_count(kafka_bootstrap, f"{topic_prefix}{t}") for t in MD_TOPICS)
    in_postgres = sum(scalar(settings, f"SELECT count(*) FROM {table}") for table in MD_TABLES)
    # The capture's 9757 trades, 3451 depth updates, 28040 best quotes and the initial snapshot.
    assert in_kafka == 41249
    ingest_after = wait_until_scraped(ingest_q, local("bot4_events_total", stage="ingest", outcome="ok"))
    store_after = wait_until_scraped(store_q, local("bot4_events_total", stage="storage", outcome="ok"))
    assert ingest_after is not None and store_after is not None
    assert ingest_after - ingest_before == in_kafka
    assert store_after - store_before == in_postgres == in_kafka

    # Drained: every partition of the test's topics is read to its high watermark.
    lag = query(f'bot4_consumer_lag_records{{instance="{scraped_instance}",topic=~`{re.escape(topic_prefix)}md\\..*`}}')
    assert lag, "no consumer lag series for the test's topics"
    assert {float(series["value"][1]) for series in lag} == {0.0}
    # The storage stage's latency histogram was observed and scraped.
    count_q = f'bot4_stage_latency_seconds_count{{instance="{scraped_instance}",stage="storage"}}'
    assert wait_until_scraped(count_q, local("bot4_stage_latency_seconds_count", stage="storage"))


def test_a_thousand_unknown_symbols_stay_within_the_allowed_label_values(
    scraped_instance, topic_prefix, pg_database, kafka_bootstrap, tmp_path
):
    settings = make_settings(topic_prefix, pg_database, tmp_path)
    # Accept any instrument, so all 1,000 pass the contracts and reach the freshness gauge.
    settings = settings.model_copy(update={"quality": QualitySettings(known_symbols=())})
    migrate(settings.postgres.conninfo())
    allowed = set(QualitySettings().known_symbols)  # the label allow-list: the default known symbols
    symbols = [f"ZZ{i:04d}/USDT" for i in range(1000)] + ["BTC/USDT"]
    start = datetime(2026, 11, 25, tzinfo=UTC)
    producer = Producer({"bootstrap.servers": kafka_bootstrap})
    for i, symbol in enumerate(symbols):
        ts = start + timedelta(milliseconds=i)
        trade = Trade("binance", symbol, str(i), Decimal("1.5"), Decimal("2"), Side.BUY, ts, ts)
        producer.produce(f"{topic_prefix}md.trades.v1", key=trade.key.encode(), value=encode(trade))
    assert producer.flush(30) == 0

    # One record per batch: without the cap every symbol would get its own series.
    run_main(store_flow(settings, tail=False, batch_size=1))
    assert scalar(settings, "SELECT count(DISTINCT symbol) FROM md_trades") == len(symbols)

    keys = {
        sample.labels["key"]
        for family in REGISTRY.collect()
        if family.name == "bot4_last_event_timestamp_seconds"
        for sample in family.samples
        if sample.labels["stage"] == "storage"
    }
    assert metrics.OTHER_KEY in keys and "binance:BTC/USDT" in keys
    assert keys <= allowed | {metrics.OTHER_KEY}
    promql = f'count(bot4_last_event_timestamp_seconds{{instance="{scraped_instance}",stage="storage"}})'
    assert wait_until_scraped(promql, float(len(keys))) is not None
    assert len(keys) <= len(allowed) + 1


def test_the_running_prometheus_loaded_every_rule_of_the_repository_and_evaluates_them():
    with urllib.request.urlopen(f"{prometheus_url()}/api/v1/rules", timeout=5) as response:
        groups = json.load(response)["data"]["groups"]
    loaded = {rule["name"]: rule["health"] for group in groups for rule in group["rules"]}
    expected = {name for name, _ in rule_exprs()}
    assert expected <= set(loaded), f"not loaded: {sorted(expected - set(loaded))}; restart: infra/services.sh"
    assert {name for name in expected if loaded[name] not in {"ok", "unknown"}} == set()


def test_prometheus_scrapes_bytewax_own_step_counters_through_the_flow_endpoint(tmp_path):
    """A dataflow run the way `bot4 run` runs one, in a process of its own on a port Prometheus
    scrapes: Bytewax's per-step item counters reach the real Prometheus through that one target."""
    port = next(p for p in SCRAPED_PORTS if _free(p))
    instance = f"127.0.0.1:{port}"
    name = f"bxprom_{uuid.uuid4().hex[:8]}"  # fresh series: no earlier run's counters match
    with probe_process(port, name, tmp_path):
        wait_until_scraped(f'up{{job="bot4-flows",instance="{instance}"}}', 1.0)
        step = f"{name}.evens.flat_map.flat_map_batch"
        assert wait_until_scraped(f'bytewax_item_out_count_total{{instance="{instance}",step_id="{step}"}}', 150.0)
        inputs = query(f'bytewax_item_out_count_total{{instance="{instance}",step_id="{name}.inp"}}')
        assert [float(s["value"][1]) for s in inputs] == [BATCHES * BATCH]
        assert wait_until_scraped(f'bot4_bytewax_metrics_up{{instance="{instance}"}}', 1.0)


def _free(port: int) -> bool:
    with socket.socket() as sock:
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True
