"""Fixtures for tests against the real local services started by `infra/services.sh up`.

Why a fixture per service: a test names the service it needs, and when that service is not
running it fails at once with the command that starts it, instead of timing out deep in a client.
The addresses are the project's fixed local ports (infra/README.md).
"""

from __future__ import annotations

import socket

import pytest

KAFKA_BOOTSTRAP = "127.0.0.1:29092"
PG_CONNINFO = "host=127.0.0.1 port=25432 dbname=bot4 user=postgres connect_timeout=5"
REDIS_HOST, REDIS_PORT = "127.0.0.1", 26379
PG_HOST, PG_PORT = "127.0.0.1", 25432


def _require_port(service: str, host: str, port: int) -> None:
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
def kafka_bootstrap() -> str:
    host, port = KAFKA_BOOTSTRAP.rsplit(":", 1)
    _require_port("kafka", host, int(port))
    return KAFKA_BOOTSTRAP


@pytest.fixture(scope="session")
def pg_conninfo() -> str:
    _require_port("postgres", PG_HOST, PG_PORT)
    return PG_CONNINFO


@pytest.fixture(scope="session")
def redis_address() -> tuple[str, int]:
    _require_port("redis", REDIS_HOST, REDIS_PORT)
    return REDIS_HOST, REDIS_PORT
