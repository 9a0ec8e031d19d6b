"""Paper venue on the real Binance BTC/USDT capture: market orders against a book walk done by hand
from the raw snapshot and diffs, exact fees, partial fills, the queue model on real trades, latency,
rejections, determinism."""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from core.clock import from_epoch_ms
from core.events import BookDelta, BookSnapshot, MarketEvent, Quote, Side, Trade
from core.fills import Fill, Liquidity, OrderEventKind, OrderStatus
from core.money import quantize_down
from core.orders import OrderType
from execution.paper import BpsSlippage, FixedLatency, PaperVenue
from execution.venue import VenueCapabilities
from tests.unit.execution._exec_builders import BTC_RULES, CAPS, FEES, approved, d, feed, paper, real_events

STEP = BTC_RULES.amount_step
T = from_epoch_ms(1_723_161_300_000)


def hand_book(events: tuple[MarketEvent, ...], upto: int) -> tuple[dict[Decimal, Decimal], dict[Decimal, Decimal]]:
    """The L2 book after ``events[:upto]``, built by hand: snapshot, then every diff newer than it in
    file order (the recorder writes the first ones before the snapshot line), checking the chain."""
    snapshot = next(e for e in events if isinstance(e, BookSnapshot))
    bids = {p: a for p, a in snapshot.bids}
    asks = {p: a for p, a in snapshot.asks}
    last = snapshot.sequence
    assert last is not None
    for event in events[:upto]:
        if not isinstance(event, BookDelta) or event.sequence is None or event.sequence <= last:
            continue
        assert event.first_sequence is not None and event.first_sequence <= last + 1, "gap in the capture"
        for side, levels in ((bids, event.bids), (asks, event.asks)):
            for price, amount in levels:
                if amount == 0:
                    side.pop(price, None)
                else:
                    side[price] = amount
        last = event.sequence
    return bids, asks


def walk_by_hand(levels: dict[Decimal, Decimal], amount: Decimal, buy: bool) -> list[tuple[Decimal, Decimal]]:
    out = []
    for price in sorted(levels, reverse=not buy):
        if amount == 0:
            break
        take = min(levels[price], amount)
        out.append((price, take))
        amount -= take
    return out


def fills_of(venue: PaperVenue) -> list[Fill]:
    return [r.fill for r in venue.poll() if r.fill is not None]


@pytest.fixture(scope="module")
def events(shared_data: Path) -> tuple[MarketEvent, ...]:
    return real_events(shared_data)


CUT = 2_000  # an arbitrary point a few hundred diffs after the snapshot


@pytest.mark.parametrize("side", ["buy", "sell"])
def test_market_order_fill_prices_equal_book_walk_by_hand_on_real_binance_data(
    events: tuple[MarketEvent, ...], side: str
) -> None:
    buy = side == "buy"
    bids, asks = hand_book(events, CUT)
    levels = asks if buy else bids
    best = sorted(levels, reverse=not buy)[:4]
    # Three whole levels and half of the fourth: the walk must cross level boundaries and stop inside one.
    amount = sum(levels[p] for p in best[:3]) + quantize_down(levels[best[3]] / 2, STEP)
    expected = walk_by_hand(levels, amount, buy)
    assert len(expected) == 4

    venue = paper({"USDT": "10000000", "BTC": "100"})
    feed(venue, events[:CUT])
    report = venue.submit(approved("b4-walk", amount, side=side))
    assert report.kind is OrderEventKind.ACCEPT
    fills = fills_of(venue)

    assert [(f.price, f.amount) for f in fills] == expected
    assert sum(f.amount for f in fills) == amount
    for fill in fills:
        assert fill.fee == fill.price * fill.amount * FEES.taker  # exact, no rounding
        assert fill.liquidity is Liquidity.TAKER and fill.fee_currency == "USDT"
    record = venue.fetch_order("b4-walk")
    assert record is not None and record.status is OrderStatus.FILLED and record.filled == amount


def test_market_buy_changes_balances_by_notional_plus_taker_fee_exactly(events: tuple[MarketEvent, ...]) -> None:
    venue = paper({"USDT": "100000", "BTC": "0"})
    feed(venue, events[:CUT])
    venue.submit(approved("b4-1", "0.5"))
    fills = fills_of(venue)
    notional = sum(f.price * f.amount for f in fills)
    fees = sum(f.fee for f in fills)
    assert fees == notional * Decimal("0.001")
    assert venue.balances() == {"USDT": Decimal(100000) - notional - fees, "BTC": Decimal("0.5")}
    assert venue.positions() == {"BTC/USDT": Decimal("0.5")}


def test_market_order_larger_than_the_book_fills_partially_then_expires_for_no_liquidity() -> None:
    venue = paper()
    venue.on_book_snapshot(BookSnapshot("binance", "BTC/USDT", 1, ((d(99), d(1)),), ((d(100), d("0.3")),), T, T))
    venue.submit(approved("b4-big", "0.5"))
    reports = venue.poll()
    assert [(r.kind, r.reason) for r in reports] == [
        (OrderEventKind.PARTIAL_FILL, ""),
        (OrderEventKind.EXPIRE, "no_liquidity"),
    ]
    assert reports[0].fill is not None and reports[0].fill.amount == d("0.3")
    record = venue.fetch_order("b4-big")
    assert record is not None and record.status is OrderStatus.EXPIRED and record.remaining == d("0.2")
    # The liquidity we took is gone from the local book until a diff rewrites the level.
    assert venue.book("BTC/USDT").best_ask() is None


def test_book_gap_rejects_market_orders_until_the_next_snapshot(events: tuple[MarketEvent, ...]) -> None:
    venue = paper()
    deltas = [i for i, e in enumerate(events) if isinstance(e, BookDelta)]
    dropped = deltas[50]  # lose one real diff: the next one no longer chains
    feed(venue, events[:dropped])
    assert venue.book("BTC/USDT").usable
    feed(venue, events[dropped + 1 : deltas[52] + 1])
    book = venue.book("BTC/USDT")
    assert not book.usable and book.problem is not None and book.problem.startswith("gap")
    report = venue.submit(approved("b4-gap", "0.01"))
    assert (report.kind, report.reason) == (OrderEventKind.REJECT, "book_unusable")
    snapshot = next(e for e in events if isinstance(e, BookSnapshot))
    # A fresh snapshot (here the recorded one again, restamped later) makes the book usable.
    venue.on_book_snapshot(
        BookSnapshot(snapshot.exchange, snapshot.symbol, None, snapshot.bids, snapshot.asks, venue.now(), venue.now())
    )
    assert venue.submit(approved("b4-after", "0.01")).kind is OrderEventKind.ACCEPT


def test_market_order_with_latency_walks_the_book_as_it_is_when_the_order_arrives(
    events: tuple[MarketEvent, ...],
) -> None:
    latency = timedelta(milliseconds=250)
    venue = paper(latency=FixedLatency(latency))
    feed(venue, events[:CUT])
    submitted_at = venue.now()
    assert venue.submit(approved("b4-late", "0.2")).kind is OrderEventKind.ACCEPT
    assert venue.poll() == []  # not live yet
    # Feed until the first event stamped at or after arrival: the order matches just before it.
    i = CUT
    while not (events[i].ts_event >= submitted_at + latency and not isinstance(events[i], (Quote, BookSnapshot))):
        feed(venue, [events[i]])
        i += 1
    assert venue.poll() == []
    _, asks = hand_book(events, i)
    feed(venue, [events[i]])
    fills = fills_of(venue)
    assert [(f.price, f.amount) for f in fills] == walk_by_hand(asks, d("0.2"), True)
    assert all(f.ts_event == submitted_at + latency for f in fills)


def test_slippage_model_moves_every_level_price_against_the_taker_on_the_tick(
    events: tuple[MarketEvent, ...],
) -> None:
    venue = paper(slippage=BpsSlippage(d(2)))
    feed(venue, events[:CUT])
    venue.submit(approved("b4-slip", "0.3", side="sell"))
    bids, _ = hand_book(events, CUT)
    expected = walk_by_hand(bids, d("0.3"), False)
    got = fills_of(venue)
    assert [f.amount for f in got] == [a for _, a in expected]
    for fill, (level, _) in zip(got, expected, strict=True):
        assert fill.price == quantize_down(level * (1 - d(2) / 10_000), d("0.01"))
        assert fill.price < level


# -- limit orders and the queue model ---------------------------------------------------------


def test_resting_limit_buy_fills_after_the_queue_ahead_is_traded_on_real_trades(
    events: tuple[MarketEvent, ...],
) -> None:
    """Join the best bid at a real moment, then replay the real trades after it (no diffs, so the
    queue can only shrink by trades): the fills must match the queue model computed by hand."""
    bids, _ = hand_book(events, CUT)
    best_bid = max(bids)
    queue = bids[best_bid]
    amount = d("0.5")
    venue = paper()
    feed(venue, events[:CUT])
    venue.submit(approved("b4-rest", amount, best_bid))
    assert venue.poll() == []  # resting, nothing crossed

    trades = [e for e in events[CUT:] if isinstance(e, Trade)]
    expected: list[tuple[Decimal, Decimal]] = []
    left, ahead = amount, queue
    for trade in trades:
        if left == 0:
            break
        if trade.price < best_bid:
            expected.append((best_bid, left))  # traded through: the rest fills
            left = Decimal(0)
        elif trade.price == best_bid and trade.side is Side.SELL:
            consumed = min(ahead, trade.amount)
            ahead -= consumed
            take = min(trade.amount - consumed, left)
            if take > 0:
                expected.append((best_bid, take))
                left -= take
        venue.on_trade(trade)
    got = fills_of(venue)
    assert expected, "the real tape never reached the bid: pick another cut"
    assert ahead < queue  # real sells at the bid ate into the queue ahead of us first
    assert [(f.price, f.amount) for f in got] == expected
    assert all(f.liquidity is Liquidity.MAKER and f.fee == f.price * f.amount * FEES.maker for f in got)


def small_book_venue(**kwargs: Any) -> PaperVenue:
    venue = paper(**kwargs)
    venue.on_book_snapshot(
        BookSnapshot(
            "binance",
            "BTC/USDT",
            100,
            ((d(99), d(2)), (d(98), d(5))),
            ((d(101), d(1)), (d(102), d(4))),
            T,
            T,
        )
    )
    return venue


def trade(price: str, amount: str, side: Side | None, ms: int = 1) -> Trade:
    ts = T + timedelta(milliseconds=ms)
    return Trade("binance", "BTC/USDT", f"t{ms}", d(price), d(amount), side, ts, ts)


def test_trades_at_the_price_consume_the_queue_ahead_before_filling_partially() -> None:
    venue = small_book_venue()
    venue.submit(approved("b4-q", "1.5", "99"))  # joins 2 BTC of displayed bids at 99
    venue.on_trade(trade("99", "1.5", Side.SELL, 1))  # all queue
    assert venue.poll() == []
    venue.on_trade(trade("99", "1", Side.SELL, 2))  # 0.5 queue, 0.5 to us
    venue.on_trade(trade("99", "0.7", Side.BUY, 3))  # a buyer lifting at 99 cannot hit our bid
    fills = fills_of(venue)
    assert [(f.amount, f.liquidity) for f in fills] == [(d("0.5"), Liquidity.MAKER)]
    record = venue.fetch_order("b4-q")
    assert record is not None and record.status is OrderStatus.PARTIALLY_FILLED and record.remaining == 1
    venue.on_trade(trade("98.5", "0.01", Side.SELL, 4))  # through our price: the rest fills whatever the size
    fills = fills_of(venue)
    assert [(f.price, f.amount) for f in fills] == [(d(99), d(1))]
    assert venue.fetch_open_orders() == []


def test_a_diff_showing_less_than_the_queue_ahead_moves_us_up() -> None:
    venue = small_book_venue()
    venue.submit(approved("b4-q", "1", "99"))
    venue.on_book_delta(BookDelta("binance", "BTC/USDT", 101, 101, ((d(99), d("0.25")),), (), T, T))
    venue.on_trade(trade("99", "0.5", None, 1))  # unknown aggressor side counts
    assert [f.amount for f in fills_of(venue)] == [d("0.25")]


def test_two_of_our_orders_at_one_price_share_a_trade_in_arrival_order() -> None:
    venue = small_book_venue()
    venue.on_book_delta(BookDelta("binance", "BTC/USDT", 101, 101, ((d(99), d(0)),), (), T, T))
    venue.submit(approved("b4-a", "0.3", "99"))
    venue.submit(approved("b4-b", "0.3", "99"))
    venue.on_trade(trade("99", "0.4", Side.SELL, 1))
    assert [(f.client_order_id, f.amount) for f in fills_of(venue)] == [("b4-a", d("0.3")), ("b4-b", d("0.1"))]


def test_resting_limit_sell_fills_fully_when_a_buy_trades_through_it() -> None:
    venue = small_book_venue()
    venue.submit(approved("b4-s", "2", "101.5", side="sell"))
    venue.on_trade(trade("101.5", "0.1", Side.SELL, 1))  # a seller at our price does not lift us
    venue.on_trade(trade("101", "5", Side.BUY, 2))  # below our ask: nothing
    assert venue.poll() == []
    venue.on_trade(trade("101.6", "0.001", Side.BUY, 3))
    fills = fills_of(venue)
    assert [(f.price, f.amount, f.fee) for f in fills] == [(d("101.5"), d(2), d("101.5") * 2 * FEES.maker)]


def test_crossing_limit_order_takes_liquidity_to_its_price_then_rests_the_rest() -> None:
    venue = small_book_venue()
    venue.submit(approved("b4-x", "3", "101"))
    fills = fills_of(venue)
    assert [(f.price, f.amount, f.liquidity) for f in fills] == [(d(101), d(1), Liquidity.TAKER)]
    record = venue.fetch_order("b4-x")
    assert record is not None and record.status is OrderStatus.PARTIALLY_FILLED
    assert venue.available("USDT") == venue.balances()["USDT"] - d(2) * d(101) * (1 + FEES.taker)


def test_limit_order_with_slippage_never_pays_beyond_its_limit() -> None:
    venue = small_book_venue(slippage=BpsSlippage(d(50)))
    venue.submit(approved("b4-x", "1", "101"))
    assert [f.price for f in fills_of(venue)] == [d(101)]


def test_cancel_releases_locked_funds_and_a_second_cancel_is_refused() -> None:
    venue = small_book_venue()
    before = venue.available("USDT")
    venue.submit(approved("b4-c", "1", "95"))
    assert venue.available("USDT") == before - d(95) * (1 + FEES.taker)
    assert venue.cancel("b4-c").kind is OrderEventKind.CANCEL
    assert venue.available("USDT") == before
    again = venue.cancel("b4-c")
    assert (again.kind, again.reason) == (OrderEventKind.CANCEL_REJECT, "order_not_open")
    assert venue.cancel("b4-unknown").kind is OrderEventKind.CANCEL_REJECT


def test_order_canceled_before_it_becomes_active_never_fills() -> None:
    venue = small_book_venue(latency=FixedLatency(timedelta(seconds=1)))
    venue.submit(approved("b4-slow", "0.5"))
    assert venue.cancel("b4-slow").kind is OrderEventKind.CANCEL
    venue.on_time(T + timedelta(seconds=5))
    assert venue.poll() == []


def test_order_that_becomes_active_on_an_unusable_book_expires() -> None:
    venue = small_book_venue(latency=FixedLatency(timedelta(seconds=1)))
    venue.submit(approved("b4-slow", "0.5"))
    venue.on_book_delta(BookDelta("binance", "BTC/USDT", 500, 501, (), (), T, T))  # gap
    venue.on_time(T + timedelta(seconds=1))
    assert [(r.kind, r.reason) for r in venue.poll()] == [(OrderEventKind.EXPIRE, "book_unusable")]


def test_market_buy_stops_where_the_balance_runs_out_and_expires_the_rest() -> None:
    venue = small_book_venue(balances={"USDT": "500"}, latency=FixedLatency(timedelta(seconds=1)))
    assert venue.submit(approved("b4-all", "3")).kind is OrderEventKind.ACCEPT  # 101 + 2 x 102 fits at submit
    venue.on_book_snapshot(BookSnapshot("binance", "BTC/USDT", 200, (), ((d(101), d(1)), (d(300), d(4))), T, T))
    venue.on_time(T + timedelta(seconds=1))
    reports = venue.poll()
    assert [r.kind for r in reports] == [
        OrderEventKind.PARTIAL_FILL,
        OrderEventKind.PARTIAL_FILL,
        OrderEventKind.EXPIRE,
    ]
    assert reports[-1].reason == "insufficient_balance"
    assert venue.balances()["USDT"] >= 0


def test_market_sell_is_capped_at_activation_by_base_that_a_later_limit_order_locked() -> None:
    venue = small_book_venue(balances={"USDT": "0", "BTC": "1"}, latency=FixedLatency(timedelta(seconds=1)))
    assert venue.submit(approved("b4-s1", "0.6", side="sell")).kind is OrderEventKind.ACCEPT
    # Market orders lock nothing while they travel; this limit sell locks 0.5 of the 1 BTC meanwhile.
    assert venue.submit(approved("b4-s2", "0.5", "120", side="sell")).kind is OrderEventKind.ACCEPT
    venue.on_time(T + timedelta(seconds=1))
    reports = venue.poll()
    assert [(r.kind, r.reason) for r in reports] == [
        (OrderEventKind.PARTIAL_FILL, ""),
        (OrderEventKind.EXPIRE, "insufficient_balance"),
    ]
    assert reports[0].fill is not None and reports[0].fill.amount == d("0.5")
    assert venue.balances()["BTC"] == d("0.5") and venue.available("BTC") == 0


# -- rejections a real venue gives --------------------------------------------------------------


@pytest.mark.parametrize(
    ("order_args", "reason"),
    [
        ({"cid": "b4-1", "amount": "100", "price": "99"}, "insufficient_balance"),
        ({"cid": "b4-1", "amount": "20", "side": "sell"}, "insufficient_balance"),
        ({"cid": "b4-1", "amount": "0.00004", "price": "99"}, "below_min_notional"),
        ({"cid": "b4-1", "amount": "0.00004"}, "below_min_notional"),
        ({"cid": "b4-1", "amount": "0.1", "price": "99.005"}, "bad_price_precision"),
        ({"cid": "b4-1", "amount": "0.000015", "price": "99"}, "bad_amount_precision"),
        ({"cid": "b4-1", "amount": "9001", "price": "1"}, "amount_outside_lot_limits"),
        ({"cid": "b4-1", "amount": "0.1", "symbol": "ETH/USDT"}, "unknown_symbol"),
        ({"cid": "b4-1", "amount": "0.1", "exchange": "kraken"}, "unknown_symbol"),
        ({"cid": "b4-1", "amount": "0.1", "reduce_only": True}, "reduce_only_unsupported"),
        ({"cid": "b4-" + "x" * 40, "amount": "0.1"}, "client_order_id_too_long"),
    ],
)
def test_venue_rejects_what_binance_would_reject(order_args: dict[str, object], reason: str) -> None:
    venue = small_book_venue(balances={"USDT": "1000", "BTC": "10"})
    args = dict(order_args)
    cid = str(args.pop("cid"))
    amount = str(args.pop("amount"))
    report = venue.submit(approved(cid, amount, **args))  # type: ignore[arg-type]
    assert (report.kind, report.reason) == (OrderEventKind.REJECT, reason)
    assert venue.fetch_order(cid) is None and venue.poll() == []


def test_duplicate_client_order_id_and_unsupported_order_type_are_rejected() -> None:
    limit_only = VenueCapabilities("binance", FEES, CAPS.rules, order_types=frozenset({OrderType.LIMIT}))
    venue = small_book_venue(caps=limit_only)
    assert venue.submit(approved("b4-1", "0.1")).reason == "order_type_unsupported"
    assert venue.submit(approved("b4-1", "0.1", "90")).kind is OrderEventKind.ACCEPT
    assert venue.submit(approved("b4-1", "0.1", "90")).reason == "duplicate_client_order_id"
    assert len(venue.fetch_open_orders()) == 1


def test_market_order_on_an_empty_side_is_rejected_for_no_liquidity() -> None:
    venue = paper()
    venue.on_book_snapshot(BookSnapshot("binance", "BTC/USDT", 1, ((d(99), d(1)),), (), T, T))
    assert venue.submit(approved("b4-1", "0.1")).reason == "no_liquidity"
    assert venue.submit(approved("b4-2", "0.1")).reason == "no_liquidity"
    assert paper().submit(approved("b4-3", "0.1")).reason == "book_unusable"


# -- determinism and odds and ends ---------------------------------------------------------------


def run_scripted(events: tuple[MarketEvent, ...]) -> list[Fill]:
    """A fixed script over the real stream: every 1,500th event a market order, a limit at the best
    bid, and a cancel of the limit placed two rounds before."""
    venue = paper(latency=FixedLatency(timedelta(milliseconds=20)), slippage=BpsSlippage(d(1)))
    fills: list[Fill] = []
    for i, event in enumerate(events):
        feed(venue, [event])
        if i % 1_500 or not venue.book("BTC/USDT").usable:
            continue
        n = i // 1_500
        best = venue.book("BTC/USDT").best_bid()
        assert best is not None
        venue.submit(approved(f"b4-m{n}", "0.05", side="buy" if n % 2 else "sell"))
        venue.submit(approved(f"b4-l{n}", "0.2", best[0]))
        venue.cancel(f"b4-l{n - 2}")
        fills.extend(r.fill for r in venue.poll() if r.fill is not None)
    fills.extend(r.fill for r in venue.poll() if r.fill is not None)
    return fills


def test_same_event_stream_and_orders_give_identical_fills(events: tuple[MarketEvent, ...]) -> None:
    first = run_scripted(events)
    second = run_scripted(events)
    assert len(first) > 20 and any(f.liquidity is Liquidity.MAKER for f in first)
    assert first == second


def test_events_of_another_exchange_are_ignored_and_marks_fall_back_to_quotes_and_trades() -> None:
    venue = paper()
    assert venue.mark_price("BTC/USDT") is None
    venue.on_trade(Trade("binance", "BTC/USDT", "1", d(100), d(1), Side.BUY, T, T))
    assert venue.mark_price("BTC/USDT") == d(100)
    venue.on_quote(Quote("binance", "BTC/USDT", d(99), d(1), d(101), d(1), T, T))
    assert venue.mark_price("BTC/USDT") == d(100)
    venue.on_book_snapshot(BookSnapshot("binance", "BTC/USDT", 1, ((d(99), d(1)),), ((d(103), d(1)),), T, T))
    assert venue.mark_price("BTC/USDT") == d(101)
    other = T + timedelta(hours=1)
    venue.on_trade(Trade("kraken", "BTC/USDT", "1", d(1), d(1), Side.BUY, other, other))
    venue.on_quote(Quote("kraken", "BTC/USDT", d(1), d(1), d(2), d(1), other, other))
    venue.on_book_delta(BookDelta("kraken", "BTC/USDT", 2, 2, (), (), other, other))
    venue.on_book_snapshot(BookSnapshot("kraken", "BTC/USDT", 1, (), (), other, other))
    assert venue.now() == T and venue.mark_price("BTC/USDT") == d(101)
    assert venue.capabilities is CAPS
