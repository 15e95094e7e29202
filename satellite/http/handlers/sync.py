"""Sync with the upstream: status, registration, sync now and the bundles as files (the
satellite's admin API); satellite tokens, satellites and answering requests (the
upstream's); and the two endpoints satellites send their bundles to."""

from __future__ import annotations

import socket

from aiohttp import web

from satellite.domain.access import Principal
from satellite.http.auth import caller
from satellite.http.body import read_json, read_query, render, send_file
from satellite.http.keys import SERVICES
from satellite.http.views import (
    satellite_mirror_out,
    satellite_out,
    satellite_token_out,
    sync_result_out,
    sync_status_out,
)
from satellite.http.wire import (
    NoBody,
    SatelliteList,
    SatelliteProductsQuery,
    SatelliteTokenCreate,
    SatelliteTokenList,
    StatusResponse,
    SyncRegister,
)
from sync.bundle import RegistrationRequest, SyncRequest
from sync.transport import BUNDLE_TYPE

CHUNK = 256 * 1024


def _account(request: web.Request) -> str:
    return request.match_info["account"]


# --- satellite side ------------------------------------------------------------------------


async def sync_status(request: web.Request) -> web.Response:
    principal = await caller(request)
    status = await request.app[SERVICES].sync.status(principal, _account(request))
    return render(sync_status_out(status))


async def sync_register(request: web.Request) -> web.Response:
    principal = await caller(request)
    body = await read_json(request, SyncRegister)
    services = request.app[SERVICES]
    await services.sync.register_online(
        principal,
        _account(request),
        upstream_url=body.upstream,
        token=body.token,
        name=body.name or socket.gethostname(),
        expected_fingerprint=body.upstream_fingerprint,
    )
    return render(sync_status_out(await services.sync.status(principal, _account(request))))


async def sync_unregister(request: web.Request) -> web.Response:
    principal = await caller(request)
    await read_json(request, NoBody)
    await request.app[SERVICES].sync.unregister(principal, _account(request))
    return render(StatusResponse(message=f"account {_account(request)} unregistered"))


async def sync_now(request: web.Request) -> web.Response:
    principal = await caller(request)
    await read_json(request, NoBody)
    imported = await request.app[SERVICES].sync.sync_now(principal, _account(request))
    return render(sync_result_out(imported))


async def download_request(request: web.Request) -> web.StreamResponse:
    """Disconnected mode: the request bundle, to carry to the upstream."""
    principal = await caller(request)
    sync = request.app[SERVICES].sync
    with sync.spool.files("request") as (path,):
        exported = await sync.export_request(principal, _account(request), path)
        return await send_file(
            request,
            path,
            f"sync-request-{_account(request)}-{exported.sequence}.bundle",
            BUNDLE_TYPE,
        )


async def upload_answer(request: web.Request) -> web.Response:
    """Disconnected mode: the upstream's answer, carried back."""
    principal = await caller(request)
    imported = await request.app[SERVICES].sync.import_stream(
        principal, _account(request), request.content.iter_chunked(CHUNK)
    )
    return render(sync_result_out(imported))


# --- upstream side -------------------------------------------------------------------------


async def create_satellite_token(request: web.Request) -> web.Response:
    principal = await caller(request)
    body = await read_json(request, SatelliteTokenCreate)
    services = request.app[SERVICES]
    created = await services.upstream.create_token(
        principal, _account(request), body.description, body.expires_days
    )
    return render(satellite_token_out(created.token, services.upstream.now(), created.secret))


async def list_satellite_tokens(request: web.Request) -> web.Response:
    principal = await caller(request)
    services = request.app[SERVICES]
    tokens = await services.upstream.list_tokens(principal, _account(request))
    now = services.upstream.now()
    return render(
        SatelliteTokenList(satellite_tokens=[satellite_token_out(t, now) for t in tokens])
    )


async def revoke_satellite_token(request: web.Request) -> web.Response:
    principal = await caller(request)
    await read_json(request, NoBody)
    token = request.match_info["token"]
    await request.app[SERVICES].upstream.revoke_token(principal, _account(request), token)
    return render(StatusResponse(message=f"satellite token {token} revoked"))


async def list_satellites(request: web.Request) -> web.Response:
    principal = await caller(request)
    satellites = await request.app[SERVICES].upstream.satellites(principal, _account(request))
    return render(SatelliteList(satellites=[satellite_out(s) for s in satellites]))


async def revoke_satellite(request: web.Request) -> web.Response:
    principal = await caller(request)
    await read_json(request, NoBody)
    satellite = request.match_info["satellite"]
    await request.app[SERVICES].upstream.revoke_satellite(principal, _account(request), satellite)
    return render(StatusResponse(message=f"satellite {satellite} revoked"))


async def satellite_products(request: web.Request) -> web.Response:
    principal = await caller(request)
    page = read_query(request, SatelliteProductsQuery)
    sat, products, usage = await request.app[SERVICES].upstream.mirror(
        principal, _account(request), request.match_info["satellite"], page.limit, page.offset
    )
    return render(satellite_mirror_out(sat, products, usage))


async def answer_upload(request: web.Request) -> web.StreamResponse:
    """Disconnected mode at the upstream: a satellite's request in, the answer out."""
    principal = await caller(request)
    return await _answer(request, principal)


async def satellite_registers(request: web.Request) -> web.StreamResponse:
    """Connected mode: a satellite registers (its token is in its signed request)."""
    return await _answer(request, None, RegistrationRequest)


async def satellite_exchange(request: web.Request) -> web.StreamResponse:
    """Connected mode: a satellite sends its own bundle (its signature is its credential)."""
    return await _answer(request, None, SyncRequest)


async def _answer(
    request: web.Request,
    principal: Principal | None,
    only: type[RegistrationRequest | SyncRequest] | None = None,
) -> web.StreamResponse:
    answered, data = await request.app[SERVICES].upstream.answer_stream(
        request.content.iter_chunked(CHUNK), principal, only
    )
    return web.Response(
        body=data,
        headers={
            "Content-Type": BUNDLE_TYPE,
            "Content-Disposition": (
                f'attachment; filename="sync-answer-{answered.account}-{answered.sequence}.bundle"'
            ),
        },
    )
