"""HTTP routes generated from the operations: decode, authenticate, call, render.

A request type's fields come from the path (``{name}`` segments of the operation's path)
and from the body (POST, PUT) or the query string (GET, DELETE), by their wire names. A
body or query naming a path field is refused as an unknown field, so a request can never
say one account in its path and another in its body.
"""

from __future__ import annotations

from typing import Any

import msgspec
from aiohttp import web

from satellite.api.operation import Operation
from satellite.errors import InvalidInput, MalformedJson
from satellite.http.auth import caller
from satellite.http.body import convert, render
from satellite.http.keys import SERVICES
from satellite_protocol.untrusted import decode

_NO_BODY = (b"", b"null")
BODY_METHODS = ("POST", "PUT")


class MalformedBody(web.HTTPBadRequest):
    pass


def path_fields(op: Operation[Any, Any]) -> list[str]:
    """The wire names of the request fields the path holds."""
    names = (field.encode_name for field in msgspec.structs.fields(op.request))
    return [name for name in names if "{" + name + "}" in op.path]


async def _parameters(request: web.Request, op: Operation[Any, Any]) -> dict[str, Any]:
    """The body's (or query string's) fields, checked not to name a path field."""
    if op.method in BODY_METHODS:
        raw = await request.read()  # bounded by the app's client_max_size (413 beyond it)
        try:
            given = decode(raw if raw.strip() not in _NO_BODY else b"{}", dict[str, Any])
        except MalformedJson as exc:
            raise MalformedBody(text=exc.detail) from exc
    else:
        given = dict(request.query)
    for name in request.match_info:
        if name in given:
            raise InvalidInput(f"unknown field `{name}`", field=name)
    return {**given, **request.match_info}


def handler(op: Operation[Any, Any]) -> Any:
    async def handle(request: web.Request) -> web.Response:
        principal = await caller(request)
        typed = convert(await _parameters(request, op), op.request)
        answer = await op(request.app[SERVICES], principal, typed)
        response = render(answer)
        if op.no_store:
            response.headers["Cache-Control"] = "no-store"
        return response

    handle.__name__ = op.name
    return handle
