"""The L2 book rebuilt from the real Binance capture equals Binance's own best bid/ask.

The capture (hftbacktest, BTCUSDT spot, 2024-08-08) starts with a few depth diffs, then the REST
snapshot, then diffs (``U``..``u``) and ``@bookTicker`` updates (best bid/ask with update id ``u``).
"""

from __future__ import annotations

import pickle
from decimal import Decimal

import pytest

from core.events import BookDelta, BookSnapshot, MarketEvent, Quote
from features.book import OrderBook, ResyncRequired

BOOK_EVENTS = (BookSnapshot, BookDelta, Quote)


def book_events(events: list[MarketEvent]) -> list[BookSnapshot | BookDelta | Quote]:
    return [e for e in events if isinstance(e, BOOK_EVENTS)]


def replay(book: OrderBook, events: list[BookSnapshot | BookDelta | Quote]) -> list[ResyncRequired]:
    return [r for e in events for r in book.update(e)]


def test_book_equals_book_ticker_at_every_matching_update_id(btc_ws_day1: list[MarketEvent]) -> None:
    events = book_events(btc_ws_day1)
    snapshot_at = next(i for i, e in enumerate(events) if isinstance(e, BookSnapshot))
    assert snapshot_at > 0  # diffs arrived before the snapshot: the book must buffer them

    book = OrderBook()
    top_by_id: dict[int, tuple[object, object]] = {}
    resyncs = []
    for event in events:
        resyncs.extend(book.update(event))
        if isinstance(event, BookDelta) and not book.needs_resync:
            assert book.last_update_id is not None
            top_by_id[book.last_update_id] = (book.best_bid(), book.best_ask())
            assert not book.is_crossed

    assert [r.reason for r in resyncs] == ["no_snapshot"]  # asked once, before the snapshot
    tickers = [e for e in events if isinstance(e, Quote)]
    matched = [q for q in tickers if q.sequence in top_by_id]
    assert len(matched) >= 500
    for quote in matched:
        assert quote.sequence is not None
        assert top_by_id[quote.sequence] == ((quote.bid_price, quote.bid_amount), (quote.ask_price, quote.ask_amount))
    # The book did the same check itself, in stream order, for every one of them.
    assert book.verified_quotes == len(matched)
    assert book.skipped_deltas >= 1  # diffs already inside the snapshot were skipped


def test_removed_delta_is_detected_and_a_new_snapshot_resyncs(btc_ws_day1: list[MarketEvent]) -> None:
    events = book_events(btc_ws_day1)
    reference = OrderBook()
    replay(reference, events[:600])
    deltas_from = [i for i, e in enumerate(events) if isinstance(e, BookDelta) and i > 600]
    removed = deltas_from[10]
    gapped = OrderBook()
    assert [r.reason for r in replay(gapped, events[:removed])] == ["no_snapshot"]
    replay(reference, events[600:removed])
    # The delta right after the removed one does not continue the sequence.
    following = deltas_from[11]
    replay(reference, events[removed:following])
    resyncs = replay(gapped, events[removed + 1 : following + 1])
    assert [r.reason for r in resyncs] == ["sequence_gap"]
    assert "expected U =" in resyncs[0].detail
    assert gapped.needs_resync and gapped.mid() is None and gapped.features() is None
    replay(reference, events[following : following + 1])

    # Nothing more is reported while waiting; diffs are buffered meanwhile.
    later = deltas_from[40]
    assert replay(gapped, events[following + 1 : later]) == []
    replay(reference, events[following + 1 : later])

    # A snapshot taken from the uninterrupted book after the gap but some diffs back (a REST
    # snapshot lags the stream) resyncs the gapped book, which catches up from its buffer.
    # A snapshot from before the gap cannot help: the missing diff is in neither. The book says
    # so again and keeps its buffer for the next attempt.
    stale = OrderBook()
    replay(stale, events[:removed])
    assert stale.last_update_id is not None
    stale_snap = BookSnapshot(
        "binance", "BTC/USDT", stale.last_update_id, tuple(stale.bids(10_000)), tuple(stale.asks(10_000)),
        events[later].ts_event, events[later].ts_recv,
    )  # fmt: skip
    assert [r.reason for r in gapped.update(stale_snap)] == ["sequence_gap"]
    assert gapped.needs_resync

    catch_up = OrderBook()
    replay(catch_up, events[: deltas_from[20]])
    rest_id = catch_up.last_update_id
    assert rest_id is not None
    snap = BookSnapshot(
        "binance",
        "BTC/USDT",
        rest_id,
        tuple(catch_up.bids(10_000)),
        tuple(catch_up.asks(10_000)),
        events[later].ts_event,
        events[later].ts_recv,
    )
    assert gapped.update(snap) == ()
    assert not gapped.needs_resync
    assert gapped.last_update_id == reference.last_update_id
    assert gapped.bids(10_000) == reference.bids(10_000) and gapped.asks(10_000) == reference.asks(10_000)
    rest = events[later:]
    assert replay(gapped, rest) == []
    replay(reference, rest)
    assert gapped.features() == reference.features() and gapped.features() is not None


def test_crossed_book_and_wrong_top_of_book_force_a_resync(btc_ws_day1: list[MarketEvent]) -> None:
    events = book_events(btc_ws_day1)
    snap = next(e for e in events if isinstance(e, BookSnapshot))
    crossed_snap = BookSnapshot(
        snap.exchange, snap.symbol, snap.sequence, snap.bids, ((snap.bids[0][0], Decimal(1)), *snap.asks),
        snap.ts_event, snap.ts_recv,
    )  # fmt: skip
    book = OrderBook()
    replay(book, events[:5])
    (result,) = book.update(crossed_snap)
    assert result.reason == "crossed_book" and book.needs_resync
    assert book.update(snap) == () and not book.needs_resync  # the buffered diffs were kept

    book = OrderBook()
    replay(book, events[:300])
    ask = book.best_ask()
    assert ask is not None and book.last_update_id is not None
    last = book.last_update_id
    crossing = BookDelta(
        "binance", "BTC/USDT", last + 1, last + 1, ((ask[0] + Decimal("0.01"), Decimal("1")),), (),
        events[300].ts_event, events[300].ts_recv,
    )  # fmt: skip
    (result,) = book.update(crossing)
    assert result.reason == "crossed_book" and book.needs_resync and book.features() is None

    book = OrderBook()
    replay(book, events[:300])
    bid, ask = book.best_bid(), book.best_ask()
    assert bid is not None and ask is not None
    wrong = Quote(
        "binance", "BTC/USDT", bid[0], bid[1] + 1, ask[0], ask[1], events[300].ts_event, events[300].ts_recv,
        book.last_update_id,
    )  # fmt: skip
    (result,) = book.update(wrong)
    assert result.reason == "top_of_book_mismatch" and book.needs_resync


def test_book_features_agree_with_a_direct_computation_over_the_levels(btc_ws_day1: list[MarketEvent]) -> None:
    book = OrderBook()
    checked = 0
    for i, event in enumerate(book_events(btc_ws_day1)):
        book.update(event)
        if i % 500 or book.needs_resync:
            continue
        bids, asks = book.bids(100_000), book.asks(100_000)
        (bid, bid_qty), (ask, ask_qty) = bids[0], asks[0]
        mid = (bid + ask) / 2
        feats = book.features(levels=5, depth_bps=10.0)
        assert feats is not None
        assert feats.mid == float(mid) and feats.spread == float(ask - bid) > 0
        assert feats.microprice == pytest.approx(
            float((bid * ask_qty + ask * bid_qty) / (bid_qty + ask_qty)), rel=1e-15
        )
        assert bid <= Decimal(repr(feats.microprice)) <= ask
        b5, a5 = sum(q for _, q in bids[:5]), sum(q for _, q in asks[:5])
        assert feats.imbalance == pytest.approx(float((b5 - a5) / (b5 + a5)), rel=1e-12)
        lo, hi = mid * (1 - Decimal("0.001")), mid * (1 + Decimal("0.001"))
        assert feats.depth_bid == pytest.approx(float(sum(q for p, q in bids if p >= lo)), rel=1e-12)
        assert feats.depth_ask == pytest.approx(float(sum(q for p, q in asks if p <= hi)), rel=1e-12)
        assert feats.spread_bps == pytest.approx(float((ask - bid) / mid * 10_000), rel=1e-12)
        checked += 1
    assert checked > 50


def test_book_carries_over_midnight_through_a_pickled_snapshot(
    btc_ws_day1: list[MarketEvent], btc_ws_day2: list[MarketEvent]
) -> None:
    """The 08-09 file continues the stream without a snapshot: a restored book picks it up."""
    day1 = OrderBook()
    replay(day1, book_events(btc_ws_day1))
    restored = OrderBook()
    restored.restore(pickle.loads(pickle.dumps(day1.snapshot())))
    verified_before = restored.verified_quotes
    assert replay(restored, book_events(btc_ws_day2)) == []
    assert restored.verified_quotes - verified_before > 500
    assert restored.features() is not None


def test_unsequenced_snapshot_applies_deltas_in_arrival_order(btc_ws_day1: list[MarketEvent]) -> None:
    events = book_events(btc_ws_day1)
    snap = next(e for e in events if isinstance(e, BookSnapshot))
    deltas = [e for e in events if isinstance(e, BookDelta)][:50]
    book = OrderBook()
    book.update(BookSnapshot(snap.exchange, snap.symbol, None, snap.bids, snap.asks, snap.ts_event, snap.ts_recv))
    for d in deltas:
        assert book.update(BookDelta(d.exchange, d.symbol, None, None, d.bids, d.asks, d.ts_event, d.ts_recv)) == ()
    assert book.last_update_id is None and book.features() is not None
    quote = next(e for e in events if isinstance(e, Quote))
    assert book.update(quote) == () and book.verified_quotes == 0  # nothing to check it against


def test_sequenced_book_refuses_a_delta_without_update_ids(btc_ws_day1: list[MarketEvent]) -> None:
    events = book_events(btc_ws_day1)
    book = OrderBook()
    replay(book, events[:200])
    d = next(e for e in events[200:] if isinstance(e, BookDelta))
    (result,) = book.update(BookDelta(d.exchange, d.symbol, None, None, d.bids, d.asks, d.ts_event, d.ts_recv))
    assert result.reason == "sequence_gap"
    with pytest.raises(TypeError, match=r"OrderBook\.update"):
        book.update("not an event")  # type: ignore[arg-type]
