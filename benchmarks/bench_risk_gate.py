"""Risk gate latency: ``risk.gate.evaluate`` per call, with every check on, on one core.

The account holds positions in 10 instruments and 20 resting orders (so exposure, self-trade and
open-order checks have real work); limits include gross and net caps, leverage, allowed symbols,
price band, order notional, rate limit and data age. Paths timed:

- ``approve``: a limit order that passes every check (rounding, notional, band, exposure, self-trade);
- ``deny``: an order that fails four checks at once (every reason is collected and formatted);
- ``approve_cold``: ``approve`` with the gate's per-instrument derived values dropped before every
  call, as when a new portfolio or market view arrives between two orders;
- ``approve_moving_clock``: ``approve`` with the clock moving 1 µs per call (a fresh ``now`` every
  time, as with the live system clock: the rate bucket refills and the decision id changes);
- ``approve_fresh_views``: ``approve`` against a new (already built) ``PortfolioView`` and
  ``MarketView`` every call, as the trading flow does today (nothing derived is reused; building
  the views is not timed); at most 4,000 calls per repeat;
- ``approve_new_market_view``: ``approve`` against a new ``MarketView`` every call built from the
  same price and rules objects (as the trading flow builds one per signal), on the same
  ``PortfolioView``; building the view is not timed;
- ``engine_approve``: ``RiskEngine.evaluate`` (gate plus its ``risk.decisions.v1`` record).

The decision path of the trading flow, ``engine.evaluate(intent, manager.view(), market)``, on a real
``OrderManager`` over the paper venue holding the same 10 positions and 20 resting orders:

- ``decision_kept_view``: ``OrderManager.view()`` as it is now, nothing changed since the last
  decision (the kept view is returned);
- ``decision_new_mark``: a mark moves before every decision (the view is rebuilt every time);
- baseline ``decision_rebuilt_view`` (timed in the same run, alternating): the same mark move, then
  the view built afresh as ``OrderManager.view()`` did before it kept its result
  (``portfolio.view(manager.open_orders())``). Before, every decision rebuilt the view whether or
  not a mark had moved, so this baseline is the previous cost of both decision paths.

Baselines measured in the same run, because the machine is shared and absolute figures move with
its load: ``previous`` is the gate before the hot-path rewrite (kept as the tests' oracle in
``tests/unit/risk/_reference_gate.py``) on the same inputs, and ``null_call`` is a Python call of a
function with the same five arguments that does nothing. Ratios to them carry over between runs.

Each path is timed ``--repeat`` times, alternating with the baseline: per call with
``perf_counter_ns`` (median, p99) and as a tight loop (evaluations/s from wall time, CPU time per
call). The best repeat (lowest CPU per call) is reported, with every repeat's throughput. Prints JSON.

    .venv/bin/python benchmarks/bench_risk_gate.py [--calls 100000] [--repeat 3]
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import platform
import statistics
import sys
import time
from collections.abc import Callable
from datetime import timedelta
from decimal import Decimal
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from core.clock import ManualClock, parse_utc  # noqa: E402
from core.events import BookSnapshot, Side  # noqa: E402
from core.fills import Fill, Liquidity, OrderStatus  # noqa: E402
from core.orders import ApprovedOrder, OrderDenied, OrderIntent, OrderType  # noqa: E402
from execution.manager import OrderManager  # noqa: E402
from execution.paper import PaperVenue  # noqa: E402
from execution.portfolio import Portfolio  # noqa: E402
from execution.venue import FeeSchedule, VenueCapabilities  # noqa: E402
from risk.config import RiskLimits  # noqa: E402
from risk.decisions import approved_order_from_record  # noqa: E402
from risk.engine import RiskEngine  # noqa: E402
from risk.gate import GateState, evaluate  # noqa: E402
from risk.market import InstrumentRules, MarketView  # noqa: E402
from risk.portfolio import OpenOrder, PortfolioView, Position  # noqa: E402
from tests.unit.risk._reference_gate import evaluate as previous_evaluate  # noqa: E402

T0 = parse_utc("2024-08-08T23:54:15Z")
SYMBOLS = ["BTC/USDT", "ETH/USDT", "SOL/USDT", "XRP/USDT", "BNB/USDT", "ADA/USDT", "DOGE/USDT", "AVAX/USDT"]
SYMBOLS += ["LINK/USDT", "DOT/USDT"]
Evaluate = Callable[[OrderIntent, PortfolioView, MarketView, RiskLimits, GateState], object]


def scenario() -> tuple[PortfolioView, MarketView, RiskLimits]:
    positions = [
        Position("binance", sym, Decimal("0.01") * (i + 1) * (1 if i % 2 else -1), Decimal(1000 + 500 * i))
        for i, sym in enumerate(SYMBOLS)
    ]
    orders = [
        OpenOrder(
            f"b4-rest-{i:02d}",
            "binance",
            SYMBOLS[i % len(SYMBOLS)],
            Side.BUY if i % 2 else Side.SELL,
            OrderType.LIMIT,
            Decimal(55_000) if i % 2 else Decimal(65_000),
            Decimal("0.001"),
        )
        for i in range(20)
    ]
    book = PortfolioView("acct", Decimal(1_000_000), positions, orders)
    rules = InstrumentRules(Decimal("0.01"), Decimal("0.00001"), Decimal("0.00001"), Decimal(9000), Decimal(5))
    market = MarketView("binance", "BTC/USDT", Decimal("60000.00"), rules, T0, Decimal("59999.99"), Decimal("60000.01"))
    limits = RiskLimits(
        max_gross_exposure=Decimal(2_000_000),
        max_net_exposure=Decimal(1_000_000),
        max_leverage=Decimal(2),
        allowed_symbols=frozenset(f"binance:{s}" for s in SYMBOLS),
        max_orders_per_second=1e9,
        order_burst=10**9,
    )
    return book, market, limits


def intent(amount: str, price: str) -> OrderIntent:
    return OrderIntent(
        "acct",
        "bench",
        "binance",
        "BTC/USDT",
        Side.BUY,
        OrderType.LIMIT,
        Decimal(amount),
        Decimal(price),
        False,
        "b4-bench-order",
        T0,
    )


APPROVE = intent("0.01234567", "60000.004")
DENY = intent("2", "70000")


def null_call(
    order: OrderIntent, book: PortfolioView, market: MarketView, limits: RiskLimits, state: GateState
) -> None:
    """The floor: a Python call with the gate's five arguments that does nothing."""
    del order, book, market, limits, state


FRESH_VIEWS_MAX_CALLS = 4_000


def fresh_views(count: int) -> list[tuple[PortfolioView, MarketView]]:
    book, market, _ = scenario()
    positions, orders = list(book.positions.values()), list(book.open_orders)
    m = market
    return [
        (
            PortfolioView(book.account, book.equity, positions, orders),
            MarketView(m.exchange, m.symbol, m.reference_price, m.rules, m.ts_event, m.best_bid, m.best_ask),
        )
        for _ in range(count)
    ]


def decision_manager() -> tuple[OrderManager, MarketView, RiskLimits]:
    """A real order manager on the paper venue holding the scenario's positions (booked as fills)
    and resting orders (submitted, acknowledged), and the scenario's market and limits."""
    book, market, limits = scenario()
    rules = market.rules
    caps = VenueCapabilities("binance", FeeSchedule(Decimal(0), Decimal(0)), dict.fromkeys(SYMBOLS, rules))
    funds = {"USDT": Decimal(10**9)} | {s.partition("/")[0]: Decimal(10**6) for s in SYMBOLS}
    venue = PaperVenue(caps, funds)
    for symbol in SYMBOLS:  # a usable book that none of the resting orders crosses
        venue.on_book_snapshot(
            BookSnapshot(
                "binance", symbol, 1, ((Decimal(50_000), Decimal(1)),), ((Decimal(70_000), Decimal(1)),), T0, T0
            )
        )
    manager = OrderManager(venue, Portfolio("acct", book.equity), clock=venue)
    for i, p in enumerate(book.positions.values()):
        side = Side.BUY if p.amount > 0 else Side.SELL
        manager.portfolio.apply_fill(
            Fill(
                "binance",
                f"f-{i}",
                f"b4-pos-{i}",
                "acct",
                p.symbol,
                side,
                p.mark_price,
                abs(p.amount),
                Decimal(0),
                "USDT",
                Liquidity.TAKER,
                T0,
            )
        )
    for o in book.open_orders:
        record = {
            "v": 1, "account": "acct", "strategy": "bench", "exchange": o.exchange, "symbol": o.symbol,
            "side": o.side.value, "order_type": "limit", "amount": str(o.remaining), "limit_price": str(o.price),
            "reduce_only": False, "client_order_id": o.client_order_id, "ts_event": 0,
            "approved_amount": str(o.remaining), "approved_price": str(o.price),
            "decision_id": f"rd-{o.client_order_id}", "ts_decided": 0,
        }  # fmt: skip
        result = manager.submit(approved_order_from_record(record))
        assert result.status is OrderStatus.ACCEPTED, result
    assert len(manager.view().open_orders) == len(book.open_orders)
    return manager, market, limits


DECISION_PATHS = ("decision_kept_view", "decision_new_mark", "decision_rebuilt_view")


def build_decision(path: str) -> Callable[[], object]:
    """One decision as the trading flow's account step takes it: a new ``MarketView`` from the
    stored newest market (the same price and rules objects until new data comes), the manager's
    view, the engine's verdict."""
    manager, m, limits = decision_manager()
    engine = RiskEngine("acct", limits, ManualClock(T0))
    order = APPROVE

    def market() -> MarketView:
        return MarketView(m.exchange, m.symbol, m.reference_price, m.rules, m.ts_event, m.best_bid, m.best_ask)

    if path == "decision_kept_view":
        return lambda: engine.evaluate(order, manager.view(), market())[0]
    if path == "decision_new_mark":
        portfolio = manager.portfolio
        marks = [Decimal("1000.01"), Decimal("1000.02")]  # SOL/USDT's mark moves, as market data does
        flip = [0]

        def new_mark() -> object:
            flip[0] ^= 1
            portfolio.mark("binance", "SOL/USDT", marks[flip[0]])
            return engine.evaluate(order, manager.view(), market())[0]

        return new_mark
    portfolio = manager.portfolio
    marks = [Decimal("1000.01"), Decimal("1000.02")]
    flip = [0]

    def rebuilt() -> object:
        # The same mark move as decision_new_mark, so the two differ only in how the view is had.
        flip[0] ^= 1
        portfolio.mark("binance", "SOL/USDT", marks[flip[0]])
        return engine.evaluate(order, portfolio.view(manager.open_orders()), market())[0]

    return rebuilt


def measure_decisions(calls: int, repeat: int) -> dict[str, object]:
    """The decision paths and their baseline, alternating in each repeat; best repeat of each."""
    built = {path: build_decision(path) for path in DECISION_PATHS}
    for path, call in built.items():
        assert isinstance(call(), ApprovedOrder), path
    runs: dict[str, list[dict[str, float]]] = {path: [] for path in DECISION_PATHS}
    for _ in range(repeat):
        for path in DECISION_PATHS:
            runs[path].append(time_calls(built[path], calls))
    best = {path: min(r, key=lambda x: x["cpu_us_per_call"]) for path, r in runs.items()}
    baseline = best["decision_rebuilt_view"]
    out: dict[str, object] = {}
    for path in DECISION_PATHS:
        out[path] = {**best[path], "evaluations_per_s_each_repeat": [r["evaluations_per_s"] for r in runs[path]]}
        if path != "decision_rebuilt_view":
            out[path]["speedup_vs_rebuilt_view_cpu"] = round(  # type: ignore[index]
                baseline["cpu_us_per_call"] / best[path]["cpu_us_per_call"], 2
            )
            out[path]["speedup_vs_rebuilt_view_median"] = round(  # type: ignore[index]
                baseline["median_us"] / best[path]["median_us"], 2
            )
    return out


def build_call(path: str, gate: Evaluate) -> tuple[Callable[[], object], Callable[[], object]]:
    """(the call to time, the call whose first result shows what it decided)."""
    book, market, limits = scenario()
    clock = ManualClock(T0)
    order = DENY if path == "deny" else APPROVE
    if path == "approve_fresh_views":
        # One view pair per call of time_calls (warm-up, samples, loop) plus the first call.
        views = iter(fresh_views(3 * FRESH_VIEWS_MAX_CALLS + 1))
        # 12,000 views alive at once is the benchmark's scaffolding, not a flow's state (a flow holds
        # one per account): keep them out of the collector's passes, as bench_models does its data.
        gc.freeze()
        fresh_state = GateState.start(limits, clock)

        def fresh() -> object:
            portfolio, view = next(views)
            return gate(order, portfolio, view, limits, fresh_state)

        return fresh, fresh
    if path == "approve_new_market_view":
        m = market
        markets = iter(
            [
                MarketView(m.exchange, m.symbol, m.reference_price, m.rules, m.ts_event, m.best_bid, m.best_ask)
                for _ in range(3 * FRESH_VIEWS_MAX_CALLS + 1)
            ]
        )
        market_state = GateState.start(limits, clock)

        def new_market() -> object:
            return gate(order, book, next(markets), limits, market_state)

        return new_market, new_market
    if path == "engine_approve":
        engine = RiskEngine("acct", limits, clock)
        return (lambda: engine.evaluate(order, book, market)), (lambda: engine.evaluate(order, book, market)[0])
    state = GateState.start(limits, clock)
    if path == "approve_cold":
        derived = state.derived

        def cold() -> object:
            derived.clear()
            return gate(order, book, market, limits, state)

        return cold, cold
    if path == "approve_moving_clock":
        step = timedelta(microseconds=1)

        def moving() -> object:
            clock.advance(step)
            return gate(order, book, market, limits, state)

        return moving, moving
    return (lambda: gate(order, book, market, limits, state)), (lambda: gate(order, book, market, limits, state))


def time_calls(call: Callable[[], object], calls: int) -> dict[str, float]:
    for _ in range(min(calls, 20_000)):  # warm-up
        call()
    clock = time.perf_counter_ns
    samples = []
    for _ in range(calls):
        start = clock()
        call()
        samples.append(clock() - start)
    samples.sort()
    wall_start, cpu_start = time.perf_counter(), time.process_time()
    for _ in range(calls):
        call()
    wall_s, cpu_s = time.perf_counter() - wall_start, time.process_time() - cpu_start
    return {
        "median_us": round(statistics.median(samples) / 1000, 2),
        "p99_us": round(samples[int(len(samples) * 0.99)] / 1000, 2),
        # CPU time per call in a tight loop: less sensitive to other processes on a shared machine.
        "cpu_us_per_call": round(cpu_s / calls * 1e6, 3),
        "evaluations_per_s": round(calls / wall_s),
    }


def measure(path: str, calls: int, repeat: int) -> dict[str, object]:
    call, first_call = build_call(path, evaluate)
    first = first_call()
    expect = OrderDenied if path == "deny" else ApprovedOrder
    assert isinstance(first, expect), first
    if path in ("approve_fresh_views", "approve_new_market_view"):
        calls = min(calls, FRESH_VIEWS_MAX_CALLS)
    baseline: Callable[[], object] | None = None
    if path in ("approve", "deny", "approve_fresh_views", "approve_new_market_view"):
        baseline, first_call = build_call(path, previous_evaluate)
        previous_first = first_call()
        # The previous gate is a fair baseline only if it decides the same.
        assert type(previous_first) is type(first), (previous_first, first)
    book, market, limits = scenario()
    state = GateState.start(limits, ManualClock(T0))
    runs, previous_runs, null_runs = [], [], []
    for i in range(repeat):
        if i and path in ("approve_fresh_views", "approve_new_market_view"):  # views no gate has read
            call, _ = build_call(path, evaluate)
            baseline, _ = build_call(path, previous_evaluate)
        runs.append(time_calls(call, calls))
        null_runs.append(time_calls(lambda: null_call(APPROVE, book, market, limits, state), calls))
        if baseline is not None:
            fresh = path in ("approve_fresh_views", "approve_new_market_view")
            previous_calls = calls if fresh else max(calls // 4, 1000)
            previous_runs.append(time_calls(baseline, previous_calls))
    best = min(runs, key=lambda r: r["cpu_us_per_call"])
    null_best = min(null_runs, key=lambda r: r["cpu_us_per_call"])
    out: dict[str, object] = {
        "codes": list(first.codes) if isinstance(first, OrderDenied) else [],
        **best,
        "evaluations_per_s_each_repeat": [r["evaluations_per_s"] for r in runs],
        "null_call_cpu_us": null_best["cpu_us_per_call"],
        "ratio_to_null_call": round(best["cpu_us_per_call"] / null_best["cpu_us_per_call"], 1),
    }
    if previous_runs:
        previous_best = min(previous_runs, key=lambda r: r["cpu_us_per_call"])
        out["previous"] = previous_best
        out["speedup_vs_previous_cpu"] = round(previous_best["cpu_us_per_call"] / best["cpu_us_per_call"], 2)
        out["speedup_vs_previous_median"] = round(previous_best["median_us"] / best["median_us"], 2)
    return out


PATHS = (
    "approve",
    "deny",
    "approve_cold",
    "approve_moving_clock",
    "approve_fresh_views",
    "approve_new_market_view",
    "engine_approve",
    "decisions",
)
#: The rebuilt-view baseline costs ~100 µs a call: cap its calls so a repeat stays a few seconds.
DECISION_MAX_CALLS = 20_000


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=100_000)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--paths", default=",".join(PATHS), help=f"comma-separated subset of {PATHS}")
    args = parser.parse_args()
    result: dict[str, object] = {
        "benchmark": "risk_gate_evaluate",
        "calls": args.calls,
        "repeat": args.repeat,
        "python": platform.python_version(),
        "machine": platform.machine(),
        "cpus": os.cpu_count(),
        "load_average_start": [round(x, 2) for x in os.getloadavg()],
    }
    for path in args.paths.split(","):
        if path == "decisions":
            result[path] = measure_decisions(min(args.calls, DECISION_MAX_CALLS), args.repeat)
        else:
            result[path] = measure(path, args.calls, args.repeat)
    result["load_average_end"] = [round(x, 2) for x in os.getloadavg()]
    print(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
