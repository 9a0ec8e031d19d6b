"""The real async ccxt client (Kraken spot, Coinbase Advanced Trade) through ``execution.ccxt_venue``,
against a local server answering with exchange responses recorded in ccxt's own static test data.

What the server answers (``tests/fixtures/ccxt-static/``, README there): the markets are the recorded
AssetPairs / products records; an order acknowledgement, an order record, a fill and a refusal are
recorded bodies. The server keeps which orders it accepted and sets only the fields that say which
order of this session a record is (Kraken ``cl_ord_id``; Coinbase ``client_order_id`` and, in the
create answer, the echoed ``product_id`` and ``side``) and the list envelopes' counters (Kraken's
empty ``closed`` result, Coinbase's ``has_next``). Faults are HTTP-level: a status with a plain body
before the order exists, or the order accepted and its answer held past the client's timeout.

Neither exchange has a sandbox in ccxt, so the venue under test is :class:`LiveCcxtVenue` with its
explicit live settings, pointed at 127.0.0.1 (``api_url_override``): nothing leaves the machine.
"""

from __future__ import annotations

import asyncio
import json
import pickle
import threading
from collections.abc import Callable, Coroutine, Iterator
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path
from typing import Any, TypeVar
from urllib.parse import parse_qs

import pytest
from aiohttp import web
from pydantic import SecretStr
from typer.testing import CliRunner

from core.clock import SystemClock, parse_utc
from core.errors import ConfigError
from core.fills import Liquidity, OrderEventKind, OrderStatus
from core.orders import ApprovedOrder, client_order_id
from execution.ccxt_venue import (
    CcxtVenue,
    CcxtVenueConfig,
    LiveCcxtVenue,
    SharedOrderBudget,
    kraken_cl_ord_id,
)
from execution.manager import OrderManager
from execution.markets import fetch_capabilities, load_capabilities
from execution.portfolio import Portfolio
from execution.venue import SubmitOutcomeUnknown
from flows.cli import app
from risk.decisions import approved_order_from_record

T = TypeVar("T")
CLOCK = SystemClock()
ROOT = Path(__file__).resolve().parents[2]
FIXTURES = ROOT / "tests" / "fixtures" / "ccxt-static"
ADD_ORDER = "/0/private/AddOrder"
CB_ORDERS = "/api/v3/brokerage/orders"
CB_BATCH = "/api/v3/brokerage/orders/historical/batch"
PARAMS = web.RequestKey("params", dict)


def fixture(exchange: str) -> dict[str, Any]:
    data: dict[str, Any] = json.loads((FIXTURES / f"{exchange}.json").read_text())
    return data


@dataclass
class Seen:
    method: str
    path: str
    params: dict[str, Any]


@dataclass
class Fault:
    path: str
    method: str
    status: int
    remaining: int


@dataclass
class Held:
    """The venue's record of an order it accepted in this session."""

    client_id: str
    kind: str
    params: dict[str, Any] = field(default_factory=dict)


class StaticVenue:
    """Kraken or Coinbase on 127.0.0.1, answering with the recorded bodies (module docstring)."""

    def __init__(self, exchange: str) -> None:
        self.exchange = exchange
        self.data = fixture(exchange)
        self.seen: list[Seen] = []
        self.held: list[Held] = []
        self.faults: list[Fault] = []
        self.refuse_next = 0
        self.hold_answer_s: float | None = None
        #: Coinbase: answer every listing page with the recorded page as is (``has_next`` true).
        self.listing_never_ends = False
        self._runner: web.AppRunner | None = None
        self.port = 0

    # -- control (called on the server's loop) ---------------------------------------------------

    def fail_next(self, count: int, status: int, path: str, method: str = "POST") -> None:
        self.faults.append(Fault(path, method, status, count))

    def posts(self, path: str) -> list[Seen]:
        return [s for s in self.seen if s.method == "POST" and s.path == path]

    def requests_to(self, path: str) -> list[Seen]:
        return [s for s in self.seen if s.path == path]

    # -- serving ---------------------------------------------------------------------------------

    async def start(self) -> None:
        app = web.Application(middlewares=[self._middleware])
        app.router.add_route("*", "/{tail:.*}", self._dispatch)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        server = site._server
        assert server is not None
        self.port = server.sockets[0].getsockname()[1]  # type: ignore[union-attr]

    async def close(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()

    @property
    def origin(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @web.middleware
    async def _middleware(self, request: web.Request, handler: Callable[..., Any]) -> web.StreamResponse:
        raw = await request.read()
        params: dict[str, Any] = {k: v for k, v in request.query.items()}
        if raw and request.content_type == "application/json":
            params.update(json.loads(raw))
        elif raw:
            params.update({k: v[0] for k, v in parse_qs(raw.decode()).items()})
        self.seen.append(Seen(request.method, request.path, params))
        request[PARAMS] = params
        fault = next(
            (f for f in self.faults if f.remaining > 0 and (f.path, f.method) == (request.path, request.method)), None
        )
        if fault is not None:
            fault.remaining -= 1
            return web.Response(status=fault.status, text=f"{fault.status}: injected by the test server")
        response: web.StreamResponse = await handler(request)
        return response

    @staticmethod
    def _json(body: Any) -> web.Response:
        return web.Response(body=json.dumps(body).encode(), content_type="application/json")

    def _not_recorded(self, request: web.Request) -> web.Response:
        return web.Response(status=404, text=f"not recorded: {request.method} {request.path_qs}")

    async def _answer_accepted(self, body: Any) -> web.Response:
        if self.hold_answer_s is not None:
            delay, self.hold_answer_s = self.hold_answer_s, None
            await asyncio.sleep(delay)  # the order exists; the client has given up by now
        return self._json(body)

    async def _dispatch(self, request: web.Request) -> web.StreamResponse:
        if self.exchange == "kraken":
            return await self._kraken(request, request[PARAMS])
        return await self._coinbase(request, request[PARAMS])

    # -- Kraken ----------------------------------------------------------------------------------

    async def _kraken(self, request: web.Request, params: dict[str, Any]) -> web.StreamResponse:
        responses = self.data["responses"]
        path = request.path
        if path == "/0/public/AssetPairs":
            return self._json({"error": [], "result": self.data["markets"]})
        if path.startswith("/0/private/"):
            assert request.headers.get("API-Key") and request.headers.get("API-Sign"), "unsigned private call"
        if path == ADD_ORDER:
            if self.refuse_next:
                self.refuse_next -= 1
                return self._json(responses["error.insufficient_funds"])
            self.held.append(Held(params.get("cl_ord_id", ""), params["ordertype"], params))
            ack = json.loads(json.dumps(responses["createOrder.market_buy"]))
            if params["ordertype"] == "limit":
                # A limit order is the recorded open limit order: acknowledged with its txid and descr.
                [(txid, record)] = responses["fetchOrder.open_limit"]["result"].items()
                ack["result"] = {"txid": [txid], "descr": {"order": record["descr"]["order"]}}
            return await self._answer_accepted(ack)
        if path == "/0/private/OpenOrders":
            wanted = params.get("cl_ord_id")
            [(txid, record)] = responses["fetchOrder.open_limit"]["result"].items()
            # Every accepted limit order is the recorded one (one txid): the server holds at most one.
            matching = [h for h in self.held if h.kind == "limit" and h.client_id == wanted]
            found = {txid: {**record, "cl_ord_id": matching[0].client_id}} if matching else {}
            return self._json({"error": [], "result": {"open": found}})
        if path == "/0/private/ClosedOrders":
            if any(h.kind != "limit" for h in self.held):
                return self._not_recorded(request)  # no closed record of ours is served
            return self._json({"error": [], "result": {"closed": {}, "count": 0}})
        return self._not_recorded(request)

    # -- Coinbase --------------------------------------------------------------------------------

    async def _coinbase(self, request: web.Request, params: dict[str, Any]) -> web.StreamResponse:
        responses = self.data["responses"]
        path = request.path
        if path == "/api/v3/brokerage/market/products":
            if params.get("product_type"):
                return self._not_recorded(request)  # futures: ccxt goes on without them
            products = self.data["products"]
            return self._json({"products": products, "num_products": str(len(products))})
        if "/brokerage/" in path and path != "/api/v3/brokerage/market/products":
            assert request.headers.get("CB-ACCESS-KEY") and request.headers.get("CB-ACCESS-SIGN"), "unsigned call"
        if path == CB_ORDERS and request.method == "POST":
            if self.refuse_next:
                self.refuse_next -= 1
                return self._json(responses["createOrder.failed"])
            self.held.append(Held(params["client_order_id"], next(iter(params["order_configuration"])), params))
            body = json.loads(json.dumps(responses["createOrder.success"]))
            # The order is the recorded ADA-USDT market order: acknowledged with that order's id.
            order_id = responses["fetchClosedOrders.spot"]["orders"][0]["order_id"]
            body["order_id"] = order_id
            body["success_response"].update(
                order_id=order_id,
                client_order_id=params["client_order_id"],
                product_id=params["product_id"],
                side=params["side"],
            )
            return await self._answer_accepted(body)
        if path == CB_BATCH:
            page = json.loads(json.dumps(responses["fetchClosedOrders.spot"]))
            [record] = page["orders"]
            page["orders"] = [
                {**record, "client_order_id": h.client_id}
                for h in self.held
                if h.kind == "market_market_ioc" and h.params["product_id"] == params.get("product_id")
            ]
            if not self.listing_never_ends:
                page["has_next"], page["cursor"] = False, ""
            return self._json(page)
        if path == "/api/v3/brokerage/orders/historical/fills":
            body = responses["fetchMyTrades.spot"]
            wanted = params.get("order_ids")
            fills = [f for f in body["fills"] if f["order_id"] == wanted]
            return self._json({**body, "fills": fills, "cursor": body["cursor"] if fills else ""})
        return self._not_recorded(request)


class Server:
    """The static venue on its own loop thread (the venue's client runs on another)."""

    def __init__(self, exchange: str) -> None:
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.thread.start()
        self.venue = StaticVenue(exchange)
        self.call(self.venue.start())

    def call(self, coro: Coroutine[Any, Any, T]) -> T:
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(30)

    def do(self, fn: Callable[[], T]) -> T:
        async def run() -> T:
            return fn()

        return self.call(run())

    def close(self) -> None:
        self.call(self.venue.close())
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(10)
        self.loop.close()


@pytest.fixture(params=["kraken", "coinbase"])
def server(request: pytest.FixtureRequest) -> Iterator[Server]:
    srv = Server(request.param)
    try:
        yield srv
    finally:
        srv.close()


def make_venue(server: Server, **overrides: Any) -> LiveCcxtVenue:
    secret = "dGVzdC1zZWNyZXQ=" if server.venue.exchange == "kraken" else "test-secret"  # Kraken: base64
    settings: dict[str, Any] = {
        "exchange": server.venue.exchange,
        "account": "acct",
        "symbols": SYMBOLS[server.venue.exchange],
        "api_key": SecretStr("test-key"),
        "api_secret": SecretStr(secret),
        "testnet": False,
        "live_trading_enabled": True,
        "api_url_override": server.venue.origin,
        "request_timeout_ms": 1000,
        # ccxt spaces Kraken's order queries 3 s apart (1000 ms x cost 3); the local server needs none.
        "ccxt_rate_limit_ms": 5.0,
        "backoff_initial_s": 0.05,
        "read_max_attempts": 2,
        "poll_interval_s": 3600.0,
    }
    settings.update(overrides)
    return LiveCcxtVenue(CcxtVenueConfig(**settings), clock=CLOCK, budget=SharedOrderBudget(1000.0, 1000, CLOCK))


#: The symbols of the recorded orders (Kraken LTC/USDT, Coinbase ADA/USDT) and one more each.
SYMBOLS = {"kraken": ("LTC/USDT", "BTC/USD"), "coinbase": ("ADA/USDT", "BTC/USDT")}


def approved(
    exchange: str, symbol: str, side: str, amount: str, price: str | None = None, cid: str | None = None
) -> ApprovedOrder:
    cid = cid or client_order_id("static", symbol, parse_utc("2026-11-25T00:00:00Z"))
    return approved_order_from_record(
        {
            "v": 1,
            "account": "acct",
            "strategy": "test",
            "exchange": exchange,
            "symbol": symbol,
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


def recorded_order(exchange: str) -> ApprovedOrder:
    """The order the recordings hold: Kraken's open limit buy of 0.1 LTC/USDT at 50 (its ack is the
    recorded market one), Coinbase's market sell of 10 ADA/USDT, filled once at 0.392."""
    if exchange == "kraken":
        return approved("kraken", "LTC/USDT", "buy", "0.1", "50")
    return approved("coinbase", "ADA/USDT", "sell", "10")


def order_posts(server: Server) -> list[Seen]:
    path = ADD_ORDER if server.venue.exchange == "kraken" else CB_ORDERS
    return server.do(lambda: server.venue.posts(path))


def lookups(server: Server) -> list[Seen]:
    paths = ("/0/private/OpenOrders", "/0/private/ClosedOrders") if server.venue.exchange == "kraken" else (CB_BATCH,)
    return server.do(lambda: [s for s in server.venue.seen if s.path in paths])


# ----------------------------------------------------------------------------------------------
# capabilities from the recorded markets


def test_capabilities_come_from_the_recorded_market_info(server: Server):
    with make_venue(server) as venue:
        caps = venue.capabilities
    if server.venue.exchange == "kraken":
        ltc = caps.rules["LTC/USDT"]  # pair_decimals 5, lot_decimals 8, ordermin 0.08, costmin 0.5
        assert (ltc.price_tick, ltc.amount_step, ltc.min_amount, ltc.min_notional) == (
            Decimal("0.00001"),
            Decimal("1E-8"),
            Decimal("0.08"),
            Decimal("0.5"),
        )
        assert (caps.fees.maker, caps.fees.taker) == (Decimal("0.0016"), Decimal("0.0026"))
        assert caps.fetch_order_by_client_id
    else:
        ada = caps.rules["ADA/USDT"]  # quote_increment 0.0001, base_increment 0.01, base_min 0.01, quote_min 1
        assert (ada.price_tick, ada.amount_step, ada.min_amount, ada.max_amount, ada.min_notional) == (
            Decimal("0.0001"),
            Decimal("0.01"),
            Decimal("0.01"),
            Decimal("30224000"),
            Decimal("1"),
        )
        assert not caps.fetch_order_by_client_id  # Coinbase: found by listing recent orders
    assert not caps.sandbox


# ----------------------------------------------------------------------------------------------
# acknowledgement and refusal


def test_order_ack_gives_the_venue_order_id_and_sends_our_client_id_the_exchange_s_way(server: Server):
    exchange = server.venue.exchange
    with make_venue(server) as venue:
        if exchange == "kraken":
            order = approved("kraken", "LTC/USDT", "buy", "0.123456789")  # rounded down to lot_decimals 8
            report = venue.submit(order)
        else:
            order = approved("coinbase", "ADA/USDT", "sell", "10.019")  # rounded down to base_increment 0.01
            report = venue.submit(order)
        assert venue.poll() == []  # the acknowledgement says nothing about fills
    assert report.kind is OrderEventKind.ACCEPT and report.client_order_id == order.client_order_id
    [post] = order_posts(server)
    if exchange == "kraken":
        assert report.venue_order_id == "OL7LNO-R4SAD-6UINEU"
        assert post.params["cl_ord_id"] == kraken_cl_ord_id(order.client_order_id)
        assert len(post.params["cl_ord_id"]) == 36  # our 27-character id as a UUID (free text stops at 18)
        assert (post.params["pair"], post.params["ordertype"], post.params["volume"]) == (
            "LTCUSDT",
            "market",
            "0.12345678",
        )
    else:
        assert report.venue_order_id == "01b6e467-b659-432f-9490-c7cefe949564"
        assert post.params["client_order_id"] == order.client_order_id  # not ccxt's own "ccxt-<uuid>"
        assert post.params["order_configuration"] == {"market_market_ioc": {"base_size": "10.01"}}


def test_refused_order_is_a_reject_carrying_the_venue_s_code_and_words(server: Server):
    server.do(lambda: setattr(server.venue, "refuse_next", 1))
    order = recorded_order(server.venue.exchange)
    with make_venue(server) as venue:
        report = venue.submit(order)
    assert report.kind is OrderEventKind.REJECT
    if server.venue.exchange == "kraken":
        assert report.reason == "insufficient_balance: EOrder Insufficient funds"
    else:
        assert report.reason == "invalid_order: UNSUPPORTED_ORDER_CONFIGURATION source is not enabled for trading"
    assert len(order_posts(server)) == 1
    assert server.do(lambda: server.venue.held) == []


# ----------------------------------------------------------------------------------------------
# faults on submit: looked up by client id, never resent


@pytest.mark.parametrize("status", [429, 500, 503])
def test_http_error_on_submit_is_looked_up_by_client_id_and_rejected_without_a_resend(server: Server, status: int):
    path = ADD_ORDER if server.venue.exchange == "kraken" else CB_ORDERS
    server.do(lambda: server.venue.fail_next(1, status, path))
    order = recorded_order(server.venue.exchange)
    with make_venue(server) as venue:
        report = venue.submit(order)
    assert report.kind is OrderEventKind.REJECT
    assert report.reason.startswith(
        f"not_accepted: the venue answered {status} and has no order {order.client_order_id}"
    )
    assert len(order_posts(server)) == 1
    seen = lookups(server)
    if server.venue.exchange == "kraken":
        assert [s.path for s in seen] == ["/0/private/OpenOrders", "/0/private/ClosedOrders"]
        assert {s.params["cl_ord_id"] for s in seen} == {kraken_cl_ord_id(order.client_order_id)}
    else:
        assert [s.params["product_id"] for s in seen] == ["ADA-USDT"]


def test_timeout_after_the_order_was_accepted_is_resolved_by_client_id_lookup_without_a_second_submit(server: Server):
    server.do(lambda: setattr(server.venue, "hold_answer_s", 2.5))  # the client gives up after 1 s
    order = recorded_order(server.venue.exchange)
    with make_venue(server) as venue:
        report = venue.submit(order)
        fills = venue.poll()
    assert report.kind is OrderEventKind.ACCEPT
    assert len(order_posts(server)) == 1
    assert len(server.do(lambda: server.venue.held)) == 1
    if server.venue.exchange == "kraken":
        assert report.venue_order_id == "OR6EGN-KQSEG-AMI6CL"  # the open order found by its cl_ord_id
        assert fills == []
    else:
        assert report.venue_order_id == "01b6e467-b659-432f-9490-c7cefe949564"  # found in the listing
        [fill] = fills
        assert fill.kind is OrderEventKind.FILL and fill.fill is not None
        assert (fill.fill.price, fill.fill.amount, fill.fill.fee, fill.fill.fee_currency) == (
            Decimal("0.392"),
            Decimal("10"),
            Decimal("0.03136"),
            "USDT",
        )
        assert fill.fill.liquidity is Liquidity.TAKER
        assert fill.fill.fill_id == "ADA-USDT-19fc7eee-f4b4-40a7-8104-033da1db5311"


def test_lookup_of_an_order_the_venue_never_got_answers_none_then_finds_it_after_acceptance(server: Server):
    order = recorded_order(server.venue.exchange)
    with make_venue(server) as venue:
        assert venue.fetch_order(order.client_order_id) is None
        assert venue.submit(order).kind is OrderEventKind.ACCEPT
        found = venue.fetch_order(order.client_order_id)
    assert found is not None
    assert (found.client_order_id, found.symbol, found.amount) == (
        order.client_order_id,
        order.intent.symbol,
        order.amount,
    )


def test_crash_between_submit_and_ack_then_restart_and_reconcile_leaves_exactly_one_order(server: Server):
    exchange = server.venue.exchange
    lookup_path = "/0/private/OpenOrders" if exchange == "kraken" else CB_BATCH
    lookup_method = "POST" if exchange == "kraken" else "GET"
    # The order is accepted and its answer lost, and the venue cannot be asked about it either.
    server.do(lambda: setattr(server.venue, "hold_answer_s", 2.5))
    server.do(lambda: server.venue.fail_next(2, 503, lookup_path, lookup_method))
    order = recorded_order(exchange)
    with make_venue(server) as venue:
        manager = OrderManager(venue, Portfolio("acct", Decimal("1000000")), clock=CLOCK)
        result = manager.submit(order)
        assert result.status is OrderStatus.SUBMITTED  # written ahead, outcome unknown
        snapshot = pickle.dumps(manager.orders())  # what a crash leaves behind
    with make_venue(server) as venue:
        manager = OrderManager(venue, Portfolio("acct", Decimal("1000000")), clock=CLOCK, orders=pickle.loads(snapshot))
        report = manager.reconcile()
        assert report.changed == (order.client_order_id,)
        managed = manager.order(order.client_order_id)
        assert managed is not None
        if exchange == "kraken":
            assert (managed.status, report.fills_applied) == (OrderStatus.ACCEPTED, 0)  # the recorded open order
        else:
            assert (managed.status, report.fills_applied) == (OrderStatus.FILLED, 1)  # the recorded fill
        assert manager.submit(order).duplicate  # the intent replayed after restart
    assert len(order_posts(server)) == 1
    assert len(server.do(lambda: server.venue.held)) == 1


def test_coinbase_listing_longer_than_the_lookup_reads_leaves_the_submit_outcome_unknown():
    srv = Server("coinbase")
    try:
        srv.do(lambda: setattr(srv.venue, "listing_never_ends", True))
        srv.do(lambda: srv.venue.fail_next(1, 503, CB_ORDERS))
        with make_venue(srv, lookup_max_pages=2) as venue, pytest.raises(SubmitOutcomeUnknown, match="older pages"):
            venue.submit(recorded_order("coinbase"))
        pages = srv.do(lambda: srv.venue.requests_to(CB_BATCH))
        assert [p.params.get("cursor") for p in pages] == [None, "748478308"]  # the recorded next cursor
        assert len(order_posts(srv)) == 1
    finally:
        srv.close()


# ----------------------------------------------------------------------------------------------
# refusals before anything is sent


@pytest.mark.parametrize("exchange", ["kraken", "coinbase"])
def test_testnet_is_refused_for_an_exchange_without_a_sandbox(exchange: str):
    config = CcxtVenueConfig(
        exchange=exchange,  # type: ignore[arg-type]
        account="acct",
        symbols=("BTC/USDT",),
        api_key=SecretStr("k"),
        api_secret=SecretStr("s"),
        testnet=True,
        api_url_override="http://127.0.0.1:9",  # never reached: refused before any request
    )
    with pytest.raises(ConfigError, match=f"{exchange} has no sandbox or testnet for spot orders"):
        CcxtVenue(config, clock=CLOCK)


def test_coinbase_market_buy_is_refused_before_anything_is_sent():
    srv = Server("coinbase")
    try:
        with make_venue(srv) as venue:
            report = venue.submit(approved("coinbase", "ADA/USDT", "buy", "10"))
        assert (report.kind, report.reason) == (OrderEventKind.REJECT, "market_buy_unsupported: send a limit order")
        assert order_posts(srv) == []
    finally:
        srv.close()


def test_kraken_refuses_a_client_id_it_cannot_take_before_anything_is_sent():
    srv = Server("kraken")
    try:
        with make_venue(srv) as venue:
            # 26 characters, not one of our b4- ids: too long for Kraken's free text, not a UUID.
            report = venue.submit(approved("kraken", "LTC/USDT", "buy", "0.1", "50", cid="not-one-of-ours-26-chars-x"))
        assert (report.kind, report.reason) == (OrderEventKind.REJECT, "client_order_id_unsupported")
        assert order_posts(srv) == []
    finally:
        srv.close()


# ----------------------------------------------------------------------------------------------
# the markets cache


def test_markets_sync_from_the_recorded_markets_equals_the_committed_cache(server: Server):
    exchange = server.venue.exchange
    symbols = {
        "kraken": ("BTC/USD", "BTC/USDT", "ETH/USDT", "LTC/USDT"),
        "coinbase": ("BTC/USDC", "BTC/USDT", "ETH/USDT", "ADA/USDT"),
    }
    caps = fetch_capabilities(exchange, symbols[exchange], server.venue.origin)
    cached = load_capabilities(ROOT / "data" / "markets" / f"{exchange}.json")
    # The file keeps the market rules, fees and client id length (not how orders are looked up).
    assert (cached.exchange, cached.fees, dict(cached.rules), cached.client_id_max_length) == (
        caps.exchange,
        caps.fees,
        dict(caps.rules),
        caps.client_id_max_length,
    )
    assert (
        server.do(lambda: [s for s in server.venue.seen if "/private/" in s.path or "/brokerage/orders" in s.path])
        == []
    )


def test_bot4_markets_sync_writes_the_exchange_file_from_its_markets(
    server: Server, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
):
    exchange = server.venue.exchange
    monkeypatch.setenv("BOT4_TRADING__EXCHANGE", exchange)
    monkeypatch.setenv("BOT4_TRADING__MARKETS_DIR", str(tmp_path))
    symbols = SYMBOLS[exchange]
    args = ["markets", "sync", "--api-url", server.venue.origin]
    for symbol in symbols:
        args += ["--symbol", symbol]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    written = load_capabilities(tmp_path / f"{exchange}.json")
    assert sorted(written.rules) == sorted(symbols)
    cached = load_capabilities(ROOT / "data" / "markets" / f"{exchange}.json", symbols)
    assert dict(written.rules) == dict(cached.rules)
