"""Market-data events: immutable, typed, Decimal prices and amounts, aware-UTC times.

Every event carries ``ts_event`` (the exchange's time for it) and ``ts_recv`` (when Bot4 received
it), both aware UTC. ``symbol`` is ccxt's unified symbol (``BTC/USDT``); ``key`` is
``exchange:SYMBOL``, the Kafka key and the Bytewax routing key, so one instrument's events stay in
order on one partition and one worker.

>>> from decimal import Decimal
>>> from core.clock import from_epoch_ms
>>> t = Trade("binance", "BTC/USDT", "3735683259", Decimal("61837.63"), Decimal("0.02"),
...           Side.SELL, from_epoch_ms(1723161255342), from_epoch_ms(1723161255400))
>>> t.key, t.notional
('binance:BTC/USDT', Decimal('1236.7526'))
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal

from core.symbols import instrument_key


class Side(enum.StrEnum):
    """Aggressor side of a trade, or side of an order."""

    BUY = "buy"
    SELL = "sell"


#: One price level of a book: (price, amount). Amount 0 in a delta removes the level.
Level = tuple[Decimal, Decimal]


@dataclass(frozen=True, slots=True)
class Trade:
    """A public trade printed by an exchange. ``side`` is the aggressor side when known."""

    exchange: str
    symbol: str
    trade_id: str
    price: Decimal
    amount: Decimal
    side: Side | None
    ts_event: datetime
    ts_recv: datetime

    @property
    def key(self) -> str:
        return instrument_key(self.exchange, self.symbol)

    @property
    def notional(self) -> Decimal:
        return self.price * self.amount


@dataclass(frozen=True, slots=True)
class BookSnapshot:
    """A full L2 book at ``sequence`` (the exchange's update id), bids descending, asks ascending."""

    exchange: str
    symbol: str
    sequence: int | None
    bids: tuple[Level, ...]
    asks: tuple[Level, ...]
    ts_event: datetime
    ts_recv: datetime

    @property
    def key(self) -> str:
        return instrument_key(self.exchange, self.symbol)


@dataclass(frozen=True, slots=True)
class BookDelta:
    """Changed L2 levels covering update ids ``first_sequence..sequence`` (inclusive).

    A delta applies to a book whose last applied update id is ``first_sequence - 1`` (or, for
    Binance, any id inside the range); anything else is a gap and the book must resync.
    """

    exchange: str
    symbol: str
    first_sequence: int | None
    sequence: int | None
    bids: tuple[Level, ...]
    asks: tuple[Level, ...]
    ts_event: datetime
    ts_recv: datetime

    @property
    def key(self) -> str:
        return instrument_key(self.exchange, self.symbol)


@dataclass(frozen=True, slots=True)
class Quote:
    """Best bid and offer (top of book), e.g. Binance ``bookTicker`` or a Tardis quote row."""

    exchange: str
    symbol: str
    bid_price: Decimal
    bid_amount: Decimal
    ask_price: Decimal
    ask_amount: Decimal
    ts_event: datetime
    ts_recv: datetime
    sequence: int | None = None

    @property
    def key(self) -> str:
        return instrument_key(self.exchange, self.symbol)


@dataclass(frozen=True, slots=True)
class Candle:
    """An OHLCV candle of ``timeframe`` (``1m``, ``5m``, ``1h``...). ``ts_event`` is its open time.

    ``closed`` is False for a still-forming candle streamed by a websocket.
    """

    exchange: str
    symbol: str
    timeframe: str
    open: Decimal
    high: Decimal
    low: Decimal
    close: Decimal
    volume: Decimal
    ts_event: datetime
    ts_recv: datetime
    closed: bool = True

    @property
    def key(self) -> str:
        return instrument_key(self.exchange, self.symbol)


MarketEvent = Trade | BookSnapshot | BookDelta | Quote | Candle
