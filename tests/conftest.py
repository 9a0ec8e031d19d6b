"""Fixtures shared by every test: the real data folder and, for integration tests, isolated
Kafka topics and a fresh PostgreSQL database on the services `make test` starts."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def shared_data_dir() -> Path:
    return Path(os.environ.get("BOT4_SHARED_DATA", ROOT.parent / "shared" / "data"))


@pytest.fixture(scope="session")
def shared_data() -> Path:
    path = shared_data_dir()
    if not path.is_dir():
        pytest.fail(f"real market data not found at {path}; set BOT4_SHARED_DATA")
    return path


@pytest.fixture(scope="session")
def kafka_bootstrap() -> str:
    return os.environ.get("BOT4_KAFKA__BOOTSTRAP", "127.0.0.1:29092")


@pytest.fixture(scope="session")
def pg_admin_conninfo() -> str:
    from flows.settings import PostgresSettings

    return PostgresSettings().conninfo()


@pytest.fixture
def pg_database(pg_admin_conninfo: str) -> Iterator[str]:
    """A fresh, empty database for one test; dropped afterwards. Yields its name."""
    import psycopg

    name = f"bot4_test_{uuid.uuid4().hex[:10]}"
    with psycopg.connect(pg_admin_conninfo, autocommit=True) as conn:
        conn.execute(f"CREATE DATABASE {name}")
    try:
        yield name
    finally:
        with psycopg.connect(pg_admin_conninfo, autocommit=True) as conn:
            conn.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")


@pytest.fixture
def topic_prefix(kafka_bootstrap: str) -> Iterator[str]:
    """Unique topic names for one test: ``<prefix>md.trades.v1`` etc., created with 3 partitions."""
    from tests.support.topics import topics

    prefix = f"t{uuid.uuid4().hex[:8]}."
    with topics(kafka_bootstrap, [f"{prefix}{t}" for t in ("md.trades.v1", "md.book.v1", "md.candles.v1", "dlq.v1")]):
        yield prefix


# -- coverage off for long replays -----------------------------------------------------------------
#
# Coverage tracing multiplies the CPU of a pure-Python replay by 2.5-4 (the 1h freqtrade parity run's
# setup: 15 s untraced, 44-67 s traced). Scenario tests marked ``no_cover`` replay real data through
# code the focused unit tests already cover line by line, so ``make test`` runs them untraced, their
# module fixtures included: pytest-cov's own ``no_cover`` pauses only the test call, not its setup.
# Their assertions run exactly as before; only the coverage report does not count their lines.


def _coverage_controller(item: pytest.Item) -> object | None:
    plugin = item.config.pluginmanager.getplugin("_cov")
    controller = getattr(plugin, "cov_controller", None)
    return controller if getattr(controller, "started", False) else None


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_setup(item: pytest.Item) -> Iterator[None]:
    controller = _coverage_controller(item) if item.get_closest_marker("no_cover") else None
    if controller is None:
        yield
        return
    controller.pause()  # type: ignore[attr-defined]
    try:
        yield
    finally:
        controller.resume()  # type: ignore[attr-defined]
