"""Feast glue: apply the declarations of ``feature_repo/``, push feature vectors, read them back
online, and build point-in-time correct training sets.

Environments (``feature_repo/envs/<env>/feature_store.yaml``, values from ``BOT4_FEAST_*``):
``local`` is the embedded default (SQLite online, parquet offline, file registry under a data
dir); ``dev`` uses the local services (Redis online, PostgreSQL ``feature_rows`` offline, SQL
registry). :func:`feast_environment` gives the variables those files expand, from the Bot4 settings.

Feast 0.67 behaviours handled here (NOTES.md): a push to a PostgreSQL-backed source with
``ONLINE_AND_OFFLINE`` fails after writing online, so on ``dev`` the flow writes ``feature_rows``
itself and pushes ``ONLINE``; online reads ignore the TTL and return unknown entities as present,
so a value older than the TTL (or with a zero timestamp) is reported missing; historical
retrieval on PostgreSQL compares every entity row with every feature row, so the entity frame is
split by day; the file store drops entity rows it cannot match, so results are merged back onto
the entity frame; returned timestamps are naive UTC and are localized.
"""

from __future__ import annotations

import contextlib
import functools
import logging
import os
import sys
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from bytewax.outputs import DynamicSink, StatelessSinkPartition
from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

from core.errors import ConfigError
from features.schema import FEATURE_NAMES, FEATURES, FeatureValue, FeatureVector
from flows.settings import Bot4Settings

if TYPE_CHECKING:
    # pandas (about a second to import) is imported by the functions that build or read frames, so
    # a flow that only reads FeastConfig, or pushes nothing, starts without it.
    import pandas as pd
    from feast import FeatureStore

log = logging.getLogger(__name__)

REPO_DIR = Path(__file__).resolve().parents[1] / "feature_repo"
PUSH_SOURCE = "bars_1m_push"
FEATURE_VIEW = "bars_1m"
FEATURE_SERVICE = "model_v1"
#: Modules of feature_repo/, re-imported on every apply so the environment they read is current.
_REPO_MODULES = ("entities", "sources", "views", "services")
_PANDAS_DTYPES = {"float64": "float64", "int64": "Int64", "bool": "boolean"}

FeastEnv = Literal["local", "dev"]


class FeastConfig(BaseSettings):
    """Which Feast environment and project the flows and the CLI use (``BOT4_FEAST_*``)."""

    model_config = SettingsConfigDict(env_prefix="BOT4_FEAST_", frozen=True, extra="ignore")

    env: FeastEnv = "local"
    #: Feast project: isolates one deployment (or one test) inside a shared registry and online store.
    project: str = Field(default="bot4", pattern=r"^[a-z][a-z0-9_]*$")
    #: ``local``: where registry, SQLite and parquet files live.
    data_dir: Path = Path("out/feast")
    #: ``dev``: database of the SQL registry (default: the Bot4 PostgreSQL database).
    registry_db: str | None = None
    #: Whether the features flow pushes every batch of vectors to the online store.
    push: bool = False

    @classmethod
    def from_env(cls, **overrides: Any) -> FeastConfig:
        try:
            return cls(**overrides)
        except ValueError as exc:
            raise ConfigError(f"invalid BOT4_FEAST_* settings: {exc}") from None


def yaml_path(env: FeastEnv) -> Path:
    return REPO_DIR / "envs" / env / "feature_store.yaml"


def feast_environment(config: FeastConfig, settings: Bot4Settings) -> dict[str, str]:
    """The ``BOT4_FEAST_*`` variables the yaml files and ``feature_repo/sources.py`` expand."""
    pg, redis = settings.postgres, settings.redis
    redis_conn = f"{redis.host}:{redis.port}"
    if redis.password.get_secret_value():
        redis_conn += f",password={redis.password.get_secret_value()}"
    return {
        "BOT4_FEAST_ENV": config.env,
        "BOT4_FEAST_PROJECT": config.project,
        "BOT4_FEAST_DATA_DIR": str(config.data_dir.resolve()),
        "BOT4_FEAST_PG_HOST": pg.host,
        "BOT4_FEAST_PG_PORT": str(pg.port),
        "BOT4_FEAST_PG_DB": pg.dbname,
        "BOT4_FEAST_PG_USER": pg.user,
        "BOT4_FEAST_PG_PASSWORD": pg.password.get_secret_value(),
        "BOT4_FEAST_PG_SSLMODE": pg.sslmode,
        "BOT4_FEAST_REGISTRY_DB": config.registry_db or pg.dbname,
        "BOT4_FEAST_REDIS": redis_conn,
    }


@contextlib.contextmanager
def exported(config: FeastConfig, settings: Bot4Settings) -> Iterator[None]:
    """Set :func:`feast_environment` while Feast reads its yaml and the declarations, then put
    the process environment back (Feast keeps the expanded config; nothing reads it later)."""
    values = feast_environment(config, settings)
    saved = {name: os.environ.get(name) for name in values}
    os.environ.update(values)
    try:
        yield
    finally:
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value


def open_store(config: FeastConfig, settings: Bot4Settings) -> FeatureStore:
    """A FeatureStore on the configured environment (the declarations must have been applied)."""
    from feast import FeatureStore

    if config.env == "local":
        config.data_dir.mkdir(parents=True, exist_ok=True)
    with exported(config, settings):
        return FeatureStore(repo_path=str(REPO_DIR), fs_yaml_file=yaml_path(config.env))


@contextlib.contextmanager
def _in_repo() -> Iterator[None]:
    # Feast names repo modules relative to the working directory and imports them from sys.path.
    cwd = os.getcwd()
    for name in _REPO_MODULES:
        sys.modules.pop(name, None)
    sys.path.insert(0, str(REPO_DIR))
    os.chdir(REPO_DIR)
    try:
        yield
    finally:
        os.chdir(cwd)
        sys.path.remove(str(REPO_DIR))
        for name in _REPO_MODULES:
            sys.modules.pop(name, None)


def empty_feature_frame() -> pd.DataFrame:
    """A frame with the push source's columns and dtypes and no rows."""
    import pandas as pd

    columns: dict[str, pd.Series] = {
        "symbol": pd.Series([], dtype="string"),
        "event_timestamp": pd.Series([], dtype="datetime64[us, UTC]"),
    }
    for spec in FEATURES:
        columns[spec.name] = pd.Series([], dtype=_PANDAS_DTYPES[spec.dtype])
    return pd.DataFrame(columns)


def apply(config: FeastConfig, settings: Bot4Settings) -> FeatureStore:
    """Register the declarations of ``feature_repo/`` in the environment's registry.

    Equivalent to ``feast -c feature_repo -f feature_repo/envs/<env>/feature_store.yaml apply``
    with the variables of :func:`feast_environment`; on ``local`` it also creates the empty
    parquet file the offline store appends to.
    """
    from feast.repo_operations import parse_repo

    store = open_store(config, settings)
    if config.env == "local":
        parquet = config.data_dir.resolve() / "feature_rows_1m.parquet"
        if not parquet.exists():
            empty_feature_frame().to_parquet(parquet, index=False)
    with exported(config, settings), _in_repo():
        repo = parse_repo(REPO_DIR)
    store.apply(
        [*repo.data_sources, *repo.entities, *repo.feature_views, *repo.feature_services],
        partial=False,
    )
    store.refresh_registry()  # the store's cached registry predates this apply
    return store


# -- push --------------------------------------------------------------------------------------------


def vectors_frame(vectors: Sequence[FeatureVector]) -> pd.DataFrame:
    """Vectors as the push source's frame: ``symbol``, ``event_timestamp`` (UTC) and every feature."""
    import pandas as pd

    # Index-free arrays: a dict of Series makes pandas align 40 indexes (most of a small push).
    data: dict[str, Any] = {
        "symbol": pd.array([v.key for v in vectors], dtype="string"),
        "event_timestamp": pd.array([v.ts_event for v in vectors], dtype="datetime64[us, UTC]"),
    }
    for spec in FEATURES:
        data[spec.name] = pd.array([v.values.get(spec.name) for v in vectors], dtype=_PANDAS_DTYPES[spec.dtype])
    return pd.DataFrame(data)


def push(store: FeatureStore, vectors: Sequence[FeatureVector], env: FeastEnv, *, newest_online: bool = False) -> None:
    """Write vectors to the online store (and, on ``local``, append them to the parquet history).

    On ``dev`` the history is ``feature_rows``, written by the features flow before this call.
    The online write goes straight to the view the push source feeds: ``store.push`` would also
    list every feature service from the registry, uncached, on each call (~20 ms on the SQL
    registry) to recompute services that we do not precompute.
    """
    from feast.data_source import PushMode

    if not vectors:
        return
    frame = vectors_frame(vectors)
    if newest_online:
        # A replay's block: the online store serves each instrument's newest vector, so only
        # that one is written there (the history gets them all).
        newest: dict[str, FeatureVector] = {}
        for v in vectors:
            if v.key not in newest or v.ts_event >= newest[v.key].ts_event:
                newest[v.key] = v
        store.write_to_online_store(FEATURE_VIEW, vectors_frame(list(newest.values())))
    else:
        store.write_to_online_store(FEATURE_VIEW, frame)
    if env == "local":
        store.push(PUSH_SOURCE, frame, to=PushMode.OFFLINE)


@functools.cache
def _transient_errors() -> tuple[type[BaseException], ...]:
    """Errors of an online store that is away for a while (not of a bad push); read when a push
    fails (importing redis is not free, and a flow that pushes nothing needs none of it)."""
    import sqlite3

    from redis import exceptions as redis_errors

    return (
        redis_errors.ConnectionError,
        redis_errors.TimeoutError,
        redis_errors.BusyLoadingError,
        sqlite3.OperationalError,
    )


_MAX_WAIT_S = 120.0


class _FeastPushPartition(StatelessSinkPartition[FeatureVector]):
    def __init__(self, config: FeastConfig, settings: Bot4Settings, min_rows: int) -> None:
        self._store = open_store(config, settings)
        self._env = config.env
        self._min_rows = min_rows
        self._pending: list[FeatureVector] = []

    def write_batch(self, items: list[FeatureVector]) -> None:
        self._pending.extend(items)
        if len(self._pending) >= self._min_rows:
            self._flush()

    def _flush(self) -> None:
        """Push what is pending. While the online store is unreachable (Redis restarting, the
        SQLite file locked) the push is retried with backoff, so the flow pauses rather than
        dropping vectors or dying; after ``_MAX_WAIT_S`` the error is raised (the flow restarts
        from recovery). Pushes are idempotent: a row is keyed by symbol and event time."""
        pending, self._pending = self._pending, []
        delay, waited = 0.25, 0.0
        while True:
            try:
                push(self._store, pending, self._env, newest_online=self._min_rows > 1)
                return
            except _transient_errors() as exc:
                if waited >= _MAX_WAIT_S:
                    raise
                log.warning("feast push of %d rows failed (%s); retrying in %.2fs", len(pending), exc, delay)
                time.sleep(delay)
                waited += delay
                delay = min(delay * 2, 5.0)

    def close(self) -> None:
        self._flush()


class FeastPushSink(DynamicSink[FeatureVector]):
    """Bytewax sink pushing vectors to Feast (one FeatureStore per worker).

    ``min_rows=1`` (live flows) pushes every batch as it comes, so the online store is as fresh as
    the flow. A replay sets it higher: each push costs a fixed ~20 ms online and ~75 ms on the
    local parquet history whatever its size, so a backtest pushes thousands of rows at a time, and
    the rest when the flow ends.
    """

    def __init__(self, config: FeastConfig, settings: Bot4Settings, *, min_rows: int = 1) -> None:
        self._config = config
        self._settings = settings
        self._min_rows = min_rows

    def build(self, step_id: str, worker_index: int, worker_count: int) -> _FeastPushPartition:
        return _FeastPushPartition(self._config, self._settings, self._min_rows)


# -- online read --------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class OnlineFeatures:
    """The latest vector of one instrument in the online store, or ``event_timestamp=None``.

    ``values`` is empty when nothing usable is stored (unknown symbol, or older than ``max_age``).
    """

    symbol: str
    event_timestamp: datetime | None
    age: timedelta | None
    values: dict[str, FeatureValue]

    @property
    def present(self) -> bool:
        return self.event_timestamp is not None


def _as_utc(value: object) -> datetime | None:
    import pandas as pd

    # Feast returns event timestamps as epoch seconds; 0 is its "never written" (Redis, unknown key).
    if value is None or isinstance(value, bool):
        return None
    if isinstance(value, int | float):
        return datetime.fromtimestamp(value, UTC) if value > 0 else None
    if isinstance(value, pd.Timestamp):
        value = value.to_pydatetime()
    if not isinstance(value, datetime):
        return None
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


class OnlineReader:
    """Latest values per symbol from the online store, with their age; stale or absent = missing.

    The feature service and the view's TTL are read from the registry once, here, not per call
    (a registry lookup costs more than the online read itself). ``max_age`` defaults to the TTL.
    """

    def __init__(self, store: FeatureStore, max_age: timedelta | None = None) -> None:
        self._store = store
        self._service = store.get_feature_service(FEATURE_SERVICE)
        self.max_age = max_age if max_age is not None else store.get_feature_view(FEATURE_VIEW).ttl
        self._stamps = [f"{name}__ts" for name in FEATURE_NAMES]

    def read(self, symbol: str, now: datetime) -> OnlineFeatures:
        """The latest vector of ``symbol`` as seen at ``now``."""
        response = self._store.get_online_features(features=self._service, entity_rows=[{"symbol": symbol}])
        data = response.to_dict(include_event_timestamps=True)
        stamps = [_as_utc(data[key][0]) for key in self._stamps if key in data]
        known = [ts for ts in stamps if ts is not None]
        newest = max(known) if known else None
        # A TTL of 0 is Feast's "never expires".
        if newest is None or (self.max_age and now - newest > self.max_age):
            return OnlineFeatures(symbol, None, None if newest is None else now - newest, {})
        return OnlineFeatures(symbol, newest, now - newest, {name: data[name][0] for name in FEATURE_NAMES})


def read_online(store: FeatureStore, symbol: str, now: datetime, max_age: timedelta | None = None) -> OnlineFeatures:
    """One read with a fresh :class:`OnlineReader` (for repeated reads, keep the reader)."""
    return OnlineReader(store, max_age).read(symbol, now)


# -- history -------------------------------------------------------------------------------------------


def entity_frame(symbols: Sequence[str], start: datetime, end: datetime, every: timedelta) -> pd.DataFrame:
    """One entity row per symbol and time from ``start`` to ``end`` inclusive, every ``every``."""
    import pandas as pd

    if every <= timedelta(0):
        raise ValueError(f"every must be positive, got {every}")
    times = pd.date_range(pd.Timestamp(start), pd.Timestamp(end), freq=every, tz=UTC)
    rows = [(s, t) for s in symbols for t in times]
    return pd.DataFrame(
        {
            "symbol": pd.Series([r[0] for r in rows], dtype="object"),
            "event_timestamp": pd.Series([r[1] for r in rows], dtype="datetime64[ns, UTC]"),
        }
    )


def read_history(store: FeatureStore, entities: pd.DataFrame) -> pd.DataFrame:
    """Point-in-time correct features for every entity row (``symbol``, ``event_timestamp``).

    Every entity row comes back, in the input order, with NaN/None where no feature was known at
    its time (or only one older than the view's TTL).
    """
    import pandas as pd

    service = store.get_feature_service(FEATURE_SERVICE)
    frame = entities[["symbol", "event_timestamp"]].copy()
    frame["event_timestamp"] = pd.to_datetime(frame["event_timestamp"], utc=True)
    parts = []
    for _, day in frame.groupby(frame["event_timestamp"].dt.floor("D"), sort=True):
        if day.empty:
            continue
        result = store.get_historical_features(entity_df=day.reset_index(drop=True), features=service).to_df()
        parts.append(result)
    if parts:
        found = pd.concat(parts, ignore_index=True)
        found["event_timestamp"] = pd.to_datetime(found["event_timestamp"], utc=True)
        found = found.drop_duplicates(["symbol", "event_timestamp"])
    else:
        found = pd.DataFrame(columns=["symbol", "event_timestamp", *FEATURE_NAMES])
    columns = ["symbol", "event_timestamp", *FEATURE_NAMES]
    return frame.merge(found[columns], on=["symbol", "event_timestamp"], how="left").reset_index(drop=True)
