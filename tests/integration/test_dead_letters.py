"""Bad input pushed into the raw topic: the flow keeps running, every bad record lands in the DLQ
with its reason and original bytes, and no valid record is lost."""

from __future__ import annotations

import orjson
import pytest
from bytewax.recovery import RecoveryConfig, init_db_dir
from bytewax.testing import run_main
from confluent_kafka import Producer

from core.deadletter import decode_dead_letter
from core.wire import encode
from flows.replay import read_events
from flows.storage.migrate import migrate
from flows.store import store_flow

from .conftest import make_settings, read_topic, scalar

pytestmark = pytest.mark.integration
KEY = b"binance:BTC/USDT"


def bad_records(valid: list[bytes]) -> list[tuple[bytes, bytes, str]]:
    """(key, value, expected reason) for each kind of bad input, built from a real trade."""
    obj = orjson.loads(valid[0])

    def variant(**over: object) -> bytes:
        return orjson.dumps({**obj, "id": f"bad-{len(over)}-{next(iter(over))}", **over})

    early = obj["ts_event"] - 3_600_000_000
    unknown = {**obj, "symbol": "DOGE/USDT", "id": "doge-1"}
    return [
        (KEY, valid[5][:37], "malformed_json"),
        (KEY, variant(price="NaN"), "price_not_finite"),
        (KEY, variant(price="-61837.63"), "price_not_positive"),
        (KEY, variant(amount="0"), "amount_not_positive"),
        (KEY, variant(price=61837.63), "wrong_type"),
        (KEY, variant(ts_event="yesterday"), "wrong_type"),
        (b"binance:DOGE/USDT", orjson.dumps(unknown), "unknown_symbol"),
        (KEY, valid[3], "duplicate_trade_id"),
        (KEY, variant(ts_event=early, ts_recv=early), "out_of_order"),
        (KEY, b"\x00\xff not even text", "malformed_json"),
    ]


def produce(bootstrap: str, topic: str, records: list[tuple[bytes, bytes]]) -> None:
    producer = Producer({"bootstrap.servers": bootstrap, "enable.idempotence": True})
    for key, value in records:
        producer.produce(topic, key=key, value=value)
    assert producer.flush(30) == 0


def test_bad_records_go_to_the_dlq_with_reasons_and_every_valid_record_is_stored(
    btc_capture, topic_prefix, pg_database, kafka_bootstrap, tmp_path
):
    settings = make_settings(topic_prefix, pg_database, tmp_path)
    migrate(settings.postgres.conninfo())
    trades = [e for e in read_events(btc_capture) if type(e).__name__ == "Trade"][:300]
    valid = [encode(t) for t in trades]
    bad = bad_records(valid)
    # Interleave: one bad record after every 25 valid ones, so valid data follows each failure.
    stream: list[tuple[bytes, bytes]] = []
    for i, v in enumerate(valid):
        stream.append((KEY, v))
        if i % 25 == 24 and bad:
            key, value, _ = bad.pop(0)
            stream.append((key, value))
    expected = bad_records(valid)
    assert not bad, "every bad record was placed"
    produce(kafka_bootstrap, f"{topic_prefix}md.trades.v1", stream)

    recovery = tmp_path / "recovery"
    recovery.mkdir()
    init_db_dir(recovery, 1)
    run_main(store_flow(settings, tail=False), recovery_config=RecoveryConfig(str(recovery)))

    assert scalar(settings, "SELECT count(*) FROM md_trades") == len(valid)
    rows = scalar(settings, "SELECT json_agg(reason ORDER BY reason) FROM dead_letters")
    assert rows == sorted(reason for _, _, reason in expected)
    # The original bytes are kept exactly, in PostgreSQL and on the DLQ topic.
    originals = {v for _, v, _ in expected}
    letters = [decode_dead_letter(v) for _, v in read_topic(kafka_bootstrap, f"{topic_prefix}dlq.v1")]
    assert sorted(dl.reason for dl in letters) == sorted(r for _, _, r in expected)
    assert {dl.original for dl in letters} == originals
    assert all(dl.stage == "storage" and dl.source_topic == f"{topic_prefix}md.trades.v1" for dl in letters)

    # A restart resumes from the recovery snapshot: nothing is processed twice.
    more = [encode(t) for t in [e for e in read_events(btc_capture) if type(e).__name__ == "Trade"][300:400]]
    produce(kafka_bootstrap, f"{topic_prefix}md.trades.v1", [(KEY, v) for v in more])
    run_main(store_flow(settings, tail=False), recovery_config=RecoveryConfig(str(recovery)))
    assert scalar(settings, "SELECT count(*) FROM md_trades") == len(valid) + len(more)
    assert scalar(settings, "SELECT count(*) FROM dead_letters") == len(expected)
