"""The local L2 book under Binance's sequence rules on the real capture and on the edge cases, and
the venue capabilities declared as data."""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path

import pytest

from core.clock import from_epoch_ms
from core.errors import ConfigError
from core.events import BookDelta, BookSnapshot, MarketEvent
from execution.book import L2Book
from execution.venue import FeeSchedule, VenueCapabilities, VenueOrder, split_symbol
from risk.market import InstrumentRules
from tests.unit.execution._exec_builders import BTC_RULES, CAPS, d, real_events

T = from_epoch_ms(1_723_161_300_000)


def snap(
    seq: int | None, bids: tuple[tuple[int, int], ...] = ((99, 1),), asks: tuple[tuple[int, int], ...] = ((101, 1),)
) -> BookSnapshot:
    return BookSnapshot(
        "binance", "BTC/USDT", seq, tuple((d(p), d(a)) for p, a in bids), tuple((d(p), d(a)) for p, a in asks), T, T
    )


def diff(
    first: int | None, last: int | None, bids: tuple[tuple[int, int], ...] = (), asks: tuple[tuple[int, int], ...] = ()
) -> BookDelta:
    return BookDelta(
        "binance",
        "BTC/USDT",
        first,
        last,
        tuple((d(p), d(a)) for p, a in bids),
        tuple((d(p), d(a)) for p, a in asks),
        T,
        T,
    )


def test_real_capture_keeps_the_book_synced_and_uncrossed_to_the_last_diff(shared_data: Path) -> None:
    events: tuple[MarketEvent, ...] = real_events(shared_data)
    book = L2Book()
    applied = 0
    for event in events:
        if isinstance(event, BookSnapshot):
            book.apply_snapshot(event)
        elif isinstance(event, BookDelta):
            applied += book.apply_delta(event)
            if book.usable:
                bid, ask = book.best_bid(), book.best_ask()
                assert bid is not None and ask is not None and bid[0] < ask[0]
    assert book.usable and book.problem is None
    diffs = [e for e in events if isinstance(e, BookDelta)]
    assert book.last_update_id == diffs[-1].sequence
    # Every diff newer than the snapshot is applied; the one recorded before the snapshot line was
    # buffered and applied by the snapshot itself.
    newer = sum(1 for e in diffs if (e.sequence or 0) > 50093239218)
    assert applied == newer - 1


def test_diffs_before_the_snapshot_are_buffered_and_replayed_when_it_arrives() -> None:
    book = L2Book()
    assert not book.apply_delta(diff(5, 9, asks=((101, 0),)))  # older than the snapshot: dropped later
    assert not book.apply_delta(diff(10, 12, asks=((102, 3),)))
    assert not book.usable and book.problem == "no snapshot yet"
    book.apply_snapshot(snap(11))
    assert book.usable and book.last_update_id == 12
    assert book.best_ask() == (d(101), d(1)) and book.asks.amount_at(d(102)) == d(3)


def test_first_diff_must_straddle_the_snapshot_and_later_ones_must_chain() -> None:
    book = L2Book()
    book.apply_snapshot(snap(10))
    assert not book.apply_delta(diff(8, 10))  # already in the snapshot
    assert book.usable
    assert book.apply_delta(diff(11, 13, bids=((99, 0), (98, 4))))
    assert book.best_bid() == (d(98), d(4))
    assert not book.apply_delta(diff(15, 16))
    assert book.problem == "gap: diff 15..16 after update id 13"
    assert not book.apply_delta(diff(14, 14))  # buffered for the next snapshot, not applied
    book.apply_snapshot(snap(13))
    assert book.usable and book.last_update_id == 14


def test_first_diff_that_starts_after_the_snapshot_is_a_gap() -> None:
    book = L2Book()
    book.apply_snapshot(snap(10))
    assert not book.apply_delta(diff(12, 13))
    assert not book.usable


def test_diff_without_update_ids_on_a_sequenced_book_is_refused_and_unsequenced_books_take_anything() -> None:
    book = L2Book()
    book.apply_snapshot(snap(10))
    assert not book.apply_delta(diff(None, None))
    assert book.problem == "diff without update ids on a sequenced book"
    loose = L2Book()
    loose.apply_snapshot(snap(None))
    assert loose.apply_delta(diff(None, None, asks=((100, 2),)))
    assert loose.mid() == d("99.5") and len(loose.asks) == 2
    loose.apply_delta(diff(None, None, bids=((99, 0),)))
    assert loose.best_bid() is None and loose.mid() is None


def test_fee_schedule_and_capabilities_refuse_bad_values_at_start() -> None:
    with pytest.raises(ConfigError, match=r"FeeSchedule\.taker"):
        FeeSchedule(Decimal("0.001"), Decimal("1.5"))
    with pytest.raises(ConfigError, match=r"FeeSchedule\.maker"):
        FeeSchedule(0.001, Decimal("0.001"))  # type: ignore[arg-type]
    broken = InstrumentRules(Decimal("0.01"), Decimal(0))
    with pytest.raises(ConfigError, match="amount_step 0"):
        VenueCapabilities("binance", CAPS.fees, {"BTC/USDT": broken})
    with pytest.raises(ConfigError, match="client_id_max_length"):
        VenueCapabilities("binance", CAPS.fees, {}, client_id_max_length=0)


def test_capabilities_are_read_only_data() -> None:
    rules = {"BTC/USDT": BTC_RULES}
    caps = VenueCapabilities("binance", CAPS.fees, rules)
    rules["ETH/USDT"] = BTC_RULES
    assert caps.rules_for("ETH/USDT") is None and caps.rules_for("BTC/USDT") is BTC_RULES
    with pytest.raises(TypeError):
        caps.rules["X/Y"] = BTC_RULES  # type: ignore[index]


def test_split_symbol_reads_unified_symbols_and_refuses_others() -> None:
    assert split_symbol("BTC/USDT:USDT") == ("BTC", "USDT")
    with pytest.raises(ValueError, match="BTCUSDT"):
        split_symbol("BTCUSDT")


def test_venue_order_remaining_is_amount_minus_filled() -> None:
    from core.events import Side
    from core.fills import OrderStatus
    from core.orders import OrderType

    order = VenueOrder(
        "b4-1", "v1", "BTC/USDT", Side.BUY, OrderType.LIMIT, d(2), d(100), OrderStatus.ACCEPTED, d("0.5")
    )
    assert order.remaining == d("1.5")
