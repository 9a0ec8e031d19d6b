"""An L2 order book kept from a snapshot plus diffs, with Binance's sequence rules.

Rules (Binance spot "how to manage a local order book"): after a snapshot with update id ``L``,
diffs with ``u <= L`` are already in it and are dropped; the first diff applied must straddle
``L + 1`` (``U <= L + 1 <= u``); every later diff must start at the previous ``u + 1``. Anything
else is a gap: the book is marked unusable and stays so until the next snapshot. A paper venue
never fills on an unusable book. Diffs that arrive while the book waits for a snapshot are buffered
(the last ``buffer`` of them) and replayed on the snapshot under the same rules: Binance's procedure
is "buffer the stream, fetch the snapshot, apply the buffered diffs newer than it", and recorders
write those diffs before the snapshot line.

>>> from decimal import Decimal as D
>>> from core.clock import from_epoch_ms
>>> from core.events import BookDelta, BookSnapshot
>>> t = from_epoch_ms(0)
>>> book = L2Book()
>>> book.apply_snapshot(BookSnapshot("binance", "BTC/USDT", 10, ((D(99), D(1)),), ((D(101), D(2)),), t, t))
>>> book.apply_delta(BookDelta("binance", "BTC/USDT", 9, 11, (), ((D(101), D(0)), (D(102), D(3))), t, t))
True
>>> book.best_ask(), book.usable
((Decimal('102'), Decimal('3')), True)
>>> book.apply_delta(BookDelta("binance", "BTC/USDT", 13, 14, (), (), t, t))
False
>>> book.usable, book.problem
(False, 'gap: diff 13..14 after update id 11')
"""

from __future__ import annotations

from bisect import bisect_left, insort
from collections import deque
from collections.abc import Iterator
from decimal import Decimal

from core.events import BookDelta, BookSnapshot, Level

_ZERO = Decimal(0)


class BookSide:
    """One side of the book: amount per price, and the prices kept sorted ascending.

    >>> side = BookSide(descending=True)
    >>> side.set(Decimal(1), Decimal(5)); side.set(Decimal(2), Decimal(1))
    >>> list(side.walk())
    [(Decimal('2'), Decimal('1')), (Decimal('1'), Decimal('5'))]
    """

    __slots__ = ("descending", "levels", "prices")

    def __init__(self, *, descending: bool) -> None:
        self.descending = descending
        self.levels: dict[Decimal, Decimal] = {}
        self.prices: list[Decimal] = []

    def set(self, price: Decimal, amount: Decimal) -> None:
        """Set the displayed amount at ``price``; 0 removes the level."""
        levels = self.levels
        if amount <= 0:
            if price in levels:
                del levels[price]
                prices = self.prices
                del prices[bisect_left(prices, price)]
            return
        if price not in levels:
            insort(self.prices, price)
        levels[price] = amount

    def replace(self, levels: tuple[Level, ...]) -> None:
        """Replace every level (a snapshot)."""
        self.levels = {p: a for p, a in levels if a > 0}
        self.prices = sorted(self.levels)

    def amount_at(self, price: Decimal) -> Decimal:
        """Displayed amount at ``price`` (0 when there is no level)."""
        return self.levels.get(price, _ZERO)

    def best(self) -> Level | None:
        """The best level (highest bid / lowest ask), or None when the side is empty."""
        if not self.prices:
            return None
        price = self.prices[-1] if self.descending else self.prices[0]
        return price, self.levels[price]

    def walk(self) -> Iterator[Level]:
        """Levels from the best price outwards."""
        levels = self.levels
        prices = reversed(self.prices) if self.descending else iter(self.prices)
        for price in prices:
            yield price, levels[price]

    def __len__(self) -> int:
        return len(self.prices)


class L2Book:
    """A local L2 book for one instrument; the module docstring shows the sequence rules at work."""

    __slots__ = ("_awaiting_first", "_buffer", "asks", "bids", "last_update_id", "problem")

    def __init__(self, buffer: int = 1000) -> None:
        self.bids = BookSide(descending=True)
        self.asks = BookSide(descending=False)
        self.last_update_id: int | None = None
        self.problem: str | None = "no snapshot yet"
        self._awaiting_first = False
        self._buffer: deque[BookDelta] = deque(maxlen=buffer)

    @property
    def usable(self) -> bool:
        """True when the book is synced and can be filled against."""
        return self.problem is None

    def apply_snapshot(self, snapshot: BookSnapshot) -> None:
        """Replace the book with ``snapshot`` and replay the diffs buffered while waiting for it."""
        self.bids.replace(snapshot.bids)
        self.asks.replace(snapshot.asks)
        self.last_update_id = snapshot.sequence
        self._awaiting_first = snapshot.sequence is not None
        self.problem = None
        buffered = list(self._buffer)
        self._buffer.clear()
        for delta in buffered:
            self.apply_delta(delta)

    def apply_delta(self, delta: BookDelta) -> bool:
        """Apply one diff; True if it changed the book, False if dropped (stale), buffered (no
        snapshot yet) or refused (gap)."""
        if self.problem is not None:
            self._buffer.append(delta)
            return False
        last, first, final = self.last_update_id, delta.first_sequence, delta.sequence
        if last is not None:
            if first is None or final is None:
                self.problem = "diff without update ids on a sequenced book"
                return False
            if final <= last:
                return False  # already contained in the snapshot
            in_order = first <= last + 1 if self._awaiting_first else first == last + 1
            if not in_order:
                self.problem = f"gap: diff {first}..{final} after update id {last}"
                return False
        zero = _ZERO
        for side, changes in ((self.bids, delta.bids), (self.asks, delta.asks)):
            # BookSide.set inlined: a diff carries dozens of levels and every one passes here.
            levels, prices = side.levels, side.prices
            for price, amount in changes:
                if amount <= zero:
                    if price in levels:
                        del levels[price]
                        del prices[bisect_left(prices, price)]
                elif price in levels:
                    levels[price] = amount
                else:
                    insort(prices, price)
                    levels[price] = amount
        self.last_update_id = final
        self._awaiting_first = False
        return True

    def best_bid(self) -> Level | None:
        """Highest bid ``(price, amount)``, or None."""
        return self.bids.best()

    def best_ask(self) -> Level | None:
        """Lowest ask ``(price, amount)``, or None."""
        return self.asks.best()

    def mid(self) -> Decimal | None:
        """Mid price, or None when a side is empty.

        >>> L2Book().mid() is None
        True
        """
        bid, ask = self.bids.best(), self.asks.best()
        if bid is None or ask is None:
            return None
        return (bid[0] + ask[0]) / 2
