"""Builders for the execution tests: venue capabilities like Binance spot's, approved orders through
the public ``orders.v1`` record path (only the gate can build an ApprovedOrder), the real recorded
BTC/USDT stream, and a feeder that plays events into a paper venue."""

from __future__ import annotations

from collections.abc import Iterable
from decimal import Decimal
from functools import cache
from pathlib import Path
from typing import Any

from core.clock import parse_utc, to_epoch_us
from core.events import BookDelta, BookSnapshot, MarketEvent, Quote, Trade
from core.orders import ApprovedOrder
from execution.paper import PaperVenue
from execution.venue import FeeSchedule, VenueCapabilities
from flows.replay import read_events
from risk.decisions import approved_order_from_record
from risk.market import InstrumentRules

T0 = parse_utc("2024-08-08T23:54:15Z")
ACCOUNT = "acct-1"
BTC_RULES = InstrumentRules(
    price_tick=Decimal("0.01"),
    amount_step=Decimal("0.00001"),
    min_amount=Decimal("0.00001"),
    max_amount=Decimal("9000"),
    min_notional=Decimal("5"),
)
#: Binance spot's default tier: 0.1 % maker and taker. The tests use a cheaper maker to tell them apart.
FEES = FeeSchedule(maker=Decimal("0.00075"), taker=Decimal("0.001"))
CAPS = VenueCapabilities("binance", FEES, {"BTC/USDT": BTC_RULES}, client_id_max_length=36)
REAL_FILE = "ticks/binance-spot-ws/btcusdt_20240808.gz"


def d(value: str | int) -> Decimal:
    return Decimal(value)


def approved(
    cid: str,
    amount: str | Decimal,
    price: str | Decimal | None = None,
    *,
    side: str = "buy",
    symbol: str = "BTC/USDT",
    exchange: str = "binance",
    account: str = ACCOUNT,
    reduce_only: bool = False,
) -> ApprovedOrder:
    """An approved order as the execution flow would read it from ``orders.v1``."""
    return approved_order_from_record(
        {
            "v": 1,
            "account": account,
            "strategy": "test",
            "exchange": exchange,
            "symbol": symbol,
            "side": side,
            "order_type": "market" if price is None else "limit",
            "amount": str(amount),
            "limit_price": None if price is None else str(price),
            "reduce_only": reduce_only,
            "client_order_id": cid,
            "ts_event": to_epoch_us(T0),
            "approved_amount": str(amount),
            "approved_price": None if price is None else str(price),
            "decision_id": f"rd-{cid}",
            "ts_decided": to_epoch_us(T0),
        }
    )


def paper(balances: dict[str, str] | None = None, caps: VenueCapabilities = CAPS, **kwargs: Any) -> PaperVenue:
    funds = {"USDT": "1000000", "BTC": "10"} if balances is None else balances
    return PaperVenue(caps, {c: Decimal(v) for c, v in funds.items()}, **kwargs)


@cache
def real_events(shared_data: Path) -> tuple[MarketEvent, ...]:
    """Every event of the recorded Binance BTC/USDT capture (snapshot, diffs, trades, book tickers),
    read once per session from the ``shared_data`` fixture's folder."""
    return tuple(read_events(shared_data / REAL_FILE))


def feed(venue: PaperVenue, events: Iterable[MarketEvent]) -> None:
    for event in events:
        if isinstance(event, Trade):
            venue.on_trade(event)
        elif isinstance(event, BookDelta):
            venue.on_book_delta(event)
        elif isinstance(event, BookSnapshot):
            venue.on_book_snapshot(event)
        elif isinstance(event, Quote):
            venue.on_quote(event)
