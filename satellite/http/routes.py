"""The route table: the operations' generated routes and the protocol endpoints (OAuth,
device API, sync, health) written by hand; registration and the OpenAPI document both
read it."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from aiohttp import web

from satellite.api.files import is_file, upload_field
from satellite.api.operation import Operation
from satellite.api.registry import OPERATIONS
from satellite.http import wire
from satellite.http.handlers import (
    device,
    health,
    oauth,
    sync,
)
from satellite.http.operations import BODY_METHODS, handler, ignores_body, path_fields
from satellite_protocol.device import CA_CERTIFICATE
from satellite_protocol.device import PREFIX as DEVICE
from sync.transport import EXCHANGE_PATH as SYNC_EXCHANGE
from sync.transport import REGISTER_PATH as SYNC_REGISTER

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]

API_PREFIXES = ("/api/v1", "/backend/api/v1")


@dataclass(frozen=True)
class Route:
    method: str
    path: str  # relative to the API prefixes unless ``api`` is False
    handler: Handler
    summary: str
    tag: str
    body: type | None = None
    response: type | None = None
    query: type | None = None  # the query parameters, as a wire type
    # Creates too answer 200 with the created object, as the toolkit does.
    status: int = 200
    public: bool = False
    api: bool = True
    # Fields of ``body``/``query`` that the path holds (an operation's request type has
    # them all); the OpenAPI document lists them as path parameters only.
    path_fields: tuple[str, ...] = ()
    description: str = ""
    csv: bool = False  # also answers text/csv when asked (satellite.api.tables)


HAND_WRITTEN: tuple[Route, ...] = (
    # OAuth
    *(
        Route(
            "POST",
            p,
            oauth.issue_token,
            "Get an access token",
            "oauth",
            wire.TokenRequest,
            wire.TokenResponse,
            query=wire.TokenRequest,  # public scripts send the grant in the query string
            public=True,
            api=False,
        )
        for p in ("/backend/oauth/token", "/oauth/token")
    ),
    *(
        Route(
            "POST",
            p,
            oauth.revoke_token,
            "Revoke an access token",
            "oauth",
            wire.RevokeRequest,
            wire.Empty,
            api=False,
        )
        for p in ("/backend/oauth/revoke", "/oauth/revoke")
    ),
    # sync with the upstream: the endpoints satellites post their signed bundles to
    *(
        Route("POST", path, handler, summary, "sync", public=True, api=False)
        for path, handler, summary in (
            (SYNC_REGISTER, sync.satellite_registers, "A satellite registers (signed bundle)"),
            (SYNC_EXCHANGE, sync.satellite_exchange, "A satellite syncs (signed bundle)"),
        )
    ),
    # device API (JWS-signed by the product; answers JWS-signed by the server)
    Route(
        "GET",
        DEVICE + "/nonce",
        device.nonce,
        "A fresh nonce (in Replay-Nonce)",
        "device",
        public=True,
        api=False,
    ),
    Route(
        "GET",
        DEVICE + CA_CERTIFICATE,
        device.ca_certificate,
        "The server's CA certificate (PEM): what a registration token pins, and what "
        "issues the server's TLS certificate",
        "device",
        public=True,
        api=False,
    ),
    *(
        Route(
            "POST",
            DEVICE + path,
            handler,
            summary,
            "device",
            wire.SignedMessage,
            wire.SignedMessage,
            public=True,
            api=False,
        )
        for path, handler, summary in (
            ("/register", device.register, "Register with a token"),
            ("/products/{product}/usage", device.report_usage, "Report usage"),
            (
                "/products/{product}/authorization",
                device.renew_authorization,
                "Renew the authorization",
            ),
            (
                "/products/{product}/registration",
                device.renew_registration,
                "Renew the registration (new key, new certificate)",
            ),
            ("/products/{product}/deregister", device.deregister, "Deregister"),
            (
                "/products/{product}/export/request",
                device.request_export,
                "Request an export-controlled feature (a signed export authorization key back)",
            ),
            (
                "/products/{product}/export/return",
                device.return_export,
                "Give an export-controlled feature's key back",
            ),
        )
    ),
    # operations
    Route(
        "GET", "/healthz", health.healthz, "The process is up", "operations", public=True, api=False
    ),
    Route(
        "GET",
        "/readyz",
        health.readyz,
        "Database reachable and schema current",
        "operations",
        public=True,
        api=False,
    ),
)


def full_paths(route: Route) -> list[str]:
    return api_paths(route.path) if route.api else [route.path]


def generated_route(op: Operation[Any, Any]) -> Route:
    # A file in or out has no JSON schema: the body, or the answer, is the file itself.
    # A body that is never read is not listed.
    in_body = op.method in BODY_METHODS and upload_field(op.request) is None
    in_body = in_body and not ignores_body(op)
    in_query = op.method not in BODY_METHODS
    return Route(
        op.method,
        op.path,
        handler(op),
        op.summary,
        op.tag,
        body=op.request if in_body else None,
        response=None if is_file(op.answer) else op.answer,
        query=op.request if in_query else None,
        path_fields=tuple(path_fields(op)),
        description=op.description,
        csv=op.csv is not None,
    )


ROUTES: tuple[Route, ...] = HAND_WRITTEN + tuple(generated_route(op) for op in OPERATIONS)


def api_paths(path: str) -> list[str]:
    return [prefix + path for prefix in API_PREFIXES]


def setup_routes(app: web.Application, extra: list[web.RouteDef]) -> None:
    table = [
        web.route(route.method, path, route.handler)
        for route in ROUTES
        for path in full_paths(route)
    ]
    app.add_routes(table + extra)
