"""The console end to end: `bot4 serve` on data in PostgreSQL, Debian's Chromium driven by
playwright-core (console/e2e/console.e2e.mjs): the overview, a wrong token refused, the kill switch
pressed and confirmed, the risk state HALTED in the page and in the API. Every step takes a
screenshot; with ``BOT4_CONSOLE_SCREENSHOTS=docs/images`` they replace the ones docs/console.md shows
(otherwise they stay in the test's temporary folder, so a test run leaves the checkout clean).

The risk engine's side of the command path runs here as the trading flow will run it (consume
control.commands.v1, RiskEngine.kill/reset, record and publish the decisions) until that flow can be
started in this test; then this thread is replaced by the flow over a paper replay.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import threading
import time
import uuid
from pathlib import Path

import psycopg
import pytest
import requests
from confluent_kafka import Consumer

from core.clock import SystemClock
from core.orders import KillSwitch
from flows.control import CONTROL_TOPIC, decode_command
from flows.kafka_io import CheckedProducer, consumer_config, producer_config
from flows.risk_step import decision_message, write_decisions
from flows.settings import Bot4Settings, load_settings
from risk.config import RiskLimits
from risk.engine import RiskEngine
from tests.integration.test_console import TOKEN, create_topics, delete_topics, free_port, store_trading_day

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]
CONSOLE = ROOT / "console"


class RiskEngineOnTheCommandPath:
    """Consume the control topic and let the account's risk engine act on each command."""

    def __init__(self, settings: Bot4Settings, account: str) -> None:
        self.settings = settings
        self.account = account
        self.engine = RiskEngine(account, RiskLimits(), SystemClock())
        self.stop = threading.Event()
        self.handled: list[str] = []
        self.thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        kafka = self.settings.kafka
        consumer = Consumer(consumer_config(kafka, f"e2e-risk-{uuid.uuid4().hex[:6]}"))
        consumer.subscribe([kafka.topic(CONTROL_TOPIC)])
        producer = CheckedProducer(producer_config(kafka))
        try:
            while not self.stop.is_set():
                message = consumer.poll(0.2)
                if message is None or message.error():
                    continue
                command = decode_command(message.value() or b"")
                if command.account not in {self.account, "*"}:
                    continue
                if isinstance(command, KillSwitch):
                    decisions = self.engine.kill(KillSwitch(self.account, *_rest(command)))
                else:
                    decisions = self.engine.reset(command)
                write_decisions(self.settings.postgres.conninfo(), decisions)
                for d in decisions:
                    msg = decision_message(d, kafka.topic_prefix)
                    producer.produce(msg.topic, msg.key, msg.value)
                producer.flush()
                self.handled.append(type(command).__name__)
        finally:
            consumer.close()


def _rest(command: KillSwitch) -> tuple[str, str, object]:
    return command.requested_by, command.reason, command.ts


def _wait_for(url: str, timeout: float, proc: subprocess.Popen[str]) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        assert proc.poll() is None, f"bot4 serve exited: {proc.stdout.read() if proc.stdout else ''}"
        try:
            info = requests.get(url + "/api/info", timeout=2).json()
            if len(info["live_following"]) == 4:
                return
        except requests.RequestException:
            pass
        time.sleep(0.2)
    raise AssertionError(f"bot4 serve did not answer at {url} within {timeout} s")


def test_kill_switch_pressed_in_chromium_halts_the_account_in_the_page_and_the_api(
    tmp_path, shared_data, kafka_bootstrap, pg_admin_conninfo
):
    chromium = Path(os.environ.get("BOT4_CHROMIUM", "/usr/bin/chromium"))
    assert chromium.is_file(), f"{chromium} not found: `make test` installs Debian's chromium (infra/services.sh tools)"
    assert (CONSOLE / "dist" / "index.html").is_file(), "console/dist is not built: run `make console`"
    assert (CONSOLE / "node_modules" / "playwright-core").is_dir(), "console/node_modules missing: run `make console`"

    database = f"bot4_test_{uuid.uuid4().hex[:10]}"
    with psycopg.connect(pg_admin_conninfo, autocommit=True) as conn:
        conn.execute(f"CREATE DATABASE {database}")
    prefix = f"e2e{uuid.uuid4().hex[:6]}."
    topics = create_topics(kafka_bootstrap, prefix)
    port = free_port()
    settings = load_settings(
        kafka={"topic_prefix": prefix, "bootstrap": kafka_bootstrap},
        postgres={"dbname": database},
        data_dir=tmp_path,
        console={"port": port, "token": TOKEN, "reports_dir": tmp_path / "reports"},
    )
    risk = RiskEngineOnTheCommandPath(settings, "main")
    server: subprocess.Popen[str] | None = None
    try:
        store_trading_day(settings, shared_data, tmp_path)
        env = {
            **os.environ,
            "BOT4_KAFKA__TOPIC_PREFIX": prefix,
            "BOT4_KAFKA__BOOTSTRAP": kafka_bootstrap,
            "BOT4_POSTGRES__DBNAME": database,
            "BOT4_CONSOLE__PORT": str(port),
            "BOT4_CONSOLE__TOKEN": TOKEN,
            "BOT4_CONSOLE__REPORTS_DIR": str(tmp_path / "reports"),
        }
        server = subprocess.Popen(
            [str(ROOT / ".venv" / "bin" / "bot4"), "serve"],
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        url = f"http://127.0.0.1:{port}"
        _wait_for(url, 30, server)
        risk.thread.start()

        shots = Path(os.environ.get("BOT4_CONSOLE_SCREENSHOTS") or tmp_path / "screenshots")
        shots = shots if shots.is_absolute() else ROOT / shots
        shots.mkdir(parents=True, exist_ok=True)
        run = subprocess.run(
            ["node", "e2e/console.e2e.mjs"],
            cwd=CONSOLE,
            env={
                **os.environ,
                "CONSOLE_URL": url,
                "CONSOLE_TOKEN": TOKEN,
                "CONSOLE_ACCOUNT": "main",
                "SHOTS": str(shots),
                "USER_DATA_DIR": str(tmp_path / "chromium-profile"),
                "CHROMIUM": str(chromium),
            },
            capture_output=True,
            text=True,
            timeout=150,
            check=False,
        )
        lines = [line for line in run.stdout.splitlines() if line.startswith("{")]
        assert run.returncode == 0 and lines, run.stdout + run.stderr
        outcome = json.loads(lines[-1])
        assert outcome["ok"], outcome

        (state,) = requests.get(url + "/api/risk", timeout=10).json()
        assert state["trading_state"] == "halted" and state["breakers"][0]["name"] == "kill_switch"
        with psycopg.connect(settings.postgres.conninfo()) as conn:
            audit = conn.execute("SELECT kind, account, requested_by, reason, via FROM operator_commands").fetchall()
            kinds = conn.execute(
                "SELECT kind FROM risk_decisions WHERE kind IN ('state_changed', 'cancel_all')"
            ).fetchall()
        assert audit == [("kill_switch", "main", "e2e-operator", "e2e: venue incident drill", "api")]
        assert sorted(k for (k,) in kinds) == ["cancel_all", "state_changed"]
        assert risk.handled == ["KillSwitch"]
        for name in ("overview", "kill-dialog", "kill-refused", "halted", "orders", "decisions", "symbol", "reports"):
            assert (shots / f"console-{name}.png").stat().st_size > 10_000, name
    finally:
        risk.stop.set()
        if risk.thread.is_alive():
            risk.thread.join(10)
        if server is not None:
            server.terminate()
            try:
                server.wait(10)
            except subprocess.TimeoutExpired:
                server.kill()
        delete_topics(kafka_bootstrap, topics)
        with psycopg.connect(pg_admin_conninfo, autocommit=True) as conn:
            conn.execute(f"DROP DATABASE IF EXISTS {database} WITH (FORCE)")
        shutil.rmtree(tmp_path / "chromium-profile", ignore_errors=True)
