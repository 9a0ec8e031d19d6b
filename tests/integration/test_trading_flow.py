"""The trading flow against the real local Kafka and PostgreSQL, in paper mode.

Real Binance BTC/USDT 1m candles (bundled, May 2021) are replayed into Kafka by the ingest flow;
the trading flow drains them: every signal has a risk decision, every approved order reaches
exactly one terminal state, fills in Kafka equal fills in PostgreSQL, a kill switch published on
the control topic halts the account, and the orders equal those of an in-process backtest of the
same file.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import orjson
import psycopg
import pytest
from bytewax.testing import run_main

from core.orders import KillSwitch
from flows.backtest import BacktestConfig, run_backtest
from flows.control import publish_command
from flows.feature_store import FeastConfig, apply, open_store, read_online
from flows.features import decode_feature_vector
from flows.ingest import replay_flow
from flows.models import decode_signal
from flows.replay import read_events
from flows.replay.source import ReplayFile
from flows.settings import load_settings
from flows.storage.migrate import migrate
from flows.trading_run import trading_flow
from tests.support.topics import flow_topics

from .conftest import read_topic

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]
BTC_1M = ROOT / "data" / "sample" / "binance-1m-2021" / "BTC_USDT-1m.json"


@pytest.fixture
def trading_topics(topic_prefix: str, kafka_bootstrap: str) -> Iterator[str]:
    with flow_topics(kafka_bootstrap, topic_prefix):
        yield topic_prefix


def settings_for(prefix: str, database: str, data_dir: Path, **trading: object):
    return load_settings(
        mode="paper",
        metrics_port=0,
        kafka={"topic_prefix": prefix},
        postgres={"dbname": database},
        data_dir=data_dir,
        trading={"account": "paper", "symbols": ["BTC/USDT"], "bars_from": "candles", "timeframe": "1m", **trading},
    )


def records(bootstrap: str, topic: str) -> list[dict]:
    return [orjson.loads(value) for _, value in read_topic(bootstrap, topic) if value is not None]


def test_paper_trading_through_kafka_decides_every_signal_and_stores_what_it_publishes(
    trading_topics, pg_database, kafka_bootstrap, tmp_path
):
    prefix = trading_topics
    settings = settings_for(prefix, pg_database, tmp_path)
    migrate(settings.postgres.conninfo())
    run_main(replay_flow([BTC_1M], settings=settings))
    feast = FeastConfig(env="local", project="tradingflow", data_dir=tmp_path / "feast", push=True)
    apply(feast, settings)
    run_main(trading_flow(settings, tail=False, feast=feast))

    signals = [decode_signal(v) for _, v in read_topic(kafka_bootstrap, f"{prefix}signals.v1") if v is not None]
    decisions = records(kafka_bootstrap, f"{prefix}risk.decisions.v1")
    orders = records(kafka_bootstrap, f"{prefix}orders.v1")
    execution = records(kafka_bootstrap, f"{prefix}fills.v1")
    assert len(signals) > 50
    judged = [d for d in decisions if d["kind"] in ("approved", "denied")]
    assert len(judged) == len(signals)  # every signal has exactly one decision
    approved = {d["client_order_id"] for d in judged if d["kind"] == "approved"}
    assert {o["client_order_id"] for o in orders} == approved
    terminal: dict[str, list[str]] = {}
    for e in execution:
        if e["type"] == "order" and e["status"] in ("filled", "canceled", "rejected", "expired"):
            terminal.setdefault(e["client_order_id"], []).append(e["status"])
    assert all(len(states) == 1 for states in terminal.values()), terminal
    assert len(approved - set(terminal)) <= 1  # at most the order of the very last bar is still open
    kafka_fills = sorted(
        (f["fill_id"], f["client_order_id"], f["price"], f["amount"], f["fee"])
        for f in execution
        if f["type"] == "fill"
    )
    with psycopg.connect(settings.postgres.conninfo()) as conn:
        stored_fills = sorted(
            (r[0], r[1], str(r[2]), str(r[3]), str(r[4]))
            for r in conn.execute("SELECT fill_id, client_order_id, price, amount, fee FROM fills")
        )
        stored_decisions = conn.execute("SELECT count(*) FROM risk_decisions").fetchone()[0]
        stored_signals = conn.execute("SELECT count(*) FROM signals").fetchone()[0]
        equity_rows = conn.execute("SELECT count(*) FROM equity").fetchone()[0]
        # Every stored sample is internally consistent: equity = cash + positions, the peak never
        # below equity, the drawdown measured from that peak, PnL split as the portfolio keeps it.
        inconsistent = conn.execute(
            "SELECT count(*) FROM equity WHERE equity <> cash + net_exposure OR peak_equity < equity"
            " OR abs(drawdown - (peak_equity - equity) / peak_equity) > 1e-12 OR gross_exposure < abs(net_exposure)"
        ).fetchone()[0]
        realized_moved = conn.execute("SELECT count(DISTINCT realized_pnl) FROM equity").fetchone()[0]
        terminal_orders = conn.execute(
            "SELECT count(*) FROM orders WHERE status IN ('filled', 'canceled', 'rejected', 'expired')"
        ).fetchone()[0]
    assert kafka_fills and [f[:2] for f in kafka_fills] == [f[:2] for f in stored_fills]
    assert [tuple(map(_num, f[2:])) for f in kafka_fills] == [tuple(map(_num, f[2:])) for f in stored_fills]
    assert stored_decisions == len(decisions)
    assert stored_signals == len(signals)
    assert terminal_orders == len(terminal)
    assert equity_rows == sum(1 for _ in read_events(BTC_1M))  # one sample per bar
    assert inconsistent == 0
    assert realized_moved > 10  # realized PnL is recorded as trades close, not a constant

    # The same file through the in-process backtest gives the same orders.
    config = BacktestConfig(
        files=(ReplayFile(BTC_1M),), symbols=("BTC/USDT",), account="paper", timeframe="1m", bars_from="candles"
    )
    backtest = run_backtest(config, tmp_path / "backtest")
    backtest_orders = sorted(
        d.event.client_order_id  # type: ignore[union-attr]
        for d in backtest.results.decisions
        if d.kind.value == "approved"
    )
    assert backtest_orders == sorted(approved)

    # Every feature vector also went to Feast: the online store serves the newest one, at the
    # close of the capture's last bar, equal to the last vector on features.v1.
    vectors = [decode_feature_vector(v) for _, v in read_topic(kafka_bootstrap, f"{prefix}features.v1") if v]
    last = max(vectors, key=lambda v: v.ts_event)
    online = read_online(open_store(feast, settings), "binance:BTC/USDT", now=last.ts_event)
    assert online.present and online.event_timestamp == last.ts_event
    assert online.values["bar_close"] == pytest.approx(float(last.values["bar_close"]))  # type: ignore[arg-type]
    assert online.values["rsi_14"] == pytest.approx(float(last.values["rsi_14"]))  # type: ignore[arg-type]


def _num(text: str) -> object:
    from decimal import Decimal

    return Decimal(text).normalize()


def test_a_kill_switch_on_the_control_topic_halts_the_running_flow(
    trading_topics, pg_database, kafka_bootstrap, tmp_path
):
    prefix = trading_topics
    settings = settings_for(prefix, pg_database, tmp_path)
    migrate(settings.postgres.conninfo())
    run_main(replay_flow([BTC_1M], settings=settings))
    first = next(iter(read_events(BTC_1M)))
    kill = KillSwitch(
        "*", f"test-{uuid.uuid4().hex[:6]}", "integration test: halt", first.ts_event + timedelta(hours=1)
    )
    publish_command(settings, kill, via="test")  # the path the CLI, the kill file and the console use
    run_main(trading_flow(settings, tail=False))
    decisions = records(kafka_bootstrap, f"{prefix}risk.decisions.v1")
    halted = [d for d in decisions if d["kind"] == "state_changed" and d.get("new") == "halted"]
    assert halted, [d for d in decisions if d["kind"] == "state_changed"]
    assert kill.requested_by in halted[0]["reason"] or kill.reason in halted[0]["reason"], halted[0]
    after = decisions[decisions.index(halted[0]) :]
    assert not [d for d in after if d["kind"] == "approved"]
    assert [d for d in after if d["kind"] == "denied"]
