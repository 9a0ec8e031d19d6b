"""Risk gate latency: ``risk.gate.evaluate`` per call, with every check on, on one core.

The account holds positions in 10 instruments and 20 resting orders (so exposure, self-trade and
open-order checks have real work); limits include gross and net caps, leverage, allowed symbols,
price band, order notional, rate limit and data age. Two paths are timed:

- ``approve``: a limit order that passes every check (rounding, notional, band, exposure, self-trade);
- ``deny``: an order that fails four checks at once (every reason is collected and formatted).

Each call is timed on its own with ``perf_counter_ns``; the result is the median and p99 over
``--calls`` calls after a warm-up, plus CPU time per call and the throughput of a tight loop.
Prints JSON.

    .venv/bin/python benchmarks/bench_risk_gate.py [--calls 200000]
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import sys
import time
from decimal import Decimal
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from core.clock import ManualClock, parse_utc  # noqa: E402
from core.events import Side  # noqa: E402
from core.orders import ApprovedOrder, OrderDenied, OrderIntent, OrderType  # noqa: E402
from risk.config import RiskLimits  # noqa: E402
from risk.gate import GateState, evaluate  # noqa: E402
from risk.market import InstrumentRules, MarketView  # noqa: E402
from risk.portfolio import OpenOrder, PortfolioView, Position  # noqa: E402

T0 = parse_utc("2024-08-08T23:54:15Z")
SYMBOLS = ["BTC/USDT", "ETH/USDT", "SOL/USDT", "XRP/USDT", "BNB/USDT", "ADA/USDT", "DOGE/USDT", "AVAX/USDT"]
SYMBOLS += ["LINK/USDT", "DOT/USDT"]


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


def measure(order: OrderIntent, calls: int, expect: type) -> dict[str, object]:
    book, market, limits = scenario()
    state = GateState.start(limits, ManualClock(T0))
    first = evaluate(order, book, market, limits, state)
    assert isinstance(first, expect), first
    for _ in range(min(calls, 20_000)):  # warm-up
        evaluate(order, book, market, limits, state)
    clock = time.perf_counter_ns
    samples = []
    for _ in range(calls):
        start = clock()
        evaluate(order, book, market, limits, state)
        samples.append(clock() - start)
    samples.sort()
    wall_start, cpu_start = time.perf_counter(), time.process_time()
    for _ in range(calls):
        evaluate(order, book, market, limits, state)
    wall_s, cpu_s = time.perf_counter() - wall_start, time.process_time() - cpu_start
    return {
        "codes": list(first.codes) if isinstance(first, OrderDenied) else [],
        "median_us": round(statistics.median(samples) / 1000, 2),
        "p99_us": round(samples[int(len(samples) * 0.99)] / 1000, 2),
        # CPU time per call in a tight loop: robust to other processes on a shared machine.
        "cpu_us_per_call": round(cpu_s / calls * 1e6, 2),
        "evaluations_per_s": round(calls / wall_s),
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=200_000)
    args = parser.parse_args()
    approve = measure(intent("0.01234567", "60000.004"), args.calls, ApprovedOrder)
    deny = measure(intent("2", "70000"), args.calls, OrderDenied)
    result = {
        "benchmark": "risk_gate_evaluate",
        "calls": args.calls,
        "python": platform.python_version(),
        "machine": platform.machine(),
        "approve": approve,
        "deny": deny,
    }
    print(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
