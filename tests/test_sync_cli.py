"""Sync from the command line, as the operators of a satellite and of its upstream do it,
and an import killed in the middle."""

from __future__ import annotations

import json
import signal
import stat
import subprocess
import time
from pathlib import Path

import pytest

from tests.conftest import ENHANCED, satellite_exe
from tests.helpers.cli import Cli, query, sync_config

TIMEOUT = 60


@pytest.fixture
def site(tmp_path: Path, state_dir: Path, db_dsn: str) -> Cli:
    return Cli(
        sync_config(
            tmp_path / "site.toml", state_dir, db_dsn, "satellite", tmp_path / "site-spool"
        ),
        tmp_path,
    )


@pytest.fixture
def upstream(tmp_path: Path, upstream_state_dir: Path, upstream_dsn: str) -> Cli:
    return Cli(
        sync_config(
            tmp_path / "upstream.toml",
            upstream_state_dir,
            upstream_dsn,
            "upstream",
            tmp_path / "upstream-spool",
        ),
        tmp_path,
    )


def register_by_files(site: Cli, upstream: Cli, tmp_path: Path) -> None:
    upstream("account", "create", "Acme").ok()
    upstream("va", "create", "Acme", "Voice").ok()
    token = upstream("sync", "token", "create", "--account", "Acme").ok().out.strip()
    assert token.startswith("sat-")
    site("account", "create", "Site").ok()
    request, answer = tmp_path / "registration.request", tmp_path / "registration.answer"
    out = site("sync", "register", "--token", token, "--out", str(request)).ok().out
    assert "carry it to the upstream" in out
    # The request holds the token: only its owner may read it (whatever the umask).
    assert stat.S_IMODE(request.stat().st_mode) == 0o600
    assert token in request.read_text()
    out = upstream("sync", "answer", "--in", str(request), "--out", str(answer)).ok().out
    assert "registration answered" in out
    fingerprint = upstream("sync", "fingerprint").ok().out.strip()
    wrong = ("A" if fingerprint[0] != "A" else "B") + fingerprint[1:]
    line = site(
        "sync", "register", "--answer", str(answer), "--upstream-fingerprint", wrong
    ).one_error_line()
    assert "does not come from that upstream" in line
    out = (
        site("sync", "register", "--answer", str(answer), "--upstream-fingerprint", fingerprint)
        .ok()
        .out
    )
    assert "registered as satellite" in out
    assert "(disconnected)" in out
    status = json.loads(site("sync", "status", "--json").ok().out)
    assert status["upstreamFingerprint"] == fingerprint


def test_disconnected_mode_by_the_command_line(
    site: Cli, upstream: Cli, tmp_path: Path, db_dsn: str
) -> None:
    register_by_files(site, upstream, tmp_path)
    upstream("license", "add", "Acme", "Voice", "--tag", ENHANCED, "--quantity", "12").ok()

    request, answer = tmp_path / "sync.request", tmp_path / "sync.answer"
    assert "request 1 written" in site("sync", "export", "--out", str(request)).ok().out
    upstream("sync", "answer", "--in", str(request), "--out", str(answer)).ok()
    out = site("sync", "import", str(answer)).ok().out
    assert "synced (request 1)" in out
    assert "added 1" in out
    # The same answer again changes nothing; an altered one is refused in one line.
    assert "nothing changed" in site("sync", "import", str(answer)).ok().out
    altered = tmp_path / "altered.answer"
    altered.write_bytes(answer.read_bytes().replace(b'"quantity":12', b'"quantity":99'))
    line = site("sync", "import", str(altered)).one_error_line()
    assert "signature does not verify" in line
    # A request is not an answer.
    assert "not an upstream's answer" in site("sync", "import", str(request)).one_error_line()

    pool = json.loads(site("license", "pool", "Site", "Voice", "--json").ok().out)
    assert [(x["quantity"], x["source"]) for x in pool["licenses"]] == [(12, "upstream")]
    status = json.loads(site("sync", "status", "--json").ok().out)
    assert status["mode"] == "disconnected"
    assert status["appliedSequence"] == status["requestSequence"] == 1
    assert status["history"][0]["outcome"] == "failure"  # the altered answer
    assert "signature does not verify" in status["history"][0]["error"]
    satellites = json.loads(upstream("sync", "satellites", "--account", "Acme", "--json").out)
    assert [s["lastSequence"] for s in satellites["satellites"]] == [1]
    # The upstream's line is read-only at the satellite.
    line_id = str(pool["licenses"][0]["id"])
    line = site(
        "license", "update", "Site", "Voice", line_id, "--tag", ENHANCED, "--quantity", "1"
    ).one_error_line()
    assert "comes from the upstream" in line
    assert query(db_dsn, "SELECT quantity FROM license_lines")[0]["quantity"] == 12


def test_an_import_killed_in_the_middle_leaves_nothing_half_applied(
    site: Cli, upstream: Cli, tmp_path: Path, db_dsn: str, upstream_dsn: str
) -> None:
    register_by_files(site, upstream, tmp_path)
    lines = 50_000  # enough that applying them takes a while (a second or more)
    query(
        upstream_dsn,
        "INSERT INTO license_lines (virtual_account_id, tag, quantity, license_type) "
        "SELECT (SELECT id FROM virtual_accounts WHERE name = 'Voice'), $1, n, 'PERPETUAL' "
        "FROM generate_series(1, $2) AS n",
        ENHANCED,
        lines,
    )
    request, answer = tmp_path / "sync.request", tmp_path / "sync.answer"
    site("sync", "export", "--out", str(request)).ok()
    upstream("sync", "answer", "--in", str(request), "--out", str(answer)).ok()

    importing = subprocess.Popen(
        [satellite_exe(), "--config", str(site.config), "sync", "import", str(answer)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        env=site.env(),
    )
    try:
        # Kill it once its transaction has written lines it has not committed.
        deadline = time.monotonic() + TIMEOUT
        seen = False
        while time.monotonic() < deadline and importing.poll() is None:
            busy = query(
                db_dsn,
                "SELECT count(*) AS n FROM pg_stat_activity WHERE datname = current_database() "
                "AND pid <> pg_backend_pid() AND xact_start IS NOT NULL "
                "AND query ILIKE '%license_lines%'",
            )[0]["n"]
            if busy:
                seen = True
                break
            time.sleep(0.02)
        assert seen, "the import never started applying lines"
        assert importing.poll() is None, "the import finished before it could be killed"
        importing.send_signal(signal.SIGKILL)
        importing.wait(timeout=TIMEOUT)
    finally:
        if importing.poll() is None:
            importing.kill()
            importing.wait(timeout=TIMEOUT)
    assert importing.returncode == -signal.SIGKILL

    def state() -> tuple[int, int, int]:
        [row] = query(
            db_dsn,
            "SELECT (SELECT applied_sequence FROM sync_links) AS applied, "
            "(SELECT count(*) FROM license_lines) AS lines, "
            "(SELECT count(*) FROM sync_history WHERE outcome = 'success' "
            " AND operation = 'import') AS imports",
        )
        return int(row["applied"]), int(row["lines"]), int(row["imports"])

    # PostgreSQL rolls the killed session's transaction back: not one line, no
    # acknowledgement (wait, bounded, until the server noticed the session is gone).
    deadline = time.monotonic() + TIMEOUT
    while (
        time.monotonic() < deadline
        and query(
            db_dsn,
            "SELECT count(*) AS n FROM pg_stat_activity WHERE datname = current_database() "
            "AND pid <> pg_backend_pid() AND xact_start IS NOT NULL",
        )[0]["n"]
    ):
        time.sleep(0.05)
    assert state() == (0, 0, 0)

    # The same file again applies in full.
    assert "synced (request 1)" in site("sync", "import", str(answer)).ok().out
    assert state() == (1, lines, 1)


def test_sync_register_out_does_not_write_into_a_file_someone_else_prepared(
    site: Cli, upstream: Cli, tmp_path: Path
) -> None:
    """--out into a shared directory: another user there creates the temporary file of a
    known name first and keeps it open; what was written into it (the token) was theirs."""
    upstream("account", "create", "Acme").ok()
    token = upstream("sync", "token", "create", "--account", "Acme").ok().out.strip()
    site("account", "create", "Site").ok()
    shared = tmp_path / "shared"
    shared.mkdir(mode=0o777)
    request = shared / "registration.request"
    prepared = shared / f".{request.name}.partial"
    prepared.touch(mode=0o666)
    with prepared.open("rb") as kept_open:
        site("sync", "register", "--token", token, "--out", str(request)).ok()
        assert token.encode() not in kept_open.read()
    assert token in request.read_text()
    assert stat.S_IMODE(request.stat().st_mode) == 0o600
