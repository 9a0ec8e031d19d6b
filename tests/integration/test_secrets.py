"""API keys and passwords never leave the settings: not in logs, reports, metrics, exceptions, the
topics or the DLQ (issue 10, "Secrets and live-trading safety").

Known dummy-looking values are set, the exchange key in the environment and its secret in the
``BOT4_CONFIG_FILE`` TOML file (the two ways keys may arrive), with the PostgreSQL password and
the console token. Then real commands run as an operator runs them: a paper trading run of the
bundled real candles through Kafka (with a malformed record and a malformed command, so the DLQ is
not empty) while its ``/metrics`` endpoint is scraped, ``bot4 status``, ``bot4 config show``, a
backtest with its report, live runs refused for each missing precondition, and a settings error
on a misspelt key variable. Every byte they produced is searched for each value (and for its first
ten characters, a truncated echo): stdout and stderr (JSON logs included), the metrics text, every
file written, every record of every topic, every stored row.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest
from confluent_kafka import Producer
from typer.testing import CliRunner

from flows.cli import app
from flows.control import CONTROL_TOPIC
from flows.demo import TRADING_FILES
from flows.ingest import replay_flow
from flows.settings import load_settings
from flows.storage.migrate import migrate
from tests.integration.conftest import read_topic
from tests.support.flow_http import free_port, scrape
from tests.support.topics import OUT_TOPICS, flow_topics

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]
BOT4 = [sys.executable, "-m", "flows.cli"]
REPLAY_BARS = 1200
#: Dummy values shaped like the real thing (a Binance key is 64 alphanumerics).
SECRETS = {
    "api_key": "vK3qA9zR7mT2xW8pL4nB6cY1dF5gH0jQeS3uV7iO9kM2wE4rT6yU8aZ1xC3vB5nM7",
    "api_secret": "Zp8Lq2Ws6Xe4Rd9Tf1Gy7Hu3Jk5Ml0Nb8Vc2Xz6Qa4Sw9Ed1Rf3Tg7Yh5Uj2Ik8Ol",
    "pg_password": "pgPw-Hx7Kd2Qm9Vr4Tz1",
    "console_token": "ctok-Bn5Xs8Lw3Pe6Yj1Uq9Ra2",
}


@pytest.fixture
def env(topic_prefix: str, pg_database: str, kafka_bootstrap: str, tmp_path: Path) -> Iterator[dict[str, str]]:
    """The operator's environment: keys set, the secret from a file, the test's topics and database."""
    with flow_topics(kafka_bootstrap, topic_prefix):
        yield _operator_env(topic_prefix, pg_database, tmp_path)


def _operator_env(topic_prefix: str, pg_database: str, tmp_path: Path) -> dict[str, str]:
    config = tmp_path / "bot4.toml"
    config.write_text(f'[exchange]\napi_secret = "{SECRETS["api_secret"]}"\n')
    config.chmod(0o600)
    values = dict(os.environ)
    values.update(
        {
            "BOT4_CONFIG_FILE": str(config),
            "BOT4_EXCHANGE__API_KEY": SECRETS["api_key"],
            # Trust authentication: the server never asks for it, so the runs work and any
            # leak is ours, not the server's.
            "BOT4_POSTGRES__PASSWORD": SECRETS["pg_password"],
            "BOT4_CONSOLE__TOKEN": SECRETS["console_token"],
            "BOT4_MODE": "paper",
            "BOT4_LOG_LEVEL": "DEBUG",
            "BOT4_DATA_DIR": str(tmp_path / "data"),
            "BOT4_KAFKA__TOPIC_PREFIX": topic_prefix,
            "BOT4_POSTGRES__DBNAME": pg_database,
            "BOT4_TRADING__SYMBOLS": '["BTC/USDT", "ETH/USDT"]',
            "BOT4_TRADING__BARS_FROM": "candles",
            "BOT4_TRADING__TIMEFRAME": "1m",
            "BOT4_TRADING__BATCH_SIZE": "200",
        }
    )
    return values


def _bot4(args: list[str], env: dict[str, str], timeout: float = 120) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*BOT4, *args], check=False, env=env, cwd=ROOT, capture_output=True, text=True, timeout=timeout
    )


def _paper_run_scraping_metrics(env: dict[str, str]) -> tuple[subprocess.CompletedProcess[str], list[str]]:
    """``bot4 run --drain`` to the end of the topics; its /metrics read every 0.2 s meanwhile."""
    port = free_port()
    run_env = {**env, "BOT4_METRICS_PORT": str(port)}
    proc = subprocess.Popen(
        [*BOT4, "run", "--drain"], env=run_env, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    scrapes: list[str] = []
    deadline = time.monotonic() + 120
    while proc.poll() is None and time.monotonic() < deadline:
        text = scrape(port)
        if text is not None:  # None: not serving yet, or already gone (a scrape cut short by the exit)
            scrapes.append(text)
        time.sleep(0.2)
    try:
        out, err = proc.communicate(timeout=max(1.0, deadline - time.monotonic()))
    finally:
        if proc.poll() is None:
            proc.kill()
    return subprocess.CompletedProcess(proc.args, proc.returncode, out, err), scrapes


def _stored_rows(conninfo: str) -> str:
    """Every row of every table of the run's database, as text."""
    parts: list[str] = []
    with psycopg.connect(conninfo) as conn:
        tables = [r[0] for r in conn.execute("SELECT tablename FROM pg_tables WHERE schemaname = 'public'")]
        for table in tables:
            parts.extend(str(r[0]) for r in conn.execute(f'SELECT t::text FROM "{table}" t'))
    return "\n".join(parts)


def _files_under(folder: Path) -> dict[str, bytes]:
    return {str(p): p.read_bytes() for p in folder.rglob("*") if p.is_file()}


def test_api_keys_and_passwords_appear_in_no_log_report_metric_exception_topic_or_row(
    env, topic_prefix, pg_database, kafka_bootstrap, tmp_path, monkeypatch
):
    settings = load_settings(kafka={"topic_prefix": topic_prefix}, postgres={"dbname": pg_database})
    migrate(settings.postgres.conninfo())
    replay_flow_settings = load_settings(kafka={"topic_prefix": topic_prefix})
    from bytewax.testing import run_main

    # A day and a half of each instrument: enough for orders and fills, short enough for `make test`.
    short = []
    for path in TRADING_FILES:
        short.append(tmp_path / path.name)
        short[-1].write_text(json.dumps(json.loads(path.read_text())[:REPLAY_BARS]))
    run_main(replay_flow(short, settings=replay_flow_settings))
    producer = Producer({"bootstrap.servers": kafka_bootstrap})
    producer.produce(f"{topic_prefix}md.candles.v1", b"binance:BTC/USDT", b"{not json")
    producer.produce(f"{topic_prefix}{CONTROL_TOPIC}", b"paper", b'{"type": "kill_switch", "v": 1}')
    assert producer.flush(10) == 0

    outputs: dict[str, str | bytes] = {}

    paper, scrapes = _paper_run_scraping_metrics(env)
    assert paper.returncode == 0, paper.stderr[-3000:]
    assert scrapes, "the paper run's /metrics endpoint never answered"
    assert "bot4_" in scrapes[-1]
    outputs |= {"paper run stdout": paper.stdout, "paper run stderr": paper.stderr}
    outputs |= {f"metrics scrape {i}": text for i, text in enumerate(scrapes)}

    backtest = _bot4(["backtest", str(short[0]), "--out", str(tmp_path / "backtest"), "--no-progress"], env)
    assert backtest.returncode == 0, backtest.stderr[-3000:]
    outputs |= {"backtest": backtest.stdout + backtest.stderr}

    # The short commands run in this process (a subprocess each would cost seconds of imports).
    for name, value in env.items():
        if name.startswith("BOT4_"):
            monkeypatch.setenv(name, value)
    monkeypatch.setenv("BOT4_METRICS_PORT", "0")
    cli = CliRunner()
    shown = cli.invoke(app, ["config", "show"])
    assert shown.exit_code == 0, shown.output
    masked = json.loads(shown.stdout)
    # The keys were read (from the environment and from the file), and are shown masked.
    assert masked["exchange"]["api_key"] == masked["exchange"]["api_secret"] == "**********"
    outputs |= {"config show": shown.output}
    outputs |= {"status": cli.invoke(app, ["status", "--once"]).output}

    # Live refusals, in the order an operator meets them; each passes the check before it, so
    # the last one proves both keys were read and accepted.
    monkeypatch.setenv("BOT4_MODE", "live")
    refusals = {
        "LIVE_TRADING_ENABLED is false": {},
        "TESTNET is true": {"BOT4_EXCHANGE__LIVE_TRADING_ENABLED": "true"},
        "BOT4_RISK__MAX_ORDER_NOTIONAL and BOT4_RISK__MAX_GROSS_EXPOSURE are not set": {
            "BOT4_EXCHANGE__TESTNET": "false"
        },
    }
    for reason, more in refusals.items():
        for name, value in more.items():
            monkeypatch.setenv(name, value)
        refused = cli.invoke(app, ["run"])
        assert refused.exit_code == 2 and reason in " ".join(refused.output.split()), refused.output
        outputs[f"live refused: {reason}"] = refused.output
        if refused.exception is not None and not isinstance(refused.exception, SystemExit):
            outputs[f"exception: {reason}"] = repr(refused.exception)

    monkeypatch.setenv("BOT4_EXCHANGE__API_KY", SECRETS["api_key"])
    typo = cli.invoke(app, ["config", "show"])
    assert typo.exit_code == 2 and "api_ky" in typo.output, typo.output
    outputs |= {"settings error": typo.output}

    outputs |= _files_under(tmp_path / "data")
    outputs |= _files_under(tmp_path / "backtest")
    dlq = read_topic(kafka_bootstrap, f"{topic_prefix}dlq.v1")
    assert len(dlq) >= 2, "the malformed candle and command should be in the DLQ"
    for topic in ("dlq.v1", CONTROL_TOPIC, *OUT_TOPICS):
        records = read_topic(kafka_bootstrap, f"{topic_prefix}{topic}")
        outputs[f"topic {topic}"] = b"\n".join((k or b"") + b" " + (v or b"") for k, v in records)
    assert outputs["topic orders.v1"] and outputs["topic risk.decisions.v1"]
    outputs["stored rows"] = _stored_rows(settings.postgres.conninfo())

    leaks = []
    for name, value in SECRETS.items():
        for needle in (value, value[:10]):
            for where, blob in outputs.items():
                haystack = blob if isinstance(blob, bytes) else blob.encode()
                if needle.encode() in haystack:
                    leaks.append(f"{name} ({needle[:4]}...) in {where}")
    assert not leaks, leaks
    print(f"searched {len(outputs)} outputs, {sum(len(b) for b in outputs.values()):,} bytes")
