"""The caller of an admin API request, from its bearer token."""

from __future__ import annotations

from aiohttp import web

from satellite.domain.access import Principal
from satellite.errors import InvalidToken, NotAuthenticated
from satellite.http.keys import SERVICES

MAX_TOKEN_LENGTH = 512


def bearer_token(request: web.Request) -> str:
    header = request.headers.get("Authorization", "")
    scheme, _, token = header.partition(" ")
    token = token.strip()
    if scheme.lower() != "bearer" or not token:
        raise NotAuthenticated("send an access token: 'Authorization: Bearer <token>'")
    if len(token) > MAX_TOKEN_LENGTH:
        raise InvalidToken()
    return token


async def caller(request: web.Request) -> Principal:
    return await request.app[SERVICES].auth.authenticate(bearer_token(request), request.remote)
