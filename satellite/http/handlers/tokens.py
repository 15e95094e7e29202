"""Registration tokens of a virtual account."""

from __future__ import annotations

import datetime as dt

from aiohttp import web

from satellite.http.auth import caller
from satellite.http.body import read_json, read_query, render
from satellite.http.keys import SERVICES
from satellite.http.views import export_flag, token_info
from satellite.http.wire import TokenCreate, TokenCreated, TokenList, TokenRevoke, TokensQuery


async def create_token(request: web.Request) -> web.Response:
    principal = await caller(request)
    body = await read_json(request, TokenCreate)
    view = await request.app[SERVICES].tokens.create(
        principal,
        request.match_info["account"],
        request.match_info["va"],
        description=body.description,
        expires_after_days=body.expires_after_days,
        export_controlled=export_flag(body.export_controlled),
        max_uses=body.number_of_uses,
    )
    now = dt.datetime.now(dt.UTC)
    return render(TokenCreated(token_info=token_info(view, now)))


async def list_tokens(request: web.Request) -> web.Response:
    principal = await caller(request)
    query = read_query(request, TokensQuery)
    views = await request.app[SERVICES].tokens.list_tokens(
        principal,
        request.match_info["account"],
        request.match_info["va"],
        limit=query.limit,
        offset=query.offset,
    )
    now = dt.datetime.now(dt.UTC)
    response = render(TokenList(tokens=[token_info(v, now) for v in views]))
    response.headers["Cache-Control"] = "no-store"
    return response


async def revoke_tokens(request: web.Request) -> web.Response:
    principal = await caller(request)
    body = await read_json(request, TokenRevoke)
    views = await request.app[SERVICES].tokens.revoke(
        principal, request.match_info["account"], request.match_info["va"], body.tokens
    )
    now = dt.datetime.now(dt.UTC)
    return render(TokenList(tokens=[token_info(v, now) for v in views]))
