"""The operation layer: one declaration per operation, called alike by HTTP and the CLI.

What a caller would notice: the declared access holds whoever calls (a viewer is refused
a write, an account it does not see is missing), a request built in code is held to the
limits a decoded one is, the generated routes and OpenAPI entries say what is decoded, and
``from satellite.cli import cli`` is the whole command tree.
"""

from __future__ import annotations

import subprocess
import sys
from typing import Any

import asyncpg
import pytest

from satellite.api import tokens
from satellite.api.context import Services
from satellite.api.registry import OPERATIONS
from satellite.domain.access import Principal, host_operator
from satellite.errors import Forbidden, InvalidInput, NotFound
from satellite.http.openapi import build_document
from satellite.http.operations import path_fields
from satellite.http.routes import API_PREFIXES, ROUTES
from tests.conftest import Api

VIEWER = Principal(kind="client", login="viewer", role="account-viewer", account_ids=frozenset())


async def _acme(services: Services) -> Principal:
    """Account Acme, and a viewer of it."""
    account = await services.accounts.create_account(host_operator("t"), "Acme", "", False, None)
    return Principal(
        kind="client", login="viewer", role="account-viewer", account_ids=frozenset({account.id})
    )


async def test_a_viewer_is_refused_a_write_whoever_calls(
    services: Services, db: asyncpg.Connection
) -> None:
    viewer = await _acme(services)
    request = tokens.TokenCreate(account="Acme", va="DEFAULT", description="x")
    with pytest.raises(Forbidden, match="account-viewer"):
        await tokens.create_token(services, viewer, request)
    # An account the caller does not see is missing, as one that does not exist, even for
    # an operation its role could not do anyway.
    with pytest.raises(NotFound) as missing:
        await tokens.create_token(services, VIEWER, request)
    assert missing.value.field == "account"
    assert await db.fetchval("SELECT count(*) FROM registration_tokens") == 0
    # The viewer may read.
    listed = await tokens.list_tokens(
        services, viewer, tokens.TokensQuery(account="Acme", va="DEFAULT")
    )
    assert listed.tokens == []


async def test_a_request_built_in_code_is_held_to_the_wire_limits(
    services: Services, db: asyncpg.Connection
) -> None:
    await _acme(services)
    operator = host_operator("t")
    too_long = tokens.TokenCreate(account="Acme", va="DEFAULT", description="x" * 501)
    with pytest.raises(InvalidInput) as refused:
        await tokens.create_token(services, operator, too_long)
    assert refused.value.field == "description"
    zero_uses = tokens.TokenCreate(account="Acme", va="DEFAULT", number_of_uses=0)
    with pytest.raises(InvalidInput) as refused:
        await tokens.create_token(services, operator, zero_uses)
    assert refused.value.field == "numberOfUses"
    assert await db.fetchval("SELECT count(*) FROM registration_tokens") == 0


async def test_a_body_cannot_name_another_account_than_its_path(admin: Api) -> None:
    status, body = await admin.post("/api/v1/accounts", {"name": "Acme"})
    assert status == 200, body
    status, problem = await admin.post(
        "/api/v1/accounts/Acme/virtual-accounts/DEFAULT/tokens", {"account": "Other"}
    )
    assert status == 422, problem
    assert problem["field"] == "account"
    status, listed = await admin.get("/api/v1/accounts/Acme/virtual-accounts/DEFAULT/tokens")
    assert (status, listed["tokens"]) == (200, [])


def test_every_operation_is_routed_and_documented_without_its_path_fields() -> None:
    document = build_document()
    schemas = document["components"]["schemas"]
    routed = {(r.method, r.path) for r in ROUTES}
    for op in OPERATIONS:
        assert (op.method, op.path) in routed, op.name
        fields = path_fields(op)
        assert sorted(fields) == sorted(_segments(op.path)), op.name
        for prefix in API_PREFIXES:
            entry = document["paths"][prefix + op.path][op.method.lower()]
            parameters: list[dict[str, Any]] = entry.get("parameters", [])
            in_path = [p["name"] for p in parameters if p["in"] == "path"]
            in_query = [p["name"] for p in parameters if p["in"] == "query"]
            assert sorted(in_path) == sorted(fields), op.name
            assert not set(in_query) & set(fields), op.name
            if "requestBody" in entry:
                ref = entry["requestBody"]["content"]["application/json"]["schema"]["$ref"]
                body = schemas[ref.rsplit("/", 1)[1]]
                assert not set(body.get("properties", {})) & set(fields), op.name
            if op.access.role != "account-viewer" or op.access.account_scoped:
                assert entry["security"] == [{"bearer": []}], op.name


def _segments(path: str) -> list[str]:
    return [part[1:-1] for part in path.split("/") if part.startswith("{")]


def test_importing_the_cli_gives_the_whole_command_tree() -> None:
    """In a fresh interpreter: nothing but the import itself may add commands."""
    script = (
        "import click\n"
        "from satellite.cli import cli\n"
        "def walk(group, prefix=''):\n"
        "    for name, command in sorted(group.commands.items()):\n"
        "        print(prefix + name)\n"
        "        if isinstance(command, click.Group):\n"
        "            walk(command, prefix + name + ' ')\n"
        "walk(cli)\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, check=True, timeout=60
    )
    commands = set(done.stdout.split("\n"))
    for expected in (
        "serve",
        "init",
        "migrate",
        "account create",
        "va list",
        "token create",
        "token revoke",
        "license transfer",
        "device list",
        "client create",
        "user create",
        "events",
        "alert list",
        "reservation reserve",
        "export list",
        "sync status",
        "sync token create",
    ):
        assert expected in commands, expected
