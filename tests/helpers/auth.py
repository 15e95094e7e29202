"""The OAuth endpoints seen raw (status, headers, body), accounts and clients to log in as,
and the problem document a refusal is."""

from __future__ import annotations

from typing import Any

import msgspec
from multidict import CIMultiDictProxy

from tests.conftest import Api, Credentials

TOKEN_PATHS = ["/backend/oauth/token", "/oauth/token"]
PROBLEM = "application/problem+json"


async def raw(
    api: Api,
    method: str,
    path: str,
    *,
    json: Any = None,
    form: dict[str, str] | None = None,
    headers: dict[str, str] | None = None,
) -> tuple[int, CIMultiDictProxy[str], Any]:
    """A request with full control over headers and body; returns status, headers, JSON."""
    sent = dict(headers or {})
    data: Any = None
    if json is not None:
        data = msgspec.json.encode(json)
        sent["Content-Type"] = "application/json"
    elif form is not None:
        data = form  # aiohttp sends a dict as application/x-www-form-urlencoded
    async with api.client.request(method, path, data=data, headers=sent) as response:
        text = await response.read()
        return response.status, response.headers, (msgspec.json.decode(text) if text else None)


async def make_account(admin: Api, name: str) -> None:
    status, body = await admin.post("/api/v1/accounts", {"name": name})
    assert status == 200, body


async def make_client(admin: Api, role: str, accounts: list[str]) -> Credentials:
    status, body = await admin.post("/api/v1/clients", {"role": role, "accounts": accounts})
    assert status == 200, body
    return Credentials(body["clientId"], body["clientSecret"])


def assert_problem(
    headers: CIMultiDictProxy[str], body: Any, status: int, field: str | None = None
) -> None:
    assert headers["Content-Type"].startswith(PROBLEM)
    assert body["status"] == status
    for member in ("type", "title", "detail"):
        assert isinstance(body[member], str)
        assert body[member]
    if field is not None:
        assert body["field"] == field
