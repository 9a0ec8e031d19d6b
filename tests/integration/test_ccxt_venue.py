"""The real async ccxt client (Binance spot) against the local exchange, through ``execution.ccxt_venue``.

No Kafka or PostgreSQL. The server (``tests/support/exchange_server.py``) runs on its own event
loop thread, the venue on another (its sync facade), as in production where the venue's loop is
separate from the caller. Fills are checked against the recorded book the server serves (the
2024-08-08 BTCUSDT snapshot of the hftbacktest capture; the playback is not started, so the book
is the recorded snapshot), the filters against the recorded ``exchangeInfo``.

Binance semantics the fault tests rely on: a 429/418 answer means the request was refused before
the matching engine (the order does not exist), so the SAME order (same client id) may be sent
again after Retry-After; a 5xx or a lost answer means the outcome is unknown, so the order is
looked up by client order id and never resent.
"""

from __future__ import annotations

import asyncio
import pickle
import threading
from collections.abc import Callable, Coroutine, Iterator
from contextlib import contextmanager
from decimal import Decimal
from typing import Any, TypeVar

import ccxt
import pytest
from pydantic import SecretStr

from core.clock import ManualClock, SystemClock, parse_utc
from core.errors import Bot4Error, ConfigError, HaltAndAlert
from core.fills import Liquidity, OrderEventKind, OrderStatus
from core.orders import ApprovedOrder
from execution.ccxt_errors import OrderNotAtVenue, OrderRejected, RetryVenueCall, translate_ccxt_error
from execution.ccxt_venue import CcxtVenue, CcxtVenueConfig, LiveCcxtVenue, LiveTradingRefused, SharedOrderBudget
from execution.manager import OrderManager
from execution.portfolio import Portfolio
from execution.venue import SubmitOutcomeUnknown
from risk.decisions import approved_order_from_record

try:  # --import-mode=importlib: pytest imports the tests folder as the package ``tests``
    from tests.support.exchange_server import ExchangeServer
except ModuleNotFoundError:  # the default prepend mode puts tests/ itself on sys.path instead
    from support.exchange_server import ExchangeServer

T = TypeVar("T")
CLOCK = SystemClock()


class RecordingSleep:
    """Injected sleep: records each requested delay, then sleeps it for real."""

    def __init__(self) -> None:
        self.calls: list[float] = []

    async def __call__(self, seconds: float) -> None:
        self.calls.append(seconds)
        await asyncio.sleep(seconds)


class NoJitter:
    def random(self) -> float:
        return 0.0


class Exchange:
    """The local Binance on its own loop thread; ``do`` runs a function there (faults, reads)."""

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.thread.start()
        self.server = ExchangeServer("binance")
        self.call(self.server.start())

    def call(self, coro: Coroutine[Any, Any, T]) -> T:
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(30)

    def do(self, fn: Callable[[], T]) -> T:
        async def run() -> T:
            return fn()

        return self.call(run())

    def close(self) -> None:
        self.call(self.server.close())
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(10)
        self.loop.close()

    # shortcuts
    def book(self) -> dict[str, Any]:
        book = self.do(lambda: self.server.book_now("BTCUSDT"))
        assert book is not None
        return book

    def orders(self, cid: str | None = None) -> list[Any]:
        return self.do(lambda: self.server.orders_at_venue(cid))

    def posts(self) -> int:
        return len(self.do(self.server.order_posts))

    def lookups(self, cid: str) -> int:
        requests = self.do(lambda: self.server.http_requests("/api/v3/order"))
        return sum(1 for r in requests if r.method == "GET" and r.query.get("origClientOrderId") == cid)


@contextmanager
def running_exchange(usdt: str | None = None) -> Iterator[Exchange]:
    """The local Binance for one test, its account funded with ``usdt`` when given; closed after."""
    ex = Exchange()
    try:
        if usdt is not None:
            ex.do(lambda: ex.server.account.fund("USDT", usdt))  # type: ignore[union-attr]
        yield ex
    finally:
        ex.close()


@pytest.fixture
def exchange() -> Iterator[Exchange]:
    with running_exchange() as ex:
        yield ex


def make_venue(
    exchange: Exchange,
    sleep: RecordingSleep | None = None,
    budget: SharedOrderBudget | None = None,
    **overrides: Any,
) -> CcxtVenue:
    settings: dict[str, Any] = {
        "exchange": "binance",
        "account": "acct",
        "symbols": ("BTC/USDT",),
        "api_key": SecretStr("testnet-key"),
        "api_secret": SecretStr("testnet-secret"),
        "api_url_override": exchange.server.http_origin,
        "request_timeout_ms": 1000,
        "backoff_initial_s": 0.05,
        "read_max_attempts": 3,
        "poll_interval_s": 3600.0,  # tests poll only what submits and cancels queued
    }
    settings.update(overrides)
    return CcxtVenue(
        CcxtVenueConfig(**settings),
        clock=CLOCK,
        sleep=sleep or RecordingSleep(),
        rng=NoJitter(),
        budget=budget or SharedOrderBudget(1000.0, 1000, CLOCK),
    )


def approved(cid: str, amount: str, price: str | None = None, side: str = "buy") -> ApprovedOrder:
    return approved_order_from_record(
        {
            "v": 1,
            "account": "acct",
            "strategy": "test",
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


def walk(levels: list[list[str]], amount: Decimal) -> list[tuple[Decimal, Decimal]]:
    """The book walk by hand: (price, amount) taken level by level."""
    out, left = [], amount
    for price, shown in levels:
        take = min(Decimal(shown), left)
        if take <= 0:
            break
        out.append((Decimal(price), take))
        left -= take
    return out


# ----------------------------------------------------------------------------------------------
# ack, fills, rejects


def test_market_buy_is_acked_with_its_client_id_and_filled_at_the_recorded_book_walk(exchange: Exchange):
    exchange.do(lambda: exchange.server.account.fund("USDT", "1000000"))  # type: ignore[union-attr]
    asks = exchange.book()["asks"]
    amount = (Decimal(asks[0][1]) + Decimal(asks[1][1]) / 2).quantize(Decimal("0.00001"))
    expected = walk(asks, amount)
    assert len(expected) == 2
    with make_venue(exchange) as venue:
        rules = venue.capabilities.rules_for("BTC/USDT")
        assert rules is not None  # from the recorded exchangeInfo (2021-10-12)
        assert (rules.price_tick, rules.amount_step, rules.min_notional) == (
            Decimal("0.01"),
            Decimal("0.00001"),
            Decimal("10"),
        )
        assert venue.capabilities.sandbox
        report = venue.submit(approved("b4-ack-1", str(amount)))
        assert report.kind is OrderEventKind.ACCEPT
        assert report.venue_order_id is not None
        fills = venue.poll()
    assert [r.kind for r in fills] == [OrderEventKind.PARTIAL_FILL, OrderEventKind.FILL]
    got = [(r.fill.price, r.fill.amount) for r in fills if r.fill is not None]
    assert got == expected
    for r in fills:
        assert r.fill is not None
        assert r.fill.fee == r.fill.amount * Decimal("0.001")  # Binance charges the asset received
        assert (r.fill.fee_currency, r.fill.liquidity, r.fill.account) == ("BTC", Liquidity.TAKER, "acct")
    [order] = exchange.orders("b4-ack-1")
    assert (order.status, order.executed_qty, order.client_order_id) == ("FILLED", amount, "b4-ack-1")
    assert exchange.posts() == 1


def test_limit_buy_through_the_best_ask_partially_fills_rests_and_cancels(exchange: Exchange):
    exchange.do(lambda: exchange.server.account.fund("USDT", "1000000"))  # type: ignore[union-attr]
    best_price, best_amount = exchange.book()["asks"][0]
    amount = Decimal(best_amount) + Decimal("0.5")
    with make_venue(exchange) as venue:
        report = venue.submit(approved("b4-pf-1", str(amount), best_price))
        assert report.kind is OrderEventKind.ACCEPT
        [partial] = venue.poll()
        assert partial.kind is OrderEventKind.PARTIAL_FILL and partial.fill is not None
        assert (partial.fill.price, partial.fill.amount) == (Decimal(best_price), Decimal(best_amount))
        [working] = venue.fetch_open_orders()
        assert (working.client_order_id, working.status, working.filled) == (
            "b4-pf-1",
            OrderStatus.PARTIALLY_FILLED,
            Decimal(best_amount),
        )
        assert [f.fill_id for f in working.fills] == [partial.fill.fill_id]
        locked_quote = Decimal("0.5") * Decimal(best_price)
        assert venue.balances()["USDT"] == Decimal("1000000") - Decimal(best_amount) * Decimal(best_price)
        assert exchange.do(lambda: exchange.server.account.locked["USDT"]) == locked_quote  # type: ignore[union-attr]
        canceled = venue.cancel("b4-pf-1")
        assert canceled.kind is OrderEventKind.CANCEL
        again = venue.cancel("b4-pf-1")  # idempotent: the venue answers -2011, the lookup finds it canceled
        assert again.kind is OrderEventKind.CANCEL
        assert venue.fetch_open_orders() == []
    assert exchange.orders("b4-pf-1")[0].status == "CANCELED"


def test_market_buy_beyond_the_balance_is_rejected_with_the_venue_reason(exchange: Exchange):
    exchange.do(lambda: exchange.server.account.fund("USDT", "50"))  # type: ignore[union-attr]
    with make_venue(exchange) as venue:
        report = venue.submit(approved("b4-rej-1", "0.01"))
    assert report.kind is OrderEventKind.REJECT
    assert report.reason == "insufficient_balance: -2010 Account has insufficient balance for requested action."
    assert exchange.orders() == []


def test_limit_order_below_min_notional_is_rejected_with_the_filter_named(exchange: Exchange):
    exchange.do(lambda: exchange.server.account.fund("USDT", "1000000"))  # type: ignore[union-attr]
    with make_venue(exchange) as venue:
        report = venue.submit(approved("b4-rej-2", "0.0001", "1000.00"))  # 0.1 USDT < 10
        dup_cid = venue.submit(approved("b4-rest-1", "0.001", "20000.00"))  # rests far below the book
        duplicate = venue.submit(approved("b4-rest-1", "0.001", "20000.00"))
    assert report.kind is OrderEventKind.REJECT
    assert report.reason == "below_min_notional: -1013 Filter failure: MIN_NOTIONAL"
    assert dup_cid.kind is OrderEventKind.ACCEPT
    assert (duplicate.kind, duplicate.reason) == (OrderEventKind.REJECT, "duplicate_client_order_id")
    assert [o.client_order_id for o in exchange.orders()] == ["b4-rest-1"]


# ----------------------------------------------------------------------------------------------
# faults on submit


def test_429_on_submit_waits_retry_after_and_sends_the_same_order_again(exchange: Exchange):
    exchange.do(lambda: exchange.server.account.fund("USDT", "1000000"))  # type: ignore[union-attr]
    exchange.do(lambda: exchange.server.fail_next(1, 429, retry_after="1", path="/api/v3/order", method="POST"))
    sleep = RecordingSleep()
    with make_venue(exchange, sleep) as venue:
        report = venue.submit(approved("b4-429-1", "0.001"))
        assert report.kind is OrderEventKind.ACCEPT
        assert 1.0 in sleep.calls  # Retry-After honoured
        # Still limited after every attempt: refused, nothing at the venue, never an unknown outcome.
        exchange.do(lambda: exchange.server.fail_next(3, 429, retry_after="0", path="/api/v3/order", method="POST"))
        limited = venue.submit(approved("b4-429-2", "0.001"))
    assert limited.kind is OrderEventKind.REJECT and limited.reason.startswith("rate_limited")
    assert [o.client_order_id for o in exchange.orders()] == ["b4-429-1"]
    assert exchange.posts() == 2 + 3


@pytest.mark.parametrize("status", [500, 503])
def test_5xx_on_submit_is_resolved_by_client_id_lookup_and_never_resent(exchange: Exchange, status: int):
    exchange.do(lambda: exchange.server.account.fund("USDT", "1000000"))  # type: ignore[union-attr]
    exchange.do(lambda: exchange.server.fail_next(1, status, path="/api/v3/order", method="POST"))
    with make_venue(exchange) as venue:
        report = venue.submit(approved("b4-5xx-1", "0.001"))
    assert report.kind is OrderEventKind.REJECT
    assert report.reason.startswith(f"not_accepted: the venue answered {status}")
    assert exchange.lookups("b4-5xx-1") == 1
    assert exchange.posts() == 1
    assert exchange.orders() == []


@pytest.mark.parametrize("delay_s", [None, 2.5], ids=["connection-reset", "answer-after-timeout"])
def test_lost_answer_after_acceptance_is_found_by_client_id_with_exactly_one_order(
    exchange: Exchange, delay_s: float | None
):
    exchange.do(lambda: exchange.server.account.fund("USDT", "1000000"))  # type: ignore[union-attr]
    exchange.do(lambda: exchange.server.lose_order_responses(1, delay_s=delay_s))
    with make_venue(exchange) as venue:
        report = venue.submit(approved("b4-lost-1", "0.001"))
        assert report.kind is OrderEventKind.ACCEPT
        [fill] = venue.poll()  # the fills come from the lookup (GET order, then myTrades)
    assert fill.kind is OrderEventKind.FILL and fill.fill is not None
    assert fill.fill.price == Decimal(exchange.book()["asks"][0][0])
    assert len(exchange.orders("b4-lost-1")) == 1
    # The delayed answer is logged when the server finally sends it.
    exchange.call(exchange.server.wait_for(lambda: len(exchange.server.order_posts()) >= 1, timeout=5))
    assert exchange.posts() == 1
    assert exchange.lookups("b4-lost-1") == 1


def test_crash_between_submit_and_ack_then_reconcile_leaves_exactly_one_order(exchange: Exchange):
    exchange.do(lambda: exchange.server.account.fund("USDT", "1000000"))  # type: ignore[union-attr]
    order = approved("b4-crash-1", "0.002")
    # The order is accepted, its answer lost, and the venue cannot be asked about it either.
    exchange.do(lambda: exchange.server.lose_order_responses(1))
    exchange.do(lambda: exchange.server.fail_next(2, 503, path="/api/v3/order", method="GET"))
    with make_venue(exchange, read_max_attempts=2) as venue:
        with pytest.raises(SubmitOutcomeUnknown):
            venue.submit(order)
        manager = OrderManager(venue, Portfolio("acct", Decimal("1000000")), clock=CLOCK)
        exchange.do(lambda: exchange.server.lose_order_responses(1))
        exchange.do(lambda: exchange.server.fail_next(2, 503, path="/api/v3/order", method="GET"))
        result = manager.submit(approved("b4-crash-2", "0.002"))
        assert result.status is OrderStatus.SUBMITTED  # written ahead, outcome unknown
        snapshot = pickle.dumps(manager.orders())  # what a crash leaves behind
    # Restart: a new venue and a new manager from the snapshot; reconcile before anything else.
    with make_venue(exchange) as venue:
        manager = OrderManager(venue, Portfolio("acct", Decimal("1000000")), clock=CLOCK, orders=pickle.loads(snapshot))
        report = manager.reconcile()
        assert report.changed == ("b4-crash-2",) and report.fills_applied == 1
        managed = manager.order("b4-crash-2")
        assert managed is not None and managed.status is OrderStatus.FILLED
        assert managed.filled == Decimal("0.002")
        # Binance keeps a buy's 0.1% commission out of the BTC bought (0.000002 BTC): the position
        # holds what the account really has (execution/portfolio.py, base-currency fees).
        assert manager.portfolio.holdings()["binance:BTC/USDT"].amount == Decimal("0.002") - Decimal("0.000002")
        again = manager.submit(approved("b4-crash-2", "0.002"))  # the intent replayed after restart
        assert again.duplicate
    assert len(exchange.orders("b4-crash-2")) == 1
    assert len(exchange.orders("b4-crash-1")) == 1
    assert exchange.posts() == 2  # one per order, none resent


def test_submit_still_in_flight_when_the_client_gives_up_is_unknown_then_reconciled_once(exchange: Exchange):
    exchange.do(lambda: exchange.server.account.fund("USDT", "1000000"))  # type: ignore[union-attr]
    # The request reaches the matching engine only after the client's 1 s timeout and the lookup.
    exchange.do(lambda: exchange.server.delay_next(1, 2.0, path="/api/v3/order", method="POST"))
    with make_venue(exchange) as venue:
        manager = OrderManager(venue, Portfolio("acct", Decimal("1000000")), clock=CLOCK)
        result = manager.submit(approved("b4-flight-1", "0.001", "20000.00"))  # rests below the book
        assert result.status is OrderStatus.SUBMITTED and "submit outcome unknown" in result.reason
        assert exchange.orders() == []  # not there yet: the venue said "Order does not exist."
        exchange.call(exchange.server.wait_for(lambda: len(exchange.server.orders_at_venue()) == 1, timeout=5))
        report = manager.reconcile()
        assert report.changed == ("b4-flight-1",)
        managed = manager.order("b4-flight-1")
        assert managed is not None and managed.status is OrderStatus.ACCEPTED
    assert len(exchange.orders("b4-flight-1")) == 1
    assert exchange.posts() == 1


def test_order_budget_is_shared_by_the_venues_of_one_exchange_and_refuses_without_sending(exchange: Exchange):
    exchange.do(lambda: exchange.server.account.fund("USDT", "1000000"))  # type: ignore[union-attr]
    budget = SharedOrderBudget(1.0, 1, ManualClock(parse_utc("2026-01-01T00:00:00Z")))  # one token, no refill
    with (
        make_venue(exchange, budget=budget, budget_wait_max_s=0.0) as strategy_a,
        make_venue(exchange, budget=budget, budget_wait_max_s=0.0) as strategy_b,
    ):
        assert strategy_a.submit(approved("b4-budget-1", "0.001", "20000.00")).kind is OrderEventKind.ACCEPT
        refused = strategy_b.submit(approved("b4-budget-2", "0.001", "20000.00"))
    assert (refused.kind, refused.reason) == (OrderEventKind.REJECT, "rate_budget_exhausted")
    assert exchange.posts() == 1


# ----------------------------------------------------------------------------------------------
# the translation table (no server: the exceptions ccxt raises for Binance answers)


def _body(code: int, msg: str) -> str:
    return f'{{"code":{code},"msg":"{msg}"}}'


@pytest.mark.parametrize(
    ("exc", "operation", "status", "expected", "action"),
    [
        (ccxt.InsufficientFunds("binance x"), "create_order", 400, OrderRejected, "insufficient_balance"),
        (
            ccxt.InvalidOrder("binance " + _body(-2010, "Duplicate order sent.")),
            "create_order",
            400,
            OrderRejected,
            "duplicate_client_order_id",
        ),
        (
            ccxt.InvalidOrder("binance " + _body(-1013, "Filter failure: LOT_SIZE")),
            "create_order",
            400,
            OrderRejected,
            "bad_amount_precision",
        ),
        (
            ccxt.InvalidOrder("binance " + _body(-1013, "Filter failure: PRICE_FILTER")),
            "create_order",
            400,
            OrderRejected,
            "bad_price_precision",
        ),
        (
            ccxt.BadRequest("binance " + _body(-1013, "Filter failure: ICEBERG_PARTS")),
            "create_order",
            400,
            OrderRejected,
            "filter_iceberg_parts",
        ),
        (
            ccxt.OrderNotFound("binance " + _body(-2013, "Order does not exist.")),
            "fetch_order",
            400,
            OrderNotAtVenue,
            "",
        ),
        (ccxt.BadSymbol("binance does not have market symbol X/Y"), "create_order", None, ConfigError, ""),
        (ccxt.DDoSProtection("binance 429"), "create_order", 429, RetryVenueCall, "rate_limited"),
        (ccxt.RequestTimeout("binance timeout"), "create_order", None, RetryVenueCall, "timeout"),
        (
            ccxt.InvalidNonce("binance " + _body(-1021, "Timestamp ahead")),
            "fetch_order",
            400,
            RetryVenueCall,
            "clock_skew",
        ),
        (ccxt.NetworkError("reset"), "cancel_order", None, RetryVenueCall, "network"),
        (
            ccxt.OperationFailed("binance " + _body(-1001, "Internal error")),
            "create_order",
            500,
            RetryVenueCall,
            "operation_failed",
        ),
        (ccxt.ExchangeError("binance " + _body(-9999, "?")), "fetch_order", 502, RetryVenueCall, "unavailable"),
        (ccxt.AuthenticationError("binance " + _body(-2015, "Invalid API-key")), "create_order", 401, HaltAndAlert, ""),
        (ccxt.BadRequest("binance " + _body(-1100, "Illegal characters")), "fetch_order", 400, HaltAndAlert, ""),
    ],
)
def test_ccxt_errors_are_translated_into_the_action_they_need(
    exc: Exception, operation: str, status: int | None, expected: type[Bot4Error], action: str
):
    err = translate_ccxt_error(exc, exchange="binance", operation=operation, http_status=status)
    assert type(err) is expected
    assert getattr(err, "reason", "") == action
    if isinstance(err, HaltAndAlert):
        assert "Operator action:" in str(err)


# ----------------------------------------------------------------------------------------------
# live trading needs the explicit setting and keys


def _live_config(**overrides: Any) -> CcxtVenueConfig:
    settings: dict[str, Any] = {
        "exchange": "binance",
        "account": "acct",
        "symbols": ("BTC/USDT",),
        "api_url_override": "http://127.0.0.1:9",  # never reached: refused before any request
    }
    settings.update(overrides)
    return CcxtVenueConfig(**settings)


@pytest.mark.parametrize(
    ("overrides", "named"),
    [
        ({"api_key": SecretStr("k"), "api_secret": SecretStr("s"), "testnet": False}, "LIVE_TRADING_ENABLED"),
        ({"live_trading_enabled": True, "testnet": False}, "BOT4_EXCHANGE__API_KEY and BOT4_EXCHANGE__API_SECRET"),
        ({"live_trading_enabled": True, "testnet": False, "api_key": SecretStr("k")}, "BOT4_EXCHANGE__API_SECRET"),
        ({"live_trading_enabled": True, "api_key": SecretStr("k"), "api_secret": SecretStr("s")}, "TESTNET is true"),
    ],
)
def test_live_venue_without_the_explicit_setting_and_keys_is_refused_naming_them(overrides: dict[str, Any], named: str):
    with pytest.raises(LiveTradingRefused, match=named) as err:
        LiveCcxtVenue(_live_config(**overrides), clock=CLOCK)
    assert "Operator action: To trade real money set BOT4_EXCHANGE__LIVE_TRADING_ENABLED=true" in str(err.value)


def test_sandbox_venue_refuses_a_config_that_says_live():
    with pytest.raises(ConfigError, match="use LiveCcxtVenue"):
        CcxtVenue(_live_config(testnet=False, api_key=SecretStr("k"), api_secret=SecretStr("s")), clock=CLOCK)
