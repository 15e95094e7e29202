"""Liveness and readiness."""

from __future__ import annotations

import structlog
from aiohttp import web

from satellite.errors import SchemaMismatch
from satellite.http.keys import MIGRATIONS, SERVICES
from satellite.services import health

log = structlog.get_logger(__name__)


async def healthz(request: web.Request) -> web.Response:
    return web.json_response({"status": "ok"})


async def readyz(request: web.Request) -> web.Response:
    try:
        await health.check_ready(request.app[SERVICES].db, request.app[MIGRATIONS])
    except SchemaMismatch:
        log.warning("readyz.schema_mismatch")
        return web.json_response({"status": "unavailable", "reason": "schema"}, status=503)
    except Exception as exc:  # readiness reports any failure, it never fails itself
        # The detail (hosts, users) goes to the log, not to unauthenticated callers.
        log.warning("readyz.database_unavailable", error=str(exc))
        return web.json_response({"status": "unavailable", "reason": "database"}, status=503)
    return web.json_response({"status": "ready"})
