"""A local exchange on 127.0.0.1 that serves RECORDED REAL responses to the real ccxt client.

One :class:`ExchangeServer` plays one venue (``binance``, ``coinbaseexchange`` or ``kraken``) on a
random free port, over HTTP and websocket, so ``ccxt`` / ``ccxt.pro`` can be pointed at it by
rewriting ``exchange.urls['api']`` (see ``flows.connectors.exchange_md``). Nothing is invented:
every body comes from a file under ``../shared/data`` (``BOT4_SHARED_DATA``), either byte for
byte or derived only from other recorded data, as listed here.

Binance (``/api/v3/...``, websocket ``/ws``, ``/ws/<n>``, ``/stream``):

- ``exchangeInfo``: the recorded body, ``exchange-fixtures/cryptofeed/BINANCE.0`` (2021-10-12).
- websocket frames: two recorded sessions, each on its own timeline starting with the playback:
  ``cryptofeed/BINANCE.ws.1.0`` (NKNUSDT, BLZETH, LRCBTC, RUNEEUR: ``@depth@100ms``,
  ``@bookTicker``, ``@kline_1m``, ``@aggTrade``; 2021-10-12) and the hftbacktest capture
  ``ticks/binance-spot-ws/{btcusdt,ethusdt}_<day>.gz`` (``@trade``, ``@depth@100ms``,
  ``@bookTicker``; 2024-08-08). ``/stream`` sends the recorded combined frames unchanged, ``/ws``
  the recorded ``data`` payload (what Binance sends on a raw stream).
- ``depth``: the recorded REST snapshot (``cryptofeed/BINANCE.http.0.0`` for the 2021 symbols, the
  snapshot line of the hftbacktest capture for BTCUSDT/ETHUSDT) with the recorded diffs that the
  playback has published applied to it, so ``lastUpdateId`` matches the live diff stream.
- ``trades`` / ``historicalTrades``: NOT in the fixtures. Served from the recorded ``@trade`` frames
  of the hftbacktest capture that the playback has published: ``id``=``t``, ``price``=``p``,
  ``qty``=``q``, ``time``=``T``, ``isBuyerMaker``=``m``, ``isBestMatch``=``M``. ``quoteQty`` is not
  recorded and is left out (ccxt computes the cost from price and amount).
- ``klines``: NOT in the fixtures. Served from ``candles/binance-1m-2021/{BTC,ETH}_USDT-{1m,5m}.json``
  (freqtrade's download of Binance klines): open time, open, high, low, close, volume as recorded
  (decimal text of the stored numbers) plus the close time (open + interval - 1 ms). Quote volume,
  trade count and taker volumes are not recorded and are left out (ccxt reads only the first six).
- ``aggTrades`` and anything else: not recorded; answered 404 ``{"code": -1, "msg": "not recorded..."}``
  so a test sees exactly which call it could not serve. An unknown symbol gets Binance's own
  ``400 {"code":-1121,"msg":"Invalid symbol."}``.

- signed order endpoints (``POST/GET/DELETE order``, ``openOrders``, ``account``, ``myTrades``):
  NOT recorded (no capture of a private account exists); emulated by
  ``tests/support/binance_orders.py`` in Binance's documented response formats, with the filters
  of the recorded ``exchangeInfo`` and fills at the recorded book served at that moment (see that
  module for what is and is not emulated). The ``X-MBX-APIKEY`` header, ``timestamp`` and
  ``signature`` must be sent; any signature is accepted. Fund the account with
  ``server.account.fund(asset, amount)``.

Coinbase Exchange (the former Coinbase Pro; ``coinbaseexchange`` in ccxt): ``/products`` from
``cryptofeed/COINBASE.0`` (2021-04-17) and the websocket at ``/`` playing the ``matches``,
``level2`` and ``ticker`` frames of ``cryptofeed/COINBASE.ws.28.0`` for the subscribed products.

Kraken: ``/0/public/AssetPairs`` from ``cryptofeed/KRAKEN.0``. The recorded Kraken websocket is the
v1 protocol (book only) while ccxt.pro 4.5 speaks v2, so no Kraken websocket is served.

Playback: frames are published on the recording's own clock (``offset`` seconds after its first
frame) times ``speed``; the clock starts with the first websocket subscription (``autoplay``) or
:meth:`ExchangeServer.start_playback`, and :meth:`advance`, :meth:`pause` and :meth:`resume` move
it. A connection gets only frames published after it subscribed, as on a real exchange: frames
published while a client is disconnected are lost to it (but REST still has them).

Faults (each consumed by the next matching requests, optionally of one HTTP method):
:meth:`fail_next` (status with optional Retry-After, e.g. 429 or 503, answered before any handler:
an order is NOT created), :meth:`delay_next` (the request is read, then handled after a delay longer
than the client's timeout: an order is created after the client gave up),
:meth:`lose_order_responses` (the order IS created, then the connection is reset or the answer
comes after the client's timeout), :meth:`refuse_websocket` (handshake answered with an HTTP error),
:meth:`drop_websocket` (abort or close open connections after N more frames), :meth:`skip_frames`
(the feed loses the next N frames of a stream; REST still has them) and :meth:`limit_trade_history`
(REST keeps trades only from an id on); :meth:`clear_faults` disarms what is still armed. Every
HTTP request and websocket event is recorded in :attr:`requests` and :attr:`connections`.
"""

from __future__ import annotations

import asyncio
import bisect
import gzip
import math
import os
import time
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass, field
from decimal import Decimal
from functools import lru_cache
from pathlib import Path
from typing import Any, Literal

import orjson
from aiohttp import WSMsgType, web

try:  # --import-mode=importlib imports tests/ as the package ``tests``; prepend mode puts tests/ on sys.path
    from tests.support.binance_orders import BinanceReject, BinanceSpotAccount, symbol_rules
except ModuleNotFoundError:
    from support.binance_orders import BinanceReject, BinanceSpotAccount, symbol_rules

DATA_DIR = Path(os.environ.get("BOT4_SHARED_DATA", Path(__file__).resolve().parents[3] / "shared" / "data"))
CRYPTOFEED = DATA_DIR / "exchange-fixtures" / "cryptofeed"

Venue = Literal["binance", "coinbaseexchange", "kraken"]
DropMode = Literal["abort", "close"]

_NOT_RECORDED = 404
#: Signed spot endpoints emulated by :class:`~tests.support.binance_orders.BinanceSpotAccount`.
_BINANCE_PRIVATE = frozenset({"/api/v3/order", "/api/v3/openOrders", "/api/v3/account", "/api/v3/myTrades"})
#: A fault a handler applied to its own request (logged with the request).
_FAULT_KEY = web.RequestKey("bot4_fault", str)
#: The form parameters of a POST (Binance takes signed order parameters in the body), logged with it.
_FORM_KEY = web.RequestKey("bot4_form", dict)


# ----------------------------------------------------------------------------------------------
# Recorded files


@dataclass(frozen=True, slots=True)
class RecordedHttp:
    """One recorded REST exchange: the URL asked, when the answer arrived, its body (exact text)."""

    url: str
    recv_ts: float
    body: str


def read_cryptofeed_http(path: Path) -> list[RecordedHttp]:
    """``<url> -> <unix time>: <body>`` lines; cryptofeed's ``configuration:`` line is skipped."""
    out = []
    for line in path.read_text(encoding="utf-8").splitlines():
        if " -> " not in line:
            continue
        url, _, rest = line.partition(" -> ")
        ts, _, body = rest.partition(": ")
        out.append(RecordedHttp(url, float(ts), body))
    return out


def read_cryptofeed_ws(path: Path) -> tuple[float, list[tuple[float, str]]]:
    """(connection time, [(receive time, frame text)]) of a cryptofeed websocket capture.

    Lines are ``<url> <-> <ts>`` (connected), ``<url> <- <ts>: <text>`` (sent by the client, not
    replayed) and ``<ts>: <text>`` (received from the exchange).
    """
    opened = math.nan
    frames = []
    for line in path.read_text(encoding="utf-8").splitlines():
        if not line.strip():
            continue
        if " <-> " in line:
            opened = float(line.rpartition(" <-> ")[2])
            continue
        if " <- " in line:
            continue
        ts, _, text = line.partition(": ")
        frames.append((float(ts), text))
    if math.isnan(opened):
        opened = frames[0][0]
    return opened, frames


def split_combined(text: str) -> tuple[str, str]:
    """Stream name and exact ``data`` payload text of a Binance combined-stream frame."""
    prefix, marker = '{"stream":"', '","data":'
    end = text.find(marker)
    if not text.startswith(prefix) or end < 0 or not text.endswith("}"):
        raise ValueError(f"not a Binance combined-stream frame: {text[:80]!r}")
    return text[len(prefix) : end], text[end + len(marker) : -1]


# ----------------------------------------------------------------------------------------------
# Timelines


@dataclass(frozen=True, slots=True)
class Frame:
    """A recorded frame: ``offset_s`` after its recording's first frame, under stream ``key``."""

    offset_s: float
    key: str
    text: str
    payload: str | None = None  # Binance: the ``data`` part, sent alone on ``/ws`` endpoints


@dataclass
class Tape:
    """The frames of one stream in time order, with their offsets for bisecting."""

    frames: list[Frame] = field(default_factory=list)
    offsets: list[float] = field(default_factory=list)

    def add(self, frame: Frame) -> None:
        self.frames.append(frame)
        self.offsets.append(frame.offset_s)

    def published(self, elapsed: float) -> int:
        """How many frames the playback has published at ``elapsed`` seconds."""
        return bisect.bisect_right(self.offsets, elapsed)


@dataclass(frozen=True, slots=True)
class RecordedTrade:
    """A Binance ``@trade`` frame's fields, as recorded (price and quantity as text)."""

    id: int
    price: str
    qty: str
    time: int
    is_buyer_maker: bool
    is_best_match: bool
    offset_s: float

    def rest_body(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "price": self.price,
            "qty": self.qty,
            "time": self.time,
            "isBuyerMaker": self.is_buyer_maker,
            "isBestMatch": self.is_best_match,
        }


@dataclass
class DepthTape:
    """A recorded REST depth snapshot plus the recorded diffs after it, rebuilt on demand."""

    last_update_id: int
    bids: dict[str, str]
    asks: dict[str, str]
    diffs: list[tuple[float, int, int, list[list[str]], list[list[str]]]] = field(default_factory=list)
    applied: int = 0

    def book_at(self, elapsed: float, limit: int) -> dict[str, Any]:
        """The book as Binance would serve it once the diffs published by ``elapsed`` are applied."""
        while self.applied < len(self.diffs) and self.diffs[self.applied][0] <= elapsed:
            _, _first, last, bids, asks = self.diffs[self.applied]
            self.applied += 1
            if last <= self.last_update_id:
                continue
            for side, levels in ((self.bids, bids), (self.asks, asks)):
                for price, qty in levels:
                    if Decimal(qty) == 0:
                        side.pop(price, None)
                    else:
                        side[price] = qty
            self.last_update_id = last
        bids_sorted = sorted(self.bids.items(), key=lambda kv: Decimal(kv[0]), reverse=True)[:limit]
        asks_sorted = sorted(self.asks.items(), key=lambda kv: Decimal(kv[0]))[:limit]
        return {
            "lastUpdateId": self.last_update_id,
            "bids": [[p, q] for p, q in bids_sorted],
            "asks": [[p, q] for p, q in asks_sorted],
        }


@dataclass
class BinanceRecordings:
    """Everything the Binance venue serves, loaded from the recorded files."""

    exchange_info: str
    symbols: frozenset[str]
    tapes: dict[str, Tape]
    trades: dict[str, list[RecordedTrade]]
    snapshots: dict[str, tuple[int, dict[str, str], dict[str, str]]]
    diffs: dict[str, list[tuple[float, int, int, list[list[str]], list[list[str]]]]]


def _depth_diff(offset: float, data: dict[str, Any]) -> tuple[float, int, int, list[list[str]], list[list[str]]]:
    return (offset, int(data["U"]), int(data["u"]), data["b"], data["a"])


@lru_cache(maxsize=4)
def load_binance(days: tuple[str, ...]) -> BinanceRecordings:
    """Read the recorded Binance files once per process (they are read-only)."""
    info = read_cryptofeed_http(CRYPTOFEED / "BINANCE.0")[0]
    symbols = frozenset(s["symbol"] for s in orjson.loads(info.body)["symbols"])
    tapes: dict[str, Tape] = {}
    trades: dict[str, list[RecordedTrade]] = {}
    snapshots: dict[str, tuple[int, dict[str, str], dict[str, str]]] = {}
    diffs: dict[str, list[tuple[float, int, int, list[list[str]], list[list[str]]]]] = {}

    def add(offset: float, text: str) -> None:
        stream, payload = split_combined(text)
        tapes.setdefault(stream, Tape()).add(Frame(offset, stream, text, payload))
        if stream.endswith("@trade") or "@depth" in stream:
            data = orjson.loads(payload)
            symbol = data["s"]
            if data.get("e") == "trade":
                trades.setdefault(symbol, []).append(
                    RecordedTrade(
                        int(data["t"]),
                        data["p"],
                        data["q"],
                        int(data["T"]),
                        bool(data["m"]),
                        bool(data.get("M", True)),
                        offset,
                    )
                )
            elif data.get("e") == "depthUpdate":
                diffs.setdefault(symbol, []).append(_depth_diff(offset, data))

    # Session 1: cryptofeed, 2021-10-12 (depth, book tickers, klines, aggregate trades).
    opened, frames = read_cryptofeed_ws(CRYPTOFEED / "BINANCE.ws.1.0")
    for ts, text in frames:
        add(ts - opened, text)
    for rec in read_cryptofeed_http(CRYPTOFEED / "BINANCE.http.0.0"):
        symbol = rec.url.split("symbol=")[1].split("&")[0]
        body = orjson.loads(rec.body)
        snapshots[symbol] = (int(body["lastUpdateId"]), dict(body["bids"]), dict(body["asks"]))

    # Session 2: hftbacktest capture, 2024-08-08 (trades, depth, book tickers), both symbols
    # recorded by one process, so they share one clock.
    lines: list[tuple[int, str, str]] = []
    for day in days:
        for name in ("btcusdt", "ethusdt"):
            path = DATA_DIR / "ticks" / "binance-spot-ws" / f"{name}_{day}.gz"
            with gzip.open(path, "rt", encoding="utf-8") as fh:
                for line in fh:
                    recv_ns, _, text = line.rstrip("\n").partition(" ")
                    lines.append((int(recv_ns), name, text))
    lines.sort(key=lambda row: row[0])
    t0 = lines[0][0]
    for ns, name, text in lines:
        offset = (ns - t0) / 1e9
        if text.startswith('{"lastUpdateId"'):
            body = orjson.loads(text)
            snapshots.setdefault(name.upper(), (int(body["lastUpdateId"]), dict(body["bids"]), dict(body["asks"])))
            continue
        add(offset, text)
    return BinanceRecordings(info.body, symbols, tapes, trades, snapshots, diffs)


@lru_cache(maxsize=8)
def load_binance_klines(symbol: str, interval: str) -> list[list[Any]] | None:
    """Recorded klines ``[[open ms, o, h, l, c, v], ...]`` for a symbol like ``BTCUSDT``, or None."""
    names = {"BTCUSDT": "BTC_USDT", "ETHUSDT": "ETH_USDT"}
    if symbol not in names or interval not in ("1m", "5m"):
        return None
    path = DATA_DIR / "candles" / "binance-1m-2021" / f"{names[symbol]}-{interval}.json"
    rows: list[list[Any]] = orjson.loads(path.read_bytes())
    return rows


def _number_text(value: float | int) -> str:
    """The decimal text of a number as stored in the recorded JSON (its shortest repr)."""
    return str(Decimal(repr(value))) if isinstance(value, float) else str(value)


@dataclass
class CoinbaseRecordings:
    products: str
    tapes: dict[str, Tape]


_COINBASE_CHANNEL = {
    "match": "matches",
    "last_match": "matches",
    "snapshot": "level2",
    "l2update": "level2",
    "ticker": "ticker",
}


@lru_cache(maxsize=1)
def load_coinbase() -> CoinbaseRecordings:
    products = read_cryptofeed_http(CRYPTOFEED / "COINBASE.0")[0].body
    opened, frames = read_cryptofeed_ws(CRYPTOFEED / "COINBASE.ws.28.0")
    tapes: dict[str, Tape] = {}
    for ts, text in frames:
        msg = orjson.loads(text)
        channel = _COINBASE_CHANNEL.get(msg.get("type", ""))
        if channel is None or "product_id" not in msg:
            continue  # subscription confirmations are generated per client instead
        key = f"{channel}:{msg['product_id']}"
        tapes.setdefault(key, Tape()).add(Frame(ts - opened, key, text))
    return CoinbaseRecordings(products, tapes)


@lru_cache(maxsize=1)
def load_kraken_asset_pairs() -> str:
    return read_cryptofeed_http(CRYPTOFEED / "KRAKEN.0")[0].body


# ----------------------------------------------------------------------------------------------
# Playback clock


class Playback:
    """Seconds of recording published so far: starts on demand, runs at ``speed``, can jump."""

    def __init__(self, speed: float) -> None:
        if speed <= 0:
            raise ValueError(f"speed must be > 0, got {speed}")
        self.speed = speed
        self._base = 0.0
        self._anchor: float | None = None
        self._paused = False
        self._changed = asyncio.Event()

    @property
    def started(self) -> bool:
        return self._anchor is not None

    def elapsed(self) -> float:
        if self._anchor is None:
            return -math.inf
        if self._paused:
            return self._base
        return self._base + (time.monotonic() - self._anchor) * self.speed

    def _rebase(self, base: float) -> None:
        self._base = base
        self._anchor = time.monotonic()
        self._changed.set()
        self._changed = asyncio.Event()

    def start(self) -> None:
        if self._anchor is None:
            self._rebase(0.0)

    def advance(self, seconds: float) -> None:
        self.start()
        self._rebase(self.elapsed() + seconds)

    def pause(self) -> None:
        self.start()
        self._rebase(self.elapsed())
        self._paused = True

    def resume(self) -> None:
        self._paused = False
        self._rebase(self._base)

    async def wait_until(self, offset: float, interrupt: asyncio.Event) -> bool:
        """Wait until ``offset`` is published; False if ``interrupt`` fired first."""
        while True:
            now = self.elapsed()
            if now >= offset:
                return True
            if interrupt.is_set():
                return False
            changed = self._changed
            delay = 0.25 if self._paused or not self.started else min((offset - now) / self.speed, 0.25)
            waiters = [asyncio.ensure_future(changed.wait()), asyncio.ensure_future(interrupt.wait())]
            try:
                await asyncio.wait(waiters, timeout=max(delay, 0.0), return_when=asyncio.FIRST_COMPLETED)
            finally:
                for w in waiters:
                    w.cancel()


# ----------------------------------------------------------------------------------------------
# Logs and faults


@dataclass(frozen=True, slots=True)
class RecordedRequest:
    """One HTTP request as the server saw it (websocket upgrades included, ``kind='ws'``)."""

    seq: int
    at: float  # time.monotonic() when the request arrived
    kind: Literal["http", "ws"]
    method: str
    path: str
    query: dict[str, str]
    status: int
    fault: str | None
    form: dict[str, str] = field(default_factory=dict)  # a POST's form parameters (e.g. newClientOrderId)


@dataclass
class WsConnection:
    """One websocket client: what it subscribed to and which frames it was sent."""

    id: int
    path: str
    opened_at: float
    keys: list[str] = field(default_factory=list)
    cursors: dict[str, int] = field(default_factory=dict)
    delivered: list[tuple[str, int]] = field(default_factory=list)
    received: list[str] = field(default_factory=list)
    drop_after: int | None = None
    drop_mode: DropMode = "abort"
    closed_by: str | None = None
    changed: asyncio.Event = field(default_factory=asyncio.Event)

    def delivered_frames(self, key: str) -> list[int]:
        return [i for k, i in self.delivered if k == key]


@dataclass
class _HttpFault:
    remaining: int
    status: int | None
    retry_after: str | None
    delay_s: float
    path: str | None
    target: Literal["http", "ws"]
    method: str | None = None

    def matches(self, kind: str, path: str, method: str = "GET") -> bool:
        return (
            self.remaining > 0
            and kind == self.target
            and (self.path is None or path.startswith(self.path))
            and (self.method is None or method == self.method)
        )


# ----------------------------------------------------------------------------------------------
# The server


class ExchangeServer:
    """A recorded venue on ``127.0.0.1:<random port>``; use as ``async with ExchangeServer(...)``."""

    def __init__(
        self,
        venue: Venue,
        *,
        speed: float = 1.0,
        autoplay: bool = True,
        binance_days: tuple[str, ...] = ("20240808",),
    ) -> None:
        self.venue: Venue = venue
        self.playback = Playback(speed)
        self.autoplay = autoplay
        self.requests: list[RecordedRequest] = []
        self.connections: list[WsConnection] = []
        self._faults: list[_HttpFault] = []
        self._pending_drop: tuple[int, DropMode] | None = None
        self._lost: dict[str, set[int]] = {}
        self._trade_floor: dict[str, int] = {}
        self._runner: web.AppRunner | None = None
        self._handlers: set[asyncio.Task[Any]] = set()
        self.port = 0
        self._binance: BinanceRecordings | None = None
        self._coinbase: CoinbaseRecordings | None = None
        self._depth: dict[str, DepthTape] = {}
        self._lost_responses: list[list[Any]] = []
        self.account: BinanceSpotAccount | None = None
        if venue == "binance":
            self._binance = load_binance(binance_days)
            first_ids = {sym: trades[-1].id + 1 for sym, trades in self._binance.trades.items() if trades}
            self.account = BinanceSpotAccount(symbol_rules(orjson.loads(self._binance.exchange_info)), first_ids)
        elif venue == "coinbaseexchange":
            self._coinbase = load_coinbase()
        elif venue != "kraken":
            raise ValueError(f"venue {venue!r} is not recorded; expected binance, coinbaseexchange or kraken")

    # -- lifecycle ---------------------------------------------------------------------------

    async def start(self) -> ExchangeServer:
        app = web.Application(middlewares=[self._middleware])
        app.router.add_route("*", "/{tail:.*}", self._dispatch)
        self._runner = web.AppRunner(app, handle_signals=False, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        self.port = int(self._runner.addresses[0][1])
        return self

    async def close(self) -> None:
        for task in list(self._handlers):
            task.cancel()
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    async def __aenter__(self) -> ExchangeServer:
        return await self.start()

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    @property
    def http_origin(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def ws_origin(self) -> str:
        return f"ws://127.0.0.1:{self.port}"

    @property
    def urls_override(self) -> dict[str, str]:
        """What ``ExchangeMarketDataConfig.api_urls_override`` takes to point ccxt here."""
        return {"http": self.http_origin, "ws": self.ws_origin}

    # -- playback controls -------------------------------------------------------------------

    def start_playback(self) -> None:
        self.playback.start()

    def advance(self, seconds: float) -> None:
        """Jump the recording forward (frames in between are published at once)."""
        self.playback.advance(seconds)

    def pause(self) -> None:
        self.playback.pause()

    def resume(self) -> None:
        self.playback.resume()

    def advance_to_end(self) -> None:
        """Publish every recorded frame (REST then serves the whole recording)."""
        last = max((t.offsets[-1] for t in self._tapes().values() if t.offsets), default=0.0)
        self.playback.pause()
        self.playback.advance(last - max(self.playback.elapsed(), 0.0) + 1.0)

    # -- faults ------------------------------------------------------------------------------

    def fail_next(
        self,
        count: int,
        status: int,
        *,
        retry_after: str | None = None,
        path: str | None = None,
        method: str | None = None,
    ) -> None:
        """The next ``count`` HTTP requests (under ``path``, of ``method``, if given) get ``status``
        before any handler runs: on the order endpoint the order is NOT created."""
        self._faults.append(_HttpFault(count, status, retry_after, 0.0, path, "http", method))

    def delay_next(self, count: int, seconds: float, *, path: str | None = None, method: str | None = None) -> None:
        """The next ``count`` HTTP requests are answered only after ``seconds`` (handled after the delay)."""
        self._faults.append(_HttpFault(count, None, None, seconds, path, "http", method))

    def lose_order_responses(self, count: int = 1, *, delay_s: float | None = None) -> None:
        """The next ``count`` orders are ACCEPTED (they exist at the venue) but their response is lost:
        the connection is reset (``delay_s`` None) or the answer comes only after ``delay_s``."""
        self._lost_responses.append([count, delay_s])

    def refuse_websocket(self, count: int, status: int = 503, *, retry_after: str | None = None) -> None:
        """The next ``count`` websocket handshakes are answered with an HTTP ``status``."""
        self._faults.append(_HttpFault(count, status, retry_after, 0.0, None, "ws"))

    def drop_websocket(self, after_frames: int = 0, mode: DropMode = "abort") -> None:
        """Drop every open connection after it sends ``after_frames`` more frames.

        ``abort`` resets the TCP connection (frames in flight may be lost); ``close`` sends a
        close frame (1001, going away) after the last frame. With no open connection the next one
        is dropped.
        """
        open_conns = [c for c in self.connections if c.closed_by is None]
        if not open_conns:
            self._pending_drop = (after_frames, mode)
        for conn in open_conns:
            conn.drop_after, conn.drop_mode = after_frames, mode
            conn.changed.set()

    def clear_faults(self) -> None:
        """Forget every armed HTTP and websocket fault and lost order response (the venue recovers)."""
        self._faults.clear()
        self._lost_responses.clear()
        self._pending_drop = None

    def skip_frames(self, key: str, count: int) -> list[int]:
        """The feed loses the next ``count`` unpublished frames of ``key``; returns their indices."""
        tape = self._tapes()[key]
        start = tape.published(self.playback.elapsed())
        lost = list(range(start, min(start + count, len(tape.frames))))
        self._lost.setdefault(key, set()).update(lost)
        return lost

    def limit_trade_history(self, symbol: str, first_id: int) -> None:
        """REST keeps ``symbol``'s trades only from ``first_id`` on (older history is gone)."""
        self._trade_floor[symbol] = first_id

    # -- what was recorded and published ---------------------------------------------------

    def recorded_trades(self, symbol: str) -> list[RecordedTrade]:
        assert self._binance is not None
        return self._binance.trades[symbol]

    def published_trades(self, symbol: str) -> list[RecordedTrade]:
        trades = self.recorded_trades(symbol)
        elapsed = self.playback.elapsed()
        return trades[: bisect.bisect_right([t.offset_s for t in trades], elapsed)]

    def frame_payload(self, key: str, index: int) -> dict[str, Any]:
        frame = self._tapes()[key].frames[index]
        parsed: dict[str, Any] = orjson.loads(frame.payload or frame.text)
        return parsed

    def http_requests(self, path_prefix: str = "") -> list[RecordedRequest]:
        return [r for r in self.requests if r.kind == "http" and r.path.startswith(path_prefix)]

    async def wait_for(self, predicate: Callable[[], bool], timeout: float = 10.0) -> None:
        deadline = time.monotonic() + timeout
        while not predicate():
            if time.monotonic() > deadline:
                raise TimeoutError(f"condition not met within {timeout}s")
            await asyncio.sleep(0.01)

    # -- HTTP --------------------------------------------------------------------------------

    def _tapes(self) -> dict[str, Tape]:
        if self._binance is not None:
            return self._binance.tapes
        if self._coinbase is not None:
            return self._coinbase.tapes
        return {}

    @web.middleware
    async def _middleware(
        self, request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
    ) -> web.StreamResponse:
        kind: Literal["http", "ws"] = "ws" if request.headers.get("Upgrade", "").lower() == "websocket" else "http"
        if kind == "http" and request.method == "POST" and request.content_type == "application/x-www-form-urlencoded":
            request[_FORM_KEY] = {k: str(v) for k, v in (await request.post()).items()}
        fault = next((f for f in self._faults if f.matches(kind, request.path, request.method)), None)
        label = None
        response: web.StreamResponse
        if fault is not None:
            fault.remaining -= 1
            if fault.delay_s:
                label = f"delay {fault.delay_s}s"
                # The request has arrived whole; the venue is slow to process it (the client may
                # give up meanwhile, and the venue still acts on it).
                await request.read()
                await asyncio.sleep(fault.delay_s)
            if fault.status is not None:
                label = f"status {fault.status}"
                headers = {"Retry-After": fault.retry_after} if fault.retry_after is not None else {}
                response = web.Response(
                    status=fault.status,
                    body=self._error_body(fault.status),
                    headers=headers,
                    content_type="application/json",
                )
                self._log(request, kind, response.status, label)
                return response
        if kind == "ws":
            return await handler(request)  # logged by _websocket with the status it answers
        response = await handler(request)
        self._log(request, kind, response.status, label or request.get(_FAULT_KEY))
        return response

    def _log(self, request: web.Request, kind: Literal["http", "ws"], status: int, fault: str | None) -> None:
        self.requests.append(
            RecordedRequest(
                len(self.requests),
                time.monotonic(),
                kind,
                request.method,
                request.path,
                dict(request.query),
                status,
                fault,
                dict(request.get(_FORM_KEY, {})),
            )
        )

    def _error_body(self, status: int) -> bytes:
        if self.venue == "binance":
            if status in (418, 429):
                msg = (
                    "Too many requests; current limit of IP(127.0.0.1) is 6000 requests per minute. "
                    "Please use WebSocket Streams for live updates to avoid bans."
                )
                return orjson.dumps({"code": -1003, "msg": msg})
            if status == 503:
                busy = "Server is currently overloaded with other requests. Please try again in a few minutes."
                return orjson.dumps({"code": -1008, "msg": busy})
            return orjson.dumps(
                {"code": -1001, "msg": "Internal error; unable to process your request. Please try again."}
            )
        return orjson.dumps({"message": "rate limit exceeded" if status == 429 else "service unavailable"})

    @staticmethod
    def _json(body: Any, status: int = 200) -> web.Response:
        return web.Response(status=status, body=orjson.dumps(body), content_type="application/json")

    def _not_recorded(self, request: web.Request, why: str = "") -> web.Response:
        msg = f"not recorded: {request.method} {request.path_qs}" + (f" ({why})" if why else "")
        if self.venue == "binance":
            return self._json({"code": -1, "msg": msg}, _NOT_RECORDED)
        return self._json({"message": msg}, _NOT_RECORDED)

    async def _dispatch(self, request: web.Request) -> web.StreamResponse:
        if request.headers.get("Upgrade", "").lower() == "websocket":
            return await self._websocket(request)
        if self.venue == "binance" and request.path in _BINANCE_PRIVATE:
            return await self._binance_private(request)
        if self.venue == "binance":
            return self._binance_rest(request)
        if self.venue == "coinbaseexchange" and request.path == "/products":
            assert self._coinbase is not None
            return web.Response(body=self._coinbase.products.encode(), content_type="application/json")
        if self.venue == "kraken" and request.path == "/0/public/AssetPairs":
            return web.Response(body=load_kraken_asset_pairs().encode(), content_type="application/json")
        return self._not_recorded(request)

    # -- Binance REST --------------------------------------------------------------------------

    def _binance_rest(self, request: web.Request) -> web.Response:
        rec = self._binance
        assert rec is not None
        endpoint = request.path.removeprefix("/api/v3/")
        if endpoint == "exchangeInfo":
            return web.Response(body=rec.exchange_info.encode(), content_type="application/json")
        if endpoint == "ping":
            return self._json({})
        handlers = {
            "depth": self._binance_depth,
            "trades": self._binance_trades,
            "historicalTrades": self._binance_trades,
            "klines": self._binance_klines,
        }
        handler = handlers.get(endpoint)
        if handler is None:
            return self._not_recorded(request)
        symbol = request.query.get("symbol", "")
        if symbol not in rec.symbols:
            return self._json({"code": -1121, "msg": "Invalid symbol."}, 400)
        return handler(request, symbol)

    def _limit(self, request: web.Request, default: int, maximum: int) -> int:
        return max(1, min(int(request.query.get("limit", default)), maximum))

    def _binance_depth(self, request: web.Request, symbol: str) -> web.Response:
        book = self.book_now(symbol, self._limit(request, 100, 5000))
        if book is None:
            return self._not_recorded(request, "no recorded depth snapshot for this symbol")
        return self._json(book)

    def book_now(self, symbol: str, limit: int = 5000) -> dict[str, Any] | None:
        """The recorded book of ``symbol`` as the venue serves it now (None when not recorded)."""
        rec = self._binance
        assert rec is not None
        if symbol not in rec.snapshots:
            return None
        if symbol not in self._depth:
            last, bids, asks = rec.snapshots[symbol]
            self._depth[symbol] = DepthTape(last, dict(bids), dict(asks), rec.diffs.get(symbol, []))
        return self._depth[symbol].book_at(self.playback.elapsed(), limit)

    # -- Binance signed order endpoints (state in ``self.account``) ---------------------------

    async def _binance_private(self, request: web.Request) -> web.StreamResponse:
        account = self.account
        assert account is not None
        # Signed (TRADE / USER_DATA) endpoints: the key header must be there; any signature is
        # accepted (Binance's HMAC is not what these tests are about), but it must be sent.
        if not request.headers.get("X-MBX-APIKEY"):
            return self._json({"code": -2014, "msg": "API-key format invalid."}, 401)
        params: dict[str, str] = dict(request.query)
        if request.method == "POST":
            params.update({k: str(v) for k, v in (await request.post()).items()})
        if "signature" not in params or "timestamp" not in params:
            return self._json({"code": -1102, "msg": "Mandatory parameter 'signature' was not sent."}, 400)
        symbol = params.get("symbol")
        try:
            if request.path == "/api/v3/account":
                return self._json(account.account_body())
            if request.path == "/api/v3/openOrders":
                return self._json([o.query_body() for o in account.orders if o.is_open and symbol in (None, o.symbol)])
            if symbol is None:
                raise BinanceReject(
                    400, -1102, "Mandatory parameter 'symbol' was not sent, was empty/null, or malformed."
                )
            if request.path == "/api/v3/myTrades":
                limit = max(1, min(int(params.get("limit", 500)), 1000))
                return self._json(account.my_trades(symbol, params.get("orderId"), limit))
            if request.method == "GET":
                order = account.find(symbol, params.get("orderId"), params.get("origClientOrderId"))
                if order is None:
                    raise BinanceReject(400, -2013, "Order does not exist.")
                return self._json(order.query_body())
            if request.method == "DELETE":
                order = account.cancel(symbol, params.get("orderId"), params.get("origClientOrderId"))
                body = {"origClientOrderId": order.client_order_id, **order.result_fields()}
                body["transactTime"] = order.update_ms
                return self._json(body)
            if request.method == "POST":
                book = self.book_now(symbol) or {"bids": [], "asks": []}
                order = account.new_order(params, book)
                body = order.new_order_body(params.get("newOrderRespType", "FULL"))
                return await self._new_order_answer(request, body)
        except BinanceReject as rej:
            return self._json(rej.body(), rej.status)
        return self._not_recorded(request)

    async def _new_order_answer(self, request: web.Request, body: dict[str, Any]) -> web.StreamResponse:
        """Answer an accepted order, unless a lost response was asked for (the order exists anyway)."""
        lost = next((f for f in self._lost_responses if f[0] > 0), None)
        if lost is None:
            return self._json(body)
        lost[0] -= 1
        delay_s = lost[1]
        if delay_s is not None:
            request[_FAULT_KEY] = f"accepted, answered after {delay_s}s"
            await asyncio.sleep(delay_s)
            return self._json(body)
        request[_FAULT_KEY] = "accepted, connection reset"
        if request.transport is not None:
            request.transport.abort()
        return self._json(body)

    def orders_at_venue(self, client_order_id: str | None = None) -> list[Any]:
        """Orders the venue holds (every one, or those with ``client_order_id``)."""
        assert self.account is not None
        return [o for o in self.account.orders if client_order_id in (None, o.client_order_id)]

    def order_posts(self) -> list[RecordedRequest]:
        """Every ``POST /api/v3/order`` the server received (faulted ones included)."""
        return [r for r in self.http_requests("/api/v3/order") if r.method == "POST" and r.path == "/api/v3/order"]

    def _binance_trades(self, request: web.Request, symbol: str) -> web.Response:
        rec = self._binance
        assert rec is not None
        if symbol not in rec.trades:
            return self._not_recorded(request, "no recorded trades for this symbol")
        if request.path.endswith("historicalTrades") and not request.headers.get("X-MBX-APIKEY"):
            # MARKET_DATA endpoint: Binance wants an API key header (no signature).
            return self._json({"code": -2014, "msg": "API-key format invalid."}, 401)
        limit = self._limit(request, 500, 1000)
        published = self.published_trades(symbol)
        floor = self._trade_floor.get(symbol)
        if floor is not None:
            published = [t for t in published if t.id >= floor]
        from_id = request.query.get("fromId")
        if request.path.endswith("historicalTrades") and from_id is not None:
            ids = [t.id for t in published]
            start = bisect.bisect_left(ids, int(from_id))
            page = published[start : start + limit]
        else:
            page = published[-limit:]
        return self._json([t.rest_body() for t in page])

    def _binance_klines(self, request: web.Request, symbol: str) -> web.Response:
        interval = request.query.get("interval", "")
        rows = load_binance_klines(symbol, interval)
        if rows is None:
            return self._not_recorded(request, "klines are recorded for BTCUSDT/ETHUSDT 1m and 5m only")
        limit = self._limit(request, 500, 1000)
        start = int(request.query.get("startTime", -1))
        end = int(request.query.get("endTime", 2**62))
        opens = [int(r[0]) for r in rows]
        if start >= 0:
            lo = bisect.bisect_left(opens, start)
            selected = [r for r in rows[lo : lo + limit] if int(r[0]) <= end]
        else:
            hi = bisect.bisect_right(opens, end)
            selected = rows[max(0, hi - limit) : hi]
        step = 60_000 if interval == "1m" else 300_000
        body = [[int(r[0]), *(_number_text(v) for v in r[1:6]), int(r[0]) + step - 1] for r in selected]
        return self._json(body)

    # -- websocket -----------------------------------------------------------------------------

    async def _websocket(self, request: web.Request) -> web.StreamResponse:
        if self.venue == "kraken":
            self._log(request, "ws", _NOT_RECORDED, None)
            return self._not_recorded(request, "the recorded Kraken websocket is v1; ccxt.pro speaks v2")
        ws = web.WebSocketResponse(autoping=True, heartbeat=None)
        await ws.prepare(request)
        self._log(request, "ws", 101, None)
        conn = WsConnection(len(self.connections), request.path, time.monotonic())
        if self._pending_drop is not None:
            conn.drop_after, conn.drop_mode = self._pending_drop
            self._pending_drop = None
        self.connections.append(conn)
        if self.venue == "binance" and request.path.startswith("/stream") and "streams" in request.query:
            self._subscribe(conn, request.query["streams"].split("/"))
        pump = asyncio.ensure_future(self._pump(conn, ws, request))
        self._handlers.add(pump)
        try:
            async for msg in ws:
                if msg.type != WSMsgType.TEXT:
                    continue
                conn.received.append(msg.data)
                for reply in self._on_client_text(conn, msg.data):
                    await ws.send_str(reply)
        finally:
            pump.cancel()
            self._handlers.discard(pump)
            if conn.closed_by is None:
                conn.closed_by = "client"
        return ws

    def _subscribe(self, conn: WsConnection, keys: Iterable[str]) -> None:
        if self.autoplay:
            self.playback.start()
        elapsed = self.playback.elapsed()
        tapes = self._tapes()
        for key in keys:
            if key in conn.keys:
                continue
            conn.keys.append(key)
            tape = tapes.get(key)
            conn.cursors[key] = bisect.bisect_left(tape.offsets, elapsed) if tape else 0
        conn.changed.set()

    def _on_client_text(self, conn: WsConnection, text: str) -> list[str]:
        try:
            msg = orjson.loads(text)
        except orjson.JSONDecodeError:
            if self.venue == "binance":
                return [orjson.dumps({"error": {"code": 3, "msg": "Invalid JSON"}, "id": None}).decode()]
            return [orjson.dumps({"type": "error", "message": "Malformed JSON"}).decode()]
        if self.venue == "binance":
            method, params, req_id = msg.get("method"), msg.get("params") or [], msg.get("id")
            if method == "SUBSCRIBE":
                self._subscribe(conn, params)
                return [orjson.dumps({"result": None, "id": req_id}).decode()]
            if method == "UNSUBSCRIBE":
                conn.keys = [k for k in conn.keys if k not in params]
                conn.changed.set()
                return [orjson.dumps({"result": None, "id": req_id}).decode()]
            if method == "LIST_SUBSCRIPTIONS":
                return [orjson.dumps({"result": conn.keys, "id": req_id}).decode()]
            return [
                orjson.dumps(
                    {"error": {"code": 2, "msg": f"Invalid request: unknown method {method!r}"}, "id": req_id}
                ).decode()
            ]
        # Coinbase Exchange: {"type": "subscribe", "product_ids": [...], "channels": [...]}
        if msg.get("type") != "subscribe":
            return []
        products = list(msg.get("product_ids") or [])
        channels: list[str] = []
        for ch in msg.get("channels") or []:
            channels.append(ch["name"] if isinstance(ch, dict) else ch)
        self._subscribe(conn, [f"{c}:{p}" for c in channels for p in products])
        reply = {"type": "subscriptions", "channels": [{"name": c, "product_ids": products} for c in channels]}
        return [orjson.dumps(reply).decode()]

    def _next_frame(self, conn: WsConnection) -> tuple[str, int, Frame] | None:
        tapes = self._tapes()
        best: tuple[str, int, Frame] | None = None
        for key in conn.keys:
            tape = tapes.get(key)
            i = conn.cursors.get(key, 0)
            if tape is None or i >= len(tape.frames):
                continue
            if best is None or tape.frames[i].offset_s < best[2].offset_s:
                best = (key, i, tape.frames[i])
        return best

    async def _pump(self, conn: WsConnection, ws: web.WebSocketResponse, request: web.Request) -> None:
        while not ws.closed:
            if conn.drop_after == 0:
                await self._drop(conn, ws, request)
                return
            conn.changed.clear()
            nxt = self._next_frame(conn)
            if nxt is None:
                await conn.changed.wait()
                continue
            key, index, frame = nxt
            if not await self.playback.wait_until(frame.offset_s, conn.changed):
                continue
            conn.cursors[key] = index + 1
            if index in self._lost.get(key, ()):
                continue
            raw_endpoint = self.venue == "binance" and not request.path.startswith("/stream")
            await ws.send_str(frame.payload if raw_endpoint and frame.payload is not None else frame.text)
            conn.delivered.append((key, index))
            if conn.drop_after is not None:
                conn.drop_after -= 1

    async def _drop(self, conn: WsConnection, ws: web.WebSocketResponse, request: web.Request) -> None:
        conn.closed_by = f"server:{conn.drop_mode}"
        if conn.drop_mode == "close":
            await ws.close(code=1001, message=b"going away")
            return
        transport = request.transport
        if transport is not None:
            transport.abort()
