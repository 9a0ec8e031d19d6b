"""Features flow throughput (trades/s per worker, against a bare keyed pass-through in the same run)
and Feast latency (online read p50/p99 over 10k calls on Redis and SQLite, push per batch).

Input: the real Binance BTC/USDT and ETH/USDT websocket captures of 2024-08-08/09
(``ticks/binance-spot-ws`` under ``BOT4_SHARED_DATA``, default ``../shared/data``): 34k trades
alone, then with their 13k depth diffs and 132k bookTicker quotes (179k events), wire-encoded
as the Kafka source hands them over (:class:`flows.dlq.Inbound`, batches of 5000), merged by event
time. Flow stages timed: decode + stateless contract, per-key ordering/duplicate contracts, keying,
the per-instrument FeatureEngine (bars, 13 indicators, trade flow, L2 book), splitting vectors and
rejects; sinks discard (Kafka/PostgreSQL output is measured by bench_ingest). Baseline: the same
records keyed by their Kafka key through a ``stateful_batch`` that returns its input. One worker.

The Feast part needs the local services (Redis on 26379, PostgreSQL on 25432) and creates its own
database ``bot4_bench_features`` (dropped at the end) and a temp dir for the SQLite store.

    .venv/bin/python benchmarks/bench_features.py [--repeat 3] [--reads 10000] [--skip-feast]
"""

from __future__ import annotations

import argparse
import heapq
import json
import os
import platform
import statistics
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import bytewax.operators as op  # noqa: E402
from bytewax.dataflow import Dataflow  # noqa: E402
from bytewax.operators import StatefulBatchLogic  # noqa: E402
from bytewax.outputs import DynamicSink, StatelessSinkPartition  # noqa: E402
from bytewax.testing import TestingSource, run_main  # noqa: E402

from core.clock import SystemClock  # noqa: E402
from core.events import MarketEvent, Trade  # noqa: E402
from core.wire import encode, topic_for  # noqa: E402
from features.operators import compute_features  # noqa: E402
from features.schema import FEATURES, FeatureVector  # noqa: E402
from flows.dlq import Inbound  # noqa: E402
from flows.features import _keyed_events  # noqa: E402
from flows.replay import read_events  # noqa: E402
from flows.settings import QualitySettings, load_settings  # noqa: E402
from flows.store import apply_contracts  # noqa: E402

DATA = Path(os.environ.get("BOT4_SHARED_DATA", ROOT.parent / "shared" / "data"))
CAPTURES = [DATA / "ticks" / "binance-spot-ws" / f"{s}usdt_2024080{d}.gz" for s in ("btc", "eth") for d in (8, 9)]


class _Count(StatelessSinkPartition[object]):
    def __init__(self, counter: list[int]) -> None:
        self._counter = counter

    def write_batch(self, items: list[object]) -> None:
        self._counter[0] += len(items)


class CountSink(DynamicSink[object]):
    def __init__(self) -> None:
        self.counter = [0]

    def build(self, step_id: str, worker_index: int, worker_count: int) -> _Count:
        return _Count(self.counter)


class PassThrough(StatefulBatchLogic[object, object, None]):
    def on_batch(self, values: list[object]) -> tuple[list[object], bool]:
        return values, StatefulBatchLogic.RETAIN

    def snapshot(self) -> None:
        return None


def load_records() -> tuple[list[Inbound], int]:
    per_symbol: list[list[MarketEvent]] = []
    for path in CAPTURES:
        if not path.is_file():
            sys.exit(f"missing real capture {path}: set BOT4_SHARED_DATA")
    for symbol in ("btc", "eth"):
        events = [e for p in CAPTURES if p.name.startswith(symbol) for e in read_events(p)]
        trades = [e for e in events if isinstance(e, Trade)]
        others = [e for e in events if not isinstance(e, Trade)]
        per_symbol.append(list(heapq.merge(trades, others, key=lambda e: e.ts_event)))
    merged = list(heapq.merge(*per_symbol, key=lambda e: e.ts_event))
    records = [Inbound(topic_for(e), 0, i, e.key.encode(), encode(e)) for i, e in enumerate(merged)]
    return records, sum(isinstance(e, Trade) for e in merged)


def features_dataflow(records: list[Inbound], quality: QualitySettings) -> tuple[Dataflow, CountSink]:
    flow = Dataflow("bench_features")
    inbound = op.input("in", flow, TestingSource(records, batch_size=5000))
    checked = apply_contracts(inbound, quality, SystemClock())
    events = op.flat_map_batch("key_by_instrument", checked, _keyed_events)
    out = compute_features("features", events)
    sink = CountSink()
    op.output("vectors", out.vectors, sink)
    op.output("rejects", out.rejects, CountSink())
    return flow, sink


def baseline_dataflow(records: list[Inbound]) -> tuple[Dataflow, CountSink]:
    flow = Dataflow("bench_passthrough")
    inbound = op.input("in", flow, TestingSource(records, batch_size=5000))
    keyed = op.flat_map_batch("key", inbound, lambda batch: [(r.key.decode(), r) for r in batch])
    passed = op.stateful_batch("pass", keyed, lambda _: PassThrough())
    sink = CountSink()
    op.output("out", passed, sink)
    return flow, sink


def timed(build) -> tuple[float, int]:  # type: ignore[no-untyped-def]
    flow, sink = build()
    started = time.perf_counter()
    run_main(flow)
    return time.perf_counter() - started, sink.counter[0]


def bench_flow(repeat: int, trades_only: bool) -> dict[str, object]:
    records, trades = load_records()
    if trades_only:
        records = [r for r in records if r.topic == "md.trades.v1"]
    quality = load_settings().quality
    feats, base = [], []
    vectors = 0
    for _ in range(repeat):
        seconds, vectors = timed(lambda: features_dataflow(records, quality))
        feats.append(seconds)
        seconds, passed = timed(lambda: baseline_dataflow(records))
        assert passed == len(records)
        base.append(seconds)
    best_f, best_b = min(feats), min(base)
    return {
        "events": len(records),
        "trades": trades,
        "vectors": vectors,
        "features_s": round(best_f, 3),
        "baseline_s": round(best_b, 3),
        "features_trades_per_s": round(trades / best_f),
        "features_events_per_s": round(len(records) / best_f),
        "baseline_trades_per_s": round(trades / best_b),
        "baseline_events_per_s": round(len(records) / best_b),
        "ratio_to_baseline": round(best_b / best_f, 3),
    }


def _percentiles(samples_ns: list[int]) -> dict[str, float]:
    ordered = sorted(samples_ns)
    return {
        "p50_ms": round(ordered[len(ordered) // 2] / 1e6, 3),
        "p99_ms": round(ordered[int(len(ordered) * 0.99)] / 1e6, 3),
        "mean_ms": round(statistics.fmean(ordered) / 1e6, 3),
    }


def _vector(symbol: str, ts: datetime, close: float) -> FeatureVector:
    values = {
        spec.name: (False if spec.dtype == "bool" else (1 if spec.dtype == "int64" else close)) for spec in FEATURES
    }
    return FeatureVector(symbol, "1m", ts, ts - timedelta(minutes=1), values)


def bench_feast(env: str, reads: int, settings, config) -> dict[str, object]:  # type: ignore[no-untyped-def]
    from flows.feature_store import FEATURE_SERVICE, OnlineReader, apply, push

    started = time.perf_counter()
    store = apply(config, settings)
    apply_s = time.perf_counter() - started
    now = datetime.now(UTC).replace(second=0, microsecond=0)
    pushes: dict[str, dict[str, float]] = {}
    for size in (1, 10, 100):
        samples = []
        for i in range(50):
            ts = now - timedelta(minutes=200 - i)
            batch = [_vector(f"bench:S{j}/USDT", ts, 100.0 + i) for j in range(size)]
            t = time.perf_counter_ns()
            push(store, batch, env)
            samples.append(time.perf_counter_ns() - t)
        pushes[f"rows_{size}"] = _percentiles(samples)
    push(store, [_vector("bench:S0/USDT", now, 123.0)], env)
    service = store.get_feature_service(FEATURE_SERVICE)
    raw, full = [], []
    for _ in range(reads):
        t = time.perf_counter_ns()
        store.get_online_features(features=service, entity_rows=[{"symbol": "bench:S0/USDT"}]).to_dict(
            include_event_timestamps=True
        )
        raw.append(time.perf_counter_ns() - t)
    reader = OnlineReader(store)
    for _ in range(reads):
        t = time.perf_counter_ns()
        result = reader.read("bench:S0/USDT", now + timedelta(seconds=30))
        full.append(time.perf_counter_ns() - t)
    assert result.values["bar_close"] == 123.0
    return {
        "apply_s": round(apply_s, 2),
        "push": pushes,
        "online_get_online_features": _percentiles(raw),
        "online_reader_read": _percentiles(full),
        "reads": reads,
    }


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--reads", type=int, default=10_000)
    parser.add_argument("--skip-feast", action="store_true")
    args = parser.parse_args()
    result: dict[str, object] = {
        "machine": {"python": platform.python_version(), "cpu": platform.processor() or platform.machine()},
        "features_flow_1_worker_trades_only": bench_flow(args.repeat, trades_only=True),
        "features_flow_1_worker_trades_book_quotes": bench_flow(args.repeat, trades_only=False),
    }
    if not args.skip_feast:
        import psycopg

        from flows.feature_store import FeastConfig
        from flows.storage.migrate import migrate

        admin = load_settings().postgres.conninfo()
        database = "bot4_bench_features"
        with psycopg.connect(admin, autocommit=True) as conn:
            conn.execute(f"DROP DATABASE IF EXISTS {database} WITH (FORCE)")
            conn.execute(f"CREATE DATABASE {database}")
        settings = load_settings(postgres={"dbname": database})
        project = f"bench_{int(time.time())}"
        try:
            migrate(settings.postgres.conninfo())
            with tempfile.TemporaryDirectory() as tmp:
                result["feast_redis_postgres"] = bench_feast(
                    "dev", args.reads, settings, FeastConfig(env="dev", project=project, registry_db=database)
                )
                result["feast_sqlite_file"] = bench_feast(
                    "local", args.reads, settings, FeastConfig(env="local", project=project, data_dir=Path(tmp))
                )
        finally:
            import redis

            client = redis.Redis(host=settings.redis.host, port=settings.redis.port)
            for key in client.scan_iter(match=f"*{project}".encode()):  # Feast keys end with the project
                client.delete(key)
            with psycopg.connect(admin, autocommit=True) as conn:
                conn.execute(f"DROP DATABASE IF EXISTS {database} WITH (FORCE)")
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
