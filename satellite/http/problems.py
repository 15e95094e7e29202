"""RFC 9457 problem documents."""

from __future__ import annotations

import msgspec
import structlog
from aiohttp import web

from satellite import errors
from satellite.http.wire import Problem

PROBLEM_TYPE = "urn:satellite:problem:"
CONTENT_TYPE = "application/problem+json"

# Domain error class -> (status, problem slug, title)
_DOMAIN: dict[type[errors.SatelliteError], tuple[int, str, str]] = {
    errors.InvalidInput: (422, "invalid-input", "Invalid input"),
    errors.UnknownExportFeature: (422, "unknown-export-feature", "Unknown export feature"),
    errors.ExportAccountNotAllowed: (
        403,
        "export-account-not-allowed",
        "Account not allowed export-controlled features",
    ),
    errors.ExportRegistrationNotAllowed: (
        403,
        "export-registration-not-allowed",
        "Registration does not allow export-controlled features",
    ),
    errors.ExportKeyUnavailable: (409, "export-key-unavailable", "No export key available"),
    errors.NotAuthenticated: (401, "not-authenticated", "Not authenticated"),
    errors.InvalidGrant: (400, "invalid-grant", "Invalid credentials"),
    errors.InvalidClient: (401, "invalid-client", "Invalid client credentials"),
    errors.UnsupportedGrantType: (400, "unsupported-grant-type", "Unsupported grant type"),
    errors.OAuthRequestError: (400, "invalid-request", "Invalid token request"),
    errors.Forbidden: (403, "forbidden", "Forbidden"),
    errors.BadNonce: (400, "bad-nonce", "Bad nonce"),
    errors.BadSignature: (401, "bad-signature", "Bad signature"),
    errors.ProductEnded: (403, "product-ended", "Product deregistered"),
    errors.RegistrationExpired: (403, "registration-expired", "Registration expired"),
    errors.RegistrationReplaced: (403, "registration-replaced", "Registration replaced"),
    errors.TooManyAttempts: (429, "too-many-attempts", "Too many attempts"),
    errors.NotFound: (404, "not-found", "Not found"),
    errors.Conflict: (409, "conflict", "Conflict"),
    errors.RegisteredElsewhere: (409, "registered-elsewhere", "Product registered elsewhere"),
    errors.AlreadyRegistered: (409, "already-registered", "Product registered already"),
    errors.UpstreamError: (502, "upstream-error", "Upstream error"),
    errors.PayloadTooLarge: (413, "body-too-large", "Request body too large"),
    errors.SyncHorizonPassed: (403, "sync-horizon-passed", "Sync horizon passed"),
    errors.SchemaMismatch: (503, "schema-mismatch", "Database schema mismatch"),
    errors.DatabaseUnavailable: (503, "database-unavailable", "Database unavailable"),
    errors.DatabaseBusy: (503, "database-busy", "Database busy"),
}

_HTTP_SLUGS = {
    400: "bad-request",
    404: "not-found",
    405: "method-not-allowed",
    413: "body-too-large",
    415: "unsupported-media-type",
}


def problem_response(
    status: int,
    slug: str,
    title: str,
    detail: str,
    *,
    field: str | None = None,
    error: str | None = None,
    headers: dict[str, str] | None = None,
) -> web.Response:
    context = structlog.contextvars.get_contextvars()
    body = Problem(
        type=PROBLEM_TYPE + slug,
        title=title,
        status=status,
        detail=detail,
        instance=context.get("path"),
        field=field,
        request_id=context.get("request_id"),
        error=error,
    )
    return web.Response(
        status=status,
        body=msgspec.json.encode(body),
        content_type=CONTENT_TYPE,
        headers=headers,
    )


def from_domain_error(exc: errors.SatelliteError) -> web.Response:
    for cls in type(exc).__mro__:
        if cls in _DOMAIN:
            status, slug, title = _DOMAIN[cls]
            break
    else:
        status, slug, title = 500, "internal", "Internal error"
    headers = None
    if isinstance(exc, errors.InvalidToken):
        headers = {"WWW-Authenticate": 'Bearer error="invalid_token"'}
    elif isinstance(exc, errors.InvalidClient):
        headers = {"WWW-Authenticate": 'Basic realm="satellite"'}
    elif status == 401:
        headers = {"WWW-Authenticate": "Bearer"}
    elif isinstance(exc, errors.TooManyAttempts):
        # RateLimit-* as the IETF httpapi draft has them; Reset is in seconds, as Retry-After.
        headers = {
            "Retry-After": str(exc.retry_after),
            "RateLimit-Limit": str(exc.limit),
            "RateLimit-Remaining": "0",
            "RateLimit-Reset": str(exc.retry_after),
        }
    elif status == 503:
        headers = {"Retry-After": str(errors.UNAVAILABLE_RETRY_AFTER)}
    error = exc.oauth_error if isinstance(exc, errors.OAuthRequestError) else None
    return problem_response(
        status, slug, title, exc.detail, field=exc.field, error=error, headers=headers
    )


def from_http_exception(exc: web.HTTPException) -> web.Response:
    slug = _HTTP_SLUGS.get(exc.status, "http-error")
    if exc.status == 404:
        detail = "no such path; the API is described at /api/v1/openapi.json"
    elif exc.text and not exc.text.startswith(f"{exc.status}:"):
        detail = exc.text
    else:
        detail = exc.reason
    headers = {k: v for k, v in exc.headers.items() if k.lower() == "allow"}
    return problem_response(exc.status, slug, exc.reason, detail, headers=headers or None)
