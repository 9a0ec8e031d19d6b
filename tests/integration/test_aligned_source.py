"""The event-time-merging Kafka source under a rate cap (the catch-up after a restart): it never
hands over more than its cap per second, keeps no more than about two seconds' worth per topic
in memory (the rest waits in Kafka), still notices the end of the other topics, and in the end delivers
every record once, in event-time order. Real Binance BTC/USDT 1m candles of the bundled sample."""

from __future__ import annotations

import time
from pathlib import Path

import pytest
from bytewax.testing import run_main

from flows.aligned_source import AlignedKafkaSource
from flows.features import CANDLE_TOPICS
from flows.ingest import replay_flow
from flows.replay import read_events
from flows.settings import load_settings

pytestmark = pytest.mark.integration

BTC_1M = Path(__file__).resolve().parents[2] / "data" / "sample" / "binance-1m-2021" / "BTC_USDT-1m.json"


def test_a_capped_source_hands_over_at_most_its_rate_holds_a_bounded_buffer_and_delivers_everything_in_order(
    topic_prefix,
):
    settings = load_settings(kafka={"topic_prefix": topic_prefix})
    run_main(replay_flow([BTC_1M], settings=settings))
    kafka = settings.kafka
    expected = sum(1 for _ in read_events(BTC_1M))
    source = AlignedKafkaSource(kafka, [kafka.topic(t) for t in CANDLE_TOPICS], tail=False, batch_size=50, max_rate=400)
    got: list[tuple[float, int]] = []  # (when, how many) per call
    times: list[int] = []
    biggest_buffer = 0
    for part_name in source.list_parts():
        part = source.build_part("in", part_name, None)
        try:
            while True:
                try:
                    batch = part.next_batch()
                except StopIteration:
                    break
                biggest_buffer = max(biggest_buffer, sum(len(q) for q in part._heads.values()))
                got.append((time.monotonic(), len(batch)))
                times.extend(int(r.value.split(b'"ts_event":')[1].split(b",")[0]) for r in batch)
                awake = part.next_awake()
                if awake is not None:
                    time.sleep(max(0.0, (awake - awake.now(awake.tzinfo)).total_seconds()))
        finally:
            part.close()
    assert len(times) == expected and times == sorted(times)  # every record once, in event-time order
    delivering = [(when, n) for when, n in got if n]
    first, last = delivering[0][0], delivering[-1][0]
    assert last - first >= expected / 400 - 1.5  # it took the time the cap asks for
    for when, _ in delivering:  # no second of wall time carries more than two windows' worth
        assert sum(n for w, n in delivering if when <= w < when + 1.0) <= 2 * 400
    assert biggest_buffer <= max(10 * 50, 2 * 400) + 50  # two seconds' worth held, the rest left in Kafka
