"""In event time the breakers move at the same records however the input is batched.

A batch's end falls wherever the source's fetches did (Kafka, a restart, a second worker). The
account step used to judge the breakers at every batch's end, so a cooldown's end or a source
turning stale was stamped at a different bar from one run to the next: the scale-out and outage
chaos tests saw different state_changed records for the same data. Real candles (the demo's
bundled Binance 1m BTC/USDT and ETH/USDT), a breaker that trips on every losing trade (so cooldowns
end all through the run), batches of 1, 7 and 5,000 records: the same decisions, byte for byte.
"""

from __future__ import annotations

from dataclasses import replace

import bytewax.operators as op
import orjson
from bytewax.dataflow import Dataflow
from bytewax.testing import TestingSink, TestingSource, run_main

from core.clock import SystemClock
from flows.trading import Mode, trading_steps
from risk.decisions import DecisionKind, RiskDecision
from tests.unit.flows.test_trading_flow import candles, setups  # noqa: F401  (module fixture)


def decisions(inputs: list, batch_size: int) -> list[bytes]:
    instrument, account = setups(Mode.PAPER)
    breakers = account.limits.breakers.model_copy(update={"max_consecutive_losses": 1})
    account = replace(account, limits=account.limits.model_copy(update={"breakers": breakers}))
    flow = Dataflow("breaker_timing")
    stream = op.input("in", flow, TestingSource(inputs, batch_size=batch_size))
    out = trading_steps("t", op.map("key", stream, lambda e: (e.key, e)), instrument, [account], SystemClock())
    seen: list = []
    op.output("account", out.account, TestingSink(seen))
    run_main(flow)  # no recovery here: the default epoch (10 s), so snapshots are rare
    return [orjson.dumps(d.to_record()) for d in seen if isinstance(d, RiskDecision)]


def test_breakers_move_at_the_same_records_whatever_the_batches(candles):  # noqa: F811
    one = decisions(candles, 1)
    changes = [d for d in one if b'"state_changed"' in d]
    assert len(changes) >= 4 and b"cooldown" in b"".join(changes)  # cooldowns end during the run
    assert decisions(candles, 7) == one
    assert decisions(candles, 5000) == one
    assert DecisionKind.STATE_CHANGED.value == "state_changed"
