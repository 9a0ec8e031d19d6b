"""Schemathesis against the console's OpenAPI description: no generated request (commands with the
token included) makes the server fail or answer outside its documented responses and schemas.

schemathesis==4.32.5 is a dev dependency (pyproject.toml, requirements.lock; it adds only its own
dependencies and `pip check` stays clean). The run is capped to stay near 30 s on a busy 2-core
machine: the coverage phase (boundary and negative values of every parameter and body field) in
full, then 3 fuzzed examples per operation, on 2 workers; the stored day skips the Great
Expectations run (the validation endpoints are checked against PostgreSQL in test_console.py).
"""

from __future__ import annotations

import subprocess
import sys
import uuid

import psycopg
import pytest

from flows.settings import load_settings
from tests.integration.test_console import TOKEN, Served, create_topics, delete_topics, free_port, store_trading_day

pytest.importorskip("schemathesis", reason="schemathesis==4.32.5 is not installed: run `make install`")

pytestmark = pytest.mark.integration


def test_no_generated_request_breaks_the_console_or_leaves_its_description(
    tmp_path, shared_data, kafka_bootstrap, pg_admin_conninfo
):
    database = f"bot4_test_{uuid.uuid4().hex[:10]}"
    with psycopg.connect(pg_admin_conninfo, autocommit=True) as conn:
        conn.execute(f"CREATE DATABASE {database}")
    prefix = f"st{uuid.uuid4().hex[:6]}."
    topics = create_topics(kafka_bootstrap, prefix)
    try:
        bot4 = load_settings(
            kafka={"topic_prefix": prefix, "bootstrap": kafka_bootstrap},
            postgres={"dbname": database},
            data_dir=tmp_path,
            console={"port": free_port(), "token": TOKEN, "reports_dir": tmp_path / "reports"},
        )
        store_trading_day(bot4, shared_data, tmp_path, validation=False)
        with Served(bot4, live=False) as api:
            # The CLI, because schemathesis' pytest plugin does not load under pytest 9.
            done = subprocess.run(
                [
                    sys.executable,
                    "-m",
                    "schemathesis.cli",
                    "run",
                    api.url("/openapi.json"),
                    "--checks",
                    "not_a_server_error,response_schema_conformance,status_code_conformance",
                    "--exclude-path",
                    "/api/events",  # an endless stream
                    "--phases",
                    "coverage,fuzzing",  # no examples in the schema; no stateful phase: no links declared
                    "--max-examples",
                    "3",
                    "--workers",
                    "2",
                    "--seed",
                    "4242",
                    "-H",
                    f"Authorization: Bearer {TOKEN}",
                ],
                capture_output=True,
                text=True,
                timeout=240,
                check=False,
            )
        assert done.returncode == 0, done.stdout[-6000:] + done.stderr[-2000:]
        with psycopg.connect(bot4.postgres.conninfo()) as conn:
            sent = conn.execute("SELECT count(*) FROM operator_commands WHERE via = 'api'").fetchone()
        assert sent is not None and sent[0] > 0, "no generated command got through: the token was not used"
    finally:
        delete_topics(kafka_bootstrap, topics)
        with psycopg.connect(pg_admin_conninfo, autocommit=True) as conn:
            conn.execute(f"DROP DATABASE IF EXISTS {database} WITH (FORCE)")
