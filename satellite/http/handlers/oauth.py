"""OAuth 2.0 token endpoint (client credentials and password grants) and revocation."""

from __future__ import annotations

import base64
from typing import Any
from urllib.parse import unquote

from aiohttp import web

from satellite.errors import InvalidInput, OAuthRequestError, UnsupportedGrantType
from satellite.http.auth import caller
from satellite.http.body import convert, read_json, render
from satellite.http.keys import SERVICES
from satellite.http.wire import Empty, RevokeRequest, TokenRequest, TokenResponse
from satellite_protocol.untrusted import NUL


def _basic_credentials(request: web.Request) -> tuple[str, str] | None:
    """Client id and secret from ``Authorization: Basic`` (RFC 6749 section 2.3.1)."""
    scheme, _, value = request.headers.get("Authorization", "").partition(" ")
    if scheme.lower() != "basic":
        return None
    try:
        decoded = base64.b64decode(value.strip(), validate=True).decode("utf-8")
    except ValueError:  # not base64 (binascii.Error), not ASCII, not UTF-8 once decoded
        raise OAuthRequestError("the Basic authorization header is not valid") from None
    client_id, sep, secret = decoded.partition(":")
    if not sep:
        raise OAuthRequestError("the Basic authorization header is not client_id:secret")
    client_id, secret = unquote(client_id), unquote(secret)
    if NUL in client_id or NUL in secret:
        raise OAuthRequestError("the Basic authorization header holds U+0000 (NUL)")
    return client_id, secret


async def _grant_parameters(request: web.Request) -> TokenRequest:
    """The grant's parameters from the body (JSON or a form) and the query string: public
    scripts send ``?grant_type=client_credentials&client_id=...&client_secret=...`` with
    no body. (The query string never reaches a log: the request log has the path only.)"""
    if not request.query:
        return await read_json(request, TokenRequest, allow_form=True)
    body: dict[str, Any] = await read_json(request, dict, allow_form=True)
    query = dict(request.query)
    for name in sorted(body.keys() & query.keys()):
        if body[name] != query[name]:
            raise OAuthRequestError(
                f"`{name}` is given twice, differently, in the query string and the body",
                field=name,
            )
    return convert({**query, **body}, TokenRequest)


async def _token_request(request: web.Request) -> TokenRequest:
    try:
        return await _grant_parameters(request)
    except InvalidInput as exc:
        if exc.field == "grant_type" and "Invalid enum value" in exc.detail:
            raise UnsupportedGrantType(field="grant_type") from exc
        raise OAuthRequestError(exc.detail, field=exc.field) from exc


async def issue_token(request: web.Request) -> web.Response:
    body = await _token_request(request)
    auth = request.app[SERVICES].auth
    if body.grant_type == "client_credentials":
        basic = _basic_credentials(request)
        client_id, client_secret = basic or (body.client_id, body.client_secret)
        if client_id is None or client_secret is None:
            raise OAuthRequestError(
                "client_credentials needs client_id and client_secret", field="client_id"
            )
        issued = await auth.client_credentials(client_id, client_secret, request.remote)
    else:
        if body.username is None or body.password is None:
            raise OAuthRequestError(
                "the password grant needs username and password", field="username"
            )
        issued = await auth.password(body.username, body.password, request.remote)
    response = render(TokenResponse(access_token=issued.access_token, expires_in=issued.expires_in))
    response.headers["Cache-Control"] = "no-store"
    return response


async def revoke_token(request: web.Request) -> web.Response:
    principal = await caller(request)
    body = await read_json(request, RevokeRequest, allow_form=True)
    await request.app[SERVICES].auth.revoke(principal, body.token)
    return render(Empty())
