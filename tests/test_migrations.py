"""Schema migrations on a real PostgreSQL: apply, re-run, edits, newer schemas, failures, races."""

from __future__ import annotations

import asyncio
import hashlib
import shutil
from collections.abc import AsyncIterator
from pathlib import Path

import asyncpg
import pytest

from satellite.errors import MigrationError, SchemaMismatch
from satellite.resources import migrations_dir
from satellite.storage.migrations import load_migrations, migrate, schema_status

SQL_DIR = migrations_dir()
SQL_FILES = sorted(SQL_DIR.glob("*.sql"))
# Numbers may leave gaps while branches each hold some (merged, they close up).
VERSIONS = [int(f.name.split("_")[0]) for f in SQL_FILES]
LATEST = VERSIONS[-1]


@pytest.fixture
async def conn(fresh_db: str) -> AsyncIterator[asyncpg.Connection]:
    connection = await asyncpg.connect(fresh_db)
    try:
        yield connection
    finally:
        await connection.close()


def _copy_sql(tmp_path: Path) -> Path:
    target = tmp_path / "sql"
    shutil.copytree(SQL_DIR, target)
    return target


async def _recorded(conn: asyncpg.Connection) -> list[tuple[int, str, str]]:
    rows = await conn.fetch("SELECT version, name, checksum FROM schema_migrations ORDER BY 1")
    return [(r["version"], r["name"], r["checksum"]) for r in rows]


async def _table_exists(conn: asyncpg.Connection, name: str) -> bool:
    return bool(await conn.fetchval("SELECT to_regclass($1) IS NOT NULL", name))


@pytest.mark.unit
def test_the_shipped_migrations_are_numbered_files() -> None:
    assert SQL_FILES, f"no migrations in {SQL_DIR}"
    assert SQL_FILES[0].name == "001_init.sql"
    migrations = load_migrations(SQL_DIR)
    assert [m.version for m in migrations] == VERSIONS


async def test_migrate_empty_database_applies_everything_and_records_it(
    conn: asyncpg.Connection,
) -> None:
    migrations = load_migrations(SQL_DIR)
    applied = await migrate(conn, migrations)
    assert [m.version for m in applied] == [m.version for m in migrations]

    expected = []
    for path in SQL_FILES:
        number, _, rest = path.name.partition("_")
        checksum = hashlib.sha256(path.read_bytes()).hexdigest()
        expected.append((int(number), rest.removesuffix(".sql"), checksum))
    assert await _recorded(conn) == expected
    assert await conn.fetchval("SELECT bool_and(applied_at <= now()) FROM schema_migrations")

    status = await schema_status(conn, migrations)
    assert status.current == status.latest == LATEST
    assert status.pending == []


async def test_running_migrate_again_applies_nothing(conn: asyncpg.Connection) -> None:
    migrations = load_migrations(SQL_DIR)
    await migrate(conn, migrations)
    before = await conn.fetch("SELECT * FROM schema_migrations ORDER BY version")
    assert await migrate(conn, migrations) == []
    assert await migrate(conn, load_migrations(SQL_DIR)) == []
    assert await conn.fetch("SELECT * FROM schema_migrations ORDER BY version") == before


async def test_schema_has_the_foundation_tables(conn: asyncpg.Connection) -> None:
    await migrate(conn, load_migrations(SQL_DIR))
    rows = await conn.fetch(
        "SELECT table_name FROM information_schema.tables WHERE table_schema = 'public'"
    )
    tables = {r["table_name"] for r in rows}
    expected = {
        "schema_migrations",
        "accounts",
        "virtual_accounts",
        "license_lines",
        "registration_tokens",
        "principals",
        "principal_accounts",
        "access_tokens",
        "events",
        "alerts",
    }
    assert expected <= tables, f"missing: {expected - tables}"
    # Registration tokens are kept encrypted and looked up by a digest, never in plain text.
    columns = {
        r["column_name"]
        for r in await conn.fetch(
            "SELECT column_name FROM information_schema.columns "
            "WHERE table_name = 'registration_tokens'"
        )
    }
    assert {"token_digest", "token_ciphertext"} <= columns
    assert "token" not in columns


async def test_edited_migration_is_refused(conn: asyncpg.Connection, tmp_path: Path) -> None:
    directory = _copy_sql(tmp_path)
    await migrate(conn, load_migrations(directory))
    recorded = await _recorded(conn)

    edited = directory / "001_init.sql"
    edited.write_text(edited.read_text("utf-8") + "\n-- a later edit\n", encoding="utf-8")
    changed = load_migrations(directory)
    with pytest.raises(MigrationError, match=r"001_init\.sql") as caught:
        await migrate(conn, changed)
    assert "edited" in str(caught.value)
    with pytest.raises(MigrationError, match=r"001_init\.sql"):
        await schema_status(conn, changed)
    assert await _recorded(conn) == recorded
    # Restoring the file makes the database acceptable again.
    shutil.copy(SQL_DIR / "001_init.sql", edited)
    assert await migrate(conn, load_migrations(directory)) == []


async def test_database_newer_than_the_code_is_refused(conn: asyncpg.Connection) -> None:
    migrations = load_migrations(SQL_DIR)
    await migrate(conn, migrations)
    await conn.execute(
        "INSERT INTO schema_migrations (version, name, checksum) VALUES (999, 'future', 'x')"
    )
    with pytest.raises(SchemaMismatch, match="newer"):
        await schema_status(conn, migrations)
    with pytest.raises(SchemaMismatch, match="newer") as caught:
        await migrate(conn, migrations)
    assert "999" in str(caught.value)


async def test_failing_migration_leaves_nothing_half_applied(
    conn: asyncpg.Connection, tmp_path: Path
) -> None:
    directory = _copy_sql(tmp_path)
    broken = directory / f"{LATEST + 1:03d}_broken.sql"
    broken.write_text(
        "CREATE TABLE half_done (id integer);\n"
        "INSERT INTO half_done VALUES (1);\n"
        "SELECT no_such_column FROM half_done;\n",
        encoding="utf-8",
    )
    with pytest.raises(MigrationError, match=broken.name) as caught:
        await migrate(conn, load_migrations(directory))
    assert "no_such_column" in str(caught.value)

    assert not await _table_exists(conn, "half_done")
    assert [v for v, _, _ in await _recorded(conn)] == VERSIONS
    # The lock is released and the connection usable: a fixed migration then applies.
    broken.write_text("CREATE TABLE half_done (id integer);\n", encoding="utf-8")
    applied = await migrate(conn, load_migrations(directory))
    assert [m.name for m in applied] == ["broken"]
    assert await _table_exists(conn, "half_done")


async def test_concurrent_migrations_apply_each_migration_once(
    fresh_db: str, tmp_path: Path
) -> None:
    directory = _copy_sql(tmp_path)
    # A slow migration widens the window in which an unlocked runner would collide.
    (directory / f"{LATEST + 1:03d}_slow.sql").write_text(
        "SELECT pg_sleep(0.3);\nCREATE TABLE slow_marker (id integer);\n", encoding="utf-8"
    )
    migrations = load_migrations(directory)
    conns = [await asyncpg.connect(fresh_db) for _ in range(3)]
    try:
        results = await asyncio.wait_for(
            asyncio.gather(*(migrate(c, migrations) for c in conns)), timeout=30
        )
        applied = sorted(m.version for result in results for m in result)
        assert applied == [m.version for m in migrations]
        assert [v for v, _, _ in await _recorded(conns[0])] == [m.version for m in migrations]
        # Nobody is left holding the migration lock.
        held = await conns[0].fetchval(
            "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND granted"
        )
        assert held == 0
    finally:
        for c in conns:
            await c.close()


@pytest.mark.unit
def test_load_migrations_refuses_badly_named_files(tmp_path: Path) -> None:
    (tmp_path / "1_init.sql").write_text("SELECT 1;", encoding="utf-8")
    with pytest.raises(MigrationError, match=r"1_init\.sql"):
        load_migrations(tmp_path)


@pytest.mark.unit
def test_load_migrations_refuses_two_files_with_one_number(tmp_path: Path) -> None:
    (tmp_path / "001_init.sql").write_text("SELECT 1;", encoding="utf-8")
    (tmp_path / "001_other.sql").write_text("SELECT 1;", encoding="utf-8")
    with pytest.raises(MigrationError, match="share a number"):
        load_migrations(tmp_path)


@pytest.mark.unit
def test_load_migrations_orders_by_number_not_by_file_name(tmp_path: Path) -> None:
    for name in ("002_b.sql", "999_c.sql", "1000_d.sql", "001_a.sql"):
        (tmp_path / name).write_text("SELECT 1;", encoding="utf-8")
    assert [m.version for m in load_migrations(tmp_path)] == [1, 2, 999, 1000]
