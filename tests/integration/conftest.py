"""Fixtures for tests against the real local services started by `infra/services.sh up`.

Why a fixture per service: a test names the service it needs, and when that service is not
running it fails at once with the command that starts it, instead of timing out deep in a client.
The addresses are the project's fixed local ports (infra/README.md); Kafka's bootstrap comes from
the root conftest's ``kafka_bootstrap`` (BOT4_KAFKA__BOOTSTRAP), which these fixtures do not shadow.
"""

from __future__ import annotations

import socket

import pytest

PG_HOST, PG_PORT, PG_DB = "127.0.0.1", 25432, "bot4"
REDIS_HOST, REDIS_PORT = "127.0.0.1", 26379


def require_port(service: str, host: str, port: int) -> None:
    """Fail the test (not error deep inside a client) when nothing listens on host:port."""
    try:
        with socket.create_connection((host, port), timeout=2):
            return
    except OSError as exc:
        pytest.fail(
            f"{service} is not reachable at {host}:{port} ({exc}); expected it running: "
            f"start it with `bash infra/services.sh up {service}`",
            pytrace=False,
        )


@pytest.fixture(scope="session")
def live_kafka(kafka_bootstrap: str) -> str:
    """The bootstrap address of a Kafka broker that accepts connections."""
    host, _, port = kafka_bootstrap.split(",", maxsplit=1)[0].rpartition(":")
    require_port("kafka", host, int(port))
    return kafka_bootstrap


@pytest.fixture(scope="session")
def live_postgres() -> str:
    """A libpq conninfo for database bot4 on the local PostgreSQL (trust auth)."""
    require_port("postgres", PG_HOST, PG_PORT)
    return f"host={PG_HOST} port={PG_PORT} dbname={PG_DB} user=postgres connect_timeout=5"


@pytest.fixture(scope="session")
def live_redis() -> tuple[str, int]:
    """Host and port of the local Redis."""
    require_port("redis", REDIS_HOST, REDIS_PORT)
    return REDIS_HOST, REDIS_PORT
