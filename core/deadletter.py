"""Dead letters: a record that could not be used, with why, where, and its original bytes.

Nothing is dropped silently: a record that fails to decode or breaks a contract becomes a
:class:`DeadLetter` on ``dlq.v1`` (and in the ``dead_letters`` table), counted by reason.

>>> from core.clock import from_epoch_ms
>>> dl = DeadLetter("storage", "malformed_json", "not valid JSON", b'{"type": "tr',
...                 from_epoch_ms(0), "md.trades.v1", 0, 42, b"binance:BTC/USDT")
>>> decode_dead_letter(encode_dead_letter(dl)) == dl
True
"""

from __future__ import annotations

import base64
from dataclasses import dataclass
from datetime import datetime

import orjson

from core.clock import from_epoch_us, to_epoch_us
from core.errors import WireFormatError

DLQ_TOPIC = "dlq.v1"


@dataclass(frozen=True, slots=True)
class DeadLetter:
    """An unusable record. ``reason`` is a short stable code (a metric label); ``detail`` is prose."""

    stage: str
    reason: str
    detail: str
    original: bytes
    ts_recv: datetime
    source_topic: str | None = None
    source_partition: int | None = None
    source_offset: int | None = None
    key: bytes | None = None


def encode_dead_letter(dl: DeadLetter) -> bytes:
    return orjson.dumps(
        {
            "type": "dead_letter",
            "v": 1,
            "stage": dl.stage,
            "reason": dl.reason,
            "detail": dl.detail,
            "original_b64": base64.b64encode(dl.original).decode("ascii"),
            "key_b64": base64.b64encode(dl.key).decode("ascii") if dl.key is not None else None,
            "source_topic": dl.source_topic,
            "source_partition": dl.source_partition,
            "source_offset": dl.source_offset,
            "ts_recv": to_epoch_us(dl.ts_recv),
        }
    )


def decode_dead_letter(data: bytes) -> DeadLetter:
    try:
        obj = orjson.loads(data)
        key_b64 = obj["key_b64"]
        return DeadLetter(
            stage=obj["stage"],
            reason=obj["reason"],
            detail=obj["detail"],
            original=base64.b64decode(obj["original_b64"]),
            ts_recv=from_epoch_us(obj["ts_recv"]),
            source_topic=obj["source_topic"],
            source_partition=obj["source_partition"],
            source_offset=obj["source_offset"],
            key=base64.b64decode(key_b64) if key_b64 is not None else None,
        )
    except (orjson.JSONDecodeError, KeyError, TypeError, ValueError) as exc:
        raise WireFormatError("malformed_dead_letter", f"not a v1 dead letter: {exc}") from None
