"""Live market data from exchanges through the real ccxt.pro client, as Bot4 events.

One :class:`ExchangeMarketData` serves one exchange and a set of symbols::

    config = ExchangeMarketDataConfig(exchange="binance", symbols=("BTC/USDT",), channels=("trades",))
    async with ExchangeMarketData(config, clock=SystemClock()) as md:
        async with contextlib.aclosing(md.records()) as records:
            async for record in records:
                ...

Output contract of :meth:`ExchangeMarketData.records` (an async iterator; there is no callback):

- market events: :class:`~core.events.Trade`, :class:`~core.events.BookSnapshot`,
  :class:`~core.events.Candle`, in exchange order per ``(channel, symbol)``; channels and symbols are
  interleaved. Prices and amounts are ``Decimal``: from the exchange's raw text in ccxt's ``info``
  where it keeps one (Binance ``p``/``q`` and ``price``/``qty``, Coinbase ``price``/``size``), else
  from ccxt's float through its shortest repr (books and candles, which ccxt stores as floats).
  ``ts_event`` is the exchange's time, ``ts_recv`` the injected clock's time when ccxt handed the
  data over; a book with no exchange time (a fresh REST snapshot) takes ``ts_recv``.
- records about the feed, in the same stream at the point they happen: :class:`GapDetected`
  (numeric trade ids that skip, a reconnect on a venue without contiguous ids, missing candles),
  always followed by exactly one :class:`GapBackfilled` saying how many were filled by REST and
  why the rest could not be; :class:`BookResynced` when the order book was rebuilt from a fresh
  snapshot (ccxt.pro does the rebuilding: after a sequence gap it raises ``ChecksumError`` and
  re-subscribes, after a reconnect it fetches a new snapshot); :class:`FeedStatus` on every
  transport change (connected, reconnecting with its delay, REST fallback, halted); and
  :class:`Quarantined` for one malformed item (the caller sends it to the DLQ).
- every trade is emitted once: websocket, REST polling and backfill share one
  :class:`TradeCursor` per symbol (last id for venues with contiguous numeric ids, else last time
  plus the ids seen at that time). :attr:`ExchangeMarketData.stats` counts what happened.
- a condition that needs a person (authentication, an unknown exchange error) or a wrong setting
  ends the iterator with :class:`~core.errors.HaltAndAlert` / :class:`~core.errors.ConfigError`
  after a ``FeedStatus(state=HALTED)`` record.

Transport: each ``(channel, symbol)`` watches over the websocket; a transient failure
(:class:`RetryExchangeRead`) waits an exponential backoff with jitter (``backoff_initial_s`` ..
``backoff_max_s``, injectable RNG and sleep) and re-watches, honouring Retry-After when the venue
sends one, even beyond the cap. After ``ws_failures_before_rest`` failures in a row it polls REST
every ``poll_interval_s`` and tries the websocket again after ``ws_retry_interval_s``. REST reads
are retried the same way up to ``rest_max_attempts``. ccxt errors are translated in ONE place,
:func:`translate_ccxt_error`, most specific first.

Binance trade history by id (``historicalTrades?fromId=``) needs a read-only API key (ccxt refuses
the call without one). With ``api_key`` set, backfill and polling page by id and fill every gap the
exchange still has; without it they can only use the most recent ``rest_page_limit`` trades
(``/api/v3/trades``), and a gap older than that window is reported as unfilled. Binance's
time-based trade endpoint (``aggTrades``) returns aggregate ids, which would break the id cursor, so
it is not used.
"""

from __future__ import annotations

import asyncio
import contextvars
import enum
import logging
import secrets
from collections import Counter
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from dataclasses import dataclass, field, replace
from datetime import datetime
from decimal import Decimal
from typing import Any, Literal, TypeVar
from urllib.parse import urlsplit

import ccxt
import ccxt.pro
import orjson
from pydantic import Field, SecretStr, field_validator, model_validator

from core.clock import Clock, from_epoch_ms, to_epoch_us
from core.config import StrictConfig
from core.errors import Bot4Error, ConfigError, HaltAndAlert, QuarantineRecord, RetryLater
from core.events import BookSnapshot, Candle, Level, Side, Trade
from core.money import float_to_decimal, to_decimal
from core.symbols import timeframe_seconds

# Retry-After parsing and backoff are shared with the order venue (execution may not import flows).
from execution.ccxt_errors import Backoff, Rng, parse_retry_after

log = logging.getLogger(__name__)

T = TypeVar("T")
Channel = Literal["trades", "book", "candles"]
ExchangeId = Literal["binance", "kraken", "coinbase", "coinbaseexchange"]
Transport = Literal["websocket", "rest"]


Sleep = Callable[[float], Awaitable[None]]


# ----------------------------------------------------------------------------------------------
# Settings


class ExchangeMarketDataConfig(StrictConfig):
    """Settings of one exchange's market-data client. Durations in seconds unless named ``_ms``.

    ``api_urls_override`` points the client at a mirror (tests, a local proxy): ``{"http":
    "http://127.0.0.1:8080", "ws": "ws://127.0.0.1:8080"}`` replaces the scheme, host and port of
    every URL in ccxt's ``urls['api']`` and keeps the paths.
    """

    exchange: ExchangeId
    symbols: tuple[str, ...] = Field(min_length=1)
    channels: tuple[Channel, ...] = Field(default=("trades",), min_length=1)
    timeframe: str = "1m"
    book_depth: int = Field(default=20, ge=1, le=5000)
    transport: Literal["auto", "websocket", "rest"] = "auto"
    backoff_initial_s: float = Field(default=0.5, gt=0)
    backoff_max_s: float = Field(default=30.0, gt=0)
    backoff_multiplier: float = Field(default=2.0, ge=1)
    backoff_jitter: float = Field(default=0.2, ge=0, le=1)
    ws_failures_before_rest: int = Field(default=3, ge=1)
    ws_retry_interval_s: float = Field(default=60.0, gt=0)
    poll_interval_s: float = Field(default=2.0, gt=0)
    rest_page_limit: int = Field(default=1000, ge=1, le=1000)
    rest_max_attempts: int = Field(default=5, ge=1)
    max_backfill_trades: int = Field(default=100_000, ge=0)
    request_timeout_ms: int = Field(default=10_000, ge=100)
    api_key: SecretStr | None = None
    api_urls_override: dict[str, str] | None = None

    @field_validator("symbols")
    @classmethod
    def _unified_unique_symbols(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        for symbol in value:
            base, sep, quote = symbol.partition("/")
            if not sep or not base or not quote:
                raise ValueError(f"symbol {symbol!r} is not a ccxt unified symbol like 'BTC/USDT'")
        if len(set(value)) != len(value):
            raise ValueError(f"symbols must be unique, got {value}")
        return value

    @field_validator("channels")
    @classmethod
    def _unique_channels(cls, value: tuple[Channel, ...]) -> tuple[Channel, ...]:
        if len(set(value)) != len(value):
            raise ValueError(f"channels must be unique, got {value}")
        return value

    @field_validator("timeframe")
    @classmethod
    def _known_timeframe(cls, value: str) -> str:
        timeframe_seconds(value)
        return value

    @field_validator("api_urls_override")
    @classmethod
    def _origins_only(cls, value: dict[str, str] | None) -> dict[str, str] | None:
        if value is None:
            return None
        schemes = {"http": ("http", "https"), "ws": ("ws", "wss")}
        if set(value) != set(schemes):
            raise ValueError(f"api_urls_override needs exactly the keys 'http' and 'ws', got {sorted(value)}")
        for key, url in value.items():
            parts = urlsplit(url)
            if parts.scheme not in schemes[key] or not parts.netloc or parts.path not in ("", "/"):
                raise ValueError(
                    f"api_urls_override[{key!r}]={url!r} must be an origin like "
                    f"'{schemes[key][0]}://127.0.0.1:8080' (scheme {schemes[key]}, no path)"
                )
        return value

    @model_validator(mode="after")
    def _backoff_bounds(self) -> ExchangeMarketDataConfig:
        if self.backoff_max_s < self.backoff_initial_s:
            raise ValueError(
                f"backoff_max_s={self.backoff_max_s} must be >= backoff_initial_s={self.backoff_initial_s}"
            )
        return self


# ----------------------------------------------------------------------------------------------
# Records emitted besides the market events


class FeedState(enum.StrEnum):
    CONNECTED = "connected"
    RECONNECTING = "reconnecting"
    REST_FALLBACK = "rest_fallback"
    HALTED = "halted"


@dataclass(frozen=True, slots=True)
class FeedStatus:
    """The transport of one ``(channel, symbol)`` changed; ``retry_in_s`` is the backoff chosen."""

    exchange: str
    symbol: str
    channel: Channel
    state: FeedState
    transport: Transport | None
    reason: str
    attempt: int
    retry_in_s: float | None
    ts_recv: datetime


GapKind = Literal["trade_id", "trade_time", "candle_time"]


@dataclass(frozen=True, slots=True)
class GapDetected:
    """Records the exchange printed that this client did not receive.

    ``trade_id``: ids ``from_id..to_id`` (inclusive) are missing, ``missing`` of them.
    ``trade_time``: after a reconnect on a venue without contiguous ids, trades between ``after``
    and ``before`` may be missing (count unknown). ``candle_time``: candles opening ``after`` +
    one timeframe .. ``before`` - one timeframe are missing, ``missing`` of them.
    """

    exchange: str
    symbol: str
    kind: GapKind
    from_id: int | None
    to_id: int | None
    missing: int | None
    after: datetime | None
    before: datetime | None
    ts_recv: datetime


@dataclass(frozen=True, slots=True)
class GapBackfilled:
    """Outcome of filling one :class:`GapDetected` by REST; ``reason`` says why some stayed missing."""

    gap: GapDetected
    filled: int
    unfilled: int | None
    reason: str | None
    ts_recv: datetime


@dataclass(frozen=True, slots=True)
class BookResynced:
    """The order book was rebuilt from a fresh snapshot (``reason``: sequence_gap, reconnect, rest)."""

    exchange: str
    symbol: str
    reason: str
    sequence: int | None
    ts_recv: datetime


@dataclass(frozen=True, slots=True)
class Quarantined:
    """One item the exchange sent that is unusable; ``raw`` is ccxt's structure as JSON bytes."""

    exchange: str
    symbol: str
    channel: Channel
    reason: str
    detail: str
    raw: bytes
    ts_recv: datetime


MarketDataRecord = Trade | BookSnapshot | Candle | GapDetected | GapBackfilled | BookResynced | FeedStatus | Quarantined


@dataclass
class MarketDataStats:
    """Counters over the client's life (bounded keys: channel names, retry reasons)."""

    events: Counter[str] = field(default_factory=Counter)
    retries: Counter[str] = field(default_factory=Counter)
    gaps_detected: int = 0
    trades_missing: int = 0
    trades_backfilled: int = 0
    trades_unfilled: int = 0
    candles_missing: int = 0
    duplicates_dropped: int = 0
    reconnects: int = 0
    rest_fallbacks: int = 0
    book_resyncs: int = 0
    quarantined: int = 0


# ----------------------------------------------------------------------------------------------
# Errors: the one place where ccxt exceptions become Bot4 actions


class RetryExchangeRead(RetryLater):
    """A transient failure of an idempotent exchange read: back off (or wait Retry-After) and retry.

    ``reason`` is one of rate_limited, timeout, maintenance, unavailable, network, bad_response,
    operation_failed, book_out_of_sync.
    """

    def __init__(self, message: str, *, reason: str, retry_after_s: float | None = None) -> None:
        super().__init__(message, retry_after_s)
        self.reason = reason


def translate_ccxt_error(
    exc: BaseException,
    *,
    exchange: str,
    operation: str,
    retry_after_s: float | None = None,
    http_status: int | None = None,
) -> Bot4Error:
    """Map a ccxt (or transport) exception to what must be done about it, most specific first.

    ``http_status`` (of the response that failed, when there was one) decides only for ccxt's
    generic ``ExchangeError``: ccxt raises that for error codes it does not map, e.g. Binance spot
    answering 503 with ``{"code": -1008}`` (server busy), and a 5xx or 429 is transient whatever
    the body says.

    >>> translate_ccxt_error(ccxt.DDoSProtection("429"), exchange="binance", operation="fetch_trades",
    ...                      retry_after_s=2.0).retry_after_s
    2.0
    >>> type(translate_ccxt_error(ccxt.BadSymbol("x"), exchange="binance", operation="watch_trades")).__name__
    'ConfigError'
    """
    where = f"{exchange} {operation}"

    def retry(reason: str) -> RetryExchangeRead:
        return RetryExchangeRead(f"{where}: {reason}: {exc}", reason=reason, retry_after_s=retry_after_s)

    if isinstance(exc, ccxt.InvalidNonce):  # ChecksumError included: the local book lost its sequence
        return retry("book_out_of_sync")
    if isinstance(exc, ccxt.RateLimitExceeded | ccxt.DDoSProtection):
        return retry("rate_limited")
    if isinstance(exc, ccxt.RequestTimeout | TimeoutError):
        return retry("timeout")
    if isinstance(exc, ccxt.OnMaintenance):
        return retry("maintenance")
    if isinstance(exc, ccxt.ExchangeNotAvailable):
        return retry("unavailable")
    if isinstance(exc, ccxt.NetworkError | ConnectionError | OSError):
        return retry("network")
    if isinstance(exc, ccxt.BadResponse):  # NullResponse included
        return retry("bad_response")
    if isinstance(exc, ccxt.OperationFailed):  # ccxt's base of temporary failures (e.g. Binance -1001, -1008)
        return retry("operation_failed")
    if isinstance(exc, ccxt.BadSymbol | ccxt.NotSupported | ccxt.ArgumentsRequired):
        return ConfigError(f"{where}: {type(exc).__name__}: {exc}")
    if isinstance(exc, ccxt.AuthenticationError):
        return HaltAndAlert(
            f"{where}: authentication refused: {exc}",
            operator_action=f"Check the {exchange} API key (api_key) and its IP whitelist, then restart the ingest.",
        )
    if type(exc) is ccxt.ExchangeError and http_status is not None:
        if http_status in (418, 429):
            return retry("rate_limited")
        if http_status >= 500:
            return retry("unavailable")
    return HaltAndAlert(
        f"{where} failed with {type(exc).__name__}: {exc}",
        operator_action=(
            f"Read the {exchange} error above; if the venue changed its API, pin or upgrade ccxt, "
            "then restart the ingest. Market data for this venue is stale until then."
        ),
    )


@dataclass
class _ResponseNote:
    status: int | None = None
    headers: Mapping[str, str] | None = None


# ccxt does not put response headers on its exceptions. The client class records the last
# response of the current call into the note installed here (a mutable object, so calls that
# ccxt runs in gathered tasks, like load_markets, still write into the caller's note).
_LAST_RESPONSE: contextvars.ContextVar[_ResponseNote | None] = contextvars.ContextVar(
    "bot4_ccxt_last_response", default=None
)


# ----------------------------------------------------------------------------------------------
# The ccxt client


@dataclass(frozen=True)
class _Venue:
    contiguous_trade_ids: bool  # trade ids are integers that rise by one per trade and symbol
    options: Mapping[str, Any]  # ccxt options that keep load_markets to what market data needs


_VENUES: dict[str, _Venue] = {
    "binance": _Venue(True, {"fetchMarkets": {"types": ["spot"]}, "fetchCurrencies": False, "fetchMargins": False}),
    # Coinbase Exchange match ids rise by one per product; Coinbase Advanced's and Kraken's
    # trade ids carry no such promise.
    "coinbaseexchange": _Venue(True, {"fetchCurrencies": False}),
    # coinbase reads options['fetchMarkets'] as a method name ('fetchMarketsV3'), not a type list.
    "coinbase": _Venue(False, {"fetchCurrencies": False}),
    "kraken": _Venue(False, {"fetchCurrencies": False}),
}


def rewrite_api_urls(urls: Any, override: Mapping[str, str]) -> Any:
    """Point every URL of ccxt's ``urls['api']`` (nested) at the override origins, keeping paths.

    >>> rewrite_api_urls({"public": "https://api.binance.com/api/v3",
    ...                   "ws": {"spot": "wss://stream.binance.com:9443/ws"}},
    ...                  {"http": "http://127.0.0.1:8080", "ws": "ws://127.0.0.1:8080"})
    {'public': 'http://127.0.0.1:8080/api/v3', 'ws': {'spot': 'ws://127.0.0.1:8080/ws'}}
    """
    if isinstance(urls, dict):
        return {key: rewrite_api_urls(value, override) for key, value in urls.items()}
    if not isinstance(urls, str):
        return urls
    parts = urlsplit(urls)
    if parts.scheme in ("ws", "wss"):
        origin = override["ws"]
    elif parts.scheme in ("http", "https"):
        origin = override["http"]
    else:
        return urls
    return origin.rstrip("/") + parts.path + (f"?{parts.query}" if parts.query else "")


def _client_class(exchange_id: str) -> type:
    base: Any = getattr(ccxt.pro, exchange_id)

    def on_rest_response(  # noqa: PLR0917 - ccxt calls its hook positionally
        self: Any,
        code: int,
        reason: str,
        url: str,
        method: str,
        response_headers: Mapping[str, str],
        response_body: str,
        request_headers: Any,
        request_body: Any,
    ) -> Any:
        note = _LAST_RESPONSE.get()
        if note is not None:
            note.status, note.headers = code, response_headers
        return base.on_rest_response(
            self, code, reason, url, method, response_headers, response_body, request_headers, request_body
        )

    return type(f"{base.__name__}_bot4", (base,), {"on_rest_response": on_rest_response})


def build_ccxt_client(config: ExchangeMarketDataConfig) -> Any:
    """The ccxt.pro client for ``config.exchange``, restricted to spot markets, URLs overridden."""
    venue = _VENUES[config.exchange]
    settings: dict[str, Any] = {
        "enableRateLimit": True,
        "timeout": config.request_timeout_ms,
        "options": dict(venue.options),
        # kraken and coinbaseexchange ignore options['fetchCurrencies']; market data needs no
        # currency list, so load_markets must not ask for one.
        "has": {"fetchCurrencies": False},
    }
    if config.api_key is not None:
        settings["apiKey"] = config.api_key.get_secret_value()
    client = _client_class(config.exchange)(settings)
    if config.api_urls_override is not None:
        client.urls["api"] = rewrite_api_urls(client.urls["api"], config.api_urls_override)
    return client


# ----------------------------------------------------------------------------------------------
# Normalization: ccxt structures -> core events


_PRICE_KEYS = ("p", "price", "px")
_AMOUNT_KEYS = ("q", "qty", "size", "amount", "volume")


def _exact_decimal(info: Any, keys: tuple[str, ...], index: int, parsed: Any, name: str) -> Decimal:
    """The exchange's own decimal text from ccxt's ``info`` if it agrees with ccxt's parsed value."""
    text = None
    if isinstance(info, Mapping):
        text = next((info[k] for k in keys if isinstance(info.get(k), str) and info[k]), None)
    elif isinstance(info, list | tuple) and len(info) > index and isinstance(info[index], str):
        text = info[index]
    numeric = isinstance(parsed, int | float) and not isinstance(parsed, bool)
    if text is not None:
        try:
            exact = to_decimal(text, name=name)
        except (TypeError, ValueError):
            exact = None
        if exact is not None and (not numeric or float(exact) == float(parsed)):
            return exact
    if numeric:
        return float_to_decimal(float(parsed), name=name)
    raise QuarantineRecord(f"{name}_missing", f"no {name} in ccxt's trade (parsed={parsed!r})")


def trade_from_ccxt(exchange: str, symbol: str, raw: Mapping[str, Any], ts_recv: datetime) -> Trade:
    """A ccxt trade structure as a :class:`Trade`; a malformed one raises :class:`QuarantineRecord`.

    >>> from core.clock import from_epoch_ms
    >>> t = trade_from_ccxt("binance", "BTC/USDT", {
    ...     "id": "3735683259", "timestamp": 1723161255342, "side": "sell", "price": 61837.63,
    ...     "amount": 0.02, "info": {"p": "61837.63000000", "q": "0.02000000"}}, from_epoch_ms(0))
    >>> t.price, t.amount, t.side.value
    (Decimal('61837.63000000'), Decimal('0.02000000'), 'sell')
    """
    trade_id = raw.get("id")
    if trade_id is None or str(trade_id) == "":
        raise QuarantineRecord("trade_id_missing", "the trade has no id")
    timestamp = raw.get("timestamp")
    if not isinstance(timestamp, int) or isinstance(timestamp, bool):
        raise QuarantineRecord("timestamp_missing", f"trade {trade_id} has no integer timestamp: {timestamp!r}")
    info = raw.get("info")
    price = _exact_decimal(info, _PRICE_KEYS, 0, raw.get("price"), "price")
    amount = _exact_decimal(info, _AMOUNT_KEYS, 1, raw.get("amount"), "amount")
    side_raw = raw.get("side")
    side = Side(side_raw) if side_raw in ("buy", "sell") else None
    return Trade(exchange, symbol, str(trade_id), price, amount, side, from_epoch_ms(timestamp), ts_recv)


def _level(entry: Any) -> Level:
    return (float_to_decimal(float(entry[0]), name="price"), float_to_decimal(float(entry[1]), name="amount"))


def book_from_ccxt(exchange: str, symbol: str, book: Mapping[str, Any], depth: int, ts_recv: datetime) -> BookSnapshot:
    """A ccxt order book (float levels) as a :class:`BookSnapshot` of ``depth`` levels per side."""
    timestamp = book.get("timestamp")
    nonce = book.get("nonce")
    return BookSnapshot(
        exchange,
        symbol,
        int(nonce) if isinstance(nonce, int | str) and str(nonce).isdigit() else None,
        tuple(_level(e) for e in list(book.get("bids") or [])[:depth]),
        tuple(_level(e) for e in list(book.get("asks") or [])[:depth]),
        from_epoch_ms(timestamp) if isinstance(timestamp, int) else ts_recv,
        ts_recv,
    )


def candle_from_ccxt(
    exchange: str, symbol: str, timeframe: str, row: list[Any], *, closed: bool, ts_recv: datetime
) -> Candle:
    """A ccxt OHLCV row ``[open ms, o, h, l, c, v]`` (floats) as a :class:`Candle`."""
    if len(row) < 6 or not isinstance(row[0], int) or any(v is None for v in row[1:5]):
        raise QuarantineRecord("ohlcv_malformed", f"OHLCV row {row!r} is not [ms, o, h, l, c, v]")
    o, h, lo, c = (float_to_decimal(float(v), name="price") for v in row[1:5])
    volume = float_to_decimal(float(row[5]), name="volume") if row[5] is not None else Decimal(0)
    return Candle(exchange, symbol, timeframe, o, h, lo, c, volume, from_epoch_ms(row[0]), ts_recv, closed)


def _epoch_ms(value: datetime) -> int:
    return to_epoch_us(value) // 1000


@dataclass
class TradeCursor:
    """The last trade emitted for one symbol: decides what is new, so each trade goes out once.

    With contiguous numeric ids the id decides; otherwise the time, plus the ids already seen at
    that exact time (several trades share a millisecond).

    >>> from core.clock import from_epoch_ms
    >>> def t(i: str, ms: int) -> Trade:
    ...     return Trade("x", "A/B", i, Decimal(1), Decimal(1), None, from_epoch_ms(ms), from_epoch_ms(ms))
    >>> c = TradeCursor(numeric_ids=False)
    >>> c.advance(t("a", 5)); c.is_new(t("a", 5)), c.is_new(t("b", 5)), c.is_new(t("c", 4))
    (False, True, False)
    """

    numeric_ids: bool
    last_id: int | None = None
    last_ts: datetime | None = None
    ids_at_last_ts: set[str] = field(default_factory=set)

    def is_new(self, trade: Trade) -> bool:
        if self.numeric_ids and self.last_id is not None:
            return int(trade.trade_id) > self.last_id
        if self.last_ts is None or trade.ts_event > self.last_ts:
            return True
        return trade.ts_event == self.last_ts and trade.trade_id not in self.ids_at_last_ts

    def advance(self, trade: Trade) -> None:
        if self.numeric_ids:
            self.last_id = int(trade.trade_id)
        if trade.ts_event != self.last_ts:
            self.last_ts = trade.ts_event
            self.ids_at_last_ts.clear()
        self.ids_at_last_ts.add(trade.trade_id)


@dataclass(frozen=True, slots=True)
class _Failed:
    error: BaseException


# ----------------------------------------------------------------------------------------------
# The client


class ExchangeMarketData:
    """Market data of one exchange for ``config.symbols`` and ``config.channels``.

    ``clock`` stamps ``ts_recv``; ``sleep`` and ``rng`` drive backoff and polling (inject them to
    test time); nothing here reads the wall clock for event time.
    """

    def __init__(
        self,
        config: ExchangeMarketDataConfig,
        *,
        clock: Clock,
        sleep: Sleep = asyncio.sleep,
        rng: Rng | None = None,
    ) -> None:
        self.config = config
        self.exchange_id: str = config.exchange
        self.stats = MarketDataStats()
        self._clock = clock
        self._sleep = sleep
        # Jitter only needs unpredictability, not reproducibility; tests inject their own rng.
        self._rng: Rng = rng if rng is not None else secrets.SystemRandom()
        self._venue = _VENUES[config.exchange]
        self._client: Any = None
        self._tasks: set[asyncio.Task[None]] = set()
        self._timeframe_ms = timeframe_seconds(config.timeframe) * 1000

    # -- lifecycle ---------------------------------------------------------------------------

    async def __aenter__(self) -> ExchangeMarketData:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    async def start(self) -> None:
        """Build the ccxt client and load the venue's markets; unknown symbols fail here."""
        if self._client is None:
            self._client = build_ccxt_client(self.config)
        try:
            markets = await self.load_markets()
        except BaseException:
            await self.close()  # __aexit__ does not run when __aenter__ raises
            raise
        unknown = [s for s in self.config.symbols if s not in markets]
        if unknown:
            await self.close()
            raise ConfigError(
                f"{self.exchange_id} does not list {unknown}; it lists {len(markets)} markets "
                f"(e.g. {sorted(markets)[:5]})"
            )

    async def close(self) -> None:
        for task in list(self._tasks):
            task.cancel()
        if self._tasks:
            await asyncio.gather(*self._tasks, return_exceptions=True)
        self._tasks.clear()
        if self._client is not None:
            await self._client.close()
            self._client = None

    @property
    def client(self) -> Any:
        """The underlying ccxt.pro exchange (after :meth:`start`)."""
        if self._client is None:
            raise RuntimeError("ExchangeMarketData is not started: use 'async with' or await start()")
        return self._client

    # -- calling ccxt --------------------------------------------------------------------------

    async def _guard(self, operation: str, call: Callable[[], Awaitable[T]]) -> T:
        """Run one ccxt call; translate what it raises (with the Retry-After it answered with)."""
        note = _ResponseNote()
        token = _LAST_RESPONSE.set(note)
        try:
            return await call()
        except asyncio.CancelledError:
            task = asyncio.current_task()
            if task is None or task.cancelling():
                raise  # we are being cancelled
            # ccxt.pro cancelled the pending watch itself (its connection closed under it); left
            # alone this would end the stream's task silently.
            raise RetryExchangeRead(
                f"{self.exchange_id} {operation}: ccxt cancelled the pending call", reason="network"
            ) from None
        except (ccxt.BaseError, OSError) as exc:  # OSError includes TimeoutError, ConnectionError
            headers = {k.lower(): v for k, v in (note.headers or {}).items()}
            retry_after = parse_retry_after(headers.get("retry-after"), self._clock.now())
            raise translate_ccxt_error(
                exc,
                exchange=self.exchange_id,
                operation=operation,
                retry_after_s=retry_after,
                http_status=note.status,
            ) from exc
        finally:
            _LAST_RESPONSE.reset(token)

    def _backoff(self) -> Backoff:
        c = self.config
        return Backoff(c.backoff_initial_s, c.backoff_max_s, c.backoff_multiplier, c.backoff_jitter, self._rng)

    async def _rest(self, operation: str, call: Callable[[], Awaitable[T]]) -> T:
        """An idempotent REST read, retried with backoff on transient failures."""
        backoff = self._backoff()
        attempt = 1
        while True:
            try:
                return await self._guard(operation, call)
            except RetryExchangeRead as err:
                self.stats.retries[err.reason] += 1
                if attempt >= self.config.rest_max_attempts:
                    raise
                delay = backoff.next_delay(err.retry_after_s)
                log.info(
                    "%s %s failed (%s, attempt %d); retrying in %.3fs",
                    self.exchange_id,
                    operation,
                    err.reason,
                    attempt,
                    delay,
                )
                await self._sleep(delay)
                attempt += 1

    # -- REST reads ----------------------------------------------------------------------------

    async def load_markets(self) -> dict[str, Any]:
        markets: dict[str, Any] = await self._rest("load_markets", self.client.load_markets)
        return markets

    async def fetch_trades(
        self, symbol: str, *, since: datetime | None = None, from_id: int | None = None, limit: int | None = None
    ) -> list[Trade | Quarantined]:
        """One page of trades, oldest first: from trade id ``from_id`` (Binance with ``api_key``),
        from ``since`` (venues with a time cursor), or else the most recent ones."""
        params: dict[str, Any] = {}
        if from_id is not None:
            if self.exchange_id != "binance":
                raise ConfigError(f"{self.exchange_id}: trade history by id is implemented for binance only")
            if self.config.api_key is None:
                raise ConfigError(
                    "binance serves trades from an id only on historicalTrades, which needs a read-only "
                    "API key: set api_key"
                )
            params = {"fetchTradesMethod": "publicGetHistoricalTrades", "fromId": from_id}
        elif self.exchange_id == "binance":
            if since is not None:
                raise ConfigError("binance trade history by time returns aggregate ids; page by from_id instead")
            params = {"fetchTradesMethod": "publicGetTrades"}
        since_ms = _epoch_ms(since) if since is not None else None
        raw: list[dict[str, Any]] = await self._rest(
            "fetch_trades", lambda: self.client.fetch_trades(symbol, since_ms, limit, params)
        )
        return self._trades(symbol, raw, self._clock.now())

    async def fetch_book(self, symbol: str) -> BookSnapshot:
        book = await self._rest("fetch_order_book", lambda: self.client.fetch_order_book(symbol))
        return book_from_ccxt(self.exchange_id, symbol, book, self.config.book_depth, self._clock.now())

    async def fetch_candles(
        self, symbol: str, *, since: datetime | None = None, limit: int | None = None
    ) -> list[Candle | Quarantined]:
        """One page of ``config.timeframe`` candles; a candle is closed once its end <= clock now."""
        since_ms = _epoch_ms(since) if since is not None else None
        rows: list[list[Any]] = await self._rest(
            "fetch_ohlcv",
            lambda: self.client.fetch_ohlcv(symbol, self.config.timeframe, since_ms, limit),
        )
        return self._candles(symbol, rows, self._clock.now(), from_rest=True)

    async def iter_trades(
        self, symbol: str, *, from_id: int | None = None, since: datetime | None = None
    ) -> AsyncIterator[MarketDataRecord]:
        """Trade history by REST, page after page until caught up with the exchange, each trade once.

        Binance pages by id (``from_id``, needs ``api_key``); other venues by time (``since``).
        A hole in what REST returns is reported as a gap the exchange cannot fill.
        """
        cursor = TradeCursor(numeric_ids=self._venue.contiguous_trade_ids)
        if from_id is not None:
            cursor.last_id = from_id - 1
        async for rec in self._poll_trades(symbol, cursor, since=since):
            yield rec

    async def iter_candles(
        self, symbol: str, *, since: datetime, until: datetime | None = None
    ) -> AsyncIterator[MarketDataRecord]:
        """Closed candles from ``since`` (to ``until``) page by page, with the spans the exchange
        has no candles for reported as gaps."""
        state = _CandleState(last_closed_ms=_epoch_ms(since) - self._timeframe_ms)
        until_ms = _epoch_ms(until) if until is not None else None
        async for rec in self._poll_candles(symbol, state, until_ms=until_ms):
            yield rec

    # -- the stream ----------------------------------------------------------------------------

    async def records(self, *, buffer: int = 10_000) -> AsyncIterator[MarketDataRecord]:
        """Every configured ``(channel, symbol)`` interleaved; see the module docstring."""
        queue: asyncio.Queue[MarketDataRecord | _Failed] = asyncio.Queue(buffer)
        streams = {"trades": self.trade_records, "book": self.book_records, "candles": self.candle_records}

        async def pump(channel: Channel, symbol: str) -> None:
            try:
                async for rec in streams[channel](symbol):
                    await queue.put(rec)
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                await queue.put(
                    self._status(
                        channel, symbol, FeedState.HALTED, transport=None, reason=type(exc).__name__, attempt=0
                    )
                )
                await queue.put(_Failed(exc))

        tasks = [
            asyncio.create_task(pump(ch, sym), name=f"md:{self.exchange_id}:{ch}:{sym}")
            for ch in self.config.channels
            for sym in self.config.symbols
        ]
        self._tasks.update(tasks)
        try:
            while True:
                item = await queue.get()
                if isinstance(item, _Failed):
                    raise item.error
                yield item
        finally:
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            self._tasks.difference_update(tasks)

    def _status(
        self,
        channel: Channel,
        symbol: str,
        state: FeedState,
        *,
        transport: Transport | None,
        reason: str,
        attempt: int,
        retry_in_s: float | None = None,
    ) -> FeedStatus:
        return FeedStatus(
            self.exchange_id, symbol, channel, state, transport, reason, attempt, retry_in_s, self._clock.now()
        )

    def _quarantined(
        self, symbol: str, channel: Channel, err: QuarantineRecord, raw: Any, ts_recv: datetime
    ) -> Quarantined:
        self.stats.quarantined += 1
        body = orjson.dumps(raw, default=str, option=orjson.OPT_NON_STR_KEYS)
        return Quarantined(self.exchange_id, symbol, channel, err.reason, err.detail, body, ts_recv)

    def _trades(self, symbol: str, raw: list[dict[str, Any]], ts_recv: datetime) -> list[Trade | Quarantined]:
        out: list[Trade | Quarantined] = []
        for item in raw:
            try:
                trade = trade_from_ccxt(self.exchange_id, symbol, item, ts_recv)
                if self._venue.contiguous_trade_ids and not trade.trade_id.isdigit():
                    raise QuarantineRecord("trade_id_not_numeric", f"trade id {trade.trade_id!r} is not an integer")
                out.append(trade)
            except QuarantineRecord as err:
                out.append(self._quarantined(symbol, "trades", err, item, ts_recv))
        return out

    def _candles(
        self, symbol: str, rows: list[list[Any]], ts_recv: datetime, *, from_rest: bool
    ) -> list[Candle | Quarantined]:
        out: list[Candle | Quarantined] = []
        now_ms = _epoch_ms(ts_recv)
        for row in rows:
            try:
                opened = row[0] if row else None
                closed = from_rest and isinstance(opened, int) and opened + self._timeframe_ms <= now_ms
                out.append(
                    candle_from_ccxt(
                        self.exchange_id, symbol, self.config.timeframe, row, closed=closed, ts_recv=ts_recv
                    )
                )
            except QuarantineRecord as err:
                out.append(self._quarantined(symbol, "candles", err, row, ts_recv))
        return out

    # -- trades --------------------------------------------------------------------------------

    async def trade_records(self, symbol: str) -> AsyncIterator[MarketDataRecord]:
        """Trades of one symbol over the websocket (REST when it fails), gaps filled by REST."""
        feed = _Feed(self, "trades", symbol, can_watch=bool(self.client.has.get("watchTrades")))
        cursor = TradeCursor(numeric_ids=self._venue.contiguous_trade_ids)
        while True:
            if feed.mode == "websocket":
                try:
                    raw = await self._guard("watch_trades", lambda: self.client.watch_trades(symbol))
                except RetryExchangeRead as err:
                    status, delay = feed.on_ws_error(err)
                    yield status
                    if delay is not None:
                        await self._sleep(delay)
                    continue
                ts_recv = self._clock.now()
                connected = feed.on_ws_data()
                if connected is not None:
                    yield connected
                resumed = connected is not None and cursor.last_ts is not None
                async for rec in self._accept_trades(symbol, cursor, self._trades(symbol, raw, ts_recv), resumed):
                    yield rec
            else:
                try:
                    async for rec in self._poll_trades(symbol, cursor):
                        yield rec
                except RetryExchangeRead as err:
                    status, delay = feed.on_rest_error(err)
                    yield status
                    await self._sleep(delay)
                    continue
                async for rec in feed.after_poll():
                    yield rec

    async def _accept_trades(
        self,
        symbol: str,
        cursor: TradeCursor,
        items: list[Trade | Quarantined],
        resumed: bool,
        *,
        from_rest: bool = False,
    ) -> AsyncIterator[MarketDataRecord]:
        """Emit the new trades of a batch; a gap before one is reported and (websocket) backfilled."""
        for item in items:
            if isinstance(item, Quarantined):
                yield item
                continue
            if not cursor.is_new(item):
                # REST windows overlap what was already emitted by design; only the websocket
                # repeating itself is worth counting.
                self.stats.duplicates_dropped += not from_rest
                continue
            gap = self._trade_gap(symbol, cursor, item, resumed)
            resumed = False
            if gap is not None:
                self.stats.gaps_detected += 1
                yield gap
                if from_rest:  # REST is where a backfill would look: the exchange has no more
                    yield self._gap_outcome(gap, 0, self._older_than_rest_reason())
                else:
                    async for rec in self._backfill_trades(symbol, cursor, gap, item):
                        yield rec
            cursor.advance(item)
            self.stats.events["trades"] += 1
            yield item

    def _trade_gap(self, symbol: str, cursor: TradeCursor, trade: Trade, resumed: bool) -> GapDetected | None:
        now = self._clock.now()
        if cursor.numeric_ids and cursor.last_id is not None:
            missing = int(trade.trade_id) - cursor.last_id - 1
            if missing <= 0:
                return None
            self.stats.trades_missing += missing
            return GapDetected(
                self.exchange_id,
                symbol,
                "trade_id",
                cursor.last_id + 1,
                int(trade.trade_id) - 1,
                missing,
                cursor.last_ts,
                trade.ts_event,
                now,
            )
        if resumed and not cursor.numeric_ids and cursor.last_ts is not None:
            return GapDetected(
                self.exchange_id, symbol, "trade_time", None, None, None, cursor.last_ts, trade.ts_event, now
            )
        return None

    def _gap_outcome(self, gap: GapDetected, filled: int, reason: str | None) -> GapBackfilled:
        unfilled = None if gap.missing is None else gap.missing - filled
        if gap.kind != "candle_time":
            self.stats.trades_backfilled += filled
            self.stats.trades_unfilled += unfilled or 0
        return GapBackfilled(gap, filled, unfilled, reason if unfilled != 0 else None, self._clock.now())

    async def _backfill_trades(
        self, symbol: str, cursor: TradeCursor, gap: GapDetected, next_trade: Trade
    ) -> AsyncIterator[MarketDataRecord]:
        """Fill ``gap`` by REST from the cursor up to (not including) ``next_trade``."""
        filled, reason = 0, None
        cap = self.config.max_backfill_trades
        try:
            async for page in self._rest_trade_pages(symbol, cursor, until=next_trade):
                window_start = next((t for t in page if isinstance(t, Trade)), None)
                if (
                    cursor.numeric_ids
                    and cursor.last_id is not None
                    and window_start is not None
                    and int(window_start.trade_id) > cursor.last_id + 1
                ):
                    reason = self._older_than_rest_reason()
                for item in page:
                    if isinstance(item, Quarantined):
                        yield item
                        continue
                    if not self._before(item, next_trade):
                        break
                    if not cursor.is_new(item):
                        continue
                    if filled >= cap:
                        reason = "backfill_limit"
                        break
                    cursor.advance(item)
                    filled += 1
                    self.stats.events["trades"] += 1
                    yield item
                if reason == "backfill_limit":
                    break
        except RetryExchangeRead as err:
            reason = f"rest_failed:{err.reason}"
        if reason is None and gap.missing is not None and filled < gap.missing:
            reason = self._older_than_rest_reason()
        if gap.kind == "trade_time" and reason is None:
            reason = "count_unknown"
        yield self._gap_outcome(gap, filled, reason)

    def _older_than_rest_reason(self) -> str:
        if self.exchange_id == "binance" and self.config.api_key is None:
            return "older_than_recent_trades_window_without_api_key"
        return "not_in_rest_history"

    def _before(self, trade: Trade, next_trade: Trade) -> bool:
        if self._venue.contiguous_trade_ids:
            return int(trade.trade_id) < int(next_trade.trade_id)
        if trade.ts_event != next_trade.ts_event:
            return trade.ts_event < next_trade.ts_event
        return trade.trade_id != next_trade.trade_id

    async def _rest_trade_pages(
        self, symbol: str, cursor: TradeCursor, *, until: Trade | None = None, since: datetime | None = None
    ) -> AsyncIterator[list[Trade | Quarantined]]:
        """REST pages after ``cursor`` (not advancing it), until caught up or past ``until``."""
        limit = self.config.rest_page_limit
        if self.exchange_id == "binance":
            if self.config.api_key is None or cursor.last_id is None:
                # Without a key only the most recent window exists; it is one page.
                yield await self.fetch_trades(symbol, limit=limit)
                return
            next_id = cursor.last_id + 1
            while True:
                page = await self.fetch_trades(symbol, from_id=next_id, limit=limit)
                trades = [t for t in page if isinstance(t, Trade)]
                yield page
                if len(page) < limit or not trades or (until is not None and not self._before(trades[-1], until)):
                    return
                next_id = int(trades[-1].trade_id) + 1
        start = cursor.last_ts or since
        while True:
            page = await self.fetch_trades(symbol, since=start, limit=limit)
            trades = [t for t in page if isinstance(t, Trade)]
            yield page
            if len(page) < limit or not trades or trades[-1].ts_event == start:
                return
            if until is not None and not self._before(trades[-1], until):
                return
            start = trades[-1].ts_event

    async def _poll_trades(
        self, symbol: str, cursor: TradeCursor, *, since: datetime | None = None
    ) -> AsyncIterator[MarketDataRecord]:
        async for page in self._rest_trade_pages(symbol, cursor, since=since):
            async for rec in self._accept_trades(symbol, cursor, page, False, from_rest=True):
                yield rec

    # -- order book ----------------------------------------------------------------------------

    async def book_records(self, symbol: str) -> AsyncIterator[MarketDataRecord]:
        """Book snapshots of one symbol, kept in sequence by ccxt.pro; resyncs are reported."""
        feed = _Feed(self, "book", symbol, can_watch=bool(self.client.has.get("watchOrderBook")))
        resync: str | None = None
        while True:
            if feed.mode == "websocket":
                try:
                    book = await self._guard("watch_order_book", lambda: self.client.watch_order_book(symbol))
                except RetryExchangeRead as err:
                    resync = resync or ("sequence_gap" if err.reason == "book_out_of_sync" else "reconnect")
                    status, delay = feed.on_ws_error(err)
                    yield status
                    if delay is not None:
                        await self._sleep(delay)
                    continue
                ts_recv = self._clock.now()
                connected = feed.on_ws_data()
                if connected is not None:
                    yield connected
                    if connected.reason == "reconnected":
                        resync = resync or "reconnect"
                snapshot = book_from_ccxt(self.exchange_id, symbol, book, self.config.book_depth, ts_recv)
            else:
                try:
                    snapshot = await self.fetch_book(symbol)
                except RetryExchangeRead as err:
                    status, delay = feed.on_rest_error(err)
                    yield status
                    await self._sleep(delay)
                    continue
                resync = "rest" if resync is not None else None
            if resync is not None:
                self.stats.book_resyncs += 1
                yield BookResynced(self.exchange_id, symbol, resync, snapshot.sequence, snapshot.ts_recv)
                resync = None
            self.stats.events["book"] += 1
            yield snapshot
            if feed.mode == "rest":
                async for rec in feed.after_poll():
                    yield rec

    # -- candles -------------------------------------------------------------------------------

    async def candle_records(self, symbol: str) -> AsyncIterator[MarketDataRecord]:
        """``config.timeframe`` candles of one symbol: forming ones (``closed=False``) as they
        update over the websocket, each closed once when the next one opens (or by REST)."""
        feed = _Feed(self, "candles", symbol, can_watch=bool(self.client.has.get("watchOHLCV")))
        state = _CandleState()
        while True:
            if feed.mode == "websocket":
                try:
                    rows = await self._guard(
                        "watch_ohlcv", lambda: self.client.watch_ohlcv(symbol, self.config.timeframe)
                    )
                except RetryExchangeRead as err:
                    status, delay = feed.on_ws_error(err)
                    yield status
                    if delay is not None:
                        await self._sleep(delay)
                    continue
                ts_recv = self._clock.now()
                connected = feed.on_ws_data()
                if connected is not None:
                    yield connected
                for item in self._candles(symbol, rows, ts_recv, from_rest=False):
                    async for rec in self._accept_forming(symbol, state, item):
                        yield rec
            else:
                try:
                    async for rec in self._poll_candles(symbol, state):
                        yield rec
                except RetryExchangeRead as err:
                    status, delay = feed.on_rest_error(err)
                    yield status
                    await self._sleep(delay)
                    continue
                async for rec in feed.after_poll():
                    yield rec

    async def _accept_forming(
        self, symbol: str, state: _CandleState, item: Candle | Quarantined
    ) -> AsyncIterator[MarketDataRecord]:
        if isinstance(item, Quarantined):
            yield item
            return
        open_ms = _epoch_ms(item.ts_event)
        if state.last_closed_ms is not None and open_ms <= state.last_closed_ms:
            return  # an update of a candle already closed
        forming = state.forming
        if forming is not None and open_ms > _epoch_ms(forming.ts_event):
            async for rec in self._accept_closed(symbol, state, replace(forming, closed=True), backfill=True):
                yield rec
        state.forming = item
        self.stats.events["candles"] += 1
        yield item

    async def _accept_closed(
        self, symbol: str, state: _CandleState, candle: Candle, *, backfill: bool
    ) -> AsyncIterator[MarketDataRecord]:
        """Emit a closed candle once; missing candles before it are a gap (websocket: backfilled)."""
        open_ms = _epoch_ms(candle.ts_event)
        if state.last_closed_ms is not None:
            if open_ms <= state.last_closed_ms:
                return
            missing = (open_ms - state.last_closed_ms) // self._timeframe_ms - 1
            if missing > 0:
                gap = GapDetected(
                    self.exchange_id,
                    symbol,
                    "candle_time",
                    None,
                    None,
                    missing,
                    from_epoch_ms(state.last_closed_ms),
                    candle.ts_event,
                    self._clock.now(),
                )
                self.stats.gaps_detected += 1
                self.stats.candles_missing += missing
                yield gap
                filled, reason = 0, "not_on_exchange"
                if backfill:
                    try:
                        async for item in self._rest_candles(symbol, state.last_closed_ms, open_ms - 1):
                            if isinstance(item, Candle):
                                state.last_closed_ms = _epoch_ms(item.ts_event)
                                filled += 1
                                self.stats.events["candles"] += 1
                            yield item
                    except RetryExchangeRead as err:
                        reason = f"rest_failed:{err.reason}"
                yield self._gap_outcome(gap, filled, reason)
        state.last_closed_ms = open_ms
        self.stats.events["candles"] += 1
        yield candle

    async def _rest_candles(
        self, symbol: str, after_ms: int | None, until_ms: int | None
    ) -> AsyncIterator[Candle | Quarantined]:
        """Closed candles opening after ``after_ms`` (up to ``until_ms``) by REST, page by page."""
        limit = self.config.rest_page_limit
        while True:
            since = None if after_ms is None else from_epoch_ms(after_ms + self._timeframe_ms)
            page = await self.fetch_candles(symbol, since=since, limit=limit)
            last = after_ms
            for item in page:
                if isinstance(item, Quarantined):
                    yield item
                    continue
                open_ms = _epoch_ms(item.ts_event)
                if after_ms is not None and open_ms <= after_ms:
                    continue
                if not item.closed or (until_ms is not None and open_ms > until_ms):
                    return
                last = open_ms
                yield item
            if len(page) < limit or last == after_ms:
                return
            after_ms = last

    async def _poll_candles(
        self, symbol: str, state: _CandleState, *, until_ms: int | None = None
    ) -> AsyncIterator[MarketDataRecord]:
        """Closed candles after the last one emitted, by REST; a hole in REST is the exchange's gap."""
        async for item in self._rest_candles(symbol, state.last_closed_ms, until_ms):
            if isinstance(item, Quarantined):
                yield item
                continue
            async for rec in self._accept_closed(symbol, state, item, backfill=False):
                yield rec


@dataclass
class _CandleState:
    last_closed_ms: int | None = None
    forming: Candle | None = None


class _Feed:
    """Transport state of one ``(channel, symbol)``: websocket, or REST polling after failures."""

    def __init__(self, md: ExchangeMarketData, channel: Channel, symbol: str, *, can_watch: bool) -> None:
        self.md, self.channel, self.symbol = md, channel, symbol
        self.config = md.config
        self.can_watch = can_watch and self.config.transport != "rest"
        self.mode: Transport = "websocket" if self.can_watch else "rest"
        self.failures = 0
        self.backoff = md._backoff()
        self.connected = False
        self.ever_connected = False
        self.polls = 0

    def _status(self, state: FeedState, reason: str, retry_in_s: float | None = None) -> FeedStatus:
        return self.md._status(
            self.channel,
            self.symbol,
            state,
            transport=self.mode,
            reason=reason,
            attempt=self.failures,
            retry_in_s=retry_in_s,
        )

    def on_ws_data(self) -> FeedStatus | None:
        """Data arrived: a status record if this is the first since (re)connecting."""
        if self.connected:
            return None
        reconnected = self.ever_connected or self.failures > 0
        self.connected, self.ever_connected = True, True
        if reconnected:
            self.md.stats.reconnects += 1
        status = self._status(FeedState.CONNECTED, "reconnected" if reconnected else "subscribed")
        self.failures = 0
        self.backoff.reset()
        return status

    def on_ws_error(self, err: RetryExchangeRead) -> tuple[FeedStatus, float | None]:
        """Count a failure; fall back to REST (no delay) or back off before watching again."""
        self.connected = False
        self.failures += 1
        self.md.stats.retries[err.reason] += 1
        if self.config.transport == "auto" and self.failures >= self.config.ws_failures_before_rest:
            self.mode, self.polls = "rest", 0
            self.md.stats.rest_fallbacks += 1
            log.warning(
                "%s %s %s: websocket failing (%s); polling REST", self.md.exchange_id, self.channel, self.symbol, err
            )
            return self._status(FeedState.REST_FALLBACK, err.reason), None
        delay = self.backoff.next_delay(err.retry_after_s)
        return self._status(FeedState.RECONNECTING, err.reason, delay), delay

    def on_rest_error(self, err: RetryExchangeRead) -> tuple[FeedStatus, float]:
        """REST retries were exhausted: wait a backoff before the next poll."""
        self.failures += 1
        delay = self.backoff.next_delay(err.retry_after_s)
        return self._status(FeedState.RECONNECTING, err.reason, delay), delay

    async def after_poll(self) -> AsyncIterator[FeedStatus]:
        """Between polls: wait the poll interval, or go back to the websocket when it is time."""
        self.polls += 1
        if self.can_watch and self.polls * self.config.poll_interval_s >= self.config.ws_retry_interval_s:
            self.mode = "websocket"
            yield self._status(FeedState.RECONNECTING, "retrying_websocket")
            return
        await self.md._sleep(self.config.poll_interval_s)
