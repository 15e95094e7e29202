"""The two endpoints satellites send their signed bundles to (connected mode): protocol,
not admin operations (those are ``satellite.api.sync`` and ``satellite.api.upstream``)."""

from __future__ import annotations

from aiohttp import web

from satellite.api.files import UPLOAD_CHUNK, attachment
from satellite.http.keys import SERVICES
from sync.bundle import RegistrationRequest, SyncRequest
from sync.transport import BUNDLE_TYPE


async def satellite_registers(request: web.Request) -> web.StreamResponse:
    """Connected mode: a satellite registers (its token is in its signed request)."""
    return await _answer(request, RegistrationRequest)


async def satellite_exchange(request: web.Request) -> web.StreamResponse:
    """Connected mode: a satellite sends its own bundle (its signature is its credential)."""
    return await _answer(request, SyncRequest)


async def _answer(
    request: web.Request, only: type[RegistrationRequest | SyncRequest]
) -> web.StreamResponse:
    answered, data = await request.app[SERVICES].upstream.answer_stream(
        request.content.iter_chunked(UPLOAD_CHUNK), None, only
    )
    return web.Response(
        body=data,
        headers={
            "Content-Type": BUNDLE_TYPE,
            "Content-Disposition": attachment(
                f"sync-answer-{answered.account}-{answered.sequence}.bundle"
            ),
        },
    )
