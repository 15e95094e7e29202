"""Request ids, access logs, and errors rendered as problem documents."""

from __future__ import annotations

import re
import time
import uuid

import structlog
from aiohttp import web
from aiohttp.typedefs import Handler

from satellite.errors import InvalidInput, SatelliteError
from satellite.http import problems
from satellite.http.keys import SERVICES
from satellite_protocol.device import NONCE_HEADER
from satellite_protocol.device import PREFIX as DEVICE_PREFIX
from satellite_protocol.untrusted import NUL

log = structlog.get_logger("satellite.http")

_REQUEST_ID_RE = re.compile(r"^[A-Za-z0-9._-]{1,64}$")


@web.middleware
async def request_context(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Bind a request id (the caller's X-Request-ID when sane) and log the outcome."""
    offered = request.headers.get("X-Request-ID", "")
    request_id = offered if _REQUEST_ID_RE.match(offered) else uuid.uuid4().hex
    structlog.contextvars.clear_contextvars()
    structlog.contextvars.bind_contextvars(request_id=request_id, path=request.path)
    started = time.perf_counter()
    response = await handler(request)
    response.headers["X-Request-ID"] = request_id
    log.info(
        "http.request",
        method=request.method,
        status=response.status,
        duration_ms=round((time.perf_counter() - started) * 1000, 1),
        remote=request.remote,
    )
    return response


@web.middleware
async def device_nonces(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Every device API answer, success or problem, hands out the next nonce."""
    response = await handler(request)
    if request.path.startswith(DEVICE_PREFIX):
        response.headers[NONCE_HEADER] = request.app[SERVICES].envelope.new_nonce()
        response.headers["Cache-Control"] = "no-store"
    return response


@web.middleware
async def problem_documents(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Domain errors and HTTP errors become RFC 9457 documents; the unknown become a bare 500."""
    try:
        return await handler(request)
    except SatelliteError as exc:
        return problems.from_domain_error(exc)
    except web.HTTPException as exc:
        if exc.status < 400:
            raise
        return problems.from_http_exception(exc)
    except Exception:
        log.exception("http.unhandled_error", method=request.method)
        return problems.problem_response(
            500, "internal", "Internal error", "the server failed; the log has the details"
        )


@web.middleware
async def no_nul_in_parameters(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Path segments and query parameters holding U+0000 are refused before any handler
    sees them: PostgreSQL cannot store that character, so a query would fail. (Bodies are
    checked as they are decoded.)"""
    for name, value in (*request.match_info.items(), *request.query.items()):
        if NUL in name or NUL in value:
            raise InvalidInput(f"`{name}` must not contain U+0000 (NUL)", field=name)
    return await handler(request)
