"""``bot4 run`` stops cleanly and promptly on SIGINT and SIGTERM (flows/shutdown.py).

The flow runs as a subprocess in testnet mode, its venue the real ccxt client against the local
recorded Binance (``tests/support/exchange_server.py``), following Kafka with a recovery folder,
as an operator runs it. Recorded BTCUSDT trades are in ``md.trades.v1`` before it starts and the
source hands over at most 100 a second, so the signal comes while it is still reading them.

What is held: the process exits within a few seconds with code 0 and nothing that looks like a crash
on stderr (Bytewax 0.21's own Ctrl-C ends in a Rust panic and a traceback, exit code 1); and the stop
lost and redid nothing: a second run from the same recovery folder (``--drain``) continues where the
first stopped, and the feature vectors of both runs together are exactly those of one uninterrupted
run over the same trades, none of them twice.
"""

from __future__ import annotations

import signal
import subprocess
import time
from collections import Counter
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path

import pytest
from confluent_kafka import Producer

from core.events import Side, Trade
from core.wire import encode
from flows.control import CONTROL_TOPIC
from flows.settings import load_settings
from flows.storage.migrate import migrate
from tests.integration.conftest import read_topic, topic_message_count
from tests.integration.test_ccxt_venue import Exchange, running_exchange
from tests.support.flow_http import free_port, scrape
from tests.support.kill_restart import BOT4, OUT_TOPICS, ROOT, env_for
from tests.support.topics import topics

pytestmark = [pytest.mark.integration, pytest.mark.timeout(180)]

#: The exit must come this soon after the signal: the epoch under way (1 s) ends, then the process.
STOP_WITHIN_S = 6.0
#: Seconds of the recording published (the BTCUSDT trades of the 2024-08-08 capture).
RECORDING_S = 30.0


@pytest.fixture
def exchange() -> Iterator[Exchange]:
    with running_exchange(usdt="10000") as ex:
        yield ex


@pytest.fixture
def prefixes(topic_prefix: str, kafka_bootstrap: str) -> Iterator[tuple[str, str]]:
    """Two topic sets: the stopped-and-resumed runs' (``topic_prefix``: its md.* and dlq.v1 exist),
    and the uninterrupted reference run's."""
    reference = topic_prefix.rstrip(".") + "r."
    created = [f"{topic_prefix}{t}" for t in OUT_TOPICS]
    created += [f"{reference}{t}" for t in (*OUT_TOPICS, "md.trades.v1", "md.book.v1", "md.candles.v1", "dlq.v1")]
    with topics(kafka_bootstrap, created, single=[f"{topic_prefix}{CONTROL_TOPIC}", f"{reference}{CONTROL_TOPIC}"]):
        yield topic_prefix, reference


def _publish(exchange: Exchange, bootstrap: str, topics: list[str]) -> int:
    """The first RECORDING_S seconds of recorded BTCUSDT trades, their times moved to end now."""
    recorded = exchange.do(lambda: exchange.server.recorded_trades("BTCUSDT"))
    first = recorded[0].offset_s
    start = datetime.now(UTC) - timedelta(seconds=RECORDING_S)
    producer = Producer({"bootstrap.servers": bootstrap, "linger.ms": 5})
    count = 0
    for rec in recorded:
        if rec.offset_s - first > RECORDING_S:
            break
        ts = start + timedelta(seconds=rec.offset_s - first)
        side = Side.SELL if rec.is_buyer_maker else Side.BUY
        trade = Trade("binance", "BTC/USDT", str(rec.id), Decimal(rec.price), Decimal(rec.qty), side, ts, ts)
        for topic in topics:
            producer.produce(topic, encode(trade), trade.key.encode())
        count += 1
    assert producer.flush(30) == 0
    return count


def _env(prefix: str, database: str, data_dir: Path, exchange: Exchange, port: int) -> dict[str, str]:
    env = env_for(prefix, database, data_dir)
    env.update(
        {
            "BOT4_MODE": "testnet",
            "BOT4_METRICS_PORT": str(port),
            "BOT4_TRADING__ACCOUNT": "testnet",
            "BOT4_TRADING__BARS_FROM": "trades",
            "BOT4_TRADING__TIMEFRAME": "1s",
            "BOT4_TRADING__BATCH_SIZE": "20",
            "BOT4_TRADING__MAX_EVENTS_PER_S": "100",  # still reading when the signal comes
            "BOT4_EXCHANGE__API_KEY": "testnet-key-0123456789",
            "BOT4_EXCHANGE__API_SECRET": "testnet-secret-0123456789",
            "BOT4_EXCHANGE__API_URL_OVERRIDE": exchange.server.http_origin,
        }
    )
    return env


def _stop(proc: subprocess.Popen[bytes], signum: signal.Signals, stderr: Path) -> tuple[int, float, str]:
    """Send ``signum``; the exit code, the seconds until the exit, and stderr."""
    sent = time.monotonic()
    proc.send_signal(signum)
    try:
        code = proc.wait(STOP_WITHIN_S * 5)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(10)
        pytest.fail(
            f"bot4 run did not exit within {STOP_WITHIN_S * 5:.0f} s of {signum.name}: {stderr.read_text()[-3000:]}"
        )
    return code, time.monotonic() - sent, stderr.read_text()


def _start(env: dict[str, str], args: list[str], stderr: Path) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [*BOT4, "run", *args], env=env, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=stderr.open("wb")
    )


def _assert_clean(code: int, seconds: float, err: str, signum: signal.Signals) -> None:
    assert "Traceback" not in err and "panicked" not in err, err[-3000:]
    assert code == 0, f"exit code {code} after {signum.name}: {err[-3000:]}"
    assert seconds < STOP_WITHIN_S, f"exited {seconds:.1f} s after {signum.name}"
    assert f"stopped on {signum.name}" in err


def _vectors(bootstrap: str, topic: str) -> Counter[tuple[bytes | None, bytes | None]]:
    return Counter(read_topic(bootstrap, topic))


def _run_and_signal(
    env: dict[str, str], args: list[str], signum: signal.Signals, bootstrap: str, port: int, err: Path
) -> None:
    """``bot4 run ARGS`` until it has published a few feature vectors (it is reading), then ``signum``."""
    features = f"{env['BOT4_KAFKA__TOPIC_PREFIX']}features.v1"
    proc = _start(env, args, err)
    started = time.monotonic()
    while topic_message_count(bootstrap, features) < 3:
        assert proc.poll() is None, err.read_text()[-3000:]
        assert time.monotonic() - started < 60, "no feature vectors within 60 s"
        time.sleep(0.2)
    assert "bot4_risk_state" in (scrape(port) or "")  # the account is up, its venue connected
    code, seconds, text = _stop(proc, signum, err)
    _assert_clean(code, seconds, text, signum)


def test_sigint_stops_testnet_run_within_seconds_with_exit_0_and_the_resumed_run_loses_and_redoes_nothing(
    prefixes, pg_database, kafka_bootstrap, exchange, tmp_path
):
    prefix, reference = prefixes
    migrate(load_settings(postgres={"dbname": pg_database}).postgres.conninfo())
    _publish(exchange, kafka_bootstrap, [f"{prefix}md.trades.v1", f"{reference}md.trades.v1"])
    # One uninterrupted run over the same trades, meanwhile (paper: the features do not depend on
    # the venue; no cap: they do not depend on how the input is batched either).
    ref_env = _env(reference, pg_database, tmp_path / "ref-data", exchange, 0)
    ref_env.update({"BOT4_MODE": "paper", "BOT4_TRADING__ACCOUNT": "paper", "BOT4_TRADING__MAX_EVENTS_PER_S": "0"})
    ref_err = tmp_path / "reference.err"
    whole = _start(ref_env, ["--drain"], ref_err)

    # Stopped by the signal while it is still reading.
    recovery = tmp_path / "recovery"
    port = free_port()
    env = _env(prefix, pg_database, tmp_path / "data", exchange, port)
    _run_and_signal(env, ["--recovery", str(recovery)], signal.SIGINT, kafka_bootstrap, port, tmp_path / "first.err")
    features = f"{prefix}features.v1"
    first = _vectors(kafka_bootstrap, features)

    # The rest from the same recovery folder, to the end of the topics.
    env["BOT4_TRADING__MAX_EVENTS_PER_S"] = "0"
    resumed = subprocess.run(
        [*BOT4, "run", "--drain", "--recovery", str(recovery)],
        env=env,
        cwd=ROOT,
        capture_output=True,
        timeout=120,
        check=False,
    )
    assert resumed.returncode == 0, resumed.stderr.decode()[-3000:]
    assert whole.wait(120) == 0, ref_err.read_text()[-3000:]

    both = _vectors(kafka_bootstrap, features)
    whole_run = _vectors(kafka_bootstrap, f"{reference}features.v1")
    assert 0 < sum(first.values()) < sum(whole_run.values()), "the signal came after every trade was read"
    assert max(both.values()) == 1, "a feature vector was published twice: the stop redid work"
    assert both == whole_run, "the stop lost or changed feature vectors"


def test_sigterm_stops_testnet_run_within_seconds_with_exit_0(
    prefixes, pg_database, kafka_bootstrap, exchange, tmp_path
):
    prefix, _ = prefixes
    migrate(load_settings(postgres={"dbname": pg_database}).postgres.conninfo())
    _publish(exchange, kafka_bootstrap, [f"{prefix}md.trades.v1"])
    port = free_port()
    env = _env(prefix, pg_database, tmp_path / "data", exchange, port)
    _run_and_signal(env, [], signal.SIGTERM, kafka_bootstrap, port, tmp_path / "run.err")
