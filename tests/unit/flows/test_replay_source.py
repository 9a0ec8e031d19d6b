"""The replay source in real Bytewax runs: batching, keys, abort and resume, pacing, merging.

Small real files keep this fast: nautilus' 2,001 BTC trades (46 s of 2021-01-08) and Tardis'
9,999 futures trades / quotes. Pacing runs on a fake clock that only the fake sleep moves.
"""

from __future__ import annotations

import gzip
import itertools
from datetime import timedelta
from pathlib import Path

import bytewax.operators as op
import pytest
from bytewax.dataflow import Dataflow
from bytewax.inputs import AbortExecution, FixedPartitionedSource, StatefulSourcePartition
from bytewax.recovery import RecoveryConfig, init_db_dir
from bytewax.testing import TestingSink, cluster_main, run_main

from core.errors import QuarantineRecord
from core.events import BookDelta, MarketEvent, Quote, Trade
from flows.replay import Pacer, ReplayFile, ReplaySource, read_events, replay_files

ZERO = timedelta(0)
NAUTILUS_TRADES = "ticks/binance-spot-2021/btcusdt-trades.parquet"
NAUTILUS_QUOTES = "ticks/binance-spot-2021/btcusdt-quotes.parquet"
TARDIS_TRADES = "ticks/tardis-binance-futures/trades.csv"
TARDIS_QUOTES = "ticks/tardis-binance-futures/quotes.csv"

KeyedEvent = tuple[str, MarketEvent]


class FakeTime:
    """A clock that moves only when slept on; records every sleep."""

    def __init__(self) -> None:
        self.now = 0.0
        self.sleeps: list[float] = []

    def clock(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        assert seconds > 0
        self.sleeps.append(seconds)
        self.now += seconds


class AbortOnce(FixedPartitionedSource[KeyedEvent, int]):
    """Wraps a source; the partition whose name ends with ``part_suffix`` aborts the run once,
    after ``batches`` batches, the way ``TestingSource.ABORT()`` does (``AbortExecution``)."""

    def __init__(self, inner: ReplaySource, part_suffix: str, batches: int) -> None:
        self.inner, self.part_suffix, self.batches, self.armed = inner, part_suffix, batches, True

    def list_parts(self) -> list[str]:
        return self.inner.list_parts()

    def build_part(self, step_id: str, for_part: str, resume_state: int | None) -> StatefulSourcePartition:
        part = self.inner.build_part(step_id, for_part, resume_state)
        outer = self
        aborts = for_part.endswith(self.part_suffix)

        class Partition(StatefulSourcePartition[KeyedEvent, int]):
            calls = 0

            def next_batch(self) -> list[KeyedEvent]:
                if aborts and outer.armed:
                    self.calls += 1
                    if self.calls > outer.batches:
                        outer.armed = False
                        raise AbortExecution()
                return list(part.next_batch())

            def snapshot(self) -> int:
                return part.snapshot()

            def close(self) -> None:
                part.close()

        return Partition()


def _flow(source: FixedPartitionedSource[KeyedEvent, int], out: list[KeyedEvent]) -> Dataflow:
    flow = Dataflow("replay_test")
    stream = op.input("replay", flow, source)
    op.output("out", stream, TestingSink(out))
    return flow


def _per_key(items: list[KeyedEvent]) -> dict[str, list[MarketEvent]]:
    out: dict[str, list[MarketEvent]] = {}
    for key, event in items:
        assert key == event.key
        out.setdefault(key, []).append(event)
    return out


def test_source_emits_every_event_keyed_and_in_file_order(shared_data: Path) -> None:
    files = [shared_data / NAUTILUS_TRADES, shared_data / TARDIS_TRADES]
    out: list[KeyedEvent] = []
    run_main(_flow(ReplaySource(files), out))
    assert len(out) == 2_001 + 9_999
    assert _per_key(out) == {
        "binance:BTC/USDT": list(read_events(files[0])),
        "binanceusdm:BTC/USDT:USDT": list(read_events(files[1])),
    }


def test_partition_hands_over_batches_and_snapshots_the_count_emitted(shared_data: Path) -> None:
    path = shared_data / TARDIS_QUOTES
    expected = list(read_events(path))
    source = ReplaySource([path], batch_size=1000)
    (part_key,) = source.list_parts()
    part = source.build_part("replay", part_key, None)
    assert [e for _, e in part.next_batch()] == expected[:1000]
    assert len(part.next_batch()) == 1000
    assert part.snapshot() == 2000
    resumed = source.build_part("replay", part_key, part.snapshot())
    assert [e for _, e in resumed.next_batch()] == expected[2000:3000]
    rest: list[MarketEvent] = []
    with pytest.raises(StopIteration):
        while True:
            rest.extend(e for _, e in resumed.next_batch())
    assert rest == expected[3000:] and resumed.snapshot() == len(expected)
    part.close()
    resumed.close()


def test_abort_mid_stream_then_resume_gives_the_uninterrupted_output_exactly(shared_data: Path, tmp_path) -> None:
    files = [shared_data / NAUTILUS_TRADES, shared_data / TARDIS_TRADES]
    uninterrupted: list[KeyedEvent] = []
    run_main(_flow(ReplaySource(files, batch_size=100), uninterrupted), epoch_interval=ZERO)

    init_db_dir(tmp_path, 1)
    recovery = RecoveryConfig(str(tmp_path))
    source = AbortOnce(ReplaySource(files, batch_size=100), part_suffix="trades.csv", batches=30)
    first: list[KeyedEvent] = []
    run_main(_flow(source, first), epoch_interval=ZERO, recovery_config=recovery)
    assert not source.armed, "the abort must have happened"
    assert 0 < len(first) < len(uninterrupted)
    second: list[KeyedEvent] = []
    run_main(_flow(source, second), epoch_interval=ZERO, recovery_config=recovery)

    assert len(first) + len(second) == len(uninterrupted)  # no duplicate, none missing
    assert _per_key(first + second) == _per_key(uninterrupted)


def test_two_workers_give_the_same_per_key_output_as_one(shared_data: Path) -> None:
    files = [shared_data / NAUTILUS_TRADES, shared_data / NAUTILUS_QUOTES, shared_data / TARDIS_QUOTES]
    one: list[KeyedEvent] = []
    run_main(_flow(ReplaySource(files, batch_size=500), one))
    two: list[KeyedEvent] = []
    cluster_main(_flow(ReplaySource(files, batch_size=500), two), [], 0, worker_count_per_proc=2)
    assert len(two) == len(one) == 2_001 + 451 + 9_999
    assert _per_key(two) == _per_key(one)


def test_files_of_one_instrument_share_a_partition_merged_by_event_time(shared_data: Path, tmp_path) -> None:
    """The two BTC capture days become one partition: the book and the tape continue across midnight."""
    spot = shared_data / "ticks/binance-spot-ws"
    with gzip.open(spot / "btcusdt_20240808.gz", "rb") as fh:
        tail = fh.read().splitlines(keepends=True)[-400:]
    with gzip.open(spot / "btcusdt_20240809.gz", "rb") as fh:
        head = [next(fh) for _ in range(400)]
    (tmp_path / "btcusdt_20240809.gz").write_bytes(gzip.compress(b"".join(head)))
    (tmp_path / "btcusdt_20240808.gz").write_bytes(gzip.compress(b"".join(tail)))
    # listed out of order on purpose: the merge by event time puts 08-08 first
    source = ReplaySource([tmp_path / "btcusdt_20240809.gz", tmp_path / "btcusdt_20240808.gz"])
    assert len(source.list_parts()) == 1
    out: list[KeyedEvent] = []
    run_main(_flow(source, out))
    assert len(out) == 800
    events = [e for _, e in out]
    deltas = [e for e in events if isinstance(e, BookDelta)]
    assert all(b.first_sequence == a.sequence + 1 for a, b in itertools.pairwise(deltas))
    quotes = [e.sequence for e in events if isinstance(e, Quote)]
    assert quotes == sorted(quotes)
    trade_ids = [int(e.trade_id) for e in events if isinstance(e, Trade)]
    assert trade_ids == list(range(trade_ids[0], trade_ids[0] + len(trade_ids)))
    assert len(ReplaySource([shared_data / NAUTILUS_TRADES, shared_data / TARDIS_QUOTES]).list_parts()) == 2


def test_records_refused_before_the_resume_point_are_not_routed_again(shared_data: Path, tmp_path) -> None:
    with gzip.open(shared_data / "ticks/binance-spot-ws/ethusdt_20240808.gz", "rb") as fh:
        lines = [next(fh) for _ in range(50)]
    lines[3] = lines[3][:40] + b"\n"  # a line cut short, early in the file
    path = tmp_path / "ethusdt_20240808.gz"
    path.write_bytes(gzip.compress(b"".join(lines)))
    refused: list[QuarantineRecord] = []
    source = ReplaySource([path], batch_size=10, on_error=lambda raw, err: refused.append(err))
    (part_key,) = source.list_parts()
    part = source.build_part("replay", part_key, None)
    part.next_batch()
    assert [e.reason for e in refused] == ["malformed_json"]
    resumed = source.build_part("replay", part_key, part.snapshot())
    emitted = sum(len(resumed.next_batch()) for _ in range(4))
    assert emitted == 49 - 10 and [e.reason for e in refused] == ["malformed_json"]


def test_resume_state_past_the_end_of_the_file_fails_naming_it(shared_data: Path) -> None:
    source = ReplaySource([shared_data / NAUTILUS_QUOTES])
    (part_key,) = source.list_parts()
    with pytest.raises(ValueError, match=r"btcusdt-quotes\.parquet.*500 events.*only 451"):
        source.build_part("replay", part_key, 500)


def test_pacing_at_ten_times_real_time_sleeps_a_tenth_of_the_event_span(shared_data: Path) -> None:
    path = shared_data / NAUTILUS_TRADES
    events = list(read_events(path))
    span_s = (events[-1].ts_event - events[0].ts_event).total_seconds()
    assert span_s == pytest.approx(46.077)
    fake = FakeTime()
    out: list[KeyedEvent] = []
    run_main(_flow(ReplaySource([path], speed=10, clock=fake.clock, sleep=fake.sleep), out))
    assert [e for _, e in out] == events
    assert sum(fake.sleeps) == pytest.approx(span_s / 10, abs=1e-6)
    assert max(fake.sleeps) <= 0.01  # never blocks a worker longer than max_block_s


def test_pacing_shares_one_origin_so_a_later_file_starts_later(shared_data: Path, tmp_path) -> None:
    """ETH from 23:54:14 and BTC from 00:00:00 (two partitions): BTC waits its ~6 minutes / speed."""
    spot = shared_data / "ticks/binance-spot-ws"
    files = []
    for name in ("ethusdt_20240808.gz", "btcusdt_20240809.gz"):
        with gzip.open(spot / name, "rb") as fh:
            (tmp_path / name).write_bytes(gzip.compress(b"".join(next(fh) for _ in range(300))))
        files.append(tmp_path / name)
    origin = min(next(read_events(f)).ts_event for f in files)
    fake = FakeTime()
    speed = 100
    emitted_at: list[tuple[float, MarketEvent]] = []
    source = ReplaySource(files, speed=speed, clock=fake.clock, sleep=fake.sleep)
    assert len(source.list_parts()) == 2
    flow = Dataflow("paced")
    stream = op.input("replay", flow, source)
    op.inspect("clock", stream, lambda _step, item: emitted_at.append((fake.now, item[1])))
    run_main(flow)
    assert len(emitted_at) == 600
    for at, event in emitted_at:  # never early
        assert at >= (event.ts_event - origin).total_seconds() / speed - 1e-6, event
    first_btc = min(at for at, e in emitted_at if e.symbol == "BTC/USDT")
    assert first_btc == pytest.approx(
        (next(read_events(files[1])).ts_event - origin).total_seconds() / speed, abs=0.011
    )
    last = max(e.ts_event for _, e in emitted_at)
    assert sum(fake.sleeps) == pytest.approx((last - origin).total_seconds() / speed, abs=0.011)


def test_replay_files_merges_by_event_time_and_paces_with_the_injected_sleep(shared_data: Path) -> None:
    files = [shared_data / NAUTILUS_QUOTES, ReplayFile(shared_data / NAUTILUS_TRADES)]
    merged = list(replay_files(files, merge=True))
    assert len(merged) == 451 + 2_001
    assert [e.ts_event for e in merged] == sorted(e.ts_event for e in merged)
    chained = list(replay_files(files))
    assert chained[:451] == list(read_events(files[0])) and len(chained) == len(merged)

    fake = FakeTime()
    paced = list(replay_files(files, merge=True, speed=2, clock=fake.clock, sleep=fake.sleep))
    assert paced == merged
    span_s = (merged[-1].ts_event - merged[0].ts_event).total_seconds()
    assert sum(fake.sleeps) == pytest.approx(span_s / 2, abs=1e-6)


def test_pacer_waits_only_forward_and_in_bounded_steps() -> None:
    from core.clock import from_epoch_ms

    fake = FakeTime()
    pacer = Pacer(4, clock=fake.clock, sleep=fake.sleep)
    t0 = from_epoch_ms(1723161255342)
    assert pacer.wait(t0) and fake.sleeps == []
    assert not pacer.wait(t0 + timedelta(seconds=2), max_s=0.1)  # 0.5 s due, only 0.1 s slept
    assert pacer.wait(t0 + timedelta(seconds=2))
    assert sum(fake.sleeps) == pytest.approx(0.5)
    assert pacer.wait(t0 + timedelta(seconds=1))  # already past: plays at once
    assert pacer.slept_s == pytest.approx(0.5)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"batch_size": 0}, "batch_size must be an integer >= 1"),
        ({"speed": 0}, "speed must be a finite number > 0"),
        ({"speed": float("inf")}, "speed must be a finite number > 0"),
        ({"max_block_s": 0}, "max_block_s must be > 0"),
    ],
)
def test_source_refuses_bad_settings_naming_them(shared_data: Path, kwargs, message) -> None:
    with pytest.raises(ValueError, match=message):
        ReplaySource([shared_data / NAUTILUS_QUOTES], **kwargs)


def test_source_refuses_no_files_and_a_file_twice(shared_data: Path) -> None:
    with pytest.raises(ValueError, match="at least one file"):
        ReplaySource([])
    with pytest.raises(ValueError, match="listed twice"):
        ReplaySource(
            [
                shared_data / NAUTILUS_QUOTES,
                shared_data / "ticks/binance-spot-2021/../binance-spot-2021/btcusdt-quotes.parquet",
            ]
        )
