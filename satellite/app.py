"""The aiohttp application factory."""

from __future__ import annotations

from collections.abc import AsyncIterator

from aiohttp import web

from satellite.http.keys import MIGRATIONS, SERVICES, SETTINGS
from satellite.http.middlewares import device_nonces, problem_documents, request_context
from satellite.http.openapi import openapi_routes
from satellite.http.routes import setup_routes
from satellite.runtime import Runtime, open_services


def create_app(runtime: Runtime) -> web.Application:
    app = web.Application(
        middlewares=[request_context, device_nonces, problem_documents],
        client_max_size=runtime.settings.api.max_body_bytes,
    )
    app[SETTINGS] = runtime.settings
    app[MIGRATIONS] = runtime.migrations

    async def services_ctx(app: web.Application) -> AsyncIterator[None]:
        async with open_services(runtime) as services:
            app[SERVICES] = services
            yield

    app.cleanup_ctx.append(services_ctx)
    setup_routes(app, openapi_routes())
    return app
