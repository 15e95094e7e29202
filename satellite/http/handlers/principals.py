"""API clients and users."""

from __future__ import annotations

from aiohttp import web

from satellite.http.auth import caller
from satellite.http.body import read_json, render
from satellite.http.keys import SERVICES
from satellite.http.views import principal_out
from satellite.http.wire import (
    ClientCreate,
    ClientCreated,
    NoBody,
    PasswordSet,
    PrincipalList,
    PrincipalOne,
    StatusResponse,
    UserCreate,
)


async def list_clients(request: web.Request) -> web.Response:
    principal = await caller(request)
    records = await request.app[SERVICES].principals.list_principals(principal, "client")
    return render(PrincipalList(items=[principal_out(r) for r in records]))


async def create_client(request: web.Request) -> web.Response:
    principal = await caller(request)
    body = await read_json(request, ClientCreate)
    new = await request.app[SERVICES].principals.create_client(
        principal, body.role, body.accounts, body.description
    )
    response = render(
        ClientCreated(
            client_id=new.client_id,
            client_secret=new.client_secret,
            client=principal_out(new.record),
        )
    )
    response.headers["Cache-Control"] = "no-store"
    return response


async def disable_client(request: web.Request) -> web.Response:
    principal = await caller(request)
    await read_json(request, NoBody)
    record = await request.app[SERVICES].principals.disable(
        principal, "client", request.match_info["client"]
    )
    return render(PrincipalOne(item=principal_out(record)))


async def list_users(request: web.Request) -> web.Response:
    principal = await caller(request)
    records = await request.app[SERVICES].principals.list_principals(principal, "user")
    return render(PrincipalList(items=[principal_out(r) for r in records]))


async def create_user(request: web.Request) -> web.Response:
    principal = await caller(request)
    body = await read_json(request, UserCreate)
    record = await request.app[SERVICES].principals.create_user(
        principal, body.username, body.password, body.role, body.accounts
    )
    return render(PrincipalOne(item=principal_out(record)))


async def disable_user(request: web.Request) -> web.Response:
    principal = await caller(request)
    await read_json(request, NoBody)
    record = await request.app[SERVICES].principals.disable(
        principal, "user", request.match_info["user"]
    )
    return render(PrincipalOne(item=principal_out(record)))


async def set_user_password(request: web.Request) -> web.Response:
    principal = await caller(request)
    body = await read_json(request, PasswordSet)
    name = request.match_info["user"]
    await request.app[SERVICES].principals.set_password(principal, name, body.password)
    return render(StatusResponse(message=f"password of user {name!r} set; its tokens revoked"))
