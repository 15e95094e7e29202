"""Accounts and virtual accounts."""

from __future__ import annotations

from aiohttp import web

from satellite.http.auth import caller
from satellite.http.body import read_json, render
from satellite.http.keys import SERVICES
from satellite.http.views import account_out, virtual_account_out
from satellite.http.wire import (
    AccountCreate,
    AccountList,
    AccountOne,
    AccountUpdate,
    NoBody,
    StatusResponse,
    VirtualAccountCreate,
    VirtualAccountList,
)


async def list_accounts(request: web.Request) -> web.Response:
    principal = await caller(request)
    accounts = await request.app[SERVICES].accounts.visible_accounts(principal)
    return render(AccountList(accounts=[account_out(a) for a in accounts]))


async def create_account(request: web.Request) -> web.Response:
    principal = await caller(request)
    body = await read_json(request, AccountCreate)
    account = await request.app[SERVICES].accounts.create_account(
        principal, body.name, body.description, body.export_controlled_allowed, body.domain
    )
    return render(AccountOne(account=account_out(account)))


async def update_account(request: web.Request) -> web.Response:
    principal = await caller(request)
    body = await read_json(request, AccountUpdate)
    account = await request.app[SERVICES].accounts.update_account(
        principal,
        request.match_info["account"],
        body.description,
        body.export_controlled_allowed,
        body.domain,
    )
    return render(AccountOne(account=account_out(account)))


async def list_virtual_accounts(request: web.Request) -> web.Response:
    principal = await caller(request)
    vas = await request.app[SERVICES].accounts.virtual_accounts(
        principal, request.match_info["account"]
    )
    return render(VirtualAccountList(virtual_accounts=[virtual_account_out(v) for v in vas]))


async def create_virtual_account(request: web.Request) -> web.Response:
    principal = await caller(request)
    body = await read_json(request, VirtualAccountCreate)
    va = await request.app[SERVICES].accounts.create_virtual_account(
        principal, request.match_info["account"], body.name, body.description
    )
    return render(VirtualAccountList(virtual_accounts=[virtual_account_out(va)]))


async def delete_virtual_account(request: web.Request) -> web.Response:
    principal = await caller(request)
    await read_json(request, NoBody)
    name = request.match_info["va"]
    await request.app[SERVICES].accounts.delete_virtual_account(
        principal, request.match_info["account"], name
    )
    return render(StatusResponse(message=f"virtual account {name!r} deleted"))
