"""flows/logs.py: JSON log lines with the fields operators filter on."""

from __future__ import annotations

import io
import json
import logging

from flows.logs import JsonFormatter, configure_json_logging


def test_a_log_line_is_json_with_ts_level_logger_msg_and_the_client_order_id():
    stream = io.StringIO()
    handler = configure_json_logging(logging.DEBUG, stream)
    try:
        log = logging.getLogger("bot4.test.execution")
        log.warning(
            "order %s rejected by %s", "b4-1", "binance", extra={"client_order_id": "b4-1", "payload": "x" * 50}
        )
        log.info("no context here")
    finally:
        logging.getLogger().removeHandler(handler)
    first, second = (json.loads(line) for line in stream.getvalue().splitlines())
    assert first["level"] == "WARNING" and first["logger"] == "bot4.test.execution"
    assert first["msg"] == "order b4-1 rejected by binance"
    assert first["client_order_id"] == "b4-1"
    assert "payload" not in first  # free-form extras stay out of the line
    assert first["ts"].endswith("Z") and first["ts"][10] == "T"
    assert "client_order_id" not in second and second["msg"] == "no context here"


def test_an_exception_is_one_json_line_with_its_traceback():
    record = logging.LogRecord("bot4.x", logging.ERROR, __file__, 1, "boom", None, None)
    try:
        raise ValueError("bad price")
    except ValueError:
        import sys

        record.exc_info = sys.exc_info()
    line = JsonFormatter().format(record)
    assert "\n" not in line
    assert "ValueError: bad price" in json.loads(line)["exc"]


def test_configuring_twice_keeps_one_json_handler():
    root = logging.getLogger()
    before = list(root.handlers)
    first = configure_json_logging(stream=io.StringIO())
    second = configure_json_logging(stream=io.StringIO())
    try:
        assert first not in root.handlers and second in root.handlers
    finally:
        root.removeHandler(second)
    assert root.handlers == before
