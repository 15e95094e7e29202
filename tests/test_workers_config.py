"""``workers`` and ``--workers``: the values refused in one line, what "auto" comes to, the
connections every worker's pool needs; the leader told of a renewed certificate."""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import socket
import subprocess
from pathlib import Path

import pytest
from cryptography import x509

from satellite.config import DatabaseSettings, Settings, worker_count
from satellite.crypto.keys import KeyPaths, ensure_server_keys, ensure_tls_certificate
from satellite.errors import ConfigError
from satellite.storage.db import Database
from satellite.tls import ServerTls, host_names
from satellite.workers_plan import Plan, fit_connections, plan, refuse_taken_addresses
from tests.conftest import satellite_exe
from tests.helpers.cli import query
from tests.helpers.daemon import START_TIMEOUT, base_env, free_port
from tests.test_backup import as_role


@pytest.mark.parametrize(
    "value", ["0", "65", "many", "-1", " 2", "\uff11", "", "99999999999999999999"]
)
def test_a_bad_workers_value_is_one_line(tmp_path: Path, value: str) -> None:
    done = subprocess.run(
        [satellite_exe(), "serve", "--state-dir", str(tmp_path / "state"), "--workers", value],
        env=base_env(tmp_path),
        capture_output=True,
        text=True,
        timeout=START_TIMEOUT,
        check=False,
    )
    assert done.returncode != 0
    assert done.stderr.splitlines() == [
        f'error: --workers: {value!r} is not "auto" or a number of 1 to 64'
    ]
    assert not (tmp_path / "state").exists(), "nothing is started or created"


def test_a_bad_workers_setting_names_it(tmp_path: Path) -> None:
    config = tmp_path / "satellite.toml"
    config.write_text("workers = 0\n", "utf-8")
    done = subprocess.run(
        [satellite_exe(), "--config", str(config), "serve", "--state-dir", str(tmp_path / "s")],
        env=base_env(tmp_path),
        capture_output=True,
        text=True,
        timeout=START_TIMEOUT,
        check=False,
    )
    assert done.returncode != 0
    [line] = done.stderr.splitlines()
    assert line.startswith(f"error: {config}: workers: "), line


@pytest.mark.unit
def test_auto_is_a_worker_per_core_on_a_bigger_host() -> None:
    assert [worker_count("auto", cores) for cores in (1, 2, 3, 4, 8, 64)] == [1, 1, 3, 4, 8, 8]
    assert worker_count(3) == 3


def test_workers_whose_pools_the_database_cannot_hold_are_refused(
    tmp_path: Path, db_dsn: str
) -> None:
    max_connections = int(query(db_dsn, "SHOW max_connections")[0]["max_connections"])
    pool = max_connections // 2 + 1  # two of them are over the limit
    config = tmp_path / "satellite.toml"
    config.write_text(f"[database]\ndsn = {json.dumps(db_dsn)}\npool_max_size = {pool}\n", "utf-8")
    port = free_port(socket.AF_INET, "127.0.0.1")
    serve = ["serve", "--state-dir", str(tmp_path / "s"), "--listen", f"127.0.0.1:{port}"]
    done = subprocess.run(
        [satellite_exe(), "--config", str(config), *serve, "--plain-http", "--workers", "2"],
        env=base_env(tmp_path),
        capture_output=True,
        text=True,
        timeout=START_TIMEOUT,
        check=False,
    )
    assert done.returncode != 0
    assert done.stderr.splitlines()[-1] == (
        f"error: workers: 2 workers of database.pool_max_size {pool} (+ 1 of the parent) "
        f"need {2 * pool + 1} connections, the database's max_connections is "
        f"{max_connections}: lower one or the other"
    ), done.stderr
    assert "daemon.worker_started" not in done.stderr


async def test_auto_starts_as_many_workers_as_the_database_has_connections_for(
    db_dsn: str,
) -> None:
    """ "auto" on a bigger host: the workers whose pools fit in max_connections; a number
    that does not fit is refused (the daemon test above)."""
    probe = await Database.connect(db_dsn, DatabaseSettings(pool_min_size=1, pool_max_size=1))
    try:
        async with probe.connection() as conn:
            limit = int(await conn.fetchval("SHOW max_connections"))
        pool = (limit - 1) // 3  # three pools and the parent's connection fit, four do not
        settings = Settings(database=DatabaseSettings(dsn=db_dsn, pool_max_size=pool))
        assert await fit_connections(probe, settings, Plan(8, auto=True)) == 3
        assert await fit_connections(probe, settings, Plan(3, auto=False)) == 3
        with pytest.raises(ConfigError, match="lower one or the other"):
            await fit_connections(probe, settings, Plan(4, auto=False))
    finally:
        await probe.close()


@pytest.mark.unit
def test_auto_is_one_where_several_cannot_share_the_addresses_and_a_number_is_refused() -> None:
    zero = Settings(listen=["127.0.0.1:0"], workers=4)
    with pytest.raises(ConfigError, match=r"^workers: listen: 127.0.0.1:0: port 0 with 4"):
        plan(zero, None)
    assert plan(zero, "1") == Plan(1, auto=False)
    fixed = Settings(listen=["127.0.0.1:8443"])
    assert plan(fixed, "3") == Plan(3, auto=False)
    # "auto" (the default) on 8 cores: 8 workers, or 1 where a port is 0.
    assert plan(fixed, None, cores=8) == Plan(8, auto=True)
    assert plan(Settings(listen=["127.0.0.1:0"]), None, cores=8) == Plan(1, False)
    with pytest.raises(ConfigError, match=r"^--workers: '0' is not"):
        plan(fixed, "0")


async def test_the_leader_is_told_when_it_serves_a_renewed_certificate(tmp_path: Path) -> None:
    """What makes the leader signal its parent (which passes it on to every worker): a new
    certificate served, and only then."""
    settings = Settings(state_dir=str(tmp_path / "state"), listen=["127.0.0.1:8443"])
    paths = KeyPaths(settings.state_path)
    ensure_server_keys(paths)
    now = dt.datetime.now(dt.UTC)
    # Issued 370 days ago: 27 days left, due.
    assert ensure_tls_certificate(paths, host_names(settings), now=now - dt.timedelta(days=370))
    tls = ServerTls.for_settings(settings)
    assert tls is not None
    told = asyncio.Event()
    renewals: list[bytes] = []

    def renewed() -> None:
        renewals.append(paths.tls_cert.read_bytes())
        told.set()

    checks = asyncio.create_task(tls.renew_periodically(lambda: dt.timedelta(0), renewed))
    try:
        await asyncio.wait_for(told.wait(), 30)
        for _ in range(20):  # more checks: nothing is due any more
            await asyncio.sleep(0.01)
    finally:
        checks.cancel()
    assert len(renewals) == 1
    cert = x509.load_pem_x509_certificate(renewals[0])
    assert cert.not_valid_after_utc - now > dt.timedelta(days=390)


async def test_the_connections_a_role_may_open_are_those_the_workers_fit_in(
    tmp_path: Path, db_dsn: str
) -> None:
    """A role that is not a superuser cannot take the slots PostgreSQL reserves for
    superusers, nor more than its own CONNECTION LIMIT: workers whose pools fit in
    max_connections but not there would be refused connections under load."""
    role = f"workers_{tmp_path.name[-12:].replace('-', '_')}".lower()
    one = DatabaseSettings(pool_min_size=1, pool_max_size=1)
    admin = await Database.connect(db_dsn, one)
    probe: Database | None = None
    try:
        async with admin.connection() as conn:
            await conn.execute(f'CREATE ROLE "{role}" LOGIN')
            limit = int(await conn.fetchval("SHOW max_connections"))
            reserved = int(await conn.fetchval("SHOW superuser_reserved_connections"))
            reserved += int(  # (PostgreSQL 16 on)
                await conn.fetchval("SELECT current_setting('reserved_connections', true)") or 0
            )
        probe = await Database.connect(as_role(db_dsn, role), one)
        pool = (limit - 1) // 3  # three pools and the parent's fit in max_connections
        assert 3 * pool + 1 > limit - reserved, "the reserved slots leave room for three"
        settings = Settings(database=DatabaseSettings(dsn=db_dsn, pool_max_size=pool))
        assert await fit_connections(probe, settings, Plan(3, auto=True)) == 2
        with pytest.raises(ConfigError, match=f"allows {limit - reserved} connections"):
            await fit_connections(probe, settings, Plan(3, auto=False))

        async with admin.connection() as conn:
            await conn.execute(f'ALTER ROLE "{role}" CONNECTION LIMIT 7')
        settings = Settings(database=DatabaseSettings(dsn=db_dsn, pool_max_size=3))
        assert await fit_connections(probe, settings, Plan(8, auto=True)) == 2
        with pytest.raises(ConfigError, match="allows 7 connections"):
            await fit_connections(probe, settings, Plan(3, auto=False))
    finally:
        if probe is not None:
            await probe.close()
        async with admin.connection() as conn:
            await conn.execute(f'DROP ROLE "{role}"')
        await admin.close()


@pytest.mark.unit
def test_an_address_the_host_does_not_have_is_not_said_to_be_served() -> None:
    # (192.0.2.0/24 is for documentation: no interface of this host has it.)
    with pytest.raises(ConfigError) as refused:
        refuse_taken_addresses(Settings(listen=["192.0.2.1:8443"]))
    assert refused.value.detail == "listen: 192.0.2.1:8443: Cannot assign requested address"
