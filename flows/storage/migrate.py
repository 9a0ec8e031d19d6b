"""Forward-only, numbered SQL migrations (``sql/NNNN_name.sql``), applied by ``bot4 db migrate``.

Each migration may come with a variant file applied right after it in the same transaction:
``NNNN_name.timescale.sql`` where the TimescaleDB extension is available (hypertables,
compression, retention, continuous aggregates), else ``NNNN_name.plain.sql`` (plain PostgreSQL
equivalents). What was applied, with which variant and the files' checksum, is recorded in
``schema_migrations``; running again applies nothing, and a file changed after it was applied is
refused (forward-only: write a new migration instead).
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import psycopg

from core.errors import HaltAndAlert

Variant = Literal["plain", "timescale"]

SQL_DIR = Path(__file__).resolve().parents[2] / "sql"
_NAME = re.compile(r"^(\d{4})_([a-z0-9_]+)\.sql$")
# Any number: transaction-scoped advisory lock so two processes never migrate at once.
_LOCK_ID = 0x626F7434


@dataclass(frozen=True, slots=True)
class Migration:
    """One numbered migration and the variant files that may follow it."""

    version: int
    name: str
    base: Path
    timescale: Path | None
    plain: Path | None

    def files(self, variant: Variant) -> list[Path]:
        extra = self.timescale if variant == "timescale" else self.plain
        return [self.base] + ([extra] if extra is not None else [])

    def checksum(self, variant: Variant) -> str:
        digest = hashlib.sha256()
        for path in self.files(variant):
            digest.update(path.read_bytes())
        return digest.hexdigest()


def discover(sql_dir: Path = SQL_DIR) -> list[Migration]:
    """Migrations in ``sql_dir`` by version; a duplicate or malformed name is an error."""
    found: dict[int, Migration] = {}
    for path in sorted(sql_dir.glob("*.sql")):
        if path.name.endswith((".timescale.sql", ".plain.sql")):
            continue
        match = _NAME.match(path.name)
        if match is None:
            raise ValueError(f"migration file {path.name!r} is not named like 0001_name.sql")
        version = int(match.group(1))
        if version in found:
            raise ValueError(f"two migrations share version {version:04d}: {found[version].base.name}, {path.name}")
        stem = path.name[: -len(".sql")]
        ts, plain = sql_dir / f"{stem}.timescale.sql", sql_dir / f"{stem}.plain.sql"
        found[version] = Migration(
            version, match.group(2), path, ts if ts.exists() else None, plain if plain.exists() else None
        )
    return [found[v] for v in sorted(found)]


def timescale_available(conn: psycopg.Connection) -> bool:
    """True when the server can load TimescaleDB (it is in ``pg_available_extensions``)."""
    row = conn.execute("SELECT exists(SELECT 1 FROM pg_available_extensions WHERE name = 'timescaledb')").fetchone()
    return bool(row and row[0])


@dataclass(frozen=True, slots=True)
class Applied:
    version: int
    name: str
    variant: Variant


def migrate(conninfo: str, sql_dir: Path = SQL_DIR, variant: Variant | None = None) -> list[Applied]:
    """Apply every migration not yet applied; return what was applied now (empty when up to date).

    ``variant`` forces the path (tests); by default it is detected from the server.
    """
    migrations = discover(sql_dir)
    applied_now: list[Applied] = []
    with psycopg.connect(conninfo, autocommit=False) as conn:
        chosen: Variant = variant or ("timescale" if timescale_available(conn) else "plain")
        with conn.transaction():
            conn.execute("SELECT pg_advisory_xact_lock(%s)", (_LOCK_ID,))
            conn.execute(
                """CREATE TABLE IF NOT EXISTS schema_migrations (
                       version integer PRIMARY KEY, name text NOT NULL, variant text NOT NULL,
                       checksum text NOT NULL, applied_at timestamptz NOT NULL DEFAULT now())"""
            )
            done = {
                row[0]: (row[1], row[2])
                for row in conn.execute("SELECT version, variant, checksum FROM schema_migrations")
            }
            for mig in migrations:
                if mig.version in done:
                    was_variant, was_sum = done[mig.version]
                    if mig.checksum(was_variant) != was_sum:
                        raise HaltAndAlert(
                            f"migration {mig.version:04d}_{mig.name} changed after it was applied "
                            f"(variant {was_variant})",
                            "Restore the original file and put the change in a new numbered migration.",
                        )
                    continue
                for path in mig.files(chosen):
                    conn.execute(path.read_text(encoding="utf-8"))
                conn.execute(
                    "INSERT INTO schema_migrations (version, name, variant, checksum) VALUES (%s, %s, %s, %s)",
                    (mig.version, mig.name, chosen, mig.checksum(chosen)),
                )
                applied_now.append(Applied(mig.version, mig.name, chosen))
    return applied_now


def status(conninfo: str) -> list[tuple[int, str, str]]:
    """(version, name, variant) of every applied migration."""
    with psycopg.connect(conninfo) as conn:
        exists = conn.execute("SELECT to_regclass('schema_migrations') IS NOT NULL").fetchone()
        if not exists or not exists[0]:
            return []
        return [
            (int(r[0]), str(r[1]), str(r[2]))
            for r in conn.execute("SELECT version, name, variant FROM schema_migrations ORDER BY version")
        ]
