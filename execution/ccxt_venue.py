"""Spot orders on a real exchange through the async ccxt client, behind the :class:`~execution.venue.Venue`
interface (the same one :class:`~execution.paper.PaperVenue` implements).

Exchanges: Binance, Kraken and Coinbase (Advanced Trade; ccxt ids ``binance``, ``kraken``,
``coinbase``). What differs between them is declared as data in :data:`EXCHANGE_PROFILES` (sandbox,
how the client order id is sent and looked up, how an order's trades are read, whether a 429 may be
answered by sending the same order again); the code paths are the same. See docs/venues.md.

Two venues, never a dry-run flag:

- :class:`CcxtVenue` trades on the exchange's sandbox (``set_sandbox_mode(True)``; Binance: the
  spot testnet) and refuses an exchange that has none (ccxt 4.5.90 has no ``urls['test']`` for
  Kraken spot or Coinbase Advanced Trade);
- :class:`LiveCcxtVenue` trades real money and is built only when ``live_trading_enabled`` is true,
  ``testnet`` is false and both keys are set; otherwise :class:`LiveTradingRefused` names the settings.

The Venue protocol is synchronous; ccxt is asyncio. Each venue runs its own event loop on one
daemon thread and every call waits for its coroutine there (``call_deadline_s`` at most).

Orders:

- rounded from the market info before sending: amount down to the step, a buy's limit price down
  and a sell's up to the tick (never a worse price than approved); an amount that rounds to zero is
  refused here (``amount_below_step``); every other rule (min notional, lot limits) is left to the
  venue, whose refusal comes back as a REJECT report with its own words;
- sent with the order's client order id the way the exchange takes it (Binance ``newClientOrderId``
  through ccxt's ``clientOrderId``; Kraken ``cl_ord_id`` through ``clientOrderId``, our 27-character
  ids as a UUID since Kraken's free text stops at 18; Coinbase ``client_order_id`` passed raw, as
  ccxt drops ``clientOrderId`` and would send its own), and found again by it (Binance
  ``origClientOrderId``; Kraken open then closed orders filtered by ``cl_ord_id``; Coinbase cannot
  look an order up by client id, so its recent orders of the symbol are listed and matched);
- one token of the per-exchange order budget (:func:`shared_order_budget`, shared by every venue of
  the process, on the injected clock) per submit and cancel, on top of ccxt's own limiter
  (``enableRateLimit``); an order that cannot get a token within ``budget_wait_max_s`` is refused
  (``rate_budget_exhausted``) without being sent.

Submit outcome (never a blind resend):

- accepted: the ACCEPT report; fills and expiry/cancel in the answer are queued for :meth:`poll`;
- refused by the venue: the REJECT report, reason ``<code>: <venue code> <venue message>``, or
  ``duplicate_client_order_id`` (the order manager then adopts the venue's order);
- 429/418 on Binance (the request was refused before the matching engine, so the order does not
  exist): wait the Retry-After (or the backoff) and send the SAME order again (same client id: if
  the venue had it after all, it answers "duplicate") up to ``submit_rate_limit_attempts``; then a
  REJECT ``rate_limited``. Kraken and Coinbase document no such guarantee (and Kraken refuses a
  duplicate ``cl_ord_id`` only while the first order is open), so there a 429 is resolved like a
  5xx: looked up, never resent;
- anything else (timeout, reset connection, 5xx, unreadable answer): the outcome is unknown; the
  order is looked up by client order id. Found: reported as the venue has it. Not found after an
  HTTP error answer (5xx, or 429 where not resent: the venue answered and does not have it):
  REJECT ``not_accepted``. Not found after no answer at all (timeout, reset: the request may still
  be in flight), or lookup impossible: :class:`~execution.venue.SubmitOutcomeUnknown` for the
  manager's reconciliation.

Reads (fetch order, open orders, balances) and cancels are idempotent and retried with backoff
(Retry-After honoured) up to ``read_max_attempts``. ccxt errors are translated in one place,
:func:`execution.ccxt_errors.translate_ccxt_error`.

Fill ids are ``<venue symbol>-<venue trade id>`` (Binance trade ids are per symbol).

Markets are public: they are loaded before the keys are set, so ``load_markets`` never calls a
private endpoint (Coinbase would otherwise also ask for the account's fee tier).
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import logging
import re
import secrets
import threading
from collections.abc import Awaitable, Callable, Coroutine, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from decimal import ROUND_CEILING, ROUND_FLOOR, Decimal
from typing import Any, ClassVar, Literal, TypeVar
from urllib.parse import urlsplit

import ccxt
import ccxt.async_support
from pydantic import Field, SecretStr, field_validator

from core.clock import Clock, from_epoch_ms
from core.config import StrictConfig
from core.errors import Bot4Error, ConfigError, HaltAndAlert
from core.events import Side
from core.fills import Fill, Liquidity, OrderEventKind, OrderStatus
from core.money import float_to_decimal, quantize_down
from core.orders import ApprovedOrder, OrderType
from execution.ccxt_errors import (
    LAST_RESPONSE,
    SUBMIT,
    Backoff,
    OrderNotAtVenue,
    OrderRejected,
    ResponseNote,
    RetryVenueCall,
    Rng,
    headers_lower,
    parse_retry_after,
    record_response,
    translate_ccxt_error,
)
from execution.venue import FeeSchedule, SubmitOutcomeUnknown, VenueCapabilities, VenueOrder, VenueReport
from risk.market import InstrumentRules
from risk.throttle import TokenBucket

log = logging.getLogger(__name__)

T = TypeVar("T")
Sleep = Callable[[float], Awaitable[None]]
_ZERO = Decimal(0)
_Kind = OrderEventKind

LookupMode = Literal["fetch_order_by_client_id", "open_and_closed_by_client_id", "scan_recent_orders"]
TradesMode = Literal["fetch_order_trades", "fetch_order_trades_by_ids", "my_trades_by_order_ids"]
ClientIdFormat = Literal["as_is", "kraken_cl_ord_id"]


@dataclass(frozen=True)
class ExchangeProfile:
    """How one exchange is traded through ccxt, as data (each field checked against ccxt 4.5.90's source).

    - ``options``: ccxt options that keep ``load_markets`` and the order calls to spot;
    - ``sandbox``: ccxt has a ``urls['test']`` for it (Binance: the spot testnet);
    - ``client_id_param`` / ``client_id_format``: the ``create_order`` parameter that carries our
      client order id, and how our id is written in it;
    - ``lookup``: how an order is found by client order id after an unknown submit result;
    - ``order_trades``: how the trades of one order are read when the order answer lacks them;
    - ``cancel_by_client_id``: cancel with the client id (else with the venue's order id);
    - ``resend_after_rate_limit``: a 429/418 on submit means the order was not processed (Binance
      documents it), so the same order may be sent again;
    - ``market_buy_in_quote``: ccxt sizes a market buy in the quote currency (it needs a price);
    - ``client_id_max_length``: the longest of our client ids the venue takes.
    """

    options: Mapping[str, Any]
    sandbox: bool
    client_id_param: str
    client_id_format: ClientIdFormat
    lookup: LookupMode
    order_trades: TradesMode
    cancel_by_client_id: bool
    resend_after_rate_limit: bool
    market_buy_in_quote: bool
    client_id_max_length: int

    def venue_client_id(self, cid: str) -> str | None:
        """Our client id as the venue takes it; None when the venue cannot take it."""
        if self.client_id_format == "kraken_cl_ord_id":
            return kraken_cl_ord_id(cid)
        return cid

    def our_client_id(self, venue_cid: str) -> str:
        """The venue's client id field read back as ours."""
        if self.client_id_format == "kraken_cl_ord_id":
            return client_id_from_kraken(venue_cid)
        return venue_cid


EXCHANGE_PROFILES: dict[str, ExchangeProfile] = {
    "binance": ExchangeProfile(
        options={
            "defaultType": "spot",
            "fetchMarkets": {"types": ["spot"]},
            "fetchCurrencies": False,
            "fetchMargins": False,
            # Open orders of every symbol cost 80 weight instead of 6: reconciliation asks once at start.
            "warnOnFetchOpenOrdersWithoutSymbol": False,
        },
        sandbox=True,
        client_id_param="clientOrderId",  # ccxt sends it as newClientOrderId
        client_id_format="as_is",
        lookup="fetch_order_by_client_id",  # GET /api/v3/order?origClientOrderId=
        order_trades="fetch_order_trades",  # myTrades?orderId=
        cancel_by_client_id=True,
        resend_after_rate_limit=True,
        market_buy_in_quote=False,
        client_id_max_length=36,
    ),
    "kraken": ExchangeProfile(
        options={},
        sandbox=False,
        client_id_param="clientOrderId",  # ccxt's order_request sends it as cl_ord_id
        client_id_format="kraken_cl_ord_id",
        # QueryOrders needs the txid; OpenOrders and ClosedOrders filter by cl_ord_id.
        lookup="open_and_closed_by_client_id",
        order_trades="fetch_order_trades_by_ids",  # QueryTrades with the order's trade ids
        cancel_by_client_id=False,
        resend_after_rate_limit=False,
        market_buy_in_quote=False,
        client_id_max_length=27,  # 18 characters of free text, or one of our b4- ids as a UUID
    ),
    "coinbase": ExchangeProfile(
        options={},
        sandbox=False,
        # ccxt's create_order omits clientOrderId and sets client_order_id to "ccxt-<uuid>"; the raw
        # parameter overrides it (params are merged last).
        client_id_param="client_order_id",
        client_id_format="as_is",
        # List Orders has no client id filter and Get Order needs the order id: scan recent orders.
        lookup="scan_recent_orders",
        order_trades="my_trades_by_order_ids",  # List Fills with order_ids
        cancel_by_client_id=False,
        resend_after_rate_limit=False,
        market_buy_in_quote=True,
        client_id_max_length=36,
    ),
}

_KRAKEN_FREE_TEXT_MAX = 18
_OUR_ID = re.compile(r"b4-([0-9a-f]{24})")
_KRAKEN_UUID = re.compile(r"b4([0-9a-f]{6})-([0-9a-f]{4})-([0-9a-f]{4})-([0-9a-f]{4})-([0-9a-f]{6})000000")


def kraken_cl_ord_id(cid: str) -> str | None:
    """Our client id as Kraken's ``cl_ord_id``: free text up to 18 characters as is, one of our
    deterministic ids (``b4-`` and 24 hex digits, 27 characters) as a UUID that reads back to it;
    None for anything else.

    >>> kraken_cl_ord_id("b4-0123456789abcdef01234567")
    'b4012345-6789-abcd-ef01-234567000000'
    >>> client_id_from_kraken(kraken_cl_ord_id("b4-0123456789abcdef01234567"))
    'b4-0123456789abcdef01234567'
    >>> kraken_cl_ord_id("short-id"), kraken_cl_ord_id("x" * 19)
    ('short-id', None)
    """
    if len(cid) <= _KRAKEN_FREE_TEXT_MAX:
        return cid
    match = _OUR_ID.fullmatch(cid)
    if match is None:
        return None
    digits = "b4" + match.group(1) + "000000"
    return f"{digits[:8]}-{digits[8:12]}-{digits[12:16]}-{digits[16:20]}-{digits[20:]}"


def client_id_from_kraken(venue_cid: str) -> str:
    """A Kraken ``cl_ord_id`` read back as our client id (the inverse of :func:`kraken_cl_ord_id`)."""
    match = _KRAKEN_UUID.fullmatch(venue_cid)
    if match is None:
        return venue_cid
    return "b4-" + "".join(match.groups())


#: ccxt's unified order status -> ours (``open`` splits on whether anything filled).
_CLOSED_STATUS = {
    "closed": OrderStatus.FILLED,
    "canceled": OrderStatus.CANCELED,
    "expired": OrderStatus.EXPIRED,
    "rejected": OrderStatus.REJECTED,
}


class LiveTradingRefused(ConfigError):
    """A live venue was asked for without the explicit live setting and keys."""

    operator_action = (
        "To trade real money set BOT4_EXCHANGE__LIVE_TRADING_ENABLED=true, BOT4_EXCHANGE__TESTNET=false and "
        "both BOT4_EXCHANGE__API_KEY and BOT4_EXCHANGE__API_SECRET (a key with spot trading permission), "
        "then restart. Otherwise run the paper venue or the testnet venue (CcxtVenue)."
    )


class CcxtVenueConfig(StrictConfig):
    """One exchange account traded through ccxt. Durations in seconds unless named ``_ms``.

    The key fields mirror ``flows.settings.ExchangeSettings`` (``api_key``, ``api_secret``,
    ``testnet``, ``live_trading_enabled``), so flows build this from ``settings.exchange``.
    ``api_url_override`` (an origin such as ``http://127.0.0.1:8080``) points every REST URL of
    ccxt at a mirror, keeping the paths (tests, a local proxy).
    """

    exchange: Literal["binance", "kraken", "coinbase"]
    account: str = Field(min_length=1)
    symbols: tuple[str, ...] = Field(min_length=1)
    api_key: SecretStr = SecretStr("")
    api_secret: SecretStr = SecretStr("")
    testnet: bool = True
    live_trading_enabled: bool = False
    request_timeout_ms: int = Field(default=10_000, ge=100)
    #: ccxt's own spacing between requests per unit of endpoint cost (ccxt 4.5.90: Binance 50 ms,
    #: Kraken 1000 ms with 3 units per order query, Coinbase 34 ms); None keeps ccxt's. Lower it
    #: only for a local mirror or a test server, never against the exchange.
    ccxt_rate_limit_ms: float | None = Field(default=None, gt=0)
    call_deadline_s: float = Field(default=120.0, gt=0)
    read_max_attempts: int = Field(default=4, ge=1)
    submit_rate_limit_attempts: int = Field(default=3, ge=1)
    backoff_initial_s: float = Field(default=0.25, gt=0)
    backoff_max_s: float = Field(default=10.0, gt=0)
    backoff_multiplier: float = Field(default=2.0, ge=1)
    backoff_jitter: float = Field(default=0.2, ge=0, le=1)
    #: Coinbase has no lookup by client order id: the recent orders of the symbol are listed, at
    #: most this many pages of ``lookup_page_size`` (an order older than that is not found).
    lookup_max_pages: int = Field(default=5, ge=1)
    lookup_page_size: int = Field(default=100, ge=1, le=1000)
    #: Our own order budget per exchange (Binance spot allows 100 orders per 10 s per account).
    orders_per_s: float = Field(default=5.0, gt=0)
    order_burst: int = Field(default=10, ge=1)
    budget_wait_max_s: float = Field(default=2.0, ge=0)
    #: How often :meth:`CcxtVenue.poll` asks the venue about orders still open.
    poll_interval_s: float = Field(default=1.0, ge=0)
    api_url_override: str | None = None

    @field_validator("symbols")
    @classmethod
    def _unified_symbols(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        for symbol in value:
            base, sep, quote = symbol.partition("/")
            if not sep or not base or not quote or ":" in quote:
                raise ValueError(f"symbol {symbol!r} is not a ccxt unified spot symbol like 'BTC/USDT'")
        if len(set(value)) != len(value):
            raise ValueError(f"symbols must be unique, got {value}")
        return value

    @field_validator("api_url_override")
    @classmethod
    def _origin_only(cls, value: str | None) -> str | None:
        if value is None:
            return None
        parts = urlsplit(value)
        if parts.scheme not in ("http", "https") or not parts.netloc or parts.path not in ("", "/"):
            raise ValueError(f"api_url_override={value!r} must be an origin like 'http://127.0.0.1:8080'")
        return value.rstrip("/")


# ----------------------------------------------------------------------------------------------
# The per-exchange order budget shared by every strategy of the process


class SharedOrderBudget:
    """A :class:`~risk.throttle.TokenBucket` behind a lock (venues run on their own loop threads)."""

    def __init__(self, rate_per_s: float, burst: int, clock: Clock) -> None:
        self._bucket = TokenBucket(rate_per_s, burst, clock)
        self._lock = threading.Lock()
        self.rate_per_s = rate_per_s

    def try_take(self) -> bool:
        """Take one order token if one is available."""
        with self._lock:
            return self._bucket.try_take()


_BUDGETS: dict[str, SharedOrderBudget] = {}
_BUDGETS_LOCK = threading.Lock()


def shared_order_budget(exchange: str, rate_per_s: float, burst: int, clock: Clock) -> SharedOrderBudget:
    """The process-wide order budget of ``exchange`` (created by the first venue that asks for it).

    >>> from core.clock import ManualClock, parse_utc
    >>> clock = ManualClock(parse_utc("2024-01-01T00:00:00Z"))
    >>> shared_order_budget("doc-x", 1.0, 1, clock) is shared_order_budget("doc-x", 9.0, 9, clock)
    True
    """
    with _BUDGETS_LOCK:
        budget = _BUDGETS.get(exchange)
        if budget is None:
            budget = _BUDGETS[exchange] = SharedOrderBudget(rate_per_s, burst, clock)
        return budget


# ----------------------------------------------------------------------------------------------
# The event loop thread (the sync facade)


class _LoopThread:
    def __init__(self, name: str) -> None:
        self.loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self.loop.run_forever, name=name, daemon=True)
        self._thread.start()

    def run(self, coro: Coroutine[Any, Any, T], deadline_s: float) -> T:
        future = asyncio.run_coroutine_threadsafe(coro, self.loop)
        try:
            return future.result(timeout=deadline_s)
        except concurrent.futures.TimeoutError:
            future.cancel()
            raise

    def stop(self) -> None:
        self.loop.call_soon_threadsafe(self.loop.stop)
        self._thread.join(timeout=10)
        if not self._thread.is_alive():
            self.loop.close()


def _client_class(exchange_id: str) -> type:
    base: Any = getattr(ccxt.async_support, exchange_id)
    members: dict[str, Any] = {}

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
        record_response(code, response_headers, response_body)
        return base.on_rest_response(
            self, code, reason, url, method, response_headers, response_body, request_headers, request_body
        )

    members["on_rest_response"] = on_rest_response
    if exchange_id == "binance":

        def get_exceptions_by_url(self: Any, url: str | None, exact_or_broad: str) -> Any:
            # ccxt picks Binance's per-market error table from the URL's host; this venue is spot
            # only, so the spot table applies whatever host serves it (testnet, mirror, proxy).
            spot = self.safe_dict(self.exceptions, "spot", {})
            return self.safe_dict(spot, exact_or_broad, {})

        members["get_exceptions_by_url"] = get_exceptions_by_url
    return type(f"{base.__name__}_bot4_orders", (base,), members)


def _rewrite(urls: Any, origin: str) -> Any:
    if isinstance(urls, dict):
        return {key: _rewrite(value, origin) for key, value in urls.items()}
    if not isinstance(urls, str) or urlsplit(urls).scheme not in ("http", "https"):
        return urls
    parts = urlsplit(urls)
    return origin + parts.path + (f"?{parts.query}" if parts.query else "")


# ----------------------------------------------------------------------------------------------
# The venue


@dataclass
class _Tracked:
    """What this venue knows of an order it sent or found."""

    symbol: str
    side: Side
    order_type: OrderType
    amount: Decimal
    price: Decimal | None
    venue_order_id: str
    status: OrderStatus = OrderStatus.ACCEPTED
    filled: Decimal = _ZERO
    fills: dict[str, Fill] = field(default_factory=dict)


class CcxtVenue:
    """Spot orders on the exchange's sandbox (testnet) through ccxt; see the module docstring.

    ``clock`` stamps reports the venue gives no time for and runs the order budget; ``sleep`` and
    ``rng`` drive backoff (inject them to test time); ``budget`` defaults to the process-wide one.
    """

    SANDBOX: ClassVar[bool] = True

    def __init__(
        self,
        config: CcxtVenueConfig,
        *,
        clock: Clock,
        sleep: Sleep = asyncio.sleep,
        rng: Rng | None = None,
        budget: SharedOrderBudget | None = None,
    ) -> None:
        self._check_settings(config)
        self.config = config
        self.exchange_id: str = config.exchange
        self._profile = EXCHANGE_PROFILES[config.exchange]
        self._clock = clock
        self._sleep = sleep
        # Jitter needs unpredictability, not reproducibility; tests inject their own rng.
        self._rng: Rng = rng if rng is not None else secrets.SystemRandom()
        self._budget = budget or shared_order_budget(config.exchange, config.orders_per_s, config.order_burst, clock)
        self._orders: dict[str, _Tracked] = {}
        self._reports: list[VenueReport] = []
        self._last_refresh = clock.now()
        self._runner: _LoopThread | None = _LoopThread(f"ccxt-{config.exchange}-{config.account}")
        try:
            self._client: Any = self._run(self._build_client())
            self._caps = self._capabilities(self._run(self._read("load_markets", self._client.load_markets)))
            # Keys only now: markets are public (module docstring).
            self._client.apiKey = config.api_key.get_secret_value()
            self._client.secret = config.api_secret.get_secret_value()
        except BaseException:
            self.close()
            raise

    # -- settings ----------------------------------------------------------------------------

    @classmethod
    def _check_settings(cls, config: CcxtVenueConfig) -> None:
        if not config.testnet:
            raise ConfigError(
                f"CcxtVenue trades on the {config.exchange} sandbox but testnet is false; "
                "use LiveCcxtVenue for real money (it needs live_trading_enabled) or set BOT4_EXCHANGE__TESTNET=true"
            )
        if not EXCHANGE_PROFILES[config.exchange].sandbox:
            with_sandbox = sorted(name for name, p in EXCHANGE_PROFILES.items() if p.sandbox)
            raise ConfigError(
                f"{config.exchange} has no sandbox or testnet for spot orders (ccxt has no urls['test'] for it), so "
                f"BOT4_EXCHANGE__TESTNET=true cannot be honoured; use the paper venue, or LiveCcxtVenue with "
                f"BOT4_EXCHANGE__TESTNET=false and BOT4_EXCHANGE__LIVE_TRADING_ENABLED=true for real money "
                f"(exchanges with a sandbox: {with_sandbox})"
            )
        cls._require_keys(config, ConfigError)

    @staticmethod
    def _require_keys(config: CcxtVenueConfig, error: type[ConfigError]) -> None:
        missing = [
            name
            for name, value in (
                ("BOT4_EXCHANGE__API_KEY", config.api_key),
                ("BOT4_EXCHANGE__API_SECRET", config.api_secret),
            )
            if not value.get_secret_value()
        ]
        if missing:
            raise error(f"{config.exchange} orders need API keys; {' and '.join(missing)} not set")

    # -- lifecycle ---------------------------------------------------------------------------

    def close(self) -> None:
        """Close the ccxt client and stop the loop thread (idempotent)."""
        client = getattr(self, "_client", None)
        if client is not None:
            self._client = None
            try:
                self._run(client.close())
            except (ccxt.BaseError, OSError, concurrent.futures.TimeoutError) as exc:
                log.warning("closing the %s client failed: %s", self.exchange_id, exc)
        runner = getattr(self, "_runner", None)
        if runner is not None:
            self._runner = None
            runner.stop()

    def __enter__(self) -> CcxtVenue:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _run(self, coro: Coroutine[Any, Any, T]) -> T:
        if self._runner is None:
            coro.close()
            raise RuntimeError(f"the {self.exchange_id} venue of {self.config.account} is closed")
        return self._runner.run(coro, self.config.call_deadline_s)

    async def _build_client(self) -> Any:
        c = self.config
        client = _client_class(c.exchange)(
            {
                "enableRateLimit": True,
                "timeout": c.request_timeout_ms,
                "options": dict(self._profile.options),
                "has": {"fetchCurrencies": False},
                **({} if c.ccxt_rate_limit_ms is None else {"rateLimit": c.ccxt_rate_limit_ms}),
            }
        )
        if self.SANDBOX:
            if not client.urls.get("test"):
                await client.close()
                raise ConfigError(f"{c.exchange} has no sandbox in ccxt; use the paper venue or LiveCcxtVenue")
            client.set_sandbox_mode(True)
        if c.api_url_override is not None:
            client.urls["api"] = _rewrite(client.urls["api"], c.api_url_override)
        return client

    def _capabilities(self, markets: Mapping[str, Any]) -> VenueCapabilities:
        unknown = [s for s in self.config.symbols if s not in markets]
        if unknown:
            raise ConfigError(f"{self.exchange_id} does not list {unknown} as spot markets ({len(markets)} listed)")
        decimal_places = self._client.precisionMode == ccxt.DECIMAL_PLACES
        rules = {}
        for symbol in self.config.symbols:
            market = markets[symbol]
            rules[symbol] = _rules(market, decimal_places)
        first = markets[self.config.symbols[0]]
        fees = FeeSchedule(_number(first.get("maker"), "maker fee"), _number(first.get("taker"), "taker fee"))
        return VenueCapabilities(
            self.exchange_id,
            fees,
            rules,
            client_id_max_length=self._profile.client_id_max_length,
            fetch_order_by_client_id=self._profile.lookup != "scan_recent_orders",
            sandbox=self.SANDBOX,
        )

    # -- calling ccxt ------------------------------------------------------------------------

    async def _guard(self, operation: str, call: Callable[[], Awaitable[T]]) -> T:
        """One ccxt call; what it raises becomes a Bot4 error (with the answer's status and Retry-After)."""
        note = ResponseNote()
        token = LAST_RESPONSE.set(note)
        try:
            return await call()
        except (ccxt.BaseError, OSError) as exc:
            retry_after = parse_retry_after(headers_lower(note).get("retry-after"), self._clock.now())
            raise translate_ccxt_error(
                exc,
                exchange=self.exchange_id,
                operation=operation,
                retry_after_s=retry_after,
                http_status=note.status,
                body=note.body,
            ) from exc
        finally:
            LAST_RESPONSE.reset(token)

    def _backoff(self) -> Backoff:
        c = self.config
        return Backoff(c.backoff_initial_s, c.backoff_max_s, c.backoff_multiplier, c.backoff_jitter, self._rng)

    async def _read(self, operation: str, call: Callable[[], Awaitable[T]]) -> T:
        """An idempotent call (read or cancel), retried with backoff on transient failures."""
        backoff = self._backoff()
        for attempt in range(1, self.config.read_max_attempts + 1):
            try:
                return await self._guard(operation, call)
            except RetryVenueCall as err:
                if attempt >= self.config.read_max_attempts:
                    raise
                delay = backoff.next_delay(err.retry_after_s)
                log.info(
                    "%s %s failed (%s), retry %d in %.3fs", self.exchange_id, operation, err.reason, attempt, delay
                )
                await self._sleep(delay)
        raise AssertionError("unreachable: the last attempt returns or raises")

    async def _take_budget(self) -> bool:
        waited = 0.0
        step = 1.0 / self._budget.rate_per_s
        while not self._budget.try_take():
            if waited >= self.config.budget_wait_max_s:
                return False
            await self._sleep(step)
            waited += step
        return True

    # -- the Venue interface -----------------------------------------------------------------

    @property
    def capabilities(self) -> VenueCapabilities:
        """Precision, limits and fees of the configured symbols, from the exchange's market info."""
        return self._caps

    def submit(self, order: ApprovedOrder) -> VenueReport:
        """Send ``order`` once (module docstring: what each outcome becomes)."""
        try:
            return self._run(self._submit(order))
        except concurrent.futures.TimeoutError:
            raise SubmitOutcomeUnknown(
                f"{self.exchange_id} submit of {order.client_order_id}: no result within {self.config.call_deadline_s}s"
            ) from None

    def cancel(self, client_order_id: str) -> VenueReport:
        """Cancel by client order id (retried: cancels are idempotent)."""
        return self._run(self._cancel(client_order_id))

    def fetch_order(self, client_order_id: str) -> VenueOrder | None:
        """The venue's record of the order with this client id, with its fills; None if unknown.

        Binance needs the symbol: an order this venue has not seen is looked for in every
        configured symbol.
        """
        return self._run(self._fetch_order(client_order_id))

    def fetch_open_orders(self, symbol: str | None = None) -> Sequence[VenueOrder]:
        """Orders working at the venue, with their fills (every symbol when ``symbol`` is None)."""
        return self._run(self._fetch_open_orders(symbol))

    def poll(self) -> list[VenueReport]:
        """Reports queued by submits and cancels, then what changed on orders still open (asked at most
        every ``poll_interval_s``)."""
        now = self._clock.now()
        if (now - self._last_refresh).total_seconds() >= self.config.poll_interval_s:
            self._last_refresh = now
            self._run(self._refresh_open())
        reports, self._reports = self._reports, []
        return reports

    def balances(self) -> Mapping[str, Decimal]:
        """Total balance per currency (free + locked), from the venue's account."""
        return self._run(self._balances())

    def positions(self) -> Mapping[str, Decimal]:
        """Spot: the base currency holding of each configured symbol."""
        totals = self.balances()
        return {s: totals.get(s.partition("/")[0], _ZERO) for s in self.config.symbols}

    # -- submit --------------------------------------------------------------------------------

    async def _submit(self, order: ApprovedOrder) -> VenueReport:
        intent = order.intent
        cid = order.client_order_id
        now = self._clock.now()
        rules = self._caps.rules_for(intent.symbol)
        if intent.exchange != self.exchange_id or rules is None:
            return VenueReport(cid, _Kind.REJECT, now, reason="unknown_symbol")
        if not self._caps.supports(intent.order_type):
            return VenueReport(cid, _Kind.REJECT, now, reason="order_type_unsupported")
        if intent.reduce_only and not self._caps.reduce_only:
            return VenueReport(cid, _Kind.REJECT, now, reason="reduce_only_unsupported")
        if len(cid) > self._caps.client_id_max_length:
            return VenueReport(cid, _Kind.REJECT, now, reason="client_order_id_too_long")
        if self._profile.venue_client_id(cid) is None:
            return VenueReport(cid, _Kind.REJECT, now, reason="client_order_id_unsupported")
        if self._profile.market_buy_in_quote and intent.order_type is OrderType.MARKET and intent.side is Side.BUY:
            # ccxt would need a price to turn the amount into a quote size; the approved order has none.
            return VenueReport(cid, _Kind.REJECT, now, reason="market_buy_unsupported: send a limit order")
        amount, price = _round(order, rules)
        if amount <= 0:
            return VenueReport(cid, _Kind.REJECT, now, reason="amount_below_step")
        if not await self._take_budget():
            return VenueReport(cid, _Kind.REJECT, now, reason="rate_budget_exhausted")
        backoff = self._backoff()
        for attempt in range(1, self.config.submit_rate_limit_attempts + 1):
            try:
                raw = await self._guard(SUBMIT, lambda: self._create(order, amount, price))
            except OrderRejected as rej:
                return VenueReport(cid, _Kind.REJECT, self._clock.now(), reason=rej.report_reason)
            except RetryVenueCall as err:
                if err.reason != "rate_limited" or not self._profile.resend_after_rate_limit:
                    return await self._resolve_unknown(order, err)
                # Binance 429/418: refused before the matching engine; the order does not exist there.
                if attempt >= self.config.submit_rate_limit_attempts:
                    return VenueReport(cid, _Kind.REJECT, self._clock.now(), reason=f"rate_limited: {err}")
                delay = backoff.next_delay(err.retry_after_s)
                log.warning("%s submit %s rate limited; sending it again in %.3fs", self.exchange_id, cid, delay)
                await self._sleep(delay)
                continue
            return await self._accepted(order, raw)
        raise AssertionError("unreachable: the last attempt returns")

    async def _create(self, order: ApprovedOrder, amount: Decimal, price: Decimal | None) -> Any:
        intent = order.intent
        return await self._client.create_order(
            intent.symbol,
            intent.order_type.value,
            intent.side.value,
            str(amount),
            None if price is None else str(price),
            {self._profile.client_id_param: self._profile.venue_client_id(order.client_order_id)},
        )

    async def _accepted(self, order: ApprovedOrder, raw: Mapping[str, Any]) -> VenueReport:
        intent = order.intent
        cid = order.client_order_id
        echoed = raw.get("clientOrderId")
        if echoed is not None and self._profile.our_client_id(str(echoed)) != cid:
            # The venue holds the order under another client id: lookups by ours would never find it.
            raise HaltAndAlert(
                f"{self.exchange_id} accepted order {raw.get('id')} for {cid} under client id {echoed!r}",
                operator_action=(
                    f"Cancel or adopt {self.exchange_id} order {raw.get('id')} by hand, then check how "
                    "execution.ccxt_venue passes the client order id to this ccxt version."
                ),
            )
        tracked = _Tracked(intent.symbol, intent.side, intent.order_type, order.amount, order.price, str(raw["id"]))
        self._orders[cid] = tracked
        return await self._report_state(cid, tracked, raw)

    async def _report_state(self, cid: str, tracked: _Tracked, raw: Mapping[str, Any]) -> VenueReport:
        """The ACCEPT (or REJECT) report for ``raw``; its fills and end are queued for :meth:`poll`.

        An acknowledgement without a status (Kraken's AddOrder and Coinbase's create answer carry
        none) means the order is working.
        """
        ts = _ts(raw, self._clock.now())
        status = _status(raw)
        if status is OrderStatus.REJECTED:
            tracked.status = status
            return VenueReport(cid, _Kind.REJECT, ts, tracked.venue_order_id, "rejected_at_venue")
        await self._queue_changes(cid, tracked, raw)
        return VenueReport(cid, _Kind.ACCEPT, ts, tracked.venue_order_id)

    async def _resolve_unknown(self, order: ApprovedOrder, err: RetryVenueCall) -> VenueReport:
        cid = order.client_order_id
        intent = order.intent
        try:
            raw = await self._lookup(intent.symbol, cid)
        except (RetryVenueCall, OrderRejected) as lookup_err:
            raise SubmitOutcomeUnknown(
                f"{self.exchange_id} submit of {cid} failed ({err.reason}: {err}) and the lookup by client "
                f"order id failed too ({lookup_err})"
            ) from err
        if raw is not None:
            log.warning("%s submit %s: %s, but the venue has the order", self.exchange_id, cid, err.reason)
            return await self._accepted(order, raw)
        if err.http_status is not None and (err.http_status >= 500 or err.http_status in (418, 429)):
            return VenueReport(
                cid,
                _Kind.REJECT,
                self._clock.now(),
                reason=f"not_accepted: the venue answered {err.http_status} and has no order {cid}",
            )
        raise SubmitOutcomeUnknown(
            f"{self.exchange_id} submit of {cid}: {err.reason} ({err}) and the venue does not list the "
            "order yet; it may still arrive"
        ) from err

    # -- lookups -------------------------------------------------------------------------------

    async def _lookup(self, symbol: str, cid: str) -> Any:
        """The raw ccxt order with client id ``cid`` in ``symbol``, or None when the venue has none
        (how depends on the exchange: :attr:`ExchangeProfile.lookup`)."""
        lookup = self._profile.lookup
        if lookup == "open_and_closed_by_client_id":
            return await self._lookup_open_and_closed(symbol, cid)
        if lookup == "scan_recent_orders":
            return await self._scan_recent_orders(symbol, cid)
        try:
            return await self._read(
                "fetch_order", lambda: self._client.fetch_order(None, symbol, {"clientOrderId": cid})
            )
        except OrderNotAtVenue:
            return None

    def _matching(self, raws: Sequence[Mapping[str, Any]], cid: str) -> Any:
        for raw in raws:
            venue_cid = raw.get("clientOrderId")
            if venue_cid is not None and self._profile.our_client_id(str(venue_cid)) == cid:
                return raw
        return None

    async def _lookup_open_and_closed(self, symbol: str, cid: str) -> Any:
        """Kraken: OpenOrders, then ClosedOrders, each filtered by ``cl_ord_id`` at the venue."""
        params = {"clientOrderId": self._profile.venue_client_id(cid)}
        opened = await self._read(
            "fetch_open_orders", lambda: self._client.fetch_open_orders(symbol, None, None, dict(params))
        )
        found = self._matching(opened, cid)
        if found is not None:
            return found
        closed = await self._read(
            "fetch_closed_orders", lambda: self._client.fetch_closed_orders(symbol, None, None, dict(params))
        )
        return self._matching(closed, cid)

    async def _scan_recent_orders(self, symbol: str, cid: str) -> Any:
        """Coinbase: its recent orders of ``symbol`` (every status, newest first), page by page, matched
        on ``client_order_id``; more pages than ``lookup_max_pages`` leave the outcome unknown."""
        market = self._client.market(symbol)
        request: dict[str, Any] = {"product_id": market["id"], "limit": self.config.lookup_page_size}
        for _ in range(self.config.lookup_max_pages):
            page = await self._read(
                "fetch_orders", lambda: self._client.v3PrivateGetBrokerageOrdersHistoricalBatch(dict(request))
            )
            found = self._matching(self._client.parse_orders(page.get("orders") or [], market), cid)
            if found is not None or not page.get("has_next"):
                return found
            request["cursor"] = page.get("cursor")
        raise RetryVenueCall(
            f"{self.exchange_id} has no order {cid} in the {self.config.lookup_max_pages} newest pages of "
            f"{symbol} orders; older pages not read",
            reason="lookup_incomplete",
        )

    async def _fetch_order(self, cid: str) -> VenueOrder | None:
        tracked = self._orders.get(cid)
        symbols = (tracked.symbol,) if tracked is not None else self.config.symbols
        for symbol in symbols:
            raw = await self._lookup(symbol, cid)
            if raw is not None:
                return await self._venue_order(raw)
        return None

    async def _fetch_open_orders(self, symbol: str | None) -> list[VenueOrder]:
        raws = await self._read("fetch_open_orders", lambda: self._client.fetch_open_orders(symbol))
        return [await self._venue_order(raw) for raw in raws if raw.get("symbol") in self._caps.rules]

    async def _venue_order(self, raw: Mapping[str, Any]) -> VenueOrder:
        """A :class:`VenueOrder` with every fill; the order is tracked from now on."""
        cid = self._profile.our_client_id(str(raw.get("clientOrderId") or ""))
        tracked = self._orders.get(cid)
        if tracked is None:
            tracked = _Tracked(
                raw["symbol"],
                Side(raw["side"]),
                OrderType(raw["type"]),
                _number(raw.get("amount"), "amount"),
                None if raw["type"] != "limit" else _number(raw["price"], "price"),
                str(raw["id"]),
            )
            if cid:
                self._orders[cid] = tracked
        fills = await self._fills(cid, tracked, raw)
        return VenueOrder(
            cid,
            tracked.venue_order_id,
            tracked.symbol,
            tracked.side,
            tracked.order_type,
            tracked.amount,
            tracked.price,
            _status(raw),
            _number(raw.get("filled") or 0, "filled"),
            tuple(fills),
        )

    async def _fills(self, cid: str, tracked: _Tracked, raw: Mapping[str, Any]) -> list[Fill]:
        """Every fill of the order: from the answer's trades, else asked for (``fetch_order_trades``)."""
        filled = _number(raw.get("filled") or 0, "filled")
        trades = list(raw.get("trades") or ())
        # Kraken lists only the trade ids in an order (amount None): those are read like missing ones.
        complete = all(t.get("amount") is not None and t.get("price") is not None for t in trades)
        if filled > 0 and (not complete or sum((_number(t["amount"], "amount") for t in trades), _ZERO) < filled):
            trades = await self._order_trades(tracked, trades)
        default_ts = _ts(raw, self._clock.now())
        return [self._fill(cid, tracked, trade, default_ts) for trade in trades]

    async def _order_trades(self, tracked: _Tracked, listed: Sequence[Mapping[str, Any]]) -> list[Any]:
        """The trades of one order, the exchange's way (:attr:`ExchangeProfile.order_trades`)."""
        order_id, symbol = tracked.venue_order_id, tracked.symbol
        mode = self._profile.order_trades
        if mode == "fetch_order_trades_by_ids":
            ids = [str(t["id"]) for t in listed if t.get("id") is not None]
            if not ids:
                raise Bot4Error(f"{self.exchange_id} order {order_id} has fills but lists no trade ids")
            return list(
                await self._read(
                    "fetch_order_trades",
                    lambda: self._client.fetch_order_trades(order_id, symbol, None, None, {"trades": ids}),
                )
            )
        if mode == "my_trades_by_order_ids":
            trades = await self._read(
                "fetch_my_trades", lambda: self._client.fetch_my_trades(symbol, None, None, {"order_ids": [order_id]})
            )
            return [t for t in trades if str(t.get("order")) == order_id]
        return list(await self._read("fetch_order_trades", lambda: self._client.fetch_order_trades(order_id, symbol)))

    def _fill(self, cid: str, tracked: _Tracked, trade: Mapping[str, Any], default_ts: datetime) -> Fill:
        market_id = self._client.market(tracked.symbol)["id"]
        fee = trade.get("fee") or {}
        quote = tracked.symbol.partition("/")[2]
        liquidity = Liquidity.MAKER if trade.get("takerOrMaker") == "maker" else Liquidity.TAKER
        return Fill(
            self.exchange_id,
            f"{market_id}-{trade['id']}",
            cid,
            self.config.account,
            tracked.symbol,
            tracked.side,
            _number(trade["price"], "price"),
            _number(trade["amount"], "amount"),
            _number(fee.get("cost") or 0, "fee"),
            str(fee.get("currency") or quote),
            liquidity,
            _ts(trade, default_ts),
        )

    async def _queue_changes(self, cid: str, tracked: _Tracked, raw: Mapping[str, Any]) -> None:
        """Queue the fills not reported yet, then the order's end (expiry or cancel) if it ended."""
        await self._queue_fills(cid, tracked, raw)
        status = _status(raw)
        ts = _ts(raw, self._clock.now())
        if status is OrderStatus.EXPIRED and tracked.status is not status:
            self._reports.append(VenueReport(cid, _Kind.EXPIRE, ts, tracked.venue_order_id, "expired_at_venue"))
        elif status is OrderStatus.CANCELED and tracked.status is not status:
            self._reports.append(VenueReport(cid, _Kind.CANCEL, ts, tracked.venue_order_id, "canceled_at_venue"))
        tracked.status = status

    async def _queue_fills(self, cid: str, tracked: _Tracked, raw: Mapping[str, Any]) -> None:
        for fill in await self._fills(cid, tracked, raw):
            if fill.fill_id in tracked.fills:
                continue
            tracked.fills[fill.fill_id] = fill
            tracked.filled += fill.amount
            kind = _Kind.FILL if tracked.filled >= tracked.amount else _Kind.PARTIAL_FILL
            self._reports.append(VenueReport(cid, kind, fill.ts_event, tracked.venue_order_id, "", fill))

    async def _refresh_open(self) -> None:
        for cid, tracked in list(self._orders.items()):
            if tracked.status.is_terminal:
                continue
            raw = await self._lookup(tracked.symbol, cid)
            if raw is not None:
                await self._queue_changes(cid, tracked, raw)

    # -- cancel, balances ----------------------------------------------------------------------

    async def _cancel(self, cid: str) -> VenueReport:
        tracked = self._orders.get(cid)
        now = self._clock.now()
        if tracked is None:
            found = await self._fetch_order(cid)
            tracked = self._orders.get(cid)
            if found is None or tracked is None:
                return VenueReport(cid, _Kind.CANCEL_REJECT, now, None, "order_not_open: unknown at the venue")
        if not await self._take_budget():
            return VenueReport(cid, _Kind.CANCEL_REJECT, now, tracked.venue_order_id, "rate_budget_exhausted")
        symbol, order_id = tracked.symbol, tracked.venue_order_id
        try:
            if self._profile.cancel_by_client_id:
                raw = await self._read(
                    "cancel_order", lambda: self._client.cancel_order(None, symbol, {"clientOrderId": cid})
                )
            else:
                raw = await self._read("cancel_order", lambda: self._client.cancel_order(order_id, symbol))
                if (raw.get("info") or {}).get("success") is False:
                    # Coinbase answers a refused cancel with success false and a reason, not an error.
                    reason = (raw.get("info") or {}).get("failure_reason")
                    raise OrderNotAtVenue(f"{self.exchange_id} cancel of {order_id} refused: {reason}")
        except OrderNotAtVenue as err:
            # Not open: already finished, or our own earlier attempt (whose answer was lost) canceled it.
            raw = await self._lookup(symbol, cid)
            if raw is None or _status(raw) is not OrderStatus.CANCELED:
                if raw is not None:
                    await self._queue_changes(cid, tracked, raw)
                return VenueReport(cid, _Kind.CANCEL_REJECT, now, tracked.venue_order_id, f"order_not_open: {err}")
        # Fills made before the cancel are queued after it (the lifecycle absorbs them).
        await self._queue_fills(cid, tracked, raw)
        tracked.status = OrderStatus.CANCELED
        return VenueReport(cid, _Kind.CANCEL, _ts(raw, now), tracked.venue_order_id)

    async def _balances(self) -> dict[str, Decimal]:
        raw = await self._read("fetch_balance", self._client.fetch_balance)
        totals = raw.get("total") or {}
        return {str(cur): _number(value, f"balance {cur}") for cur, value in totals.items() if value is not None}


class LiveCcxtVenue(CcxtVenue):
    """Real-money spot orders: only with ``live_trading_enabled``, ``testnet`` false and both keys."""

    SANDBOX: ClassVar[bool] = False

    @classmethod
    def _check_settings(cls, config: CcxtVenueConfig) -> None:
        if not config.live_trading_enabled:
            raise LiveTradingRefused(
                f"live trading on {config.exchange} refused: BOT4_EXCHANGE__LIVE_TRADING_ENABLED is false"
            )
        if config.testnet:
            raise LiveTradingRefused(
                f"live trading on {config.exchange} refused: BOT4_EXCHANGE__TESTNET is true (that is the "
                "CcxtVenue sandbox)"
            )
        cls._require_keys(config, LiveTradingRefused)


# ----------------------------------------------------------------------------------------------
# Conversions


def _number(value: Any, name: str) -> Decimal:
    """A ccxt number (float, int or numeric string) as an exact Decimal (floats via their shortest repr)."""
    if isinstance(value, bool) or value is None:
        raise Bot4Error(f"ccxt returned {value!r} for {name}; expected a number")
    if isinstance(value, float):
        return float_to_decimal(value, name=name)
    return Decimal(str(value))


def _step(value: Any, decimal_places: bool, name: str) -> Decimal:
    if decimal_places:
        return Decimal(1).scaleb(-int(value))
    return _number(value, name)


def _rules(market: Mapping[str, Any], decimal_places: bool) -> InstrumentRules:
    precision = market.get("precision") or {}
    limits = market.get("limits") or {}
    amount_limits = limits.get("amount") or {}
    cost_limits = limits.get("cost") or {}
    max_amount = amount_limits.get("max")
    return InstrumentRules(
        price_tick=_step(precision.get("price"), decimal_places, f"{market['symbol']} price precision"),
        amount_step=_step(precision.get("amount"), decimal_places, f"{market['symbol']} amount precision"),
        min_amount=_number(amount_limits.get("min") or 0, "min amount"),
        max_amount=None if max_amount is None else _number(max_amount, "max amount"),
        min_notional=_number(cost_limits.get("min") or 0, "min notional"),
    )


def _round(order: ApprovedOrder, rules: InstrumentRules) -> tuple[Decimal, Decimal | None]:
    """Amount down to the step; a limit price to the tick on the side that is never worse.

    >>> from execution.paper import _example_order
    >>> _round(_example_order("b4-1", "0.123456", "100.129"), InstrumentRules(Decimal("0.01"), Decimal("0.001")))
    (Decimal('0.123'), Decimal('100.12'))
    >>> _round(_example_order("b4-2", "1", "100.121", side="sell"), InstrumentRules(Decimal("0.01"), Decimal("1")))
    (Decimal('1'), Decimal('100.13'))
    """
    amount = quantize_down(order.amount, rules.amount_step)
    if order.intent.order_type is not OrderType.LIMIT or order.price is None:
        return amount, None
    rounding = ROUND_FLOOR if order.intent.side is Side.BUY else ROUND_CEILING
    price = (order.price / rules.price_tick).to_integral_value(rounding=rounding) * rules.price_tick
    return amount, price


def _status(raw: Mapping[str, Any]) -> OrderStatus:
    status = raw.get("status")
    closed = _CLOSED_STATUS.get(str(status))
    if closed is not None:
        return closed
    # No status: an acknowledgement that says only "accepted" (Kraken's AddOrder, Coinbase's create).
    if status == "open" or status is None:
        filled = raw.get("filled") or 0
        return OrderStatus.PARTIALLY_FILLED if filled else OrderStatus.ACCEPTED
    raise Bot4Error(f"ccxt order status {status!r} is not one Bot4 knows (open, closed, canceled, expired, rejected)")


def _ts(raw: Mapping[str, Any], default: datetime) -> datetime:
    ms = raw.get("timestamp") or raw.get("lastTradeTimestamp")
    return from_epoch_ms(int(ms)) if ms else default
