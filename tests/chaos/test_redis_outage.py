"""Redis (Feast's online store) stopped mid-run (issue 10): the push sink waits and retries, the
flow neither dies nor drops a vector, and once Redis is back the online store serves the newest
vector of each instrument, equal to what the features engine computed.

A private ``redis-server`` on its own port (no persistence: a restart comes back empty, as a
crashed cache does, so the vectors pushed after the restart are what must be there); Feast's dev
environment (Redis online, SQL registry on the shared PostgreSQL) points at it. Input: feature
vectors of the bundled real Binance BTC/USDT and ETH/USDT 1m candles. ``make chaos``.
"""

from __future__ import annotations

import logging
import os
import shutil
import socket
import subprocess
import threading
import time
from collections.abc import Iterator
from datetime import timedelta

import bytewax.operators as op
import pytest
from bytewax.dataflow import Dataflow
from bytewax.testing import TestingSource, run_main

from core.events import Candle
from features.engine import FeatureEngine
from features.schema import FeatureVector
from flows.demo import TRADING_FILES
from flows.feature_store import FeastConfig, FeastPushSink, apply, open_store, read_online
from flows.replay import read_events
from flows.settings import load_settings
from flows.storage.migrate import migrate
from tests.support.flow_http import free_port

pytestmark = [
    pytest.mark.integration,
    pytest.mark.chaos,
    pytest.mark.skipif(os.environ.get("BOT4_CHAOS_FULL") != "1", reason="make chaos only (BOT4_CHAOS_FULL=1)"),
]

OUTAGE_S = 10.0


class PrivateRedis:
    def __init__(self, port: int) -> None:
        self.port = port
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        args = ["redis-server", "--port", str(self.port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"]
        self.proc = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + 10
        while True:
            with socket.socket() as s:
                if s.connect_ex(("127.0.0.1", self.port)) == 0:
                    return
            assert time.monotonic() < deadline, "redis-server did not start"
            time.sleep(0.05)

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(10)


@pytest.fixture
def private_redis() -> Iterator[PrivateRedis]:
    if shutil.which("redis-server") is None:
        pytest.skip("needs redis-server (bash infra/services.sh tools installs it)")
    server = PrivateRedis(free_port())
    server.start()
    try:
        yield server
    finally:
        server.stop()


def vectors() -> list[FeatureVector]:
    out: list[FeatureVector] = []
    for path in TRADING_FILES:
        engine = FeatureEngine(timeframe="1m", bars_from="candles")
        for event in read_events(path):
            if isinstance(event, Candle):
                out.extend(r for r in engine.update(event) if isinstance(r, FeatureVector))
    return sorted(out, key=lambda v: (v.ts_event, v.key))


def test_redis_stopped_mid_run_the_push_waits_and_the_online_store_ends_with_the_newest_vectors(
    private_redis, pg_database, caplog, tmp_path
):
    settings = load_settings(postgres={"dbname": pg_database}, redis={"port": private_redis.port}, data_dir=tmp_path)
    migrate(settings.postgres.conninfo())
    feast = FeastConfig(env="dev", project="redisoutage", registry_db=pg_database, push=True)
    apply(feast, settings)
    want = vectors()
    assert len(want) > 10_000

    pushing = threading.Event()
    batches = 0

    def slow(batch: list[FeatureVector]) -> list[FeatureVector]:
        nonlocal batches
        batches += 1
        if batches == 40:  # the sink has been pushing for a while: the outage lands mid-push
            pushing.set()
        time.sleep(0.05)  # stretch the run over the outage: about 25 s in all
        return batch

    flow = Dataflow("redis_outage")
    stream = op.flat_map_batch("slow", op.input("in", flow, TestingSource(want, batch_size=25)), slow)
    op.output("feast", stream, FeastPushSink(feast, settings))

    def outage() -> None:
        # Counted from the pushes, not from the start: opening the Feast store (imports, the
        # registry from PostgreSQL) took longer than the whole outage once under load, and the
        # outage was over before the first push.
        assert pushing.wait(120), "the flow never got going"
        private_redis.stop()
        time.sleep(OUTAGE_S)
        private_redis.start()

    chaos = threading.Thread(target=outage)
    chaos.start()
    started = time.monotonic()
    with caplog.at_level(logging.WARNING, logger="flows.feature_store"):
        run_main(flow, epoch_interval=timedelta(seconds=1))
    chaos.join()
    assert time.monotonic() - started > OUTAGE_S  # the run spanned the outage
    assert any("feast push" in r.getMessage() and "retrying" in r.getMessage() for r in caplog.records)

    store = open_store(feast, settings)
    for key in ("binance:BTC/USDT", "binance:ETH/USDT"):
        newest = max((v for v in want if v.key == key), key=lambda v: v.ts_event)
        online = read_online(store, key, newest.ts_event)
        assert online.event_timestamp == newest.ts_event
        assert online.values == dict(newest.values)
