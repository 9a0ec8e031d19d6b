"""The paper venue on candles only (no book): orders fill in the next candle, on real Binance 1m bars."""

from __future__ import annotations

from decimal import ROUND_FLOOR, Decimal
from pathlib import Path

import pytest

from core.events import Candle
from core.fills import Liquidity, OrderEventKind, OrderStatus
from execution.paper import PaperVenue
from flows.replay import read_events

from ._exec_builders import CAPS, FEES, approved, d

SAMPLE = Path(__file__).resolve().parents[3] / "data" / "sample" / "binance-1m-2021" / "BTC_USDT-1m.json"


@pytest.fixture(scope="module")
def candles() -> list[Candle]:
    events = []
    for event in read_events(SAMPLE):
        assert isinstance(event, Candle)
        events.append(event)
        if len(events) == 50:
            break
    return events


def venue_after(candles: list[Candle], n: int, usdt: str = "10000", btc: str = "0") -> PaperVenue:
    venue = PaperVenue(CAPS, {"USDT": d(usdt), "BTC": d(btc)})
    for candle in candles[:n]:
        venue.on_candle(candle)
    return venue


def test_market_buy_fills_at_the_next_candles_open_as_taker(candles):
    venue = venue_after(candles, 3)
    assert venue.now() == candles[2].ts_event + (candles[1].ts_event - candles[0].ts_event)  # the candle's close
    report = venue.submit(approved("c-1", "0.01"))
    assert report.kind is OrderEventKind.ACCEPT
    assert venue.poll() == []  # nothing fills before the next candle
    venue.on_candle(candles[3])
    (fill_report,) = venue.poll()
    fill = fill_report.fill
    assert fill is not None and fill_report.kind is OrderEventKind.FILL
    assert fill.price == candles[3].open
    assert fill.liquidity is Liquidity.TAKER
    assert fill.fee == candles[3].open * d("0.01") * FEES.taker
    assert fill.ts_event == candles[3].ts_event
    assert venue.balances()["BTC"] == d("0.01")


def test_buy_limit_below_the_market_rests_then_fills_at_its_price_as_maker_in_the_first_candle_reaching_it(candles):
    # The first bar after which the market dips below that bar's low: a buy limit at the later low
    # rests through the first candle and fills when the dip comes.
    i = next(i for i in range(3, 40) if min(c.low for c in candles[i + 1 : 50]) < candles[i].low)
    price = min(c.low for c in candles[i + 1 : 50])
    expected = next(c for c in candles[i:50] if c.low <= price)
    assert expected is not candles[i]
    venue = venue_after(candles, i)
    venue.submit(approved("c-2", "0.01", price))
    assert venue.available("USDT") < d("10000")  # the resting buy locks its funds
    for candle in candles[i:50]:
        venue.on_candle(candle)
        reports = venue.poll()
        if candle is not expected:
            assert reports == []
            continue
        (report,) = reports
        assert report.fill is not None
        assert (report.fill.price, report.fill.liquidity) == (price, Liquidity.MAKER)
        assert report.fill.ts_event == candle.ts_event
        break
    assert venue.fetch_order("c-2").status is OrderStatus.FILLED


def test_a_market_order_larger_than_the_candles_volume_fills_the_volume_and_expires_the_rest(candles):
    venue = venue_after(candles, 3, usdt="100000000")
    too_much = (candles[3].volume * 2).quantize(Decimal("0.00001"))
    venue.submit(approved("c-3", too_much))
    venue.on_candle(candles[3])
    kinds = [r.kind for r in venue.poll()]
    assert kinds == [OrderEventKind.PARTIAL_FILL, OrderEventKind.EXPIRE]
    order = venue.fetch_order("c-3")
    assert order.filled == candles[3].volume.quantize(Decimal("0.00001"), rounding=ROUND_FLOOR)
    assert order.status is OrderStatus.EXPIRED


def test_a_sell_without_the_base_currency_is_refused_at_submit(candles):
    venue = venue_after(candles, 3)
    report = venue.submit(approved("c-4", "0.01", side="sell"))
    assert report.kind is OrderEventKind.REJECT and report.reason == "insufficient_balance"


def test_an_order_canceled_before_the_next_candle_never_fills(candles):
    venue = venue_after(candles, 3)
    venue.submit(approved("c-5", "0.01"))
    venue.cancel("c-5")
    venue.on_candle(candles[3])
    assert venue.poll() == []
    assert venue.fetch_order("c-5").status is OrderStatus.CANCELED


def test_before_any_candle_or_book_a_market_order_is_refused(candles):
    venue = PaperVenue(CAPS, {"USDT": d("10000")})
    report = venue.submit(approved("c-6", "0.01"))
    assert report.kind is OrderEventKind.REJECT and report.reason == "book_unusable"
