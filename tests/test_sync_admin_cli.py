"""``satellite sync`` commands that call the admin API's operations, run in process with
click's runner: satellite tokens and satellites on an upstream, status and unregister on
a satellite. Their ``--json`` is the API's answer."""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator
from pathlib import Path

import pytest
import structlog
from click.testing import CliRunner, Result

from satellite.cli import cli
from satellite.errors import Conflict, NotFound


def config(tmp_path: Path, state_dir: Path, dsn: str, role: str) -> Path:
    path = tmp_path / "satellite.toml"
    path.write_text(
        f"role = {json.dumps(role)}\nstate_dir = {json.dumps(str(state_dir))}\n"
        f"[database]\ndsn = {json.dumps(dsn)}\n",
        encoding="utf-8",
    )
    return path


def run(path: Path, *args: str) -> Result:
    return CliRunner().invoke(cli, ["--config", str(path), *args], catch_exceptions=True)


def ok(path: Path, *args: str) -> str:
    result = run(path, *args)
    assert result.exit_code == 0, (args, result.output, result.exception)
    return result.output


@pytest.fixture(autouse=True)
def logging_restored() -> Iterator[None]:
    """A command configures logging for the process (quiet, to stderr): the tests after
    these, in the same process, get theirs back."""
    saved = structlog.get_config()
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    yield
    structlog.configure(**saved)
    root.handlers[:] = handlers
    root.setLevel(level)


@pytest.fixture
def upstream(tmp_path: Path, upstream_state_dir: Path, upstream_dsn: str) -> Path:
    path = config(tmp_path, upstream_state_dir, upstream_dsn, "upstream")
    ok(path, "account", "create", "Acme")
    return path


@pytest.fixture
def site(tmp_path: Path, state_dir: Path, db_dsn: str) -> Path:
    path = config(tmp_path, state_dir, db_dsn, "satellite")
    ok(path, "account", "create", "Site")
    return path


def test_satellite_tokens_from_the_host(upstream: Path) -> None:
    created = json.loads(ok(upstream, "sync", "token", "create", "--account", "Acme", "--json"))
    assert created["token"].startswith("sat-")
    assert created["status"] == "Active"
    token_id = str(created["id"])
    # The secret is shown once: the list has it no more.
    listed = json.loads(ok(upstream, "sync", "token", "list", "--account", "Acme", "--json"))
    assert [(str(t["id"]), t["token"]) for t in listed["satelliteTokens"]] == [(token_id, None)]
    table = ok(upstream, "sync", "token", "list", "--account", "Acme").splitlines()
    assert table[0].split() == ["ID", "STATUS", "EXPIRES", "DESCRIPTION"]
    assert table[1].split()[:2] == [token_id, "Active"]

    assert ok(upstream, "sync", "token", "revoke", "--account", "Acme", token_id) == (
        f"satellite token {token_id} revoked\n"
    )
    listed = json.loads(ok(upstream, "sync", "token", "list", "--account", "Acme", "--json"))
    assert [t["status"] for t in listed["satelliteTokens"]] == ["Revoked"]
    again = run(upstream, "sync", "token", "revoke", "--account", "Acme", token_id)
    assert again.exit_code != 0
    assert isinstance(again.exception, NotFound)
    assert again.exception.field == "tokenId"


def test_satellites_from_the_host(upstream: Path) -> None:
    listed = json.loads(ok(upstream, "sync", "satellites", "--account", "Acme", "--json"))
    assert listed == {"satellites": []}
    revoked = run(upstream, "sync", "revoke", "--account", "Acme", "5a7e0000-0000-4000-8000-0")
    assert revoked.exit_code != 0
    assert isinstance(revoked.exception, NotFound)
    assert revoked.exception.field == "satelliteId"
    missing = run(upstream, "sync", "satellites", "--account", "Nobody")
    assert isinstance(missing.exception, NotFound)
    assert missing.exception.field == "account"


def test_status_and_unregister_of_an_account_not_registered(site: Path) -> None:
    # The only account may be left out.
    status = json.loads(ok(site, "sync", "status", "--json"))
    assert (status["account"], status["registered"], status["history"]) == ("Site", False, [])
    table = ok(site, "sync", "status", "--account", "Site")
    assert table.splitlines()[0].split() == ["account", "Site"]
    paged = json.loads(ok(site, "sync", "status", "--history-offset", "20", "--json"))
    assert (paged["history"], paged["historyTotal"]) == ([], 0)
    assert run(site, "sync", "status", "--history-offset", "-1").exit_code != 0
    refused = run(site, "sync", "unregister")
    assert refused.exit_code != 0
    assert isinstance(refused.exception, Conflict)
    assert "not registered" in refused.exception.detail
    # On a satellite, the upstream's commands are refused by role.
    tokens = run(site, "sync", "token", "create", "--account", "Site")
    assert isinstance(tokens.exception, Conflict)
    assert "role is satellite" in tokens.exception.detail
