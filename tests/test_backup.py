"""``satellite backup`` and ``satellite restore``: a product registered before the backup
keeps reporting to the server restored from it, its token pin holding; a backup that is
not this passphrase's, cut short or changed, and a restore onto a state directory or a
database in use, are refused in one line with nothing written."""

from __future__ import annotations

import shutil
import stat
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import asyncpg
import pytest

from satellite.config import DatabaseSettings, Settings
from satellite.crypto.keys import KeyPaths, ensure_tls_certificate
from satellite.wiring import Runtime, load_runtime
from tests.conftest import ENHANCED, Api, dsn_for
from tests.helpers.api import new_token, setup_voice
from tests.helpers.cli import Cli, query, toml_config
from tests.test_agent_https import https_agent, serve_tls

PASSPHRASE = "correct horse battery staple"
ENV = {"SATELLITE_BACKUP_PASSPHRASE": PASSPHRASE}


def source_state(state_dir: Path, tmp_path: Path) -> KeyPaths:
    """A state directory with the test server's keys (those ``runtime`` serves with) and a
    TLS certificate of its CA, as ``satellite init`` leaves one."""
    paths = KeyPaths(tmp_path / "source-state")
    shutil.copytree(state_dir / "keys", paths.keys_dir)
    ensure_tls_certificate(paths, ["127.0.0.1"])
    return paths


def take_backup(source: KeyPaths, dsn: str, tmp_path: Path) -> Path:
    cli = Cli(toml_config(tmp_path / "source.toml", source.root, dsn), tmp_path)
    out = tmp_path / "satellite.backup"
    result = cli("backup", "--out", str(out), env=ENV).ok()
    assert str(out) in result.out
    return out


def restored_tables(dsn: str) -> int:
    rows = query(dsn, "SELECT count(*) AS n FROM pg_tables WHERE schemaname = 'public'")
    return int(rows[0]["n"])


async def test_a_product_keeps_reporting_to_the_restored_server(
    admin: Api, runtime: Runtime, state_dir: Path, db_dsn: str, fresh_db: str, tmp_path: Path
) -> None:
    source = source_state(state_dir, tmp_path)
    await setup_voice(admin, enhanced=5)
    token = await new_token(admin)
    async with serve_tls(runtime, source) as url:
        agent = https_agent(tmp_path, url, None)  # no CA file: the token's pin is the trust
        state = await agent.register(token)
        state = await agent.report_usage({ENHANCED: 2})
    assert state.authorization is not None
    assert state.authorization["state"] == "AUTHORIZED"

    out = take_backup(source, db_dsn, tmp_path)
    assert stat.S_IMODE(out.stat().st_mode) == 0o600
    assert b"BEGIN PRIVATE KEY" not in out.read_bytes()

    target = KeyPaths(tmp_path / "restored-state")
    cli = Cli(toml_config(tmp_path / "restored.toml", target.root, fresh_db), tmp_path)
    cli("restore", str(out), env=ENV).ok()
    for path in source.keys_dir.iterdir():
        assert (target.keys_dir / path.name).read_bytes() == path.read_bytes()
    assert target.tls_cert.read_bytes() == source.tls_cert.read_bytes()
    assert stat.S_IMODE(target.ca_key.stat().st_mode) == 0o600

    # A new app on the restored state and database, where the old one was: same product,
    # its old state, the TLS certificate verified through the CA its token pinned.
    settings = Settings(
        state_dir=str(target.root),
        listen=["127.0.0.1:0"],
        database=DatabaseSettings(dsn=fresh_db, pool_min_size=1, pool_max_size=5),
    )
    async with serve_tls(load_runtime(settings, fresh_db), target) as url:
        state = agent.state
        assert state.transport.ca_file is None
        state.transport.url = url
        agent.save(state)
        state = await agent.report_usage({ENHANCED: 4})
    assert state.registration == "registered"
    assert state.authorization is not None
    assert state.authorization["state"] == "AUTHORIZED"
    conn = await asyncpg.connect(fresh_db)
    try:
        rows = await conn.fetch("SELECT tag, count FROM product_usage")
    finally:
        await conn.close()
    assert [(r["tag"], r["count"]) for r in rows] == [(ENHANCED, 4)]


def damaged(out: Path, how: str) -> None:
    data = bytearray(out.read_bytes())
    if how == "truncated":
        out.write_bytes(bytes(data[: len(data) - 40]))
    elif how == "tampered":
        data[len(data) // 2] ^= 0x01
        out.write_bytes(bytes(data))


@pytest.mark.parametrize(
    ("how", "message"),
    [
        ("wrong passphrase", "does not open with this passphrase"),
        ("truncated", "is truncated"),
        ("tampered", "was changed or is damaged"),
    ],
)
def test_a_backup_that_does_not_authenticate_is_refused_with_nothing_written(
    how: str, message: str, state_dir: Path, db_dsn: str, fresh_db: str, tmp_path: Path
) -> None:
    out = take_backup(source_state(state_dir, tmp_path), db_dsn, tmp_path)
    damaged(out, how)
    target = tmp_path / "restored-state"
    cli = Cli(toml_config(tmp_path / "restored.toml", target, fresh_db), tmp_path)
    env = (
        {"SATELLITE_BACKUP_PASSPHRASE": "not the passphrase"} if how == "wrong passphrase" else ENV
    )
    line = cli("restore", str(out), env=env).one_error_line()
    assert message in line
    assert not target.exists()
    assert restored_tables(fresh_db) == 0


def test_a_restore_onto_a_state_directory_or_database_in_use_is_refused(
    state_dir: Path, db_dsn: str, fresh_db: str, tmp_path: Path
) -> None:
    source = source_state(state_dir, tmp_path)
    out = take_backup(source, db_dsn, tmp_path)
    before = {p: p.read_bytes() for p in source.keys_dir.iterdir()}

    onto_used = Cli(toml_config(tmp_path / "used.toml", source.root, fresh_db), tmp_path)
    line = onto_used("restore", str(out), env=ENV).one_error_line()
    assert "is not empty" in line
    assert {p: p.read_bytes() for p in source.keys_dir.iterdir()} == before
    assert restored_tables(fresh_db) == 0

    empty = tmp_path / "empty-state"
    empty.mkdir()
    onto_used_db = Cli(toml_config(tmp_path / "used-db.toml", empty, db_dsn), tmp_path)
    line = onto_used_db("restore", str(out), env=ENV).one_error_line()
    assert "database is not empty" in line
    assert list(empty.iterdir()) == []


def test_the_passphrase_never_comes_from_the_command_line(
    state_dir: Path, db_dsn: str, tmp_path: Path
) -> None:
    source = source_state(state_dir, tmp_path)
    cli = Cli(toml_config(tmp_path / "source.toml", source.root, db_dsn), tmp_path)
    out = tmp_path / "satellite.backup"
    line = cli("backup", "--out", str(out)).one_error_line()
    assert "--passphrase-file" in line
    short = tmp_path / "short"
    short.write_text("short\n")
    line = cli("backup", "--out", str(out), "--passphrase-file", str(short)).one_error_line()
    assert "at least 8 characters" in line
    assert not out.exists()
    good = tmp_path / "passphrase"
    good.write_text(PASSPHRASE + "\n")
    cli("backup", "--out", str(out), "--passphrase-file", str(good)).ok()
    assert out.exists()
    assert list(tmp_path.glob(".satellite.backup.partial-*")) == []


def test_the_embedded_database_is_backed_up_and_restored(tmp_path: Path) -> None:
    """With no database.dsn: pg_dump and pg_restore of the embedded wheel, through the
    embedded server's private socket, into a new state directory's own server."""
    source = tmp_path / "s"  # short paths: the server's socket lives in the state directory
    cli = Cli(toml_config(tmp_path / "source.toml", source, None), tmp_path)
    cli("init").ok()
    cli("account", "create", "Acme").ok()
    out = tmp_path / "embedded.backup"
    cli("backup", "--out", str(out), env=ENV).ok()

    target = tmp_path / "r"
    restored = Cli(toml_config(tmp_path / "restored.toml", target, None), tmp_path)
    restored("restore", str(out), env=ENV).ok()
    assert (target / "pgdata").is_dir()
    for name in ("keys/ca.key", "keys/token.key", "tls/server.key"):
        assert (target / name).read_bytes() == (source / name).read_bytes()
    for command in (("account", "list", "--json"), ("client", "list", "--json")):
        assert restored(*command).json() == cli(*command).json()
    line = restored("restore", str(out), env=ENV).one_error_line()
    assert "is not empty" in line


def test_a_database_pg_dump_cannot_read_is_one_line_and_no_file(
    state_dir: Path, db_dsn: str, tmp_path: Path
) -> None:
    source = source_state(state_dir, tmp_path)
    gone = dsn_for(db_dsn, "satellite_no_such_database")
    cli = Cli(toml_config(tmp_path / "source.toml", source.root, gone), tmp_path)
    out = tmp_path / "satellite.backup"
    line = cli("backup", "--out", str(out), env=ENV).one_error_line()
    assert "pg_dump failed" in line
    assert "satellite_no_such_database" in line
    assert list(tmp_path.glob("*.backup*")) == []
    assert list(tmp_path.glob(".satellite.backup*")) == []


def as_role(dsn: str, role: str) -> str:
    parts = urlsplit(dsn)
    host = parts.netloc.rsplit("@", 1)[-1]
    return urlunsplit(parts._replace(netloc=f"{role}@{host}"))


def test_a_restore_that_fails_part_way_leaves_nothing_behind(
    state_dir: Path, db_dsn: str, fresh_db: str, tmp_path: Path
) -> None:
    """The database's role may not create tables: pg_restore fails, its one transaction
    is rolled back, the key files already written are removed."""
    out = take_backup(source_state(state_dir, tmp_path), db_dsn, tmp_path)
    role = f"no_create_{tmp_path.name[-12:].replace('-', '_')}".lower()
    query(fresh_db, f'CREATE ROLE "{role}" LOGIN')
    try:
        target = tmp_path / "restored-state"
        cli = Cli(toml_config(tmp_path / "r.toml", target, as_role(fresh_db, role)), tmp_path)
        line = cli("restore", str(out), env=ENV).one_error_line()
        assert "pg_restore failed" in line
        assert "permission denied" in line
        assert not target.exists()
        assert restored_tables(fresh_db) == 0
    finally:
        query(fresh_db, f'DROP ROLE "{role}"')


def test_a_database_holding_only_a_function_is_not_empty(
    state_dir: Path, db_dsn: str, fresh_db: str, tmp_path: Path
) -> None:
    out = take_backup(source_state(state_dir, tmp_path), db_dsn, tmp_path)
    query(fresh_db, "CREATE FUNCTION sync_stamp_product() RETURNS int LANGUAGE sql AS 'SELECT 1'")
    target = tmp_path / "restored-state"
    cli = Cli(toml_config(tmp_path / "r.toml", target, fresh_db), tmp_path)
    line = cli("restore", str(out), env=ENV).one_error_line()
    assert "database is not empty" in line
    assert not target.exists()


def test_a_backup_to_a_folder_that_is_not_there_is_one_line_naming_it(
    state_dir: Path, db_dsn: str, tmp_path: Path
) -> None:
    source = source_state(state_dir, tmp_path)
    cli = Cli(toml_config(tmp_path / "source.toml", source.root, db_dsn), tmp_path)
    out = tmp_path / "no-such-folder" / "satellite.backup"
    line = cli("backup", "--out", str(out), env=ENV).one_error_line()
    assert f"{out.parent} is not a folder" in line, line
    assert "partial" not in line, line  # not the name of the file it would have written first
    (tmp_path / "a-file").write_text("", "utf-8")
    line = cli("backup", "--out", str(tmp_path / "a-file" / "x"), env=ENV).one_error_line()
    assert "is not a folder" in line, line


def test_a_backup_file_that_cannot_be_made_is_one_line_naming_it(
    state_dir: Path, db_dsn: str, tmp_path: Path
) -> None:
    source = source_state(state_dir, tmp_path)
    cli = Cli(toml_config(tmp_path / "source.toml", source.root, db_dsn), tmp_path)
    # A name the file system takes, but not with the partial file's prefix and suffix.
    out = tmp_path / ("b" * 250)
    line = cli("backup", "--out", str(out), env=ENV).one_error_line()
    assert f"cannot write {out}: File name too long" in line, line
    assert list(tmp_path.glob("*bbbb*")) == []
