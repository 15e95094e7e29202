"""Numbered SQL migrations: applied in order, each in one transaction, under an advisory lock.

Each applied migration is recorded with the SHA-256 of its text. An applied migration whose
file changed since, or a database carrying migrations this code does not know, is refused.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from pathlib import Path

import asyncpg
import structlog

from satellite.errors import MigrationError, SchemaMismatch

log = structlog.get_logger(__name__)

_FILE_RE = re.compile(r"^(\d{3,})_([a-z0-9_]+)\.sql$")
# pg_advisory_lock key: any constant shared by every satellite process on one database.
MIGRATION_LOCK_KEY = 0x5A7E_0001

_CREATE_TABLE = """
CREATE TABLE IF NOT EXISTS schema_migrations (
    version integer PRIMARY KEY,
    name text NOT NULL,
    checksum text NOT NULL,
    applied_at timestamptz NOT NULL DEFAULT now()
)
"""


@dataclass(frozen=True)
class Migration:
    version: int
    name: str
    sql: str

    @property
    def checksum(self) -> str:
        return hashlib.sha256(self.sql.encode("utf-8")).hexdigest()


@dataclass(frozen=True)
class SchemaStatus:
    current: int
    latest: int
    pending: list[Migration]


def load_migrations(directory: Path) -> list[Migration]:
    migrations: list[Migration] = []
    for path in sorted(directory.glob("*.sql")):
        match = _FILE_RE.match(path.name)
        if match is None:
            raise MigrationError(f"{path.name}: migration files are named NNN_name.sql")
        migrations.append(Migration(int(match[1]), match[2], path.read_text("utf-8")))
    migrations.sort(key=lambda m: m.version)
    versions = [m.version for m in migrations]
    if len(set(versions)) != len(versions):
        raise MigrationError(f"{directory}: two migrations share a number")
    return migrations


async def _applied(conn: asyncpg.Connection) -> dict[int, asyncpg.Record]:
    exists = await conn.fetchval("SELECT to_regclass('schema_migrations') IS NOT NULL")
    if not exists:
        return {}
    rows = await conn.fetch("SELECT version, name, checksum FROM schema_migrations")
    return {row["version"]: row for row in rows}


def _compare(migrations: list[Migration], applied: dict[int, asyncpg.Record]) -> SchemaStatus:
    known = {m.version: m for m in migrations}
    unknown = sorted(set(applied) - set(known))
    if unknown:
        raise SchemaMismatch(
            f"the database has migration {unknown[-1]}, newer than this satellite knows "
            f"(latest {max(known, default=0)}): upgrade satellite"
        )
    for version, row in applied.items():
        if row["checksum"] != known[version].checksum:
            raise MigrationError(
                f"migration {version:03d}_{row['name']}.sql was edited after it was applied; "
                "restore the original file and add a new migration instead"
            )
    pending = [m for m in migrations if m.version not in applied]
    return SchemaStatus(
        current=max(applied, default=0),
        latest=max(known, default=0),
        pending=pending,
    )


async def schema_status(conn: asyncpg.Connection, migrations: list[Migration]) -> SchemaStatus:
    return _compare(migrations, await _applied(conn))


async def migrate(conn: asyncpg.Connection, migrations: list[Migration]) -> list[Migration]:
    """Apply what is pending; return the migrations applied by this call."""
    await conn.execute("SELECT pg_advisory_lock($1)", MIGRATION_LOCK_KEY)
    try:
        await conn.execute(_CREATE_TABLE)
        status = _compare(migrations, await _applied(conn))
        for migration in status.pending:
            async with conn.transaction():
                try:
                    await conn.execute(migration.sql)
                except asyncpg.PostgresError as exc:
                    raise MigrationError(
                        f"migration {migration.version:03d}_{migration.name}.sql failed: {exc}"
                    ) from exc
                await conn.execute(
                    "INSERT INTO schema_migrations (version, name, checksum) VALUES ($1, $2, $3)",
                    migration.version,
                    migration.name,
                    migration.checksum,
                )
            log.info("migration.applied", version=migration.version, name=migration.name)
        return status.pending
    finally:
        await conn.execute("SELECT pg_advisory_unlock($1)", MIGRATION_LOCK_KEY)
