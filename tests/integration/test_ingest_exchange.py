"""Live ingestion end to end: the real ccxt client, pointed at a local server replaying recorded
Binance traffic, through the ingest flow into Kafka."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Iterator

import pytest
from bytewax.testing import run_main

from core.wire import decode
from flows.ingest import exchange_flow
from tests.support.exchange_server import ExchangeServer

from .conftest import make_settings, read_topic

pytestmark = pytest.mark.integration


@pytest.fixture
def binance_server() -> Iterator[ExchangeServer]:
    """The recorded venue on its own event loop thread, as a real remote exchange would be."""
    loop = asyncio.new_event_loop()
    server = ExchangeServer("binance", speed=20.0)
    ready = threading.Event()

    def serve() -> None:
        asyncio.set_event_loop(loop)
        loop.run_until_complete(server.start())
        ready.set()
        loop.run_forever()

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    assert ready.wait(30), "recorded exchange server did not start"
    try:
        yield server
    finally:
        asyncio.run_coroutine_threadsafe(server.close(), loop).result(30)
        loop.call_soon_threadsafe(loop.stop)
        thread.join(10)


def test_live_trades_from_the_real_ccxt_client_land_in_kafka_exactly(
    binance_server, topic_prefix, kafka_bootstrap, tmp_path
):
    settings = make_settings(topic_prefix, "bot4", tmp_path)
    flow = exchange_flow(
        "binance", ["BTC/USDT"], ["trades"], settings, api_urls_override=binance_server.urls_override, max_events=300
    )
    run_main(flow)
    stored = [decode(v) for _, v in read_topic(kafka_bootstrap, f"{topic_prefix}md.trades.v1")]
    assert len(stored) == 300
    recorded = binance_server.recorded_trades("BTCUSDT")
    by_id = {str(r.id): r for r in recorded}
    ids = [int(t.trade_id) for t in stored]
    assert ids == list(range(ids[0], ids[0] + 300)), "each trade once, in exchange order"
    for trade in stored:
        rec = by_id[trade.trade_id]
        assert str(trade.price) == rec.price and str(trade.amount) == rec.qty  # exchange text, exact
        assert trade.key == "binance:BTC/USDT"
