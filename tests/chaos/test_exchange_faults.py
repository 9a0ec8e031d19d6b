"""Exchange faults under a running trading flow (issue 10): ``bot4 run`` in testnet mode trades through
the real ccxt client against the local recorded Binance (``tests/support/exchange_server.py``) while
the exchange misbehaves.

The set-up, and why it is honest about time:

- The flow runs as a subprocess (``python -m flows.cli run``, following Kafka), ``BOT4_MODE=testnet``
  with its REST URLs pointed at the local exchange (``BOT4_EXCHANGE__API_URL_OVERRIDE``). Testnet
  mode runs on the wall clock: venue timeouts, Retry-After, breaker cooldowns and the staleness of
  market data are all real seconds.
- Market data is fed LIVE: the recorded real BTCUSDT and ETHUSDT trades of the 2024-08-08 capture (the one the
  exchange plays its order book from) are published to ``md.trades.v1`` as the recording goes,
  ``SPEED`` times faster, each stamped with the wall time it is published at (prices, amounts,
  ids, sides and order as recorded; times compressed and moved to now). The exchange's playback
  runs at the same speed from the same moment, so an order is matched against the book recorded
  at the moment of the trades the flow decided on. Bars are 1 s bars from those trades, so the
  EMA(12/26) + RSI(14) strategy trades within the run.
- Faults are armed on the exchange as the flow trades (seeded choices): an order accepted whose
  answer is lost to a reset connection; one answered only after the client's 10 s timeout; a feed
  gap (no trades published for longer than the 30 s market-data age limit); an order accepted whose
  answer is lost while every lookup of it answers 503 (its outcome unknown to the flow); then a 429
  storm with Retry-After on order requests (and a 503 behind it), disarmed once the venue-error
  breaker has opened.

Asserted from what the flow published and the exchange recorded: every client order id exists at
most once at the exchange; each order whose answer was lost is held by the flow as the exchange
has it (found by client order id, never sent again), its fills booked once; a rate-limited order is
sent again only with the same client id and never exists; every order ends once, as the exchange
has it, on ``fills.v1`` and in PostgreSQL; the staleness breaker makes the account REDUCING during
the gap (while no data arrives), the disconnect breaker HALTED after the unknown outcome and the
venue-error breaker HALTED during the storm, each recorded on ``risk.decisions.v1`` and closed again
after its cooldown; ``bot4_venue_errors_total`` counts the faults; the flow is still running at the
end and stops when told to. The run takes about six minutes: ``make chaos`` only.
"""

from __future__ import annotations

import asyncio
import os
import random
import re
import signal
import subprocess
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import orjson
import psycopg
import pytest
from confluent_kafka import Producer

from core.events import Side, Trade
from core.wire import encode
from flows.settings import load_settings
from flows.storage.migrate import migrate
from tests.integration.conftest import read_topic
from tests.integration.test_ccxt_venue import Exchange
from tests.support.exchange_server import ExchangeServer
from tests.support.flow_http import free_port, scrape
from tests.support.kill_restart import BOT4, ROOT, env_for
from tests.support.topics import flow_topics

pytestmark = [
    pytest.mark.integration,
    pytest.mark.chaos,
    # A flow process fed live for about three minutes: only `make chaos` (which sets this) runs it.
    pytest.mark.skipif(os.environ.get("BOT4_CHAOS_FULL") != "1", reason="make chaos only (BOT4_CHAOS_FULL=1)"),
    pytest.mark.timeout(600),
]
#: The run ends at this recording time (the capture is 346 s; the last fault's recovery is done by then).
END_S = 300.0

SEED = int(os.environ.get("BOT4_CHAOS_SEED", "20261126"))
#: The recording (346 s) is played this many times faster than it was recorded.
SPEED = 1.0
ORDER_PATH = "/api/v3/order"
ACCOUNT = "testnet"


class LiveExchange(Exchange):
    """The local Binance (``Exchange`` of the venue tests) with its playback at ``speed`` and started
    by the test, not by a websocket subscription."""

    def __init__(self, speed: float) -> None:
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.thread.start()
        self.server = ExchangeServer("binance", speed=speed, autoplay=False)
        self.call(self.server.start())


SYMBOLS = {"BTCUSDT": "BTC/USDT", "ETHUSDT": "ETH/USDT"}


class TradeFeed(threading.Thread):
    """Publishes the recorded BTCUSDT and ETHUSDT trades to ``md.trades.v1`` as the exchange's playback
    reaches them, stamped with the wall time of publication. While :attr:`gap` is set nothing is
    published: the trades of that stretch are lost to the flow (as frames are to a dropped websocket)."""

    def __init__(self, exchange: LiveExchange, bootstrap: str, topic: str) -> None:
        super().__init__(daemon=True)
        server = exchange.server
        recorded = [(t, SYMBOLS[s]) for s in SYMBOLS for t in exchange.do(lambda s=s: server.recorded_trades(s))]
        self.trades = sorted(recorded, key=lambda pair: pair[0].offset_s)
        self.exchange = exchange
        self.producer = Producer({"bootstrap.servers": bootstrap, "linger.ms": 5})
        self.topic = topic
        self.gap = threading.Event()
        self.stop = threading.Event()
        self.published = 0
        self.skipped = 0
        self.started: float | None = None
        self.finished = threading.Event()
        self.last_us: dict[str, int] = {}  # symbol -> time stamped on its newest published trade

    def elapsed(self) -> float:
        """Seconds of the recording played so far."""
        return 0.0 if self.started is None else (time.monotonic() - self.started) * SPEED

    def run(self) -> None:
        first = self.trades[0][0].offset_s
        server = self.exchange.server
        self.exchange.do(lambda: (server.start_playback(), server.advance(first)))  # the book of the first trade
        self.started = time.monotonic()
        for rec, symbol in self.trades:
            if self.stop.is_set():
                break
            delay = self.started + (rec.offset_s - first) / SPEED - time.monotonic()
            if delay > 0:
                time.sleep(delay)
            if self.gap.is_set():
                self.skipped += 1
                continue
            now = datetime.now(UTC)
            trade = Trade(
                "binance",
                symbol,
                str(rec.id),
                Decimal(rec.price),
                Decimal(rec.qty),
                Side.SELL if rec.is_buyer_maker else Side.BUY,
                now,
                now,
            )
            self.producer.produce(self.topic, encode(trade), trade.key.encode())
            self.producer.poll(0)
            self.published += 1
            self.last_us[symbol] = int(now.timestamp() * 1_000_000)
        self.producer.flush(30)
        self.finished.set()


def _metrics(port: int) -> str:
    return scrape(port) or ""


def _samples(text: str, name: str) -> dict[str, float]:
    """Every sample of ``name`` as {label text: value}."""
    out = {}
    for line in text.splitlines():
        match = re.fullmatch(rf"{name}\{{(.*)\}} (\S+)", line)
        if match:
            out[match.group(1)] = float(match.group(2))
    return out


@pytest.fixture
def topics(topic_prefix: str, kafka_bootstrap: str) -> Iterator[str]:
    with flow_topics(kafka_bootstrap, topic_prefix):
        yield topic_prefix


@pytest.fixture
def exchange() -> Iterator[LiveExchange]:
    ex = LiveExchange(SPEED)
    ex.do(lambda: ex.server.account.fund("USDT", "10000"))  # type: ignore[union-attr]
    try:
        yield ex
    finally:
        ex.close()


class Faults:
    """The seeded fault plan, armed on the exchange one step after another as the flow trades: each
    step waits for its recording time and for the previous step's fault to have been consumed."""

    def __init__(self, exchange: LiveExchange, feed: TradeFeed, seed: int) -> None:
        rng = random.Random(seed)
        self.exchange, self.feed = exchange, feed
        self.late_answer_s = rng.choice([11.0, 12.0, 13.0])  # the client gives up after 10 s
        self.gap_s = rng.choice([38.0, 40.0, 42.0])  # market data older than 30 s is stale
        self.retry_after = rng.choice(["1", "2"])
        self.log: list[tuple[str, float]] = []  # (step, recording time it was armed or ended at)
        self.wall_us: dict[str, int] = {}  # step -> wall time (epoch µs) it was armed at
        self.before_gap: dict[str, int] = {}  # symbol -> its newest trade's time when the gap ended
        self.steps: list[tuple[str, float, Callable[[], bool]]] = [
            ("reset", 66.0, self._reset),
            ("late_answer", 70.0, self._late_answer),
            ("gap", 95.0, self._gap),
            ("gap_end", 95.0 + self.gap_s, self._gap_end),
            ("unknown", 140.0, self._unknown),
            ("storm", 180.0, self._storm),
        ]

    def _server(self) -> ExchangeServer:
        return self.exchange.server

    def faulted_posts(self, label: str) -> list[Any]:
        return [r for r in self.exchange.do(self._server().order_posts) if r.fault and label in r.fault]

    def _reset(self) -> bool:
        self.exchange.do(lambda: self._server().lose_order_responses(1))
        return True

    def _late_answer(self) -> bool:
        if not self.faulted_posts("connection reset"):
            return False  # the reset order has not happened yet
        self.exchange.do(lambda: self._server().lose_order_responses(1, delay_s=self.late_answer_s))
        return True

    def _gap(self) -> bool:
        self.feed.gap.set()
        return True

    def _gap_end(self) -> bool:
        self.before_gap = dict(self.feed.last_us)
        self.feed.gap.clear()
        return True

    def _unknown(self) -> bool:
        if not self.faulted_posts("answered after"):
            return False
        # The answer is lost AND the venue cannot be asked about the order (every lookup of the
        # submit's own retries answers 503): the submit's outcome is unknown to the flow.
        server = self._server()
        self.exchange.do(lambda: server.fail_next(4, 503, path=ORDER_PATH, method="GET"))
        self.exchange.do(lambda: server.lose_order_responses(1))
        return True

    def _storm(self) -> bool:
        if len(self.faulted_posts("connection reset")) < 2:
            return False
        server = self._server()
        # Two orders' worth of 429s (each order is sent 3 times after Retry-After), then a 503.
        self.exchange.do(lambda: server.fail_next(6, 429, retry_after=self.retry_after, path=ORDER_PATH, method="POST"))
        self.exchange.do(lambda: server.fail_next(1, 503, path=ORDER_PATH, method="POST"))
        return True

    def mark(self, name: str) -> None:
        self.log.append((name, round(self.feed.elapsed(), 1)))
        self.wall_us[name] = int(datetime.now(UTC).timestamp() * 1_000_000)

    def step(self) -> None:
        if not self.steps:
            return
        name, at, arm = self.steps[0]
        if self.feed.elapsed() >= at and arm():
            self.mark(name)
            self.steps.pop(0)


def _records(bootstrap: str, topic: str) -> list[dict[str, Any]]:
    return [orjson.loads(v) for _, v in read_topic(bootstrap, topic) if v is not None]


def _state_changes(decisions: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return sorted((d for d in decisions if d["kind"] == "state_changed"), key=lambda d: d["ts"])


def test_exchange_faults_under_a_running_testnet_flow_leave_one_order_per_client_id_and_breakers_recover(
    topics, pg_database, kafka_bootstrap, exchange, tmp_path
):
    prefix = topics
    conninfo = load_settings(postgres={"dbname": pg_database}).postgres.conninfo()
    migrate(conninfo)
    port = free_port()
    env = env_for(prefix, pg_database, tmp_path / "data")
    env.update(
        {
            "BOT4_MODE": "testnet",
            "BOT4_METRICS_PORT": str(port),
            "BOT4_TRADING__ACCOUNT": ACCOUNT,
            "BOT4_TRADING__SYMBOLS": '["BTC/USDT","ETH/USDT"]',
            "BOT4_TRADING__BARS_FROM": "trades",
            "BOT4_TRADING__TIMEFRAME": "1s",
            "BOT4_TRADING__BATCH_SIZE": "100",
            "BOT4_EXCHANGE__API_KEY": "testnet-key-0123456789",
            "BOT4_EXCHANGE__API_SECRET": "testnet-secret-0123456789",
            "BOT4_EXCHANGE__API_URL_OVERRIDE": exchange.server.http_origin,
            # The venue-error breaker's defaults (error share 50% over 60 s) with 3 calls as the
            # minimum (a strategy on 1 s bars sends a few orders a minute, not five) and a 20 s
            # cooldown; every other breaker runs on its defaults (stale market data: 30 s, cooldown
            # 10 s; disconnect: 10 s connected again).
            "BOT4_RISK__BREAKERS__VENUE_MIN_CALLS": "3",
            "BOT4_RISK__BREAKERS__VENUE_ERROR_COOLDOWN": "PT20S",
        }
    )
    log_path = tmp_path / "flow.log"
    proc = subprocess.Popen([*BOT4, "run"], env=env, cwd=ROOT, stdout=log_path.open("wb"), stderr=subprocess.STDOUT)
    feed = TradeFeed(exchange, kafka_bootstrap, f"{prefix}md.trades.v1")
    faults = Faults(exchange, feed, SEED)
    account = f'account="{ACCOUNT}"'
    breaker_events: list[tuple[str, float, float]] = []  # (breaker, opened at, closed at) in recording time
    open_since: dict[str, float] = {}
    started = time.monotonic()
    try:
        while "bot4_risk_state" not in _metrics(port):
            assert proc.poll() is None, log_path.read_text()[-3000:]
            assert time.monotonic() - started < 90, "the flow did not serve its metrics within 90 s"
            time.sleep(0.3)
        feed.start()
        progress = 0.0
        while not feed.finished.is_set() and feed.elapsed() < END_S:
            if feed.elapsed() >= progress:
                posts = exchange.do(exchange.server.order_posts)
                print(f"t={feed.elapsed():.0f} published {feed.published} POSTs {len(posts)} faults {faults.log}")
                progress += 15
            assert proc.poll() is None, f"the flow exited during the faults: {log_path.read_text()[-3000:]}"
            faults.step()
            breakers = _samples(_metrics(port), "bot4_breaker_open")
            for labels, value in breakers.items():
                name = labels.split('breaker="')[1].split('"')[0]
                if value == 1 and name not in open_since:
                    open_since[name] = feed.elapsed()
                    if name == "venue_errors":
                        exchange.do(exchange.server.clear_faults)  # the storm ends once the breaker is open
                        faults.mark("storm_end")
                elif value == 0 and name in open_since:
                    breaker_events.append((name, round(open_since.pop(name), 1), round(feed.elapsed(), 1)))
            time.sleep(0.25)
        time.sleep(5)  # the last trades through the flow
        final = _metrics(port)
        assert proc.poll() is None, f"the flow exited: {log_path.read_text()[-3000:]}"
    finally:
        feed.stop.set()
        proc.send_signal(signal.SIGINT)
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(10)
            stopped = False
        else:
            stopped = True
    run_s = time.monotonic() - started
    print(f"faults armed (recording s): {faults.log}; breakers (opened, closed): {breaker_events}; run {run_s:.0f} s")

    orders = {o["client_order_id"]: o for o in _records(kafka_bootstrap, f"{prefix}orders.v1")}
    execution = _records(kafka_bootstrap, f"{prefix}fills.v1")
    decisions = _records(kafka_bootstrap, f"{prefix}risk.decisions.v1")
    at_venue = exchange.orders()
    posts = exchange.do(exchange.server.order_posts)
    print(f"orders decided {len(orders)}, at the venue {len(at_venue)}, POSTs {len(posts)}")
    for change in _state_changes(decisions):
        print("  ", change["ts"], change.get("old"), "->", change.get("new"), change.get("reason", "")[:160])
    for o in at_venue:
        print("  venue", o.client_order_id, o.side, o.status, o.executed_qty)
    for r in posts:
        print("  POST", r.form.get("newClientOrderId"), r.status, r.fault)
    terminal: dict[str, list[str]] = {}
    for e in execution:
        if e["type"] == "order" and e["status"] in ("filled", "canceled", "rejected", "expired"):
            terminal.setdefault(e["client_order_id"], []).append(e["status"] + ": " + e.get("reason", ""))
    flow_fills = sorted((f["client_order_id"], f["fill_id"], f["amount"]) for f in execution if f["type"] == "fill")
    print(f"terminal: {terminal}")

    # The flow ran through every fault and stopped when told to.
    assert stopped, "the flow did not stop within 30 s of SIGINT"
    steps = ["reset", "late_answer", "gap", "gap_end", "unknown", "storm", "storm_end"]
    assert [name for name, _ in faults.log] == steps

    # One order per client order id at the exchange, each one the flow decided.
    per_cid = Counter(o.client_order_id for o in at_venue)
    assert per_cid and max(per_cid.values()) == 1, per_cid
    assert set(per_cid) <= set(orders)
    accepted_posts = Counter(r.form.get("newClientOrderId") for r in posts if r.status == 200)
    assert max(accepted_posts.values()) == 1, accepted_posts

    # Orders accepted whose answer was lost (reset; late; reset with every lookup failing: outcome
    # unknown to the flow): each sent once, found by client order id, held as the exchange has it,
    # with the exchange's fills booked once.
    venue_by_cid = {o.client_order_id: o for o in at_venue}
    lost = [r.form["newClientOrderId"] for r in posts if r.fault and r.fault.startswith("accepted")]
    assert len(lost) == 3, lost
    for cid in lost:
        assert sum(1 for r in posts if r.form.get("newClientOrderId") == cid) == 1, f"{cid} was sent again"
        venue_order = venue_by_cid[cid]
        assert venue_order.status == "FILLED"
        assert terminal.get(cid) == ["filled: "], (cid, terminal.get(cid))
        symbol = venue_order.symbol
        expected = sorted((cid, f"{symbol}-{f['tradeId']}", f["qty"]) for f in venue_order.fills)
        booked = [(c, fid, str(Decimal(a).quantize(Decimal("0.00000001")))) for c, fid, a in flow_fills if c == cid]
        assert sorted(booked) == expected, (booked, expected)

    # Every order the flow decided ended once, as the exchange has it; refused ones were never created.
    assert set(terminal) == set(orders), set(orders) ^ set(terminal)
    assert all(len(states) == 1 for states in terminal.values()), terminal
    for cid, states in terminal.items():
        if cid in venue_by_cid:
            assert states[0].split(":")[0] == {"FILLED": "filled", "EXPIRED": "expired"}[venue_by_cid[cid].status]
        else:
            assert states[0].startswith("rejected: "), (cid, states)
    storm_cids = {r.form["newClientOrderId"] for r in posts if r.status in (429, 503)}
    assert storm_cids and not storm_cids & set(venue_by_cid)
    rate_limited = [c for c in storm_cids if terminal[c][0].startswith("rejected: rate_limited")]
    assert rate_limited, terminal
    for cid in rate_limited:  # sent again only after Retry-After, with the same client id, 3 times
        assert [r.status for r in posts if r.form.get("newClientOrderId") == cid] == [429, 429, 429]

    # Breakers: opened during their fault, closed again after their cooldown, every change recorded.
    changes = _state_changes(decisions)

    def first(text: str, after: int = 0) -> dict[str, Any]:
        found = [c for c in changes if text in c["reason"] and c["ts"] >= after]
        assert found, f"no state change with {text!r} after {after}: {[c['reason'] for c in changes]}"
        return found[0]

    stale = first("stale_market_data closed->open", faults.wall_us["gap"])
    # Judged on the wall clock while nothing arrives: REDUCING once the newest data is 30 s old,
    # before the feed is back.
    stalest = min(faults.before_gap.values())  # the instrument whose data stopped first
    assert stale["new"] == "reducing" and stale["ts"] - stalest >= 30_000_000
    assert stale["ts"] < faults.wall_us["gap_end"]
    fresh = first("stale_market_data open->", stale["ts"])
    assert fresh["new"] == "active" and fresh["ts"] >= faults.wall_us["gap_end"]
    assert fresh["ts"] - stale["ts"] >= 10_000_000  # market_data_cooldown
    lost_link = first("venue_disconnect closed->open", faults.wall_us["unknown"])
    assert lost_link["new"] == "halted"
    back = first("venue_disconnect open->closed", lost_link["ts"])
    assert back["ts"] - lost_link["ts"] >= 10_000_000  # disconnect_cooldown, counted from reconnecting
    storm = first("venue_errors closed->open", faults.wall_us["storm"])
    assert storm["new"] == "halted" and storm["ts"] <= faults.wall_us["storm_end"]
    probing = first("venue_errors open->half_open", storm["ts"])
    assert probing["new"] == "active" and probing["ts"] - storm["ts"] >= 20_000_000  # venue_error_cooldown
    denied_halted = [d for d in decisions if d["kind"] == "denied" and storm["ts"] <= d["ts"] < probing["ts"]]
    assert all(d["trading_state"] == "halted" for d in denied_halted)

    # The flow's own metrics: the faults counted, every breaker closed, the account active at the end.
    errors = {k.split('kind="')[1].split('"')[0]: v for k, v in _samples(final, "bot4_venue_errors_total").items()}
    assert errors.get("rate_limited", 0) >= len(rate_limited) and errors.get("unavailable", 0) >= 1, errors
    assert set(_samples(final, "bot4_breaker_open").values()) == {0.0}
    assert _samples(final, "bot4_risk_state")[f'{account},state="active"'] == 1
    acks = _samples(final, "bot4_order_ack_latency_seconds_count")
    assert sum(acks.values()) >= len(venue_by_cid) - 1

    # PostgreSQL holds what the flow published.
    with psycopg.connect(conninfo) as conn:
        stored = {r[0]: r[1] for r in conn.execute("SELECT client_order_id, status FROM orders")}
        stored_fills = sorted(
            (r[0], r[1], str(r[2].quantize(Decimal("0.00000001"))))
            for r in conn.execute("SELECT client_order_id, fill_id, amount FROM fills")
        )
    for cid in {c for c in stored if stored[c] != terminal.get(c, [""])[0].split(":")[0]}:
        events = [(e["type"], e.get("status"), e.get("ts_event")) for e in execution if e.get("client_order_id") == cid]
        print("stored differs:", cid, stored[cid], events)
    assert stored == {cid: states[0].split(":")[0] for cid, states in terminal.items()}
    assert stored_fills == sorted((c, fid, str(Decimal(a).quantize(Decimal("0.00000001")))) for c, fid, a in flow_fills)
    print(
        f"orders decided {len(orders)}, at the exchange {len(at_venue)} (duplicates 0), lost answers {len(lost)}, "
        f"storm refusals {len(storm_cids)}; venue errors {errors}"
    )
