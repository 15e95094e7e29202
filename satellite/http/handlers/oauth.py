"""OAuth 2.0 token endpoint (client credentials and password grants) and revocation."""

from __future__ import annotations

from aiohttp import web

from satellite.errors import InvalidInput
from satellite.http.auth import caller
from satellite.http.body import read_json, render
from satellite.http.keys import SERVICES
from satellite.http.wire import Empty, RevokeRequest, TokenRequest, TokenResponse


async def issue_token(request: web.Request) -> web.Response:
    body = await read_json(request, TokenRequest, allow_form=True)
    auth = request.app[SERVICES].auth
    if body.grant_type == "client_credentials":
        if body.client_id is None or body.client_secret is None:
            raise InvalidInput(
                "client_credentials needs client_id and client_secret", field="client_id"
            )
        issued = await auth.client_credentials(body.client_id, body.client_secret)
    else:
        if body.username is None or body.password is None:
            raise InvalidInput("the password grant needs username and password", field="username")
        issued = await auth.password(body.username, body.password)
    response = render(TokenResponse(access_token=issued.access_token, expires_in=issued.expires_in))
    response.headers["Cache-Control"] = "no-store"
    return response


async def revoke_token(request: web.Request) -> web.Response:
    principal = await caller(request)
    body = await read_json(request, RevokeRequest, allow_form=True)
    await request.app[SERVICES].auth.revoke(principal, body.token)
    return render(Empty())
