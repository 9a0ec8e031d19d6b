"""A paper venue: the :class:`~execution.venue.Venue` interface, filled against the real market data
it is fed (trades, book snapshots and diffs, quotes). Deterministic: no wall clock, no randomness;
the same event stream and the same orders give the same fills.

Time. The venue's clock is the newest ``ts_event`` it has been fed (never moving backwards). An
order submitted at ``now`` becomes active at ``now + latency`` (the latency model): it is matched
when the first event stamped at or after that time arrives, before that event is applied.

Market orders walk the opposite side of the L2 book level by level (one fill per level, taker fee,
slippage model applied to each level's price) and take the liquidity they used out of the local book
until the next diff rewrites those levels. What the book cannot fill expires (``no_liquidity``).
The book follows Binance's sequence rules (``execution.book``); on a gap it is unusable and market
orders are rejected (``book_unusable``) until the next snapshot: never a fill on a wrong book.

Limit orders that cross the book when they become active take liquidity like a market order up to
their price; the rest rests. Queue-position approximation for a resting order at price P:

- ``queue_ahead`` = the displayed amount on our side at P when the order became active (we join
  the back of the queue; our own order is not in the public book);
- a diff that shows less than ``queue_ahead`` at P lowers it to the displayed amount (whoever left
  was ahead of us: the optimistic reading, standard in queue models);
- a trade at exactly P by an aggressor on the other side (or of unknown side) consumes
  ``queue_ahead`` first; what is left of the trade fills us (maker fee, at P), possibly partially;
  earlier orders of ours at P take their share of the same trade first;
- a trade through P (a sell below a resting buy, a buy above a resting sell) fills the rest of the
  order whatever the trade's size: the whole queue at P was consumed before the price moved on.

Rejections a real venue gives, checked at submit: unknown symbol, unsupported order type or
reduce-only, client id too long, duplicate client id, amount or price off the step/tick grid,
amount outside the lot limits, notional below the minimum, insufficient available balance (funds
locked by resting orders are not available). Spot only: selling needs the base currency. Fees are
charged in the quote currency (Binance charges the received asset unless BNB pays; valuing them in
quote keeps one cash currency). Limit orders lock ``remaining x price x (1 + max fee)`` of quote (buys)
or the remaining base (sells); a market order locks nothing while it travels and is capped at
activation by what is then available, the rest expiring as ``insufficient_balance``. Cancels take
effect at once (no cancel latency).

>>> from datetime import timedelta
>>> from decimal import Decimal as D
>>> from core.clock import from_epoch_ms
>>> from core.events import BookSnapshot
>>> from risk.market import InstrumentRules
>>> caps = VenueCapabilities("binance", FeeSchedule(D("0.001"), D("0.002")),
...                          {"BTC/USDT": InstrumentRules(D("0.01"), D("0.001"), min_notional=D("5"))})
>>> venue = PaperVenue(caps, {"USDT": D("10000")})
>>> t = from_epoch_ms(1_000)
>>> venue.on_book_snapshot(BookSnapshot("binance", "BTC/USDT", 1, ((D("99"), D("1")),),
...                                     ((D("100"), D("0.5")), (D("101"), D("2"))), t, t))
>>> venue.submit(_example_order("b4-1", "1")).kind
<OrderEventKind.ACCEPT: 'accept'>
>>> for r in venue.poll():
...     print(r.kind.value, r.fill.price, r.fill.amount, r.fill.fee)
partial_fill 100 0.5 0.1000
fill 101 0.5 0.1010
>>> venue.balances()["BTC"], venue.balances()["USDT"]
(Decimal('1.0'), Decimal('9899.2990'))
"""

from __future__ import annotations

import heapq
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import ROUND_CEILING, ROUND_FLOOR, Decimal
from typing import Protocol

from core.clock import EPOCH
from core.events import BookDelta, BookSnapshot, Candle, Quote, Side, Trade
from core.fills import Fill, Liquidity, OrderEventKind, OrderStatus
from core.money import quantize_down, to_decimal
from core.orders import ApprovedOrder, OrderType
from core.symbols import timeframe_seconds
from execution.book import BookSide, L2Book
from execution.venue import (
    DUPLICATE_CLIENT_ORDER_ID,
    FeeSchedule,
    VenueCapabilities,
    VenueOrder,
    VenueReport,
    split_symbol,
)
from risk.market import InstrumentRules

_ZERO = Decimal(0)
_ONE = Decimal(1)
_BPS = Decimal(10_000)


class LatencyModel(Protocol):
    """How long an order takes from submit to being live in the matching engine."""

    def __call__(self, order: ApprovedOrder) -> timedelta:
        """The delay for ``order``."""


class SlippageModel(Protocol):
    """The price actually paid for taking liquidity at ``price`` (worse than or equal to it)."""

    def __call__(self, side: Side, price: Decimal, tick: Decimal) -> Decimal:
        """The execution price for a taker ``side`` at a book level priced ``price``."""


@dataclass(frozen=True, slots=True)
class FixedLatency:
    """The same delay for every order (network + matching-engine queue).

    >>> FixedLatency(timedelta(milliseconds=50))(None)  # type: ignore[arg-type]
    datetime.timedelta(microseconds=50000)
    """

    delay: timedelta = timedelta(0)

    def __call__(self, order: ApprovedOrder) -> timedelta:
        return self.delay


@dataclass(frozen=True, slots=True)
class BpsSlippage:
    """Adverse slippage of ``bps`` basis points on top of the book walk, rounded to the tick against us.

    Stands for what a recorded book cannot show: hidden queue jumps and the book moving while our
    order travels.

    >>> BpsSlippage(Decimal("1"))(Side.BUY, Decimal("61837.64"), Decimal("0.01"))
    Decimal('61843.83')
    >>> BpsSlippage(Decimal("1"))(Side.SELL, Decimal("61837.63"), Decimal("0.01"))
    Decimal('61831.44')
    """

    bps: Decimal = _ZERO

    def __call__(self, side: Side, price: Decimal, tick: Decimal) -> Decimal:
        if not self.bps:
            return price
        if side is Side.BUY:
            raw = price * (_ONE + self.bps / _BPS)
            return (raw / tick).to_integral_value(rounding=ROUND_CEILING) * tick
        raw = price * (_ONE - self.bps / _BPS)
        return (raw / tick).to_integral_value(rounding=ROUND_FLOOR) * tick


class _PaperOrder:
    """The venue's mutable record of one order."""

    __slots__ = (
        "active",
        "active_at",
        "amount",
        "approved",
        "filled",
        "fills",
        "locked",
        "price",
        "queue_ahead",
        "status",
        "venue_order_id",
    )

    def __init__(self, approved: ApprovedOrder, venue_order_id: str, active_at: datetime) -> None:
        self.approved = approved
        self.venue_order_id = venue_order_id
        self.active_at = active_at
        self.amount = approved.amount
        self.price = approved.price if approved.intent.order_type is OrderType.LIMIT else None
        self.status = OrderStatus.ACCEPTED
        self.filled = _ZERO
        self.fills: list[Fill] = []
        self.active = False
        self.queue_ahead = _ZERO
        self.locked = _ZERO

    @property
    def remaining(self) -> Decimal:
        """Amount not filled yet."""
        return self.amount - self.filled

    def record(self) -> VenueOrder:
        """An immutable copy for ``fetch_order`` / ``fetch_open_orders``."""
        intent = self.approved.intent
        return VenueOrder(
            intent.client_order_id,
            self.venue_order_id,
            intent.symbol,
            intent.side,
            intent.order_type,
            self.amount,
            self.price,
            self.status,
            self.filled,
            tuple(self.fills),
        )


class PaperVenue:
    """A simulated spot venue; the module docstring has the matching rules and an example."""

    def __init__(
        self,
        capabilities: VenueCapabilities,
        balances: Mapping[str, Decimal],
        *,
        latency: LatencyModel | None = None,
        slippage: SlippageModel | None = None,
        start: datetime = EPOCH,
    ) -> None:
        self._caps = capabilities
        self._fees: FeeSchedule = capabilities.fees
        self._lock_rate = _ONE + max(self._fees.maker, self._fees.taker, _ZERO)
        self._balances: dict[str, Decimal] = {c: to_decimal(v, name=f"balance {c}") for c, v in balances.items()}
        self._locked: dict[str, Decimal] = {}
        self._latency: LatencyModel = latency if latency is not None else FixedLatency()
        self._slippage: SlippageModel = slippage if slippage is not None else BpsSlippage()
        self._now = start
        self._books: dict[str, L2Book] = {}
        self._last_trade: dict[str, Decimal] = {}
        self._last_quote: dict[str, Quote] = {}
        self._last_candle: dict[str, Candle] = {}
        self._candle_orders: dict[str, list[_PaperOrder]] = {}
        self._orders: dict[str, _PaperOrder] = {}
        self._resting: dict[str, list[_PaperOrder]] = {}
        self._pending: list[tuple[datetime, int, str]] = []
        self._reports: list[VenueReport] = []
        self._sequence = 0

    # -- the Venue interface -------------------------------------------------------------------

    @property
    def capabilities(self) -> VenueCapabilities:
        """What this venue was configured to support."""
        return self._caps

    def submit(self, order: ApprovedOrder) -> VenueReport:
        """Accept or reject ``order`` now; an accepted order becomes active after the latency."""
        cid = order.client_order_id
        reason = self._refusal(order)
        if reason:
            return VenueReport(cid, OrderEventKind.REJECT, self._now, None, reason)
        self._sequence += 1
        paper = _PaperOrder(order, f"paper-{self._sequence}", self._now + self._latency(order))
        self._orders[cid] = paper
        if paper.price is not None:
            self._lock(paper)
        report = VenueReport(cid, OrderEventKind.ACCEPT, self._now, paper.venue_order_id)
        if self._candle_mode(order.intent.symbol):
            self._candle_orders.setdefault(order.intent.symbol, []).append(paper)
            return report
        self._activate_due()  # orders due before this one match first
        if paper.active_at <= self._now:
            paper.active = True
            self._activate(paper)
        else:
            heapq.heappush(self._pending, (paper.active_at, self._sequence, cid))
        return report

    def cancel(self, client_order_id: str) -> VenueReport:
        """Cancel at once (cancels are not delayed); refused when the order is not open."""
        paper = self._orders.get(client_order_id)
        if paper is None or paper.status.is_terminal:
            return VenueReport(client_order_id, OrderEventKind.CANCEL_REJECT, self._now, None, "order_not_open")
        self._close(paper, OrderStatus.CANCELED)
        return VenueReport(client_order_id, OrderEventKind.CANCEL, self._now, paper.venue_order_id)

    def fetch_order(self, client_order_id: str) -> VenueOrder | None:
        """The venue's record of the order (terminal ones included), with its fills; None if unknown."""
        paper = self._orders.get(client_order_id)
        return None if paper is None else paper.record()

    def fetch_open_orders(self, symbol: str | None = None) -> Sequence[VenueOrder]:
        """Orders accepted and not finished (including those still travelling to the book)."""
        return [
            p.record()
            for p in self._orders.values()
            if not p.status.is_terminal and (symbol is None or p.approved.intent.symbol == symbol)
        ]

    @property
    def has_reports(self) -> bool:
        """True when :meth:`poll` would return something (a caller can skip an empty poll).

        >>> PaperVenue(_EXAMPLE_CAPS, {"USDT": Decimal(7)}).has_reports
        False
        """
        return bool(self._reports)

    def poll(self) -> list[VenueReport]:
        """Fills and expiries produced since the last poll, in the order they happened."""
        reports, self._reports = self._reports, []
        return reports

    def balances(self) -> Mapping[str, Decimal]:
        """Total balance per currency (a copy)."""
        return dict(self._balances)

    def available(self, currency: str) -> Decimal:
        """Balance not locked by resting orders.

        >>> PaperVenue(_EXAMPLE_CAPS, {"USDT": Decimal(7)}).available("USDT")
        Decimal('7')
        """
        return self._balances.get(currency, _ZERO) - self._locked.get(currency, _ZERO)

    def positions(self) -> Mapping[str, Decimal]:
        """Base-currency holding per listed symbol (spot has no shorts).

        >>> PaperVenue(_EXAMPLE_CAPS, {"BTC": Decimal("0.5")}).positions()
        {'BTC/USDT': Decimal('0.5')}
        """
        out: dict[str, Decimal] = {}
        for symbol in self._caps.rules:
            out[symbol] = self._balances.get(split_symbol(symbol)[0], _ZERO)
        return out

    # -- market data ---------------------------------------------------------------------------

    def now(self) -> datetime:
        """The venue's event clock: the newest ``ts_event`` fed (a :class:`core.clock.Clock`)."""
        return self._now

    def book(self, symbol: str) -> L2Book:
        """The local book of ``symbol`` (created empty and unusable on first use)."""
        book = self._books.get(symbol)
        if book is None:
            book = self._books[symbol] = L2Book()
        return book

    #: The last mid computed per symbol, with the objects it came from (best bid and ask, or the
    #: quote): the account asks for the mark after every market event, and most events leave the
    #: top of book as it was. Class-level None so venues restored from older snapshots start empty.
    _mids: dict[str, tuple[object, object, Decimal]] | None = None

    def mark_price(self, symbol: str) -> Decimal | None:
        """Mid of the usable book, else of the last quote, else the last trade price, else None."""
        mids = self._mids
        if mids is None:
            mids = self._mids = {}
        cached = mids.get(symbol)
        book = self._books.get(symbol)
        if book is not None and book.usable:
            bids, asks = book.bids.prices, book.asks.prices
            if bids and asks:
                bid, ask = bids[-1], asks[0]  # BookSide keeps prices ascending: L2Book.mid's levels
                if cached is not None and cached[0] is bid and cached[1] is ask:
                    return cached[2]
                mid = (bid + ask) / 2
                mids[symbol] = (bid, ask, mid)
                return mid
        quote = self._last_quote.get(symbol)
        if quote is not None:
            if cached is not None and cached[0] is quote:
                return cached[2]
            mid = (quote.bid_price + quote.ask_price) / 2
            mids[symbol] = (quote, None, mid)
            return mid
        return self._last_trade.get(symbol)

    def on_time(self, ts: datetime) -> None:
        """Advance the clock to ``ts`` without market data (activates orders that are due)."""
        self._now = max(self._now, ts)
        self._activate_due()

    def on_trade(self, trade: Trade) -> None:
        """A public trade: activate due orders, then fill resting limit orders it reaches."""
        if trade.exchange != self._caps.exchange:
            return
        self.on_time(trade.ts_event)
        self._last_trade[trade.symbol] = trade.price
        resting = self._resting.get(trade.symbol)
        if resting:
            self._match_trade(trade, resting)

    def on_book_snapshot(self, snapshot: BookSnapshot) -> None:
        """A full book: activate due orders, then resync the book (usable again)."""
        if snapshot.exchange != self._caps.exchange:
            return
        self.on_time(snapshot.ts_event)
        book = self.book(snapshot.symbol)
        book.apply_snapshot(snapshot)
        self._shrink_queues(snapshot.symbol, book)

    def on_book_delta(self, delta: BookDelta) -> None:
        """A book diff: activate due orders, then apply it (a gap makes the book unusable)."""
        if delta.exchange != self._caps.exchange:
            return
        self.on_time(delta.ts_event)
        book = self.book(delta.symbol)
        if book.apply_delta(delta):
            self._shrink_queues(delta.symbol, book)

    def on_quote(self, quote: Quote) -> None:
        """Top of book: kept for :meth:`mark_price` (the L2 book, not the quote, is filled against)."""
        if quote.exchange != self._caps.exchange:
            return
        self.on_time(quote.ts_event)
        self._last_quote[quote.symbol] = quote

    def on_candle(self, candle: Candle) -> None:
        """A closed candle: fill the orders it reaches (candle mode), then move the clock to its close.

        Candle mode applies to a symbol with no usable book: its orders wait for the next candle
        instead of the book. An order active before a candle's end fills in that candle: a market
        order at the candle's open (the first price after the order arrived; freqtrade's rule for a
        signal on the previous close), a buy limit when the candle's low reaches its price (at the
        open if the open is already through it, as a taker; else at its price, as a maker), a sell
        limit mirrored on the high. A fill never exceeds the candle's volume; what a market order
        cannot get expires (``no_liquidity``), a limit order keeps resting.
        """
        if candle.exchange != self._caps.exchange or not candle.closed:
            return
        start = candle.ts_event
        end = start + _span(candle.timeframe)
        self.on_time(start)
        symbol = candle.symbol
        self._last_candle[symbol] = candle
        waiting = self._candle_orders.get(symbol)
        if waiting:
            volume = candle.volume
            still: list[_PaperOrder] = []
            for paper in waiting:
                if paper.status.is_terminal:
                    continue
                if paper.active_at >= end:
                    still.append(paper)
                    continue
                volume = self._fill_from_candle(paper, candle, volume, max(paper.active_at, start))
                if not paper.status.is_terminal:
                    still.append(paper)
            self._candle_orders[symbol] = still
        self._last_trade[symbol] = candle.close
        self.on_time(end)

    def _candle_mode(self, symbol: str) -> bool:
        if symbol not in self._last_candle:
            return False
        book = self._books.get(symbol)
        return book is None or not book.usable

    def _fill_from_candle(self, paper: _PaperOrder, candle: Candle, volume: Decimal, ts: datetime) -> Decimal:
        """Fill ``paper`` from ``candle`` (see :meth:`on_candle`); returns the candle volume left."""
        intent = paper.approved.intent
        buy = intent.side is Side.BUY
        rules = self._caps.rules[intent.symbol]
        limit = paper.price
        liquidity = Liquidity.TAKER
        if limit is None:
            price = self._slippage(intent.side, candle.open, rules.price_tick)
        elif (buy and candle.open <= limit) or (not buy and candle.open >= limit):
            price = candle.open
        elif (buy and candle.low <= limit) or (not buy and candle.high >= limit):
            price, liquidity = limit, Liquidity.MAKER
        else:
            return volume
        paper.active = True
        base, quote = split_symbol(intent.symbol)
        fee_rate = self._fees.maker if liquidity is Liquidity.MAKER else self._fees.taker
        amount = min(paper.remaining, quantize_down(volume, rules.amount_step))
        budget = self.available(quote if buy else base) + paper.locked
        affordable = quantize_down(budget / (price * (_ONE + max(fee_rate, _ZERO))), rules.amount_step)
        short_of_funds = (affordable if buy else budget) < amount
        if short_of_funds:
            amount = quantize_down(affordable if buy else budget, rules.amount_step)
        if amount > 0:
            self._fill(paper, price, amount, liquidity, ts)
        if paper.status.is_terminal or (limit is not None and not short_of_funds):
            return volume - max(amount, _ZERO)
        reason = "insufficient_balance" if short_of_funds else "no_liquidity"
        self._close(paper, OrderStatus.EXPIRED, reason, ts)
        return volume - max(amount, _ZERO)

    # -- checks --------------------------------------------------------------------------------

    def _refusal(self, order: ApprovedOrder) -> str:
        intent = order.intent
        caps = self._caps
        rules = caps.rules_for(intent.symbol)
        amount, price = order.amount, order.price
        limit = intent.order_type is OrderType.LIMIT
        reason = ""
        if intent.exchange != caps.exchange or rules is None:
            reason = "unknown_symbol"
        elif not caps.supports(intent.order_type):
            reason = "order_type_unsupported"
        elif intent.reduce_only and not caps.reduce_only:
            reason = "reduce_only_unsupported"
        elif len(order.client_order_id) > caps.client_id_max_length:
            reason = "client_order_id_too_long"
        elif order.client_order_id in self._orders:
            reason = DUPLICATE_CLIENT_ORDER_ID
        elif limit and (price is None or price <= 0 or price % rules.price_tick != 0):
            reason = "bad_price_precision"
        elif amount <= 0 or amount % rules.amount_step != 0:
            reason = "bad_amount_precision"
        elif amount < rules.min_amount or (rules.max_amount is not None and amount > rules.max_amount):
            reason = "amount_outside_lot_limits"
        if reason or rules is None:
            return reason
        return self._funds_refusal(order, rules)

    def _funds_refusal(self, order: ApprovedOrder, rules: InstrumentRules) -> str:
        intent = order.intent
        base, quote = split_symbol(intent.symbol)
        buy = intent.side is Side.BUY
        if order.price is not None and intent.order_type is OrderType.LIMIT:
            notional = order.amount * order.price
            cost = notional * self._lock_rate
        elif self._candle_mode(intent.symbol):
            notional = order.amount * self._last_candle[intent.symbol].close
            cost = notional * (_ONE + max(self._fees.taker, _ZERO))
        else:
            book = self._books.get(intent.symbol)
            if book is None or not book.usable:
                return "book_unusable"
            levels = _walk(book.asks if buy else book.bids, order.amount, None, buy)
            if not levels:
                return "no_liquidity"
            notional = sum((p * q for p, q in levels), _ZERO)
            cost = notional * (_ONE + max(self._fees.taker, _ZERO))
        if notional < rules.min_notional:
            return "below_min_notional"
        if buy and cost > self.available(quote):
            return "insufficient_balance"
        if not buy and order.amount > self.available(base):
            return "insufficient_balance"
        return ""

    # -- matching ------------------------------------------------------------------------------

    def _activate_due(self) -> None:
        pending = self._pending
        now = self._now
        while pending and pending[0][0] <= now:
            _, _, cid = heapq.heappop(pending)
            paper = self._orders[cid]
            if paper.status.is_terminal:
                continue  # canceled before it became active
            paper.active = True
            self._activate(paper)

    def _activate(self, paper: _PaperOrder) -> None:
        intent = paper.approved.intent
        book = self._books.get(intent.symbol)
        if book is None or not book.usable:
            self._close(paper, OrderStatus.EXPIRED, "book_unusable", paper.active_at)
            return
        buy = intent.side is Side.BUY
        short_of_funds = self._take(paper, book.asks if buy else book.bids)
        if paper.status.is_terminal:
            return
        if paper.price is None or short_of_funds:
            reason = "insufficient_balance" if short_of_funds else "no_liquidity"
            self._close(paper, OrderStatus.EXPIRED, reason, paper.active_at)
            return
        own = book.bids if buy else book.asks
        paper.queue_ahead = own.amount_at(paper.price)
        self._resting.setdefault(intent.symbol, []).append(paper)

    def _take(self, paper: _PaperOrder, side: BookSide) -> bool:
        """Take liquidity from ``side`` as a taker up to the order's limit price (market: any price).

        Returns True when the order's funds ran out before the book did.
        """
        intent = paper.approved.intent
        buy = intent.side is Side.BUY
        limit = paper.price
        tick = self._caps.rules[intent.symbol].price_tick
        step = self._caps.rules[intent.symbol].amount_step
        base, quote = split_symbol(intent.symbol)
        fee_mult = _ONE + max(self._fees.taker, _ZERO)
        budget = self.available(quote if buy else base) + paper.locked
        wanted = paper.remaining if buy else min(paper.remaining, budget)
        short_of_funds = wanted < paper.remaining
        for level_price, shown in _walk(side, wanted, limit, buy):
            price = self._slippage(intent.side, level_price, tick)
            if limit is not None:
                price = min(price, limit) if buy else max(price, limit)
            amount = shown
            if buy:
                cost = price * amount * fee_mult
                if cost > budget:
                    amount, short_of_funds = quantize_down(budget / (price * fee_mult), step), True
                    if amount <= 0:
                        break
                    cost = price * amount * fee_mult
                budget -= cost
            side.set(level_price, side.amount_at(level_price) - amount)
            self._fill(paper, price, amount, Liquidity.TAKER, paper.active_at)
            if short_of_funds and buy:
                break
        return short_of_funds

    def _match_trade(self, trade: Trade, resting: list[_PaperOrder]) -> None:
        taken: dict[Decimal, Decimal] = {}
        for paper in list(resting):
            price = paper.price
            if price is None or paper.status.is_terminal:
                continue
            buy = paper.approved.intent.side is Side.BUY
            if (trade.price < price) if buy else (trade.price > price):
                self._fill(paper, price, paper.remaining, Liquidity.MAKER, trade.ts_event)
                continue
            if trade.price != price or trade.side is paper.approved.intent.side:
                continue
            left = trade.amount - taken.get(price, _ZERO)
            ahead = paper.queue_ahead
            if ahead > 0:
                consumed = min(ahead, left)
                paper.queue_ahead = ahead - consumed
                left -= consumed
            amount = min(left, paper.remaining)
            if amount > 0:
                taken[price] = taken.get(price, _ZERO) + amount
                self._fill(paper, price, amount, Liquidity.MAKER, trade.ts_event)

    def _shrink_queues(self, symbol: str, book: L2Book) -> None:
        for paper in self._resting.get(symbol, ()):
            if paper.price is None:
                continue
            side = book.bids if paper.approved.intent.side is Side.BUY else book.asks
            shown = side.amount_at(paper.price)
            paper.queue_ahead = min(paper.queue_ahead, shown)

    # -- bookkeeping ---------------------------------------------------------------------------

    def _fill(self, paper: _PaperOrder, price: Decimal, amount: Decimal, liquidity: Liquidity, ts: datetime) -> None:
        intent = paper.approved.intent
        base, quote = split_symbol(intent.symbol)
        rate = self._fees.maker if liquidity is Liquidity.MAKER else self._fees.taker
        notional = price * amount
        fee = notional * rate
        balances = self._balances
        if intent.side is Side.BUY:
            balances[base] = balances.get(base, _ZERO) + amount
            balances[quote] = balances.get(quote, _ZERO) - notional - fee
        else:
            balances[base] = balances.get(base, _ZERO) - amount
            balances[quote] = balances.get(quote, _ZERO) + notional - fee
        paper.filled += amount
        fill = Fill(
            self._caps.exchange,
            f"{paper.venue_order_id}-{len(paper.fills) + 1}",
            intent.client_order_id,
            intent.account,
            intent.symbol,
            intent.side,
            price,
            amount,
            fee,
            quote,
            liquidity,
            ts,
        )
        paper.fills.append(fill)
        done = paper.filled >= paper.amount
        kind = OrderEventKind.FILL if done else OrderEventKind.PARTIAL_FILL
        if done:
            self._close(paper, OrderStatus.FILLED, report=False)
        else:
            paper.status = OrderStatus.PARTIALLY_FILLED
            if paper.price is not None:
                self._lock(paper)
        self._reports.append(VenueReport(intent.client_order_id, kind, ts, paper.venue_order_id, "", fill))

    def _lock(self, paper: _PaperOrder) -> None:
        """Set the funds ``paper`` holds back to what its remaining amount needs."""
        price = paper.price
        if price is None:
            return
        intent = paper.approved.intent
        base, quote = split_symbol(intent.symbol)
        currency = quote if intent.side is Side.BUY else base
        need = paper.remaining * price * self._lock_rate if intent.side is Side.BUY else paper.remaining
        self._locked[currency] = self._locked.get(currency, _ZERO) + need - paper.locked
        paper.locked = need

    def _close(
        self,
        paper: _PaperOrder,
        status: OrderStatus,
        reason: str = "",
        ts: datetime | None = None,
        *,
        report: bool = True,
    ) -> None:
        intent = paper.approved.intent
        if paper.locked:
            base, quote = split_symbol(intent.symbol)
            currency = quote if intent.side is Side.BUY else base
            self._locked[currency] -= paper.locked
            paper.locked = _ZERO
        paper.status = status
        resting = self._resting.get(intent.symbol)
        if resting is not None and paper in resting:
            resting.remove(paper)
        if report and status is OrderStatus.EXPIRED:
            when = ts if ts is not None else self._now
            self._reports.append(
                VenueReport(intent.client_order_id, OrderEventKind.EXPIRE, when, paper.venue_order_id, reason)
            )


_SPANS: dict[str, timedelta] = {}


def _span(timeframe: str) -> timedelta:
    """The length of a ``timeframe`` candle (parsed once per timeframe, not once per candle)."""
    span = _SPANS.get(timeframe)
    if span is None:
        span = _SPANS[timeframe] = timedelta(seconds=timeframe_seconds(timeframe))
    return span


def _walk(side: BookSide, amount: Decimal, limit: Decimal | None, buy: bool) -> list[tuple[Decimal, Decimal]]:
    """``(price, amount)`` taken from ``side`` for ``amount``, best price first, stopping at ``limit``."""
    out: list[tuple[Decimal, Decimal]] = []
    left = amount
    for price, shown in side.walk():
        if left <= 0:
            break
        if limit is not None and (price > limit if buy else price < limit):
            break
        take = shown if shown < left else left
        out.append((price, take))
        left -= take
    return out


_EXAMPLE_CAPS = VenueCapabilities(
    "binance",
    FeeSchedule(Decimal("0.001"), Decimal("0.002")),
    {"BTC/USDT": InstrumentRules(Decimal("0.01"), Decimal("0.001"))},
)


def _example_order(cid: str, amount: str, price: str | None = None, side: str = "buy") -> ApprovedOrder:
    """An approved BTC/USDT order for the docstring examples (through the orders.v1 record path)."""
    from risk.decisions import approved_order_from_record

    return approved_order_from_record(
        {
            "v": 1,
            "account": "acct",
            "strategy": "doc",
            "exchange": "binance",
            "symbol": "BTC/USDT",
            "side": side,
            "order_type": "market" if price is None else "limit",
            "amount": amount,
            "limit_price": price,
            "reduce_only": False,
            "client_order_id": cid,
            "ts_event": 0,
            "approved_amount": amount,
            "approved_price": price,
            "decision_id": f"rd-{cid}",
            "ts_decided": 0,
        }
    )
