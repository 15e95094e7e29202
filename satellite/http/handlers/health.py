"""Liveness and readiness."""

from __future__ import annotations

import structlog
from aiohttp import web

from satellite.errors import SchemaMismatch
from satellite.http.keys import MIGRATIONS, SERVICES
from satellite.http.problems import UNAVAILABLE_RETRY_AFTER
from satellite.services import health

log = structlog.get_logger(__name__)


async def healthz(request: web.Request) -> web.Response:
    return web.json_response({"status": "ok"})


async def readyz(request: web.Request) -> web.Response:
    try:
        await health.check_ready(request.app[SERVICES].db, request.app[MIGRATIONS])
    except SchemaMismatch:
        log.warning("readyz.schema_mismatch")
        return _unavailable("schema")
    except Exception as exc:  # readiness reports any failure, it never fails itself
        # The detail (hosts, users) goes to the log, not to unauthenticated callers.
        log.warning("readyz.database_unavailable", error=str(exc))
        return _unavailable("database")
    return web.json_response({"status": "ready"})


def _unavailable(reason: str) -> web.Response:
    return web.json_response(
        {"status": "unavailable", "reason": reason},
        status=503,
        headers={"Retry-After": str(UNAVAILABLE_RETRY_AFTER)},
    )
