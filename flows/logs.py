"""Structured logs: one JSON object per line, so a log shipper (or ``jq``) can filter by field.

Every line has ``ts`` (UTC, ISO 8601 with milliseconds), ``level``, ``logger`` and ``msg``; a
record logged with ``extra={"client_order_id": ...}`` (or any of :data:`CONTEXT_FIELDS`) carries
that field too, and an exception adds ``exc``. Other ``extra`` keys are left out on purpose: log
lines must not grow free-form payloads.

>>> import logging
>>> formatter = JsonFormatter()
>>> record = logging.LogRecord("flows.execution", logging.INFO, __file__, 1, "order %s acked", ("x",), None)
>>> record.created = 1764072000.5
>>> record.client_order_id = "b4-ema-BTCUSDT-1"
>>> import json
>>> line = json.loads(formatter.format(record))
>>> line["ts"], line["level"], line["logger"], line["msg"], line["client_order_id"]
('2025-11-25T12:00:00.500Z', 'INFO', 'flows.execution', 'order x acked', 'b4-ema-BTCUSDT-1')
"""

from __future__ import annotations

import logging
import sys
from datetime import UTC, datetime
from typing import TextIO

import orjson

#: ``extra`` keys copied into the JSON line when present (bounded, known identifiers only).
CONTEXT_FIELDS = ("client_order_id", "account", "key", "stage", "venue")


class JsonFormatter(logging.Formatter):
    """Formats a :class:`logging.LogRecord` as one line of JSON."""

    def format(self, record: logging.LogRecord) -> str:
        ts = datetime.fromtimestamp(record.created, UTC)
        line: dict[str, object] = {
            "ts": ts.strftime("%Y-%m-%dT%H:%M:%S.") + f"{ts.microsecond // 1000:03d}Z",
            "level": record.levelname,
            "logger": record.name,
            "msg": record.getMessage(),
        }
        for name in CONTEXT_FIELDS:
            value = record.__dict__.get(name)
            if value is not None:
                line[name] = value if isinstance(value, str | int | float | bool) else str(value)
        if record.exc_info:
            line["exc"] = self.formatException(record.exc_info)
        return orjson.dumps(line).decode()


def configure_json_logging(level: int | str = logging.INFO, stream: TextIO | None = None) -> logging.Handler:
    """Send the root logger's records to ``stream`` (stderr) as JSON lines; returns the handler.

    Replaces handlers installed by an earlier call, so calling it twice does not double lines.
    """
    root = logging.getLogger()
    for handler in list(root.handlers):
        if isinstance(handler.formatter, JsonFormatter):
            root.removeHandler(handler)
    handler = logging.StreamHandler(stream or sys.stderr)
    handler.setFormatter(JsonFormatter())
    root.addHandler(handler)
    root.setLevel(level)
    return handler
