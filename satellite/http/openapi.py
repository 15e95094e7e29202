"""The OpenAPI 3.1 document, generated from the route table and its wire types."""

from __future__ import annotations

import re
from typing import Any

import msgspec
from aiohttp import web

from satellite import __version__
from satellite.http.routes import API_PREFIXES, ROUTES, full_paths
from satellite.http.wire import Problem

_REF = "#/components/schemas/{name}"
_PARAM_RE = re.compile(r"{(\w+)}")
_NOT_IDENTIFIER_RE = re.compile(r"[^A-Za-z0-9]+")


def operation_id(method: str, path: str) -> str:
    """``post_api_v1_accounts_account_update``: a plain identifier, as code generators
    need (no braces, slashes or hyphens), unique as the method and path are."""
    return _NOT_IDENTIFIER_RE.sub("_", f"{method.lower()} {path}").strip("_")


def query_parameters(query: type, path_fields: tuple[str, ...] = ()) -> list[dict[str, Any]]:
    """The fields of a query type as OpenAPI query parameters, with their schemas (but
    those the path holds)."""
    (ref,), components = msgspec.json.schema_components([query], ref_template=_REF)
    schema = components[ref["$ref"].rsplit("/", 1)[1]]
    required = set(schema.get("required", ()))
    return [
        {"name": name, "in": "query", "required": name in required, "schema": field_schema}
        for name, field_schema in schema["properties"].items()
        if name not in path_fields
    ]


def _without(schema: dict[str, Any], fields: tuple[str, ...]) -> None:
    """Take the path's fields out of a request body's schema (in place)."""
    for name in fields:
        schema.get("properties", {}).pop(name, None)
    if "required" in schema:
        schema["required"] = [name for name in schema["required"] if name not in fields]
        if not schema["required"]:
            del schema["required"]


def _content(schema: dict[str, Any], csv: bool) -> dict[str, Any]:
    """An answer's media types: JSON, and CSV where the operation has a CSV form."""
    content: dict[str, Any] = {"application/json": {"schema": schema}}
    if csv:
        content["text/csv"] = {"schema": {"type": "string"}}
    return content


def build_document() -> dict[str, Any]:
    types = {t for r in ROUTES for t in (r.body, r.response) if t is not None} | {Problem}
    ordered = sorted(types, key=lambda t: t.__name__)
    schemas, components = msgspec.json.schema_components(ordered, ref_template=_REF)
    refs = dict(zip(ordered, schemas, strict=True))
    for route in ROUTES:
        if route.body is not None and route.path_fields:
            _without(components[route.body.__name__], route.path_fields)
    problem = {
        "description": "Problem document (RFC 9457)",
        "content": {"application/problem+json": {"schema": refs[Problem]}},
    }
    paths: dict[str, dict[str, Any]] = {}
    for route in ROUTES:
        for path in full_paths(route):
            operation: dict[str, Any] = {
                "summary": route.summary,
                "tags": [route.tag],
                "operationId": operation_id(route.method, path),
                "responses": {
                    str(route.status): {
                        "description": "Success",
                        **(
                            {"content": _content(refs[route.response], route.csv)}
                            if route.response
                            else {}
                        ),
                    },
                    "default": problem,
                },
            }
            parameters = [
                {"name": name, "in": "path", "required": True, "schema": {"type": "string"}}
                for name in _PARAM_RE.findall(path)
            ]
            if route.query is not None:
                parameters += query_parameters(route.query, route.path_fields)
            if parameters:
                operation["parameters"] = parameters
            if route.body is not None:
                operation["requestBody"] = {
                    "required": False,
                    "content": {"application/json": {"schema": refs[route.body]}},
                }
            if route.description:
                operation["description"] = route.description
            if not route.public:
                operation["security"] = [{"bearer": []}]
            paths.setdefault(path, {})[route.method.lower()] = operation
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "satellite admin API",
            "version": __version__,
            "description": "Compatible with the SSM On-Prem API toolkit; every path under "
            f"{API_PREFIXES[0]} also answers under {API_PREFIXES[1]}.",
        },
        "paths": paths,
        "components": {
            "schemas": components,
            "securitySchemes": {
                "bearer": {"type": "http", "scheme": "bearer"},
            },
        },
    }


def openapi_routes() -> list[web.RouteDef]:
    document = msgspec.json.encode(build_document())

    async def serve(request: web.Request) -> web.Response:
        return web.Response(body=document, content_type="application/json")

    return [web.get(prefix + "/openapi.json", serve) for prefix in API_PREFIXES]
