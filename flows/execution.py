"""Execution as a Bytewax step keyed by account: approved orders and market data in, order events,
fills and the account's portfolio out, on the paper venue.

Each account has an :class:`~execution.manager.OrderManager` on its own
:class:`~execution.paper.PaperVenue`, fed the same market events as the rest of the flow (market
data is fanned out to every account), so paper fills come from the real book and trades. The
whole manager (venue book, orders, fill ids, portfolio) is the recovery snapshot: a restart resumes
with every order and fill it had, and a redelivered approved order is refused as a duplicate
client order id, never submitted twice.

Outputs, in order per account: :class:`~core.fills.OrderEvent` and :class:`~core.fills.Fill`
records (for ``fills.v1`` and the ``order_events`` / ``fills`` tables), :class:`OrderPlaced` for the
``orders`` table, and a :class:`~flows.risk_step.PortfolioUpdate` whenever the account changed,
which goes back to the risk gate.

Live and testnet venues (ccxt) plug in behind the same Venue interface; this module builds the
paper venue only.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

import bytewax.operators as op
import orjson
import psycopg
from bytewax.dataflow import Stream
from bytewax.operators import StatefulBatchLogic

from core.events import BookDelta, BookSnapshot, Quote, Trade
from core.fills import Fill, OrderEvent, fill_record, order_event_record
from core.orders import ApprovedOrder, CancelAllOrders
from execution.manager import OrderManager
from execution.paper import PaperVenue
from execution.portfolio import Portfolio
from execution.venue import VenueCapabilities
from flows.kafka_io import OutMessage
from flows.metrics import EVENTS
from flows.risk_step import PortfolioUpdate

FILLS_TOPIC = "fills.v1"
STAGE = "execution"

MarketInput = Trade | BookSnapshot | BookDelta | Quote
ExecInput = ApprovedOrder | CancelAllOrders | MarketInput


@dataclass(frozen=True, slots=True)
class OrderPlaced:
    """An approved order the manager accepted for submission (one ``orders`` row)."""

    order: ApprovedOrder


ExecOutput = OrderEvent | Fill | OrderPlaced | PortfolioUpdate


@dataclass(frozen=True)
class PaperAccount:
    """How one account trades on paper: its venue's rules and fees, and its starting balances."""

    account: str
    capabilities: VenueCapabilities
    balances: Mapping[str, Decimal]
    quote_currency: str = "USDT"


def route_execution(item: ExecInput, accounts: Sequence[str]) -> list[tuple[str, tuple[str, ExecInput]]]:
    """Key an input by account; market data goes to every account's paper venue."""
    if isinstance(item, ApprovedOrder):
        return [(item.intent.account, (item.intent.account, item))]
    if isinstance(item, CancelAllOrders):
        return [(item.account, (item.account, item))]
    return [(a, (a, item)) for a in accounts]


class PaperExecution(StatefulBatchLogic[tuple[str, ExecInput], ExecOutput, OrderManager]):
    """One account's order manager on its paper venue (the manager is the snapshot)."""

    def __init__(self, accounts: Mapping[str, PaperAccount], resume: OrderManager | None) -> None:
        self._accounts = accounts
        self._manager = resume

    def _manager_for(self, account: str) -> OrderManager:
        if self._manager is None:
            setup = self._accounts[account]
            cash = setup.balances.get(setup.quote_currency, Decimal(0))
            venue = PaperVenue(setup.capabilities, setup.balances)
            self._manager = OrderManager(venue, Portfolio(account, cash), clock=venue)
        return self._manager

    def on_batch(self, values: list[tuple[str, ExecInput]]) -> tuple[list[ExecOutput], bool]:
        out: list[ExecOutput] = []
        changed = False
        manager: OrderManager | None = None
        for account, item in values:
            manager = self._manager_for(account)
            venue = manager.venue
            assert isinstance(venue, PaperVenue)
            if isinstance(item, ApprovedOrder):
                result = manager.submit(item)
                if not result.duplicate:
                    out.append(OrderPlaced(item))
            elif isinstance(item, CancelAllOrders):
                manager.cancel_all(item)
            else:
                if isinstance(item, Trade):
                    venue.on_trade(item)
                    manager.portfolio.mark(item.exchange, item.symbol, item.price, item.ts_event)
                elif isinstance(item, BookSnapshot):
                    venue.on_book_snapshot(item)
                elif isinstance(item, BookDelta):
                    venue.on_book_delta(item)
                else:
                    venue.on_quote(item)
                manager.pump()
            records = manager.drain()
            if records:
                changed = True
                out.extend(records)
        if changed and manager is not None:
            out.append(PortfolioUpdate(manager.view()))
        EVENTS.labels(STAGE, "ok").inc(len(values))
        return out, StatefulBatchLogic.RETAIN

    def snapshot(self) -> OrderManager:
        assert self._manager is not None, "snapshot is only taken after a batch"
        return self._manager


def paper_execution(step_id: str, inputs: Stream[ExecInput], accounts: Sequence[PaperAccount]) -> Stream[ExecOutput]:
    """Route inputs to their accounts and execute them on paper; see the module docstring."""
    by_name = {a.account: a for a in accounts}
    names = list(by_name)
    keyed = op.flat_map_batch(
        f"{step_id}_route", inputs, lambda batch: [kv for item in batch for kv in route_execution(item, names)]
    )
    executed = op.stateful_batch(f"{step_id}_paper", keyed, lambda resume: PaperExecution(by_name, resume))
    return op.flat_map_batch(f"{step_id}_unkey", executed, lambda batch: [v for _, v in batch])


def execution_message(record: OrderEvent | Fill, prefix: str = "") -> OutMessage:
    """``fills.v1`` carries both order events and fills, keyed by account, tagged by ``type``."""
    if isinstance(record, Fill):
        body = {"type": "fill", **fill_record(record)}
    else:
        body = {"type": "order_event", **order_event_record(record)}
    return OutMessage(prefix + FILLS_TOPIC, record.account.encode(), orjson.dumps(body))


def write_execution(conninfo: str, items: Sequence[ExecOutput]) -> None:
    """Store orders, order events and fills idempotently (natural keys; replays add nothing)."""
    placed = [i.order for i in items if isinstance(i, OrderPlaced)]
    events = [i for i in items if isinstance(i, OrderEvent)]
    fills = [i for i in items if isinstance(i, Fill)]
    with psycopg.connect(conninfo) as conn, conn.cursor() as cur:
        if placed:
            cur.executemany(
                "INSERT INTO orders (client_order_id, account, strategy, exchange, symbol, side, order_type, amount,"
                " limit_price, status, ts_created, ts_updated) VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s,"
                " 'pending_submit', %s, %s) ON CONFLICT (client_order_id) DO NOTHING",
                [_order_row(o) for o in placed],
            )
        if events:
            cur.executemany(
                "INSERT INTO order_events (client_order_id, seq, event, status_before, status_after, detail, ts_event)"
                " VALUES (%s, %s, %s, %s, %s, %s, %s) ON CONFLICT DO NOTHING",
                [
                    (
                        e.client_order_id,
                        e.seq,
                        e.kind.value,
                        (e.previous or e.status).value,
                        e.status.value,
                        orjson.dumps(order_event_record(e)).decode(),
                        e.ts_event,
                    )
                    for e in events
                ],
            )
            cur.executemany(
                "UPDATE orders SET status = %s, venue_order_id = coalesce(%s, venue_order_id), ts_updated = %s"
                " WHERE client_order_id = %s AND ts_updated <= %s",
                [(e.status.value, e.venue_order_id, e.ts_event, e.client_order_id, e.ts_event) for e in events],
            )
        if fills:
            cur.executemany(
                "INSERT INTO fills (exchange, fill_id, client_order_id, account, symbol, side, price, amount, fee,"
                " fee_currency, liquidity, ts_event) VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s)"
                " ON CONFLICT DO NOTHING",
                [
                    (
                        f.exchange,
                        f.fill_id,
                        f.client_order_id,
                        f.account,
                        f.symbol,
                        f.side.value,
                        f.price,
                        f.amount,
                        f.fee,
                        f.fee_currency,
                        f.liquidity.value,
                        f.ts_event,
                    )
                    for f in fills
                ],
            )


def _order_row(order: ApprovedOrder) -> tuple[Any, ...]:
    i = order.intent
    return (
        i.client_order_id,
        i.account,
        i.strategy,
        i.exchange,
        i.symbol,
        i.side.value,
        i.order_type.value,
        order.amount,
        order.price,
        i.ts_event,
        i.ts_event,
    )
