"""The trading flow on Kafka: ``python -m bytewax.run "flows.trading_run:trading_flow()"`` or ``bot4 run``.

Market data from the ``md.*`` topics (merged by event time per partition index) and operator
commands from ``control.commands.v1`` go through :func:`flows.trading.trading_steps`; every stage's
records go out: ``features.v1``, ``signals.v1``, ``risk.decisions.v1``, ``orders.v1``,
``fills.v1`` (order events and fills), ``orders.shadow.v1`` (shadow mode), ``dlq.v1``; and into
PostgreSQL: ``signals``, ``risk_decisions``, ``orders``, ``order_events``, ``fills``, ``equity``.
Recovery is Bytewax's (``-r DIR``): the instrument and account states are the snapshots, the
sources keep their offsets, and the order manager refuses a client order id it already holds, so
a restart sends no order twice.

The mode comes from ``BOT4_MODE`` (``paper`` by default). ``live`` trades on the exchange through
ccxt and is refused unless ``BOT4_EXCHANGE__LIVE_TRADING_ENABLED=true`` and the keys are set.

Execution is in-process by default. With ``BOT4_TRADING__EXECUTION=kafka`` it runs in the execution
flow (:mod:`flows.execution_run`, ``bot4 execute``): this flow publishes approved orders, cancel-alls
and its progress on ``orders.v1``, reads the order events and fills back from ``fills.v1`` into the
portfolio its gate judges, and leaves the ``orders`` / ``order_events`` / ``fills`` tables to the
execution flow.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from datetime import timedelta
from typing import TYPE_CHECKING, Any

import bytewax.operators as op
import orjson
from bytewax.dataflow import Dataflow, Stream
from bytewax.inputs import Source

from core.clock import Clock, SystemClock
from core.deadletter import DeadLetter
from core.errors import ConfigError, WireFormatError
from core.fills import Fill, OrderEvent, fill_from_record, order_event_from_record
from core.orders import ApprovedOrder, Signal
from execution.markets import load_capabilities
from execution.venue import Venue
from flows.aligned_source import AlignedKafkaSource
from flows.control import Command, control_source, decode_command
from flows.dlq import Inbound, dead_letter
from flows.dlq import to_kafka as dead_letter_message
from flows.execution import (
    FILLS_TOPIC,
    ExecutionProgress,
    OrderPlaced,
    PacedCancelAll,
    execution_message,
    instruction_message,
    write_execution,
)
from flows.feature_store import FeastConfig, FeastPushSink
from flows.features import CANDLE_TOPICS, FEATURES_TOPIC, TRADE_TOPICS, FeatureRowSink, vectors_to_kafka
from flows.kafka_io import CheckedKafkaSink, InboundKafkaSource, OutMessage
from flows.metrics import ensure_server
from flows.models import encode_signal, write_drift, write_scores
from flows.pg_sink import RowsSink, Target, connected
from flows.risk_step import decision_message, order_message, write_decisions
from flows.settings import Bot4Settings, load_settings, require_live_limits
from flows.shutdown import close_at_stop
from flows.store import REFUSED_KEY, decode_batch
from flows.strategies import strategies_for
from flows.trading import (
    AccountSetup,
    EquitySample,
    InstrumentSetup,
    Mode,
    ShadowOrder,
    limits_for_bars,
    trading_steps,
)
from models.records import DriftEvent, ScoreRecord
from risk.decisions import RiskDecision

if TYPE_CHECKING:
    from execution.ccxt_venue import CcxtVenue, CcxtVenueConfig

SIGNALS_TOPIC = "signals.v1"
SHADOW_TOPIC = "orders.shadow.v1"


@dataclass(frozen=True)
class ExchangeConnection:
    """Opens the account's exchange venue: the sandbox (``CcxtVenue``, testnet) or real money
    (``LiveCcxtVenue``, live). Called when the account starts and again after a restart (a
    connection is not part of a recovery snapshot)."""

    venue_class: type[CcxtVenue]
    config: CcxtVenueConfig

    def __call__(self) -> Venue:
        venue = self.venue_class(self.config, clock=SystemClock())
        close_at_stop(venue.close)  # when `bot4 run` stops: the client's sessions and its loop thread
        return venue


def account_setup(settings: Bot4Settings, mode: Mode) -> AccountSetup:
    """The configured account: limits, the cached market rules, starting cash, and its venue."""
    trading = settings.trading
    caps = load_capabilities(trading.markets_dir / f"{trading.exchange}.json", trading.symbols)
    live_venue: Callable[[], Venue] | None = None
    if mode in (Mode.LIVE, Mode.TESTNET):
        from execution.ccxt_venue import CcxtVenue, CcxtVenueConfig, LiveCcxtVenue

        exchange = settings.exchange
        config = CcxtVenueConfig(
            exchange=trading.exchange,  # type: ignore[arg-type]
            account=trading.account,
            symbols=trading.symbols,
            api_key=exchange.api_key,
            api_secret=exchange.api_secret,
            testnet=exchange.testnet,
            live_trading_enabled=exchange.live_trading_enabled,
            api_url_override=exchange.api_url_override,
        )
        # The exchange's sandbox (testnet) or real money (live), each refused at start with the
        # reason when its settings are not all there.
        venue_class = LiveCcxtVenue if mode is Mode.LIVE else CcxtVenue
        venue_class._check_settings(config)
        if trading.execution == "kafka":
            raise ConfigError(
                f"{mode.value} trading executes in-process (BOT4_TRADING__EXECUTION=inprocess); the execution flow"
                " runs the paper venue only"
            )

        live_venue = ExchangeConnection(venue_class, config)

    return AccountSetup(
        trading.account,
        limits_for_bars(settings.risk, trading.bars_from, trading.timeframe),
        caps,
        {trading.quote_currency: trading.initial_cash},
        trading.quote_currency,
        mode,
        live_venue,
        remote_execution=trading.execution == "kafka",
        merge_keys=frozenset(f"{trading.exchange}:{s}" for s in trading.symbols)
        if len(trading.symbols) > 1 and trading.merge_hold_ms > 0
        else frozenset(),
        merge_hold=timedelta(milliseconds=trading.merge_hold_ms),
    )


def _reports(batch: list[Inbound | DeadLetter], clock: Clock) -> list[Fill | OrderEvent | DeadLetter]:
    """Order events and fills back from the execution flow (``fills.v1``); a malformed one becomes a
    dead letter."""
    out: list[Fill | OrderEvent | DeadLetter] = []
    for item in batch:
        if isinstance(item, DeadLetter):
            out.append(item)
            continue
        try:
            rec = orjson.loads(item.value)
            out.append(fill_from_record(rec) if rec.get("type") == "fill" else order_event_from_record(rec))
        except (orjson.JSONDecodeError, AttributeError, KeyError, ValueError, TypeError) as exc:
            out.append(dead_letter("execution_reports", "malformed_report", f"fills.v1 record: {exc!r}", item, clock))
    return out


def _commands(batch: list[Inbound | DeadLetter], clock: Clock) -> list[Command | DeadLetter]:
    """Operator commands from the control topic; a malformed one becomes a dead letter."""
    out: list[Command | DeadLetter] = []
    for item in batch:
        if isinstance(item, DeadLetter):
            out.append(item)
            continue
        try:
            out.append(decode_command(item.value))
        except WireFormatError as exc:
            out.append(dead_letter("control", exc.reason, exc.detail, item, clock))
    return out


def _messages(batch: list[Any], prefix: str) -> list[OutMessage]:
    """Each account-step record as its Kafka message (records with no topic are skipped)."""
    out: list[OutMessage] = []
    for item in batch:
        if isinstance(item, RiskDecision):
            out.append(decision_message(item, prefix))
        elif isinstance(item, ApprovedOrder):
            out.append(order_message(item, prefix))
        elif isinstance(item, Fill | OrderEvent):
            out.append(execution_message(item, prefix))
        elif isinstance(item, ShadowOrder):
            message = order_message(item.order, prefix)
            out.append(OutMessage(prefix + SHADOW_TOPIC, message.key, message.value))
        elif isinstance(item, PacedCancelAll | ExecutionProgress):
            out.append(instruction_message(item, prefix))
    return out


def write_trading_rows(target: Target, items: Sequence[Any]) -> None:
    """Orders, order events, fills (through the execution writer) and equity samples, idempotently."""
    execution = [i for i in items if isinstance(i, OrderPlaced | OrderEvent | Fill)]
    if execution:
        write_execution(target, execution)
    samples = [i for i in items if isinstance(i, EquitySample)]
    if samples:
        with connected(target) as conn, conn.cursor() as cur:
            cur.executemany(
                "INSERT INTO equity (account, ts_event, equity, cash, gross_exposure, net_exposure, realized_pnl,"
                " unrealized_pnl, peak_equity, drawdown) VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s)"
                " ON CONFLICT (account, ts_event) DO NOTHING",
                [
                    (
                        s.account,
                        s.ts,
                        s.equity,
                        s.cash,
                        s.gross_exposure,
                        s.net_exposure,
                        s.realized_pnl,
                        s.unrealized_pnl,
                        s.peak_equity,
                        s.drawdown,
                    )
                    for s in samples
                ],
            )


def write_signals(target: Target, signals: Sequence[Signal]) -> None:
    """The ``signals`` table (natural key strategy, instrument, time: a replay adds nothing)."""
    with connected(target) as conn, conn.cursor() as cur:
        cur.executemany(
            "INSERT INTO signals (strategy, account, exchange, symbol, side, strength, confidence, model_version,"
            " reasons, ts_event) VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s) ON CONFLICT DO NOTHING",
            [
                (
                    s.strategy,
                    s.account,
                    s.exchange,
                    s.symbol,
                    s.side.value,
                    s.strength,
                    s.confidence,
                    s.model_version,
                    orjson.dumps(list(s.reasons)).decode(),
                    s.ts_event,
                )
                for s in signals
            ],
        )


def trading_flow(
    settings: Bot4Settings | None = None,
    *,
    tail: bool = True,
    clock: Clock | None = None,
    source: Source[Inbound | DeadLetter] | None = None,
    commands: Source[Inbound | DeadLetter] | None = None,
    batch_size: int | None = None,
    feast: FeastConfig | None = None,
) -> Dataflow:
    """Build the trading dataflow for ``settings.mode`` (``backtest`` is ``bot4 backtest``'s).

    ``feast``: push every feature vector to Feast's online store as it is made (None: read
    ``BOT4_FEAST_*``; pushed only if ``BOT4_FEAST_PUSH=true``), as the features flow does.
    """
    settings = settings or load_settings()
    mode = Mode(settings.mode)
    if mode is Mode.BACKTEST:
        raise ConfigError("BOT4_MODE=backtest runs through `bot4 backtest FILES`, not on Kafka topics")
    clock = clock or SystemClock()
    trading = settings.trading
    account = account_setup(settings, mode)
    require_live_limits(settings)  # real money needs the account's own limits, not the defaults
    if not tail and account.merge_keys:
        # A drain ends with the end of the topics, where the merge lets everything go: no record
        # needs releasing early for a quiet instrument, so the order never depends on timing.
        account = replace(account, merge_hold=timedelta(days=1))
    ensure_server(settings.metrics_port)
    kafka = settings.kafka
    prefix = kafka.topic_prefix
    flow = Dataflow("bot4_trading")
    if source is None:
        md_topics = TRADE_TOPICS if trading.bars_from == "trades" else CANDLE_TOPICS
        source = AlignedKafkaSource(
            kafka,
            [kafka.topic(t) for t in md_topics],
            tail=tail,
            batch_size=batch_size or trading.batch_size,
            max_rate=trading.max_events_per_s or None,
        )
    if commands is None:
        # The control topic and the kill file ($BOT4_DATA_DIR/KILL), however the flow is started.
        commands = control_source(settings, tail=tail, clock=clock)
    known = frozenset(f"{trading.exchange}:{s}" for s in trading.symbols)
    inbound = op.input("md_in", flow, source)
    decoded = op.flat_map_batch("decode", inbound, lambda batch: decode_batch(batch, known, clock))
    instrument = InstrumentSetup(
        timeframe=trading.timeframe,
        bars_from=trading.bars_from,
        strategies=strategies_for(trading.strategies, trading.account),
        known_keys=known,
        models=trading.models,
    )
    control = op.flat_map_batch("commands", op.input("control_in", flow, commands), lambda b: _commands(b, clock))
    if account.remote_execution:
        reports_in = InboundKafkaSource(kafka, [kafka.topic(FILLS_TOPIC)], tail=tail, clock=clock)
        reports = op.flat_map_batch("reports", op.input("fills_in", flow, reports_in), lambda b: _reports(b, clock))
        control = op.merge("control_and_reports", control, reports)
    command_stream: Stream[Any] = op.filter("valid_commands", control, lambda c: not isinstance(c, DeadLetter))
    bad_commands: Stream[DeadLetter] = op.flat_map_batch(
        "bad_commands", control, lambda b: [c for c in b if isinstance(c, DeadLetter)]
    )
    out = trading_steps("trading", decoded, instrument, [account], clock, commands=command_stream)
    refused = op.flat_map_batch(
        "refused", decoded, lambda batch: [v for k, v in batch if k == REFUSED_KEY and isinstance(v, DeadLetter)]
    )
    letters = op.merge("dead_letters", out.dead_letters, refused, bad_commands)
    dlq_topic = kafka.topic("dlq.v1")
    features_topic = kafka.topic(FEATURES_TOPIC)
    signals_topic = kafka.topic(SIGNALS_TOPIC)
    messages = op.merge(
        "to_kafka",
        op.flat_map_batch("encode_vectors", out.vectors, lambda b: vectors_to_kafka(b, features_topic)),
        op.map("encode_signals", out.signals, lambda s: OutMessage(signals_topic, s.key.encode(), encode_signal(s))),
        op.flat_map_batch("encode_account", out.account, lambda b: _messages(b, prefix)),
        op.map("encode_dlq", letters, lambda d: OutMessage(*dead_letter_message(d, dlq_topic))),
    )
    op.output("kafka_out", messages, CheckedKafkaSink(kafka))
    conninfo = settings.postgres.conninfo()
    decisions: Stream[RiskDecision] = op.flat_map_batch(
        "decisions", out.account, lambda b: [r for r in b if isinstance(r, RiskDecision)]
    )
    op.output("decision_rows", decisions, RowsSink(conninfo, write_decisions))
    op.output("trading_rows", out.account, RowsSink(conninfo, write_trading_rows))
    op.output("signal_rows", out.signals, RowsSink(conninfo, write_signals))
    op.output("feature_rows", out.vectors, FeatureRowSink(conninfo))
    feast_config = feast if feast is not None else FeastConfig.from_env()
    if feast_config.push:
        op.output("feast_push", out.vectors, FeastPushSink(feast_config, settings))
    scores: Stream[ScoreRecord] = op.flat_map_batch(
        "scores", out.models, lambda b: [r for r in b if isinstance(r, ScoreRecord)]
    )
    drift: Stream[DriftEvent] = op.flat_map_batch(
        "drift", out.models, lambda b: [r for r in b if isinstance(r, DriftEvent)]
    )
    op.output("model_scores", scores, RowsSink(conninfo, write_scores))
    op.output("drift_events", drift, RowsSink(conninfo, write_drift))
    return flow
