"""The aiohttp application factory."""

from __future__ import annotations

import datetime as dt
from collections.abc import AsyncIterator

from aiohttp import web

from satellite.http.keys import MIGRATIONS, SERVICES, SETTINGS
from satellite.http.middlewares import (
    device_nonces,
    no_nul_in_parameters,
    problem_documents,
    request_context,
)
from satellite.http.openapi import openapi_routes
from satellite.http.routes import setup_routes
from satellite.runtime import Runtime, open_services
from satellite.scheduler import JobScheduler

SCHEDULER = web.AppKey("scheduler", JobScheduler)


def create_app(runtime: Runtime, *, scheduler: bool = False) -> web.Application:
    """The application; with ``scheduler`` it also runs the scheduled jobs while it runs
    (``serve`` does; tests and tools that only need the HTTP side leave it off)."""
    app = web.Application(
        middlewares=[request_context, device_nonces, problem_documents, no_nul_in_parameters],
        client_max_size=runtime.settings.api.max_body_bytes,
    )
    app[SETTINGS] = runtime.settings
    app[MIGRATIONS] = runtime.migrations

    async def services_ctx(app: web.Application) -> AsyncIterator[None]:
        async with open_services(runtime) as services:
            app[SERVICES] = services
            yield

    async def scheduler_ctx(app: web.Application) -> AsyncIterator[None]:
        timers = runtime.settings.timers
        jobs = JobScheduler(
            app[SERVICES],
            dt.timedelta(minutes=timers.jobs_interval_minutes),
            intervals={"sync": dt.timedelta(minutes=timers.sync_interval_minutes)},
            # (at most half the interval: a run never slides into the next one)
            jitter={
                "sync": min(runtime.settings.sync.jitter_seconds, timers.sync_interval_minutes * 30)
            },
        )
        jobs.start()
        app[SCHEDULER] = jobs
        yield
        await jobs.stop()

    app.cleanup_ctx.append(services_ctx)
    if scheduler:
        app.cleanup_ctx.append(scheduler_ctx)
    setup_routes(app, openapi_routes())
    return app
