"""Liveness and readiness."""

from __future__ import annotations

import msgspec
import structlog
from aiohttp import web

from satellite.errors import UNAVAILABLE_RETRY_AFTER, SchemaMismatch
from satellite.http.keys import DATABASE_SUPERVISOR, MIGRATIONS, SERVICES
from satellite.services import health

log = structlog.get_logger(__name__)


async def healthz(request: web.Request) -> web.Response:
    return web.json_response({"status": "ok"})


async def readyz(request: web.Request) -> web.Response:
    body: dict[str, object] = {}
    supervisor = request.app.get(DATABASE_SUPERVISOR)
    if supervisor is not None:
        body["embedded_postgres"] = msgspec.to_builtins(supervisor.status())
    try:
        await health.check_ready(request.app[SERVICES].db, request.app[MIGRATIONS])
    except SchemaMismatch:
        log.warning("readyz.schema_mismatch")
        return _unavailable(body | {"reason": "schema"})
    except Exception as exc:  # readiness reports any failure, it never fails itself
        # The detail (hosts, users) goes to the log, not to unauthenticated callers.
        log.warning("readyz.database_unavailable", error=str(exc))
        return _unavailable(body | {"reason": "database"})
    return web.json_response({"status": "ready"} | body)


def _unavailable(body: dict[str, object]) -> web.Response:
    return web.json_response(
        {"status": "unavailable"} | body,
        status=503,
        headers={"Retry-After": str(UNAVAILABLE_RETRY_AFTER)},
    )
