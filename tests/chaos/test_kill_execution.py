"""kill -9 of the execution flow (``bot4 execute``) at seeded points while the trading flow keeps
trading through it: the same order events, fills, order statuses and portfolio as an uninterrupted
execution of the same orders, no order submitted twice, no fill lost (issue 10).

Why two execution processes in one run, not a reference run and then a chaotic one: with
``BOT4_TRADING__EXECUTION=kafka`` the trading flow sizes entries from the equity and judges exits
from the positions that come back on ``fills.v1``, so what it decides depends on when fills arrive.
A second run, or an execution process that is down for seconds, makes it decide differently
(an exit while the entry's fill is still on its way is denied ``nothing_to_sell``), which is the
deployment working as designed, not execution losing anything. To compare execution with execution,
both must execute the same instructions. So one trading flow (``bot4 run``) trades a live feed of
real candles with the CHAOTIC execution process (topic prefix P: it books the fills that process
publishes, re-publications after restarts included), and the test mirrors the trading flow's
``orders.v1`` (approved orders, cancel-alls, progress; same partition, same order) and the same
candles to prefix Q, where an UNINTERRUPTED execution process executes them: the reference. Both
execution processes and the trading flow run with recovery folders; only the chaotic one is killed.

Real Binance BTC/USDT 1m candles (../shared/data, a month) are produced into Kafka at a steady rate
(``BOT4_CHAOS_EXEC_RATE`` bars a second) while the three processes run. The chaotic execution
process is SIGKILLed when the feed passes each of ``BOT4_CHAOS_KILLS`` seeded points
(``BOT4_CHAOS_SEED``) and the process has been executing for a seeded 0-3 s since its start's first
input, and restarted at once from its recovery folder. At the end of the feed, once both executions
are idle, a kill switch cancels what is open, and the held-back last bar makes the trading flow
record its equity once more. Compared, record by record: every order event on ``fills.v1`` (kind,
status, filled, remaining, venue order id, event time, seq), every fill (price, amount, fee, time),
the ``orders``, ``order_events`` and ``fills`` tables, the positions, cash, fees, realized PnL and
equity booked from the fills, and the trading flow's last equity row. Checked besides: one
``submit`` per client order id (a second submission at the venue would be a second, different submit
event), every re-published record identical to the first publication, every fill on the topic also
stored. Recorded for each restart: seconds from the process start to the first input its execution
step processed (``bot4_events_total{stage="execution"}`` > 0 on its ``/metrics``) and to the first
new ``order_events`` row it stored (new work, past what it replayed from its snapshot).

``make chaos`` (``BOT4_CHAOS_FULL=1``, ``BOT4_CHAOS_KILLS=20``) runs the whole month; ``make test``
skips it: on the shared 2-core machine the three flow processes take ~10 s to start and one
restart of the execution process alone 5-30 s, so one kill point cannot fit in 20 s.
(``BOT4_CHAOS_EXEC_BARS`` feeds only the first N bars.)
"""

from __future__ import annotations

import os
import random
import signal
import statistics
import threading
import time
from collections import deque
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import timedelta
from decimal import Decimal
from pathlib import Path
from subprocess import Popen

import orjson
import psycopg
import pytest
from confluent_kafka import OFFSET_BEGINNING, Consumer, Producer, TopicPartition

from core.clock import from_epoch_us
from core.events import Candle
from core.orders import KillSwitch
from core.wire import encode, topic_for
from flows.control import CONTROL_TOPIC, publish_command
from flows.replay.formats import read_events
from flows.settings import load_settings
from tests.integration.conftest import topic_message_count
from tests.support.flow_http import free_port, metric, ready
from tests.support.kill_restart import (
    OUT_TOPICS,
    ROOT,
    TERMINAL,
    execution_env,
    execution_outcome,
    fresh_database,
    portfolio_from_fills,
    spawn,
    stored_count,
)
from tests.support.topics import topics

SHARED = Path(os.environ.get("BOT4_SHARED_DATA", ROOT.parent / "shared" / "data"))
BTC_1M = SHARED / "candles" / "binance-1m-2021" / "BTC_USDT-1m.json"
FULL = os.environ.get("BOT4_CHAOS_FULL") == "1"
KILLS = int(os.environ.get("BOT4_CHAOS_KILLS", "1"))
SEED = int(os.environ.get("BOT4_CHAOS_SEED", "20261125"))
#: Bars a second fed to Kafka: the trading flow decides live, as a venue's feed would drive it.
RATE = float(os.environ.get("BOT4_CHAOS_EXEC_RATE", "90"))
#: Bars fed (0: the whole month).
LIMIT = int(os.environ.get("BOT4_CHAOS_EXEC_BARS", "0"))
MD_TOPICS = ("md.trades.v1", "md.book.v1", "md.candles.v1", "dlq.v1")

pytestmark = [
    pytest.mark.integration,
    pytest.mark.chaos,
    pytest.mark.skipif(not BTC_1M.exists(), reason="needs ../shared/data (the team's shared data set)"),
    pytest.mark.skipif(not FULL, reason="make chaos only (BOT4_CHAOS_FULL=1)"),
    # Each restart costs 5-70 s on the shared machine (Python start-up, Bytewax resume, catch-up).
    pytest.mark.timeout(3600),
]


@pytest.fixture
def prefixes(topic_prefix: str, kafka_bootstrap: str) -> Iterator[tuple[str, str]]:
    """P: the trading flow and the chaotic execution (md topics from ``topic_prefix``); Q: the mirror
    where the reference execution runs."""
    mirror = f"{topic_prefix.rstrip('.')}r."
    names = [f"{topic_prefix}{t}" for t in (*OUT_TOPICS, CONTROL_TOPIC)]
    names += [f"{mirror}{t}" for t in (*MD_TOPICS, *OUT_TOPICS, CONTROL_TOPIC)]
    with topics(kafka_bootstrap, names):
        yield topic_prefix, mirror


class Feed(threading.Thread):
    """Real candles into both prefixes' ``md.candles.v1`` at ``RATE`` bars a second (the last bar is
    held back until :meth:`release`)."""

    def __init__(self, bootstrap: str, prefixes: tuple[str, ...], candles: list[Candle]) -> None:
        super().__init__(daemon=True)
        self._producer = Producer({"bootstrap.servers": bootstrap, "enable.idempotence": True, "linger.ms": 5})
        self._prefixes, self.candles = prefixes, candles
        self.fed = 0
        self.error: BaseException | None = None

    def _produce(self, candles: list[Candle]) -> None:
        for candle in candles:
            value, key = encode(candle), candle.key.encode()
            for prefix in self._prefixes:
                self._producer.produce(f"{prefix}{topic_for(candle)}", value, key)
        assert self._producer.flush(30) == 0, "the feed's candles were not acknowledged in 30 s"

    def run(self) -> None:
        try:
            started, chunk = time.monotonic(), 10
            body = self.candles[:-1]
            for i in range(0, len(body), chunk):
                self._produce(body[i : i + chunk])
                self.fed = min(len(body), i + chunk)
                time.sleep(max(0.0, started + self.fed / RATE - time.monotonic()))
        except BaseException as exc:  # surfaced by the test's waits
            self.error = exc

    def release(self) -> None:
        self._produce(self.candles[-1:])
        self.fed = len(self.candles)


class Mirror(threading.Thread):
    """The trading flow's ``orders.v1`` (prefix P) copied to prefix Q, partition by partition in
    order; keeps what it saw (approved client order ids, cancel-alls, the newest progress)."""

    def __init__(self, bootstrap: str, source: str, target: str) -> None:
        super().__init__(daemon=True)
        self._servers, self.source, self.target = bootstrap, source, target
        self.copied = 0
        self.approved: set[str] = set()
        self.cancel_alls = 0
        self.cancel_records: list[dict[str, object]] = []
        self.progress_us = 0
        self.error: BaseException | None = None
        self._halt = threading.Event()

    def run(self) -> None:
        consumer = Consumer(
            {"bootstrap.servers": self._servers, "group.id": f"mirror-{self.source}", "enable.auto.commit": False}
        )
        producer = Producer({"bootstrap.servers": self._servers, "enable.idempotence": True, "linger.ms": 1})
        try:
            consumer.assign([TopicPartition(self.source, p, OFFSET_BEGINNING) for p in range(3)])
            while not self._halt.is_set():
                messages = consumer.consume(500, 0.05)
                for msg in messages:
                    assert msg.error() is None, f"mirroring {self.source}: {msg.error()}"
                    value = msg.value() or b""
                    producer.produce(self.target, value, msg.key(), partition=msg.partition() or 0)
                    record = orjson.loads(value)
                    kind = record.get("type")
                    if kind == "progress":
                        self.progress_us = max(self.progress_us, int(record["ts"]))
                    elif kind == "cancel_all":
                        self.cancel_alls += 1
                        self.cancel_records.append(record)
                    else:
                        self.approved.add(record["client_order_id"])
                if messages:
                    assert producer.flush(30) == 0, "mirrored orders.v1 records not acknowledged in 30 s"
                    self.copied += len(messages)
        except BaseException as exc:
            self.error = exc
        finally:
            consumer.close()

    def stop(self) -> None:
        self._halt.set()
        if self.is_alive():
            self.join(30)


@dataclass
class Restart:
    """One start of the chaotic execution process and what it took to resume."""

    port: int
    started: float
    rows_before: int
    first_input_s: float | None = None
    first_row_s: float | None = None


def test_kill_9_of_the_execution_flow_at_seeded_points_executes_every_order_once_as_uninterrupted(
    prefixes: tuple[str, str], kafka_bootstrap: str, pg_admin_conninfo: str, tmp_path: Path
) -> None:
    began = time.monotonic()
    prefix, mirror_prefix = prefixes
    candles = [e for e in read_events(BTC_1M) if isinstance(e, Candle)]
    if LIMIT:
        candles = candles[:LIMIT]
    chaos_db, ref_db = f"bot4_xkill_{prefix.strip('.')}", f"bot4_xkill_ref_{prefix.strip('.')}"
    chaos_conninfo = fresh_database(pg_admin_conninfo, chaos_db)
    ref_conninfo = fresh_database(pg_admin_conninfo, ref_db)
    ports = {"trading": free_port(), "reference": free_port()}
    procs: dict[str, Popen[bytes]] = {}
    feed = Feed(kafka_bootstrap, (prefix, mirror_prefix), candles)
    mirror = Mirror(kafka_bootstrap, f"{prefix}orders.v1", f"{mirror_prefix}orders.v1")
    restarts: list[Restart] = []

    def start_chaotic() -> None:
        port = free_port()
        env = execution_env(prefix, chaos_db, tmp_path / "chaos", port)
        procs["chaotic"] = spawn("execute", env, tmp_path / "recovery-chaotic")
        restarts.append(Restart(port, time.monotonic(), stored_count(chaos_conninfo, "order_events")))

    def executed_inputs(port: int) -> float | None:
        """Inputs the process's execution step has taken (None: no answer from its /metrics)."""
        return metric(port, "bot4_events_total", stage="execution", outcome="ok")

    def watch() -> None:
        """Fail if a process or thread died; time the newest restart's first input and first row."""
        for name, proc in procs.items():
            if proc.poll() is not None:
                stderr = proc.stderr.read().decode(errors="replace")[-3000:] if proc.stderr else ""
                raise AssertionError(f"the {name} process exited ({proc.returncode}): {stderr}")
        for thread in (feed, mirror):
            if thread.error is not None:
                raise AssertionError(f"{type(thread).__name__} failed: {thread.error!r}")
        last = restarts[-1] if restarts else None
        if last is not None:
            if last.first_input_s is None and (executed_inputs(last.port) or 0.0) > 0:
                last.first_input_s = time.monotonic() - last.started
            if last.first_row_s is None and stored_count(chaos_conninfo, "order_events") > last.rows_before:
                last.first_row_s = time.monotonic() - last.started

    def wait_for(condition: Callable[[], bool], timeout: float, what: str) -> None:
        deadline = time.monotonic() + timeout
        while True:
            watch()
            if condition():
                return
            assert time.monotonic() < deadline, f"timed out after {timeout:.0f} s waiting for {what}"
            time.sleep(0.05)

    def idle(seconds: float) -> None:
        """Wait until neither execution process has taken an input for ``seconds``, judged on
        answered scrapes only: a process too busy to answer its /metrics is not idle."""
        ends = {"reference": ports["reference"], "chaotic": restarts[-1].port}
        seen = {name: executed_inputs(port) for name, port in ends.items()}
        quiet_since = confirmed = start = time.monotonic()
        deadline = quiet_since + 180
        unanswered = {name: 0 for name in ends}
        changes: deque[tuple[float, dict[str, float | None]]] = deque(maxlen=8)
        while None in seen.values() or confirmed - quiet_since < seconds:
            watch()
            if time.monotonic() >= deadline:
                state = {
                    name: {
                        "inputs": executed_inputs(port),
                        "held_events": metric(port, "bot4_execution_held_events", account="paper"),
                        "blocked": metric(port, "bot4_execution_blocked_instructions", account="paper"),
                        "unanswered_scrapes": unanswered[name],
                    }
                    for name, port in ends.items()
                }
                trail = [(round(t - start, 1), values) for t, values in changes]
                raise AssertionError(
                    f"the execution processes never went idle: {state}; last changes (s, inputs): {trail}"
                )
            time.sleep(0.2)
            now = {name: executed_inputs(port) for name, port in ends.items()}
            for name, value in now.items():
                unanswered[name] += value is None
            if None in now.values():
                continue  # no answer: neither a change nor a quiet reading
            confirmed = time.monotonic()
            if now != seen:
                seen, quiet_since = now, confirmed
                changes.append((confirmed, dict(now)))

    try:
        trading_env = execution_env(prefix, chaos_db, tmp_path / "trading", ports["trading"])
        procs["trading"] = spawn("run", trading_env, tmp_path / "recovery-trading")
        procs["reference"] = spawn(
            "execute",
            execution_env(mirror_prefix, ref_db, tmp_path / "reference", ports["reference"]),
            tmp_path / "recovery-reference",
        )
        start_chaotic()
        mirror.start()
        wait_for(
            lambda: all(ready(p) for p in (*ports.values(), restarts[-1].port)),
            120,
            "the three flow processes to read their topics",
        )
        feed.start()

        rng = random.Random(SEED)
        body = len(candles) - 1
        points = sorted(rng.sample(range(body // 10, body * 9 // 10), KILLS))
        dwell = [rng.uniform(0.0, 3.0) for _ in points]
        for point, extra in zip(points, dwell, strict=True):
            # Past the feed's point, and up (its first input executed) for a seeded 0-3 s more: a
            # kill lands anywhere from the restore's catch-up to the live edge.
            wait_for(
                lambda p=point, e=extra: (  # type: ignore[misc]
                    feed.fed >= p
                    and restarts[-1].first_input_s is not None
                    and time.monotonic() >= restarts[-1].started + restarts[-1].first_input_s + e
                ),
                300,
                f"the feed to reach bar {point} and the chaotic execution to run",
            )
            procs["chaotic"].send_signal(signal.SIGKILL)
            procs["chaotic"].wait(30)
            print(f"kill -9 at bar {feed.fed} (point {point}, {extra:.1f} s after the start's first input)")
            start_chaotic()

        wait_for(lambda: feed.fed == body, len(candles) / RATE + 300, "the feed to end")
        last_fed_end = candles[-2].ts_event + timedelta(minutes=1)
        wait_for(lambda: from_epoch_us(mirror.progress_us) >= last_fed_end, 300, "the trading flow to decide every bar")
        wait_for(lambda: restarts[-1].first_input_s is not None, 120, "the last restart to run")
        idle(3)
        settings = load_settings(kafka={"topic_prefix": prefix}, postgres={"dbname": chaos_db})
        publish_command(settings, KillSwitch("paper", "chaos test", "end of the run", candles[-2].ts_event), via="cli")
        wait_for(lambda: mirror.cancel_alls > 0, 120, "the kill switch's cancel-all on orders.v1")

        def all_terminal(conninfo: str) -> bool:
            with psycopg.connect(conninfo) as conn:
                statuses: dict[str, str] = dict(conn.execute("SELECT client_order_id, status FROM orders").fetchall())
            return set(statuses) == mirror.approved and set(statuses.values()) <= set(TERMINAL)

        try:
            wait_for(lambda: all_terminal(ref_conninfo) and all_terminal(chaos_conninfo), 180, "every order to end")
        except AssertionError as exc:
            detail: dict[str, object] = {}
            for name, conninfo, port in (
                ("reference", ref_conninfo, ports["reference"]),
                ("chaotic", chaos_conninfo, restarts[-1].port),
            ):
                with psycopg.connect(conninfo) as conn:
                    statuses: dict[str, str] = dict(
                        conn.execute("SELECT client_order_id, status FROM orders").fetchall()
                    )
                detail[name] = {
                    "missing": sorted(mirror.approved - set(statuses)),
                    "extra": sorted(set(statuses) - mirror.approved),
                    "open": {c: s for c, s in statuses.items() if s not in TERMINAL},
                    "held_events": metric(port, "bot4_execution_held_events", account="paper"),
                    "blocked": metric(port, "bot4_execution_blocked_instructions", account="paper"),
                }
            detail["cancel_alls"] = mirror.cancel_records
            raise AssertionError(f"{exc}: {detail}") from None
        feed.release()
        last_end = candles[-1].ts_event + timedelta(minutes=1)
        wait_for(lambda: from_epoch_us(mirror.progress_us) >= last_end, 120, "the trading flow to decide the last bar")
        idle(2)
        with psycopg.connect(chaos_conninfo) as conn:
            last_equity = conn.execute(
                "SELECT equity, cash, realized_pnl FROM equity WHERE ts_event = %s", (last_end,)
            ).fetchone()
        wait_for(
            lambda: topic_message_count(kafka_bootstrap, f"{mirror_prefix}orders.v1") == mirror.copied,
            60,
            "the mirror to copy every orders.v1 record",
        )
        # No cancel-all gave up waiting for its market data (both processes read all of it).
        for port in (ports["reference"], restarts[-1].port):
            assert not metric(port, "bot4_execution_cancel_waits_expired_total", account="paper")
        mirror.stop()
        for proc in procs.values():
            proc.kill()
            proc.wait(30)
        reference = execution_outcome(kafka_bootstrap, mirror_prefix, ref_conninfo)
        chaotic = execution_outcome(kafka_bootstrap, prefix, chaos_conninfo)
    finally:
        mirror.stop()
        for proc in procs.values():
            if proc.poll() is None:
                proc.kill()
                proc.wait(30)
        with psycopg.connect(pg_admin_conninfo, autocommit=True) as conn:
            for db in (chaos_db, ref_db):
                conn.execute(f"DROP DATABASE IF EXISTS {db} WITH (FORCE)")

    approved = mirror.approved
    fills = [f for f in reference["fills"].values()]
    assert approved and fills and any(f["side"] == "sell" for f in fills), "the run traded too little to prove much"
    # Every approved order reached both executions and ended the same way.
    assert set(reference["stored_orders"]) == approved == set(chaotic["stored_orders"])
    assert chaotic["stored_orders"] == reference["stored_orders"]
    assert chaotic["final_status"] == reference["final_status"]
    # Every order event, field by field, and every fill (price, amount, fee, time): none lost, none extra.
    assert chaotic["events"] == reference["events"]
    assert chaotic["fills"] == reference["fills"]
    assert chaotic["stored_events"] == reference["stored_events"]
    assert chaotic["stored_fills"] == reference["stored_fills"]
    on_topic = sorted(
        (
            f["fill_id"],
            f["client_order_id"],
            str(Decimal(f["price"]).normalize()),
            str(Decimal(f["amount"]).normalize()),
            str(Decimal(f["fee"]).normalize()),
        )
        for f in chaotic["fills"].values()
    )
    assert on_topic == chaotic["stored_fills"]  # every published fill also stored
    # One submission per client order id at the venue.
    assert set(chaotic["submits"]) == approved and set(chaotic["submits"].values()) == {1}
    # Positions, cash, fees, realized PnL and equity booked from the fills, marked at the last close.
    marks = {candles[-1].key: candles[-1].close}
    cash = Decimal(10_000)
    booked = portfolio_from_fills(chaotic["fills"].values(), cash, marks)
    assert booked == portfolio_from_fills(reference["fills"].values(), cash, marks)
    # The trading flow booked exactly those fills from the chaotic execution (none lost on the way).
    assert last_equity is not None, "the trading flow recorded no equity at the last bar"
    assert (last_equity[0], last_equity[1], last_equity[2]) == (
        booked["equity"],
        booked["cash"],
        booked["realized_pnl"],
    )

    timed = [r for r in restarts[1:]]
    inputs = [r.first_input_s for r in timed if r.first_input_s is not None]
    rows = [r.first_row_s for r in timed if r.first_row_s is not None]
    print(
        f"\n{len(candles)} bars at {RATE:g}/s, {len(approved)} orders, {len(fills)} fills,"
        f" kills {KILLS} at bars {points}; {chaotic['republished']} records re-published after restarts"
        " (each identical to its first publication)"
    )
    print(f"start -> first input executed: {[round(s, 2) for s in inputs]} s")
    print(f"start -> first new order_events row: {[round(s, 2) for s in rows]} s")
    if inputs:
        print(f"first input: median {statistics.median(inputs):.2f} s, worst {max(inputs):.2f} s")
    if rows:
        print(f"first new row: median {statistics.median(rows):.2f} s, worst {max(rows):.2f} s")
    print(f"total {time.monotonic() - began:.0f} s")
    assert len(inputs) == KILLS, "a restarted execution process never executed an input"
