"""Paper execution as a Bytewax step on the real Binance capture: approved orders fill against the
recorded book, the portfolio goes back to the risk gate, and a restart loses nothing."""

from __future__ import annotations

import itertools
from datetime import timedelta
from decimal import Decimal

import bytewax.operators as op
import pytest
from bytewax.dataflow import Dataflow
from bytewax.recovery import RecoveryConfig, init_db_dir
from bytewax.testing import TestingSink, TestingSource, run_main

from core.clock import ManualClock
from core.events import BookDelta, BookSnapshot, Quote, Trade
from core.fills import Fill, OrderEvent
from core.orders import ApprovedOrder
from execution.venue import FeeSchedule, VenueCapabilities
from flows.execution import OrderPlaced, PaperAccount, execution_message, paper_execution
from flows.replay import read_events
from flows.risk_step import PortfolioUpdate
from risk.config import RiskLimits
from risk.engine import RiskEngine
from risk.market import InstrumentRules, MarketView
from risk.portfolio import PortfolioView
from tests.unit.flows.test_risk_step import intent

RULES = InstrumentRules(Decimal("0.01"), Decimal("0.00001"), Decimal("0.00001"), min_notional=Decimal("5"))
CAPS = VenueCapabilities("binance", FeeSchedule(Decimal("0.001"), Decimal("0.001")), {"BTC/USDT": RULES})
ACCOUNT = PaperAccount("main", CAPS, {"USDT": Decimal("100000")})


@pytest.fixture(scope="module")
def capture(shared_data):
    return capture_events(shared_data)


def capture_events(shared_data):
    path = shared_data / "ticks" / "binance-spot-ws" / "btcusdt_20240808.gz"
    return [
        e for e in itertools.islice(read_events(path), 6000) if isinstance(e, Trade | BookSnapshot | BookDelta | Quote)
    ]


def approve(coid: str, when, price: Decimal, amount: str = "0.01") -> ApprovedOrder:
    engine = RiskEngine("main", RiskLimits(), ManualClock(when))
    market = MarketView("binance", "BTC/USDT", price, RULES, when)
    order, _ = engine.evaluate(intent(coid, amount), PortfolioView("main", Decimal("100000")), market)
    assert isinstance(order, ApprovedOrder), order
    return order


def build_inputs(capture):
    # Place a market buy after the book is live (after the snapshot and some deltas).
    snap_at = next(i for i, e in enumerate(capture) if isinstance(e, BookSnapshot))
    at = snap_at + 200
    last_trade = next(e for e in reversed(capture[:at]) if isinstance(e, Trade))
    order = approve("b4-exec-1", last_trade.ts_event, last_trade.price)
    return [*capture[:at], order, order, *capture[at:]], order


def run(inputs, recovery=None):
    flow = Dataflow("exec_test")
    out: list = []
    op.output(
        "out",
        paper_execution("exec", op.input("in", flow, TestingSource(inputs, batch_size=500)), [ACCOUNT]),
        TestingSink(out),
    )
    run_main(flow, epoch_interval=timedelta(0), recovery_config=recovery)
    return out


def test_an_approved_market_order_fills_once_against_the_recorded_book(capture):
    inputs, order = build_inputs(capture)
    out = run(inputs)
    placed = [o for o in out if isinstance(o, OrderPlaced)]
    fills = [o for o in out if isinstance(o, Fill)]
    events = [o for o in out if isinstance(o, OrderEvent)]
    assert [p.order.client_order_id for p in placed] == ["b4-exec-1"]  # the redelivered copy is refused
    assert sum(f.amount for f in fills) == Decimal("0.01")
    assert events[-1].status.value == "filled"
    for f in fills:
        assert f.fee == (f.price * f.amount * Decimal("0.001"))
    # The fills walk the recorded ask side from its best level, as rebuilt independently by the
    # features package's book from the same snapshot and deltas.
    from features.book import OrderBook

    book = OrderBook()
    for event in inputs[: inputs.index(order)]:
        if isinstance(event, BookSnapshot | BookDelta):
            book.update(event)
    walk, left = [], Decimal("0.01")
    for price, size in book.asks(50):
        take = min(left, size)
        walk.append((price, take))
        left -= take
        if not left:
            break
    assert [(f.price, f.amount) for f in fills] == walk
    views = [o.view for o in out if isinstance(o, PortfolioUpdate)]
    assert views and views[-1].positions["binance:BTC/USDT"].amount == Decimal("0.01")
    msg = execution_message(fills[0], "p.")
    assert msg.topic == "p.fills.v1" and msg.key == b"main"


def test_a_restart_from_recovery_neither_loses_nor_repeats_a_fill(capture, tmp_path):
    inputs, _ = build_inputs(capture)
    uninterrupted = [o for o in run(inputs) if isinstance(o, Fill | OrderEvent)]
    cut = inputs.index(next(i for i in inputs if isinstance(i, ApprovedOrder))) + 50
    init_db_dir(tmp_path, 1)
    recovery = RecoveryConfig(str(tmp_path))
    aborted = [*inputs[:cut], TestingSource.ABORT(), *inputs[cut:]]
    first = [o for o in run(aborted, recovery) if isinstance(o, Fill | OrderEvent)]
    second = [o for o in run(aborted, recovery) if isinstance(o, Fill | OrderEvent)]
    assert first + second == uninterrupted
