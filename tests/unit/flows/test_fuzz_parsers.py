"""Fuzzing the parsers the flows run on bytes they do not control (issue 10): whatever arrives,
nothing raises out of a flow step except the parser's own named refusal, every bad record becomes
exactly one dead letter with its reason, and every valid record comes through (counted).

Parsers covered: Kafka market-data messages (wire v1, through the storage flow's decode and
contract steps), ccxt trade structures from an exchange's websocket or REST answers, operator
commands (control topic), orders.v1 instructions, fills.v1 reports, and settings input.
Valid inputs are real: the Binance spot capture of 2024-08-08 from ../shared/data.
"""

from __future__ import annotations

import itertools
from datetime import UTC, datetime

import bytewax.operators as op
import orjson
import pytest
from bytewax.dataflow import Dataflow
from bytewax.testing import TestingSink, TestingSource, run_main
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from core.clock import SystemClock
from core.deadletter import DeadLetter
from core.errors import ConfigError, QuarantineRecord, WireFormatError
from core.events import BookDelta, BookSnapshot, Quote, Trade
from core.wire import encode, topic_for
from flows.connectors.exchange_md import trade_from_ccxt
from flows.control import decode_command
from flows.dlq import Inbound
from flows.execution import decode_instruction
from flows.replay import read_events
from flows.settings import QualitySettings, load_settings
from flows.store import Decoded, apply_contracts, decode_record
from flows.trading_run import _reports

KNOWN = frozenset({"binance:BTC/USDT"})
CLOCK = SystemClock()
FUZZ = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])

json_values = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**63), 2**63 - 1) | st.floats(allow_nan=True) | st.text(max_size=20),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=10), inner, max_size=4),
    max_leaves=12,
)


@pytest.fixture(scope="module")
def real(shared_data):
    path = shared_data / "ticks" / "binance-spot-ws" / "btcusdt_20240808.gz"
    events = [
        e for e in itertools.islice(read_events(path), 3000) if isinstance(e, Trade | BookSnapshot | BookDelta | Quote)
    ]
    return [(topic_for(e), encode(e)) for e in events]


def garbage_for(payload: bytes) -> st.SearchStrategy[bytes]:
    """Bytes that cannot decode: noise, a truncated real record, a real record missing a field
    every event has or with its event time of the wrong type, or an unknown type."""
    body = orjson.loads(payload)
    return st.one_of(
        st.binary(max_size=200).filter(lambda b: not b.lstrip().startswith(b"{")),
        st.integers(1, len(payload) - 2).map(lambda n: payload[:n]),
        st.sampled_from(["ts_event", "exchange", "symbol", "type"]).map(
            lambda k: orjson.dumps({f: v for f, v in body.items() if f != k})
        ),
        st.one_of(st.text(max_size=8), st.none(), st.lists(st.integers(-(2**63), 2**63 - 1), max_size=2)).map(
            lambda bad: orjson.dumps({**body, "ts_event": bad})
        ),
        st.text(max_size=10).map(lambda t: orjson.dumps({**body, "type": "x" + t})),
    )


def reshaped(payload: bytes) -> st.SearchStrategy[bytes]:
    """A real record with one field's value replaced by any JSON value (valid or not)."""
    body = orjson.loads(payload)
    return st.tuples(st.sampled_from(sorted(body)), json_values).map(lambda kv: orjson.dumps({**body, kv[0]: kv[1]}))


@FUZZ
@given(data=st.data())
def test_any_bytes_on_an_md_topic_decode_or_become_a_dead_letter_citing_them(real, data):
    topic, payload = data.draw(st.sampled_from(real))
    raw = data.draw(st.one_of(garbage_for(payload), reshaped(payload), st.binary(max_size=400), st.just(payload)))
    origin = Inbound(topic, 0, 7, b"binance:BTC/USDT", raw)
    result = decode_record(origin, KNOWN, CLOCK)
    if isinstance(result, DeadLetter):
        assert result.reason and result.original == raw and result.source_offset == 7
    else:
        assert isinstance(result, Decoded) and result.event.key == "binance:BTC/USDT"


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.data())
def test_the_contracts_step_lets_every_real_record_through_and_dead_letters_every_bad_one(real, data):
    sample = real[:600]
    bad_at = data.draw(st.lists(st.integers(0, len(sample)), min_size=1, max_size=40))
    inputs: list[Inbound] = []
    bad: list[bytes] = []
    offset = itertools.count()
    for i, (topic, payload) in enumerate(sample):
        for _ in range(bad_at.count(i)):
            raw = data.draw(garbage_for(payload))
            bad.append(raw)
            inputs.append(Inbound(topic, 0, next(offset), b"binance:BTC/USDT", raw))
        inputs.append(Inbound(topic, 0, next(offset), b"binance:BTC/USDT", payload))
    flow = Dataflow("fuzz_contracts")
    out: list = []
    quality = QualitySettings(known_symbols=sorted(KNOWN))
    op.output(
        "out",
        apply_contracts(op.input("in", flow, TestingSource(inputs, batch_size=97)), quality, CLOCK),
        TestingSink(out),
    )
    run_main(flow)
    letters = [o for o in out if isinstance(o, DeadLetter)]
    events = [o for o in out if not isinstance(o, DeadLetter)]
    assert len(out) == len(inputs)  # every input comes out exactly once
    assert sorted(d.original for d in letters) == sorted(bad)  # each bad record once, nothing else
    assert [encode(e) for e in events] == [p for _, p in sample]  # no valid record lost or reordered


@FUZZ
@given(raw=st.dictionaries(st.sampled_from(["id", "timestamp", "side", "price", "amount", "info", "x"]), json_values))
def test_a_malformed_ccxt_trade_is_quarantined_with_a_reason_never_another_error(raw):
    try:
        trade = trade_from_ccxt("binance", "BTC/USDT", raw, datetime(2024, 8, 8, tzinfo=UTC))
    except QuarantineRecord as err:
        assert err.reason
    else:
        assert trade.price > 0 and trade.amount > 0


@FUZZ
@given(raw=st.one_of(st.binary(max_size=200), json_values.map(orjson.dumps)))
def test_control_orders_and_fills_messages_decode_or_are_refused_by_name(raw):
    for decoder in (decode_command, decode_instruction):
        try:
            decoder(raw)
        except WireFormatError as err:
            assert err.reason
    (result,) = _reports([Inbound("fills.v1", 0, 1, b"acct", raw)], CLOCK)
    assert isinstance(result, DeadLetter) and result.reason == "malformed_report"


@FUZZ
@given(
    field=st.sampled_from(["risk.max_position_pct", "trading.initial_cash", "kafka.bootstrap", "trading.timeframe"]),
    value=json_values,
)
def test_settings_input_is_accepted_or_refused_with_a_config_error(field, value):
    section, name = field.split(".")
    try:
        load_settings(**{section: {name: value}})
    except ConfigError as err:
        assert name in str(err)
