"""The console end to end during a paper replay: real Binance BTC/USDT 1m candles are replayed into
Kafka and stored; `bot4 serve` runs; Debian's Chromium (playwright-core, console/e2e/console.e2e.mjs)
opens the console; then `bot4 run` (the trading flow, paper mode) trades the candles while the page
watches positions, equity and fills arrive live; a strategy is paused and resumed from the page; a
wrong token is refused; the kill switch is pressed and confirmed; the running flow halts the account
and the page, the API, the flow's Prometheus metrics and the database say so.

Every step takes a screenshot; with ``BOT4_CONSOLE_SCREENSHOTS=docs/images`` they replace the ones
docs/console.md shows (otherwise they stay in the test's temporary folder).
"""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
import time
import uuid
from pathlib import Path

import psycopg
import pytest
import requests
from bytewax.testing import run_main
from confluent_kafka.admin import AdminClient, NewTopic

from flows.control import CONTROL_TOPIC
from flows.ingest import replay_flow
from flows.settings import load_settings
from flows.storage.migrate import migrate
from flows.store import store_flow
from tests.integration.test_console import BTC_1M, TOKEN, free_port, write_model_scores, write_report_folders

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]
CONSOLE = ROOT / "console"
ACCOUNT = "paper"
MD_TOPICS = ("md.trades.v1", "md.book.v1", "md.candles.v1", "dlq.v1")
OUT_TOPICS = ("features.v1", "signals.v1", "risk.decisions.v1", "orders.v1", "fills.v1", "orders.shadow.v1")


def _env(prefix: str, database: str, port: int, data_dir: Path, bootstrap: str) -> dict[str, str]:
    return {
        **os.environ,
        "BOT4_MODE": "paper",
        "BOT4_METRICS_PORT": "0",
        "BOT4_DATA_DIR": str(data_dir),
        "BOT4_KAFKA__TOPIC_PREFIX": prefix,
        "BOT4_KAFKA__BOOTSTRAP": bootstrap,
        "BOT4_POSTGRES__DBNAME": database,
        "BOT4_TRADING__ACCOUNT": ACCOUNT,
        "BOT4_TRADING__SYMBOLS": '["BTC/USDT"]',
        "BOT4_TRADING__BARS_FROM": "candles",
        "BOT4_TRADING__TIMEFRAME": "1m",
        "BOT4_CONSOLE__PORT": str(port),
        "BOT4_CONSOLE__TOKEN": TOKEN,
        "BOT4_CONSOLE__REPORTS_DIR": str(data_dir / "reports"),
    }


def _wait_for_console(url: str, proc: subprocess.Popen[str], timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        assert proc.poll() is None, f"bot4 serve exited: {proc.stdout.read() if proc.stdout else ''}"
        try:
            if len(requests.get(url + "/api/info", timeout=2).json()["live_following"]) == 4:
                return
        except requests.RequestException:
            pass
        time.sleep(0.2)
    raise AssertionError(f"bot4 serve did not follow its topics at {url} within {timeout} s")


def _gauge(text: str, name: str, **labels: str) -> float | None:
    """The value of one sample in a Prometheus text exposition, or None if it is not there."""
    for line in text.splitlines():
        match = re.fullmatch(rf"{name}\{{(?P<labels>[^}}]*)\}} (?P<value>\S+)", line)
        if match and dict(re.findall(r'(\w+)="([^"]*)"', match["labels"])) == labels:
            return float(match["value"])
    return None


def _halted_in_metrics(metrics_url: str, account: str, timeout: float = 15) -> str:
    """Scrape the trading flow's /metrics until the account's risk state is halted; the exposition."""
    deadline = time.monotonic() + timeout
    text = ""
    while time.monotonic() < deadline:
        text = requests.get(metrics_url, timeout=5).text
        if _gauge(text, "bot4_risk_state", account=account, state="halted") == 1.0:
            return text
        time.sleep(0.25)
    states = [line for line in text.splitlines() if line.startswith("bot4_risk_state{")]
    raise AssertionError(f"bot4_risk_state for {account} not halted at {metrics_url} within {timeout} s: {states}")


def _stop(proc: subprocess.Popen[str] | None) -> str:
    if proc is None:
        return ""
    if proc.poll() is None:
        proc.send_signal(signal.SIGINT)
        try:
            proc.wait(15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(5)
    return proc.stdout.read() if proc.stdout else ""


def test_kill_switch_pressed_in_chromium_halts_the_paper_trading_flow(tmp_path, kafka_bootstrap, pg_admin_conninfo):
    chromium = Path(os.environ.get("BOT4_CHROMIUM", "/usr/bin/chromium"))
    assert chromium.is_file(), f"{chromium} not found: `make test` installs Debian's chromium (infra/services.sh tools)"
    assert (CONSOLE / "dist" / "index.html").is_file(), "console/dist is not built: run `make console`"
    assert (CONSOLE / "node_modules" / "playwright-core").is_dir(), "console/node_modules missing: run `make console`"

    database = f"bot4_test_{uuid.uuid4().hex[:10]}"
    with psycopg.connect(pg_admin_conninfo, autocommit=True) as conn:
        conn.execute(f"CREATE DATABASE {database}")
    prefix = f"e2e{uuid.uuid4().hex[:6]}."
    admin = AdminClient({"bootstrap.servers": kafka_bootstrap})
    topics = [prefix + t for t in (*MD_TOPICS, *OUT_TOPICS)]
    specs = [NewTopic(t, 3, 1) for t in topics] + [NewTopic(prefix + CONTROL_TOPIC, 1, 1)]
    for fut in admin.create_topics(specs).values():
        fut.result(30)
    port = free_port()
    env = _env(prefix, database, port, tmp_path, kafka_bootstrap)
    settings = load_settings(
        mode="paper",
        metrics_port=0,
        kafka={"topic_prefix": prefix, "bootstrap": kafka_bootstrap},
        postgres={"dbname": database},
        data_dir=tmp_path,
    )
    server = flow = browser = None
    try:
        migrate(settings.postgres.conninfo())
        run_main(replay_flow([BTC_1M], settings=settings))  # the candles into md.candles.v1
        run_main(store_flow(settings, tail=False))  # and into md_candles (freshness, the symbol chart)
        write_model_scores(settings.postgres.conninfo())
        write_report_folders(tmp_path / "reports")

        server = subprocess.Popen(
            [str(ROOT / ".venv" / "bin" / "bot4"), "serve"],
            cwd=ROOT,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        url = f"http://127.0.0.1:{port}"
        _wait_for_console(url, server)

        shots = Path(os.environ.get("BOT4_CONSOLE_SCREENSHOTS") or tmp_path / "screenshots")
        shots = shots if shots.is_absolute() else ROOT / shots
        shots.mkdir(parents=True, exist_ok=True)
        browser = subprocess.Popen(
            ["node", "e2e/console.e2e.mjs"],
            cwd=CONSOLE,
            env={
                **os.environ,
                "CONSOLE_URL": url,
                "CONSOLE_TOKEN": TOKEN,
                "CONSOLE_ACCOUNT": ACCOUNT,
                "SHOTS": str(shots),
                "USER_DATA_DIR": str(tmp_path / "chromium-profile"),
                "CHROMIUM": str(chromium),
            },
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        assert browser.stdout is not None
        first = browser.stdout.readline()
        assert json.loads(first or "{}").get("ready"), first + browser.stdout.read()
        # The page is open: now the trading flow starts and trades the replayed candles, serving its
        # Prometheus metrics on its own port.
        metrics_port = free_port()
        flow = subprocess.Popen(
            [str(ROOT / ".venv" / "bin" / "bot4"), "run"],
            cwd=ROOT,
            env={**env, "BOT4_METRICS_PORT": str(metrics_port)},
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        try:
            out, _ = browser.communicate(timeout=240)
        except subprocess.TimeoutExpired:
            browser.kill()
            out, _ = browser.communicate()
        lines = [line for line in out.splitlines() if line.startswith("{")]
        assert browser.returncode == 0 and lines, out + "\n--- flow ---\n" + _stop(flow)
        outcome = json.loads(lines[-1])
        assert outcome["ok"], outcome

        risk = {r["account"]: r for r in requests.get(url + "/api/risk", timeout=10).json()}
        assert risk[ACCOUNT]["trading_state"] == "halted"
        assert ("kill_switch", "open") in {(b["name"], b["status"]) for b in risk[ACCOUNT]["breakers"]}
        assert flow.poll() is None, "the trading flow exited before its metrics were read"
        metrics = _halted_in_metrics(f"http://127.0.0.1:{metrics_port}/metrics", ACCOUNT)
        assert _gauge(metrics, "bot4_risk_state", account=ACCOUNT, state="active") == 0.0
        assert _gauge(metrics, "bot4_breaker_open", account=ACCOUNT, breaker="kill_switch") == 1.0
        api_fills = requests.get(url + "/api/fills", params={"limit": 5000}, timeout=10).json()
        with psycopg.connect(settings.postgres.conninfo()) as conn:
            audit = conn.execute(
                "SELECT kind, account, strategy, requested_by, reason, via FROM operator_commands ORDER BY id"
            ).fetchall()
            halts = conn.execute(
                "SELECT detail->>'reason' FROM risk_decisions WHERE kind = 'state_changed' AND trading_state = 'halted'"
            ).fetchall()
            stored_fills = conn.execute("SELECT count(*) FROM fills").fetchone()
            cancel_alls = conn.execute(
                "SELECT detail->>'reason' FROM risk_decisions WHERE kind = 'cancel_all' AND account = %s", (ACCOUNT,)
            ).fetchall()
        strategy = outcome["strategy"]
        assert audit == [
            ("pause_strategy", ACCOUNT, strategy, "e2e-operator", "e2e: pause drill", "api"),
            ("resume_strategy", ACCOUNT, strategy, "e2e-operator", "e2e: resume drill", "api"),
            ("kill_switch", ACCOUNT, None, "e2e-operator", "e2e: venue incident drill", "api"),
        ]
        assert any("kill switch by e2e-operator" in (r or "") for (r,) in halts), halts
        assert any("kill switch by e2e-operator" in (r or "") for (r,) in cancel_alls), cancel_alls
        assert stored_fills is not None and len(api_fills) == stored_fills[0] > 0
        screens = ("overview", "pause-dialog", "paused", "kill-dialog", "kill-refused", "halted", "orders", "decisions")
        for name in (*screens, "symbol", "reports"):
            assert (shots / f"console-{name}.png").stat().st_size > 10_000, name
    finally:
        if browser is not None and browser.poll() is None:
            browser.kill()
        _stop(flow)
        _stop(server)
        for fut in admin.delete_topics([*topics, prefix + CONTROL_TOPIC]).values():
            fut.result(30)
        with psycopg.connect(pg_admin_conninfo, autocommit=True) as conn:
            conn.execute(f"DROP DATABASE IF EXISTS {database} WITH (FORCE)")
        shutil.rmtree(tmp_path / "chromium-profile", ignore_errors=True)
