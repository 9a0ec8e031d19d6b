"""The execution flow on Kafka: ``python -m bytewax.run "flows.execution_run:execution_flow()"`` or
``bot4 execute``.

With ``BOT4_TRADING__EXECUTION=kafka`` the trading flow does not execute what its risk gate
approves: it publishes it on ``orders.v1`` (approved orders, cancel-alls, and how far in market
time it has decided), and this flow executes it on the account's paper venue, fed the ``md.*``
topics (paced by the trading flow's progress, see :mod:`flows.execution`). Order events and fills go
to ``fills.v1``, which the trading flow reads back into the portfolio its gate judges, and to the
``orders`` / ``order_events`` / ``fills`` tables; malformed records to ``dlq.v1`` with the reason.

Nothing is executed twice: the order manager refuses a client order id it already holds (a
restarted trading flow re-publishes what it had published after its last snapshot), and Bytewax
recovery (``-r DIR``) keeps the manager, the venue and the pacing with the sources' offsets.

Only the paper venue runs here; live trading on an exchange runs in-process
(``BOT4_TRADING__EXECUTION=inprocess``, ``BOT4_MODE=live``), and this flow refuses ``live``.
"""

from __future__ import annotations

from typing import Any

import bytewax.operators as op
from bytewax.dataflow import Dataflow, Stream
from bytewax.inputs import Source

from core.clock import Clock, SystemClock
from core.deadletter import DeadLetter
from core.errors import ConfigError, WireFormatError
from core.fills import Fill, OrderEvent
from execution.markets import load_capabilities
from flows.aligned_source import AlignedKafkaSource
from flows.dlq import Inbound, dead_letter
from flows.dlq import to_kafka as dead_letter_message
from flows.execution import (
    ExecInput,
    OrderPlaced,
    PaperAccount,
    decode_instruction,
    execution_message,
    paper_execution,
    write_execution,
)
from flows.features import CANDLE_TOPICS, TRADE_TOPICS
from flows.kafka_io import CheckedKafkaSink, InboundKafkaSource, OutMessage
from flows.metrics import ensure_server
from flows.pg_sink import RowsSink
from flows.risk_step import ORDERS_TOPIC
from flows.settings import Bot4Settings, load_settings
from flows.store import REFUSED_KEY, decode_batch

STAGE = "execution"


def paper_account(settings: Bot4Settings) -> PaperAccount:
    """The configured account on paper: the cached market rules and fees, and its starting cash."""
    trading = settings.trading
    caps = load_capabilities(trading.markets_dir / f"{trading.exchange}.json", trading.symbols)
    return PaperAccount(trading.account, caps, {trading.quote_currency: trading.initial_cash}, trading.quote_currency)


def _instructions(batch: list[Inbound | DeadLetter], clock: Clock) -> list[ExecInput | DeadLetter]:
    out: list[ExecInput | DeadLetter] = []
    for item in batch:
        if isinstance(item, DeadLetter):
            out.append(item)
            continue
        try:
            out.append(decode_instruction(item.value))
        except WireFormatError as exc:
            out.append(dead_letter(STAGE, exc.reason, exc.detail, item, clock))
    return out


def check_settings(settings: Bot4Settings) -> None:
    """Refuse, with the reason, a configuration this flow would execute wrongly."""
    if settings.trading.execution != "kafka":
        raise ConfigError(
            "the execution flow executes orders.v1 only when the trading flow does not execute them itself:"
            " set BOT4_TRADING__EXECUTION=kafka for both flows (it is 'inprocess')"
        )
    if settings.mode != "paper":
        raise ConfigError(
            f"the execution flow runs the paper venue (BOT4_MODE=paper); BOT4_MODE={settings.mode} is not executed"
            " here (live trading runs in-process: BOT4_TRADING__EXECUTION=inprocess)"
        )


def execution_flow(
    settings: Bot4Settings | None = None,
    *,
    tail: bool = True,
    clock: Clock | None = None,
    orders: Source[Inbound | DeadLetter] | None = None,
    market: Source[Inbound | DeadLetter] | None = None,
) -> Dataflow:
    """Build the execution dataflow (see the module docstring)."""
    settings = settings or load_settings()
    check_settings(settings)
    clock = clock or SystemClock()
    trading = settings.trading
    kafka = settings.kafka
    prefix = kafka.topic_prefix
    account = paper_account(settings)
    ensure_server(settings.metrics_port)
    flow = Dataflow("bot4_execution")
    if orders is None:
        orders = InboundKafkaSource(kafka, [kafka.topic(ORDERS_TOPIC)], tail=tail, clock=clock)
    if market is None:
        md_topics = TRADE_TOPICS if trading.bars_from == "trades" else CANDLE_TOPICS
        market = AlignedKafkaSource(
            kafka, [kafka.topic(t) for t in md_topics], tail=tail, batch_size=trading.batch_size
        )
    known = frozenset(f"{trading.exchange}:{s}" for s in trading.symbols)
    instructions = op.flat_map_batch(
        "decode_orders", op.input("orders_in", flow, orders), lambda b: _instructions(b, clock)
    )
    decoded = op.flat_map_batch("decode_md", op.input("md_in", flow, market), lambda b: decode_batch(b, known, clock))
    events: Stream[Any] = op.flat_map_batch(
        "md_events", decoded, lambda b: [v.event for k, v in b if k != REFUSED_KEY and not isinstance(v, DeadLetter)]
    )
    refused = op.flat_map_batch(
        "refused", decoded, lambda b: [v for k, v in b if k == REFUSED_KEY and isinstance(v, DeadLetter)]
    )
    bad_orders = op.flat_map_batch("bad_orders", instructions, lambda b: [i for i in b if isinstance(i, DeadLetter)])
    good_orders: Stream[Any] = op.filter("good_orders", instructions, lambda i: not isinstance(i, DeadLetter))
    executed = paper_execution("exec", op.merge("exec_in", good_orders, events), [account], paced=True, wall=clock)
    records: Stream[Any] = op.filter("records", executed, lambda r: isinstance(r, OrderPlaced | OrderEvent | Fill))
    dlq_topic = kafka.topic("dlq.v1")
    messages = op.merge(
        "to_kafka",
        op.flat_map_batch(
            "encode_fills",
            records,
            lambda b: [execution_message(r, prefix) for r in b if isinstance(r, OrderEvent | Fill)],
        ),
        op.map(
            "encode_dlq",
            op.merge("dead_letters", refused, bad_orders),
            lambda d: OutMessage(*dead_letter_message(d, dlq_topic)),
        ),
    )
    op.output("kafka_out", messages, CheckedKafkaSink(kafka))
    op.output("execution_rows", records, RowsSink(settings.postgres.conninfo(), write_execution))
    return flow
