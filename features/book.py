"""L2 order book rebuilt from a snapshot plus deltas, with sequence checks, and its features.

Sequence rules (Binance's, which the other sequenced venues share in spirit):

- until a snapshot is loaded, deltas are buffered (bounded) and one :class:`ResyncRequired`
  asks for a snapshot;
- after a snapshot with ``lastUpdateId = L``: deltas with ``u <= L`` are already in it and are
  skipped; the first applied delta must satisfy ``U <= L + 1 <= u``;
- after that each delta's ``U`` must be the previous ``u + 1``.

Anything else is a gap: the book marks itself ``needs_resync``, returns a :class:`ResyncRequired`
(once), answers ``None`` for every feature, and buffers the deltas that follow so that the next
snapshot can be caught up without waiting. A crossed book after a delta, or a top of book that
disagrees with the exchange's own best bid/ask (a :class:`~core.events.Quote` carrying the same
update id), is treated the same way: a wrong book is never served.

A snapshot without a sequence (a venue that has none) puts the book in unsequenced mode: deltas
are applied in arrival order and only the crossed-book check protects it.

Prices and amounts stay ``Decimal`` in the book (exact comparisons with the exchange's best
bid/ask); features are floats.
"""

from __future__ import annotations

from bisect import bisect_left, bisect_right, insort
from collections import deque
from dataclasses import dataclass
from decimal import Decimal
from typing import Any, NamedTuple

from core.clock import from_epoch_us, to_epoch_us
from core.events import BookDelta, BookSnapshot, Level, Quote
from features._state import State, check_state, state_header

_NOTHING: tuple[()] = ()


@dataclass(frozen=True, slots=True)
class ResyncRequired:
    """The book cannot be trusted until a new snapshot arrives; ``reason`` says why.

    Reasons: ``no_snapshot``, ``sequence_gap``, ``crossed_book``, ``top_of_book_mismatch``.

    >>> ResyncRequired("binance:BTC/USDT", "sequence_gap", 41, "expected U=42, got U=45").reason
    'sequence_gap'
    """

    key: str
    reason: str
    last_update_id: int | None
    detail: str


class BookFeatures(NamedTuple):
    """Top-of-book and depth features of one book state (see :meth:`OrderBook.features`).

    ``spread_bps`` is spread / mid in basis points; ``imbalance`` is over the best N levels;
    ``depth_bid`` / ``depth_ask`` are base quantities within X bps of the mid.

    >>> BookFeatures(100.0, 0.02, 2.0, 100.001, 0.1, 5.0, 4.0).spread_bps
    2.0
    """

    mid: float
    spread: float
    spread_bps: float
    microprice: float
    imbalance: float
    depth_bid: float
    depth_ask: float


class _Side:
    """One side of the book: amounts by price plus the prices in ascending order."""

    __slots__ = ("amounts", "prices")

    def __init__(self) -> None:
        self.amounts: dict[Decimal, Decimal] = {}
        self.prices: list[Decimal] = []

    def load(self, levels: tuple[Level, ...]) -> None:
        self.amounts = {price: amount for price, amount in levels if amount != 0}
        self.prices = sorted(self.amounts)

    def apply(self, levels: tuple[Level, ...]) -> None:
        amounts, prices = self.amounts, self.prices
        for price, amount in levels:
            if amount == 0:
                # Removing a level we never had is normal (it was beyond the snapshot's depth).
                if amounts.pop(price, None) is not None:
                    del prices[bisect_left(prices, price)]
            else:
                if price not in amounts:
                    insort(prices, price)
                amounts[price] = amount

    def to_plain(self) -> list[list[str]]:
        return [[str(p), str(self.amounts[p])] for p in self.prices]


def _levels_from_plain(data: list[list[str]]) -> tuple[Level, ...]:
    return tuple((Decimal(p), Decimal(a)) for p, a in data)


def _delta_to_plain(d: BookDelta) -> list[Any]:
    return [
        d.exchange,
        d.symbol,
        d.first_sequence,
        d.sequence,
        [[str(p), str(a)] for p, a in d.bids],
        [[str(p), str(a)] for p, a in d.asks],
        to_epoch_us(d.ts_event),
        to_epoch_us(d.ts_recv),
    ]


def _delta_from_plain(data: list[Any]) -> BookDelta:
    exchange, symbol, first, last, bids, asks, ts_event, ts_recv = data
    return BookDelta(
        exchange,
        symbol,
        first,
        last,
        _levels_from_plain(bids),
        _levels_from_plain(asks),
        from_epoch_us(ts_event),
        from_epoch_us(ts_recv),
    )


def _quote_to_plain(q: Quote) -> list[Any]:
    return [
        q.exchange,
        q.symbol,
        str(q.bid_price),
        str(q.bid_amount),
        str(q.ask_price),
        str(q.ask_amount),
        to_epoch_us(q.ts_event),
        to_epoch_us(q.ts_recv),
        q.sequence,
    ]


def _quote_from_plain(data: list[Any]) -> Quote:
    exchange, symbol, bid, bid_amount, ask, ask_amount, ts_event, ts_recv, sequence = data
    return Quote(
        exchange,
        symbol,
        Decimal(bid),
        Decimal(bid_amount),
        Decimal(ask),
        Decimal(ask_amount),
        from_epoch_us(ts_event),
        from_epoch_us(ts_recv),
        sequence,
    )


class OrderBook:
    """L2 book of one instrument: ``update(event)`` takes snapshots, deltas and quotes.

    ``update`` returns ``()`` or a one-element tuple with a :class:`ResyncRequired`. Quotes with
    an update id are checked against the book when the book reaches that id (kept up to
    ``max_pending_quotes`` ahead); ``verified_quotes`` counts the agreements.

    >>> from core.clock import from_epoch_ms
    >>> t = from_epoch_ms(1723161255208)
    >>> D = Decimal
    >>> book = OrderBook()
    >>> book.update(BookSnapshot("binance", "BTC/USDT", 100, ((D("10"), D("2")),), ((D("11"), D("1")),), t, t))
    ()
    >>> book.update(BookDelta("binance", "BTC/USDT", 95, 101, ((D("10.5"), D("1")),), (), t, t))
    ()
    >>> book.best_bid(), book.best_ask(), book.mid()
    ((Decimal('10.5'), Decimal('1')), (Decimal('11'), Decimal('1')), 10.75)
    >>> book.update(BookDelta("binance", "BTC/USDT", 103, 104, (), (), t, t))[0].reason
    'sequence_gap'
    >>> book.needs_resync, book.mid()
    (True, None)
    """

    def __init__(self, max_buffer: int = 10_000, max_pending_quotes: int = 1_000) -> None:
        self.max_buffer = max_buffer
        self.max_pending_quotes = max_pending_quotes
        self._bids = _Side()
        self._asks = _Side()
        self._key = ""
        self._last_update_id: int | None = None
        self._sequenced = True
        self._awaiting_first = False
        self._needs_resync = True
        self._resync_sent = False
        self._buffer: deque[BookDelta] = deque(maxlen=max_buffer)
        self._pending: dict[int, Quote] = {}
        self.skipped_deltas = 0
        self.verified_quotes = 0

    @property
    def needs_resync(self) -> bool:
        """True until a snapshot is loaded, and again after a gap, a crossed book or a mismatch."""
        return self._needs_resync

    @property
    def last_update_id(self) -> int | None:
        """The exchange update id the book reflects (the last applied delta's ``u``)."""
        return self._last_update_id

    def update(self, event: BookSnapshot | BookDelta | Quote) -> tuple[ResyncRequired, ...]:
        """Apply one book event; return a :class:`ResyncRequired` when the book stops being valid."""
        if isinstance(event, BookDelta):
            if self._needs_resync:
                self._key = self._key or event.key
                self._buffer.append(event)
                if not self._resync_sent:
                    return self._resync("no_snapshot", "no snapshot loaded yet")
                return _NOTHING
            return self._apply_delta(event)
        if isinstance(event, BookSnapshot):
            return self._load(event)
        if isinstance(event, Quote):
            return self._check_quote(event)
        raise TypeError(f"OrderBook.update takes BookSnapshot, BookDelta or Quote, got {type(event).__name__}")

    def _load(self, snap: BookSnapshot) -> tuple[ResyncRequired, ...]:
        self._key = snap.key
        self._bids.load(snap.bids)
        self._asks.load(snap.asks)
        self._last_update_id = snap.sequence
        self._sequenced = snap.sequence is not None
        self._awaiting_first = self._sequenced
        self._needs_resync = False
        self._resync_sent = False
        self._pending = {}
        buffered, self._buffer = list(self._buffer), deque(maxlen=self.max_buffer)
        if not self._sequenced:
            # Without update ids nobody can tell which buffered deltas the snapshot already holds.
            buffered = []
        if self.is_crossed:
            self._buffer.extend(buffered)
            return self._resync("crossed_book", f"snapshot {snap.sequence} is crossed")
        for i, delta in enumerate(buffered):
            out = self._apply_delta(delta)
            if out:
                self._buffer.extend(buffered[i + 1 :])
                return out
        return _NOTHING

    def _apply_delta(self, delta: BookDelta) -> tuple[ResyncRequired, ...]:
        if self._sequenced:
            first, last, current = delta.first_sequence, delta.sequence, self._last_update_id
            if first is None or last is None or current is None:
                self._buffer.append(delta)
                return self._resync("sequence_gap", f"delta without update ids (U={first}, u={last})")
            if last <= current:
                self.skipped_deltas += 1
                return _NOTHING
            if self._awaiting_first:
                ok = first <= current + 1 <= last
                expected = f"U <= {current + 1} <= u"
            else:
                ok = first == current + 1
                expected = f"U = {current + 1}"
            if not ok:
                self._buffer.append(delta)
                return self._resync(
                    "sequence_gap", f"after update id {current} expected {expected}, got U={first} u={last}"
                )
            self._awaiting_first = False
        self._bids.apply(delta.bids)
        self._asks.apply(delta.asks)
        self._last_update_id = delta.sequence
        if self.is_crossed:
            return self._resync("crossed_book", f"best bid {self.best_bid()} >= best ask {self.best_ask()}")
        if self._pending and delta.sequence is not None:
            quote = self._pending.pop(delta.sequence, None)
            self._pending = {seq: q for seq, q in self._pending.items() if seq > delta.sequence}
            if quote is not None:
                return self._verify(quote)
        return _NOTHING

    def _check_quote(self, quote: Quote) -> tuple[ResyncRequired, ...]:
        seq, current = quote.sequence, self._last_update_id
        if self._needs_resync or seq is None or current is None or not self._sequenced:
            return _NOTHING
        if seq == current:
            return self._verify(quote)
        if seq > current and len(self._pending) < self.max_pending_quotes:
            self._pending[seq] = quote
        return _NOTHING

    def _verify(self, quote: Quote) -> tuple[ResyncRequired, ...]:
        ours = (self.best_bid(), self.best_ask())
        theirs = ((quote.bid_price, quote.bid_amount), (quote.ask_price, quote.ask_amount))
        if ours != theirs:
            return self._resync(
                "top_of_book_mismatch", f"at update id {quote.sequence} the book has {ours}, the exchange {theirs}"
            )
        self.verified_quotes += 1
        return _NOTHING

    def _resync(self, reason: str, detail: str) -> tuple[ResyncRequired, ...]:
        self._needs_resync = True
        self._resync_sent = True
        self._pending = {}
        return (ResyncRequired(self._key, reason, self._last_update_id, detail),)

    # -- reading the book -------------------------------------------------------------------

    def best_bid(self) -> Level | None:
        """Highest bid ``(price, amount)``, or ``None`` when the side is empty."""
        prices = self._bids.prices
        return (prices[-1], self._bids.amounts[prices[-1]]) if prices else None

    def best_ask(self) -> Level | None:
        """Lowest ask ``(price, amount)``, or ``None`` when the side is empty."""
        prices = self._asks.prices
        return (prices[0], self._asks.amounts[prices[0]]) if prices else None

    @property
    def is_crossed(self) -> bool:
        """True when the best bid is at or above the best ask (a locked or crossed book)."""
        bids, asks = self._bids.prices, self._asks.prices
        return bool(bids and asks and bids[-1] >= asks[0])

    def bids(self, n: int) -> list[Level]:
        """The best ``n`` bids, best first."""
        prices, amounts = self._bids.prices, self._bids.amounts
        return [(p, amounts[p]) for p in reversed(prices[-n:])] if n > 0 else []

    def asks(self, n: int) -> list[Level]:
        """The best ``n`` asks, best first."""
        prices, amounts = self._asks.prices, self._asks.amounts
        return [(p, amounts[p]) for p in prices[:n]]

    def _top(self) -> tuple[Decimal, Decimal, Decimal, Decimal] | None:
        if self._needs_resync or not self._bids.prices or not self._asks.prices:
            return None
        bid = self._bids.prices[-1]
        ask = self._asks.prices[0]
        return bid, self._bids.amounts[bid], ask, self._asks.amounts[ask]

    def mid(self) -> float | None:
        """(best bid + best ask) / 2; ``None`` while the book is not valid."""
        top = self._top()
        return None if top is None else float((top[0] + top[2]) / 2)

    def spread(self) -> float | None:
        """best ask - best bid; ``None`` while the book is not valid."""
        top = self._top()
        return None if top is None else float(top[2] - top[0])

    def microprice(self) -> float | None:
        """Size-weighted mid ``(bid * ask_qty + ask * bid_qty) / (bid_qty + ask_qty)``.

        It leans toward the side with less size, where the next trade is likelier to go.
        """
        top = self._top()
        if top is None:
            return None
        bid, bid_qty, ask, ask_qty = top
        return float((bid * ask_qty + ask * bid_qty) / (bid_qty + ask_qty))

    def imbalance(self, levels: int = 5) -> float | None:
        """``(bid qty - ask qty) / (bid qty + ask qty)`` over the best ``levels`` of each side, in [-1, 1]."""
        if self._top() is None:
            return None
        bid_qty = float(sum(a for _, a in self.bids(levels)))
        ask_qty = float(sum(a for _, a in self.asks(levels)))
        return (bid_qty - ask_qty) / (bid_qty + ask_qty)

    def depth(self, bps: float = 10.0) -> tuple[float, float] | None:
        """Base quantity resting within ``bps`` basis points of the mid: ``(bids, asks)``."""
        mid = self.mid()
        if mid is None:
            return None
        floor = Decimal(repr(mid * (1.0 - bps / 10_000.0)))
        cap = Decimal(repr(mid * (1.0 + bps / 10_000.0)))
        bid_prices, bid_amounts = self._bids.prices, self._bids.amounts
        ask_prices, ask_amounts = self._asks.prices, self._asks.amounts
        bid_depth = sum((bid_amounts[p] for p in bid_prices[bisect_left(bid_prices, floor) :]), Decimal(0))
        ask_depth = sum((ask_amounts[p] for p in ask_prices[: bisect_right(ask_prices, cap)]), Decimal(0))
        return float(bid_depth), float(ask_depth)

    def features(self, levels: int = 5, depth_bps: float = 10.0) -> BookFeatures | None:
        """All book features at once, or ``None`` while the book is not valid.

        >>> OrderBook().features() is None
        True
        """
        mid = self.mid()
        spread = self.spread()
        microprice = self.microprice()
        depth = self.depth(depth_bps)
        imbalance = self.imbalance(levels)
        if mid is None or spread is None or microprice is None or depth is None or imbalance is None:
            return None
        return BookFeatures(mid, spread, spread / mid * 10_000.0, microprice, imbalance, depth[0], depth[1])

    # -- state ------------------------------------------------------------------------------

    def _params(self) -> dict[str, int]:
        return {"max_buffer": self.max_buffer, "max_pending_quotes": self.max_pending_quotes}

    def snapshot(self) -> State:
        """Plain-data state: levels as decimal strings, sequence position, buffered deltas."""
        state = state_header("OrderBook", self._params())
        state.update(
            key=self._key,
            bids=self._bids.to_plain(),
            asks=self._asks.to_plain(),
            last_update_id=self._last_update_id,
            sequenced=self._sequenced,
            awaiting_first=self._awaiting_first,
            needs_resync=self._needs_resync,
            resync_sent=self._resync_sent,
            buffer=[_delta_to_plain(d) for d in self._buffer],
            pending=[_quote_to_plain(q) for q in self._pending.values()],
            skipped_deltas=self.skipped_deltas,
            verified_quotes=self.verified_quotes,
        )
        return state

    def restore(self, state: State) -> None:
        """Load a :meth:`snapshot` of a book with the same buffer limits."""
        check_state(state, "OrderBook", self._params())
        self._key = state["key"]
        self._bids.load(_levels_from_plain(state["bids"]))
        self._asks.load(_levels_from_plain(state["asks"]))
        self._last_update_id = state["last_update_id"]
        self._sequenced = state["sequenced"]
        self._awaiting_first = state["awaiting_first"]
        self._needs_resync = state["needs_resync"]
        self._resync_sent = state["resync_sent"]
        self._buffer = deque((_delta_from_plain(d) for d in state["buffer"]), maxlen=self.max_buffer)
        quotes = [_quote_from_plain(q) for q in state["pending"]]
        self._pending = {q.sequence: q for q in quotes if q.sequence is not None}
        self.skipped_deltas = state["skipped_deltas"]
        self.verified_quotes = state["verified_quotes"]
