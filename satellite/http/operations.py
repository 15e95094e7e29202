"""HTTP routes generated from the operations: decode, authenticate, call, render.

A request type's fields come from the path (``{name}`` segments of the operation's path)
and from the body (POST, PUT) or the query string (GET, DELETE), by their wire names. A
body or query naming a path field is refused as an unknown field, so a request can never
say one account in its path and another in its body; a POST whose request takes nothing
but path fields and ignores unknown ones does not read its body at all. A request with an
``Upload`` field takes the raw body as that file (its other fields from the path and the
query string); an answer that is a file (``Download``, ``Spooled``) is sent as an
attachment (``satellite.api.files``).
"""

from __future__ import annotations

from typing import Any

import msgspec
from aiohttp import web

from satellite.api import tables
from satellite.api.files import UPLOAD_CHUNK, Download, Spooled, Upload, attachment, upload_field
from satellite.api.operation import Operation
from satellite.errors import InvalidInput, MalformedJson
from satellite.http.auth import caller
from satellite.http.body import convert, render, send_file
from satellite.http.keys import SERVICES
from satellite_protocol.untrusted import decode

_NO_BODY = (b"", b"null")
BODY_METHODS = ("POST", "PUT")


class MalformedBody(web.HTTPBadRequest):
    pass


def path_fields(op: Operation[Any, Any]) -> list[str]:
    """The wire names of the request fields the path holds."""
    names = (field.encode_name for field in msgspec.structs.fields(op.request))
    return [name for name in names if "{" + name + "}" in op.path]


async def _parameters(request: web.Request, op: Operation[Any, Any]) -> dict[str, Any]:
    """The body's (or query string's) fields, checked not to name a path field."""
    upload = upload_field(op.request)
    if upload is not None:
        # The body is the file: its other fields (a fingerprint to check it by) are the
        # query string's.
        given: dict[str, Any] = {
            **request.query,
            upload: Upload(request.content.iter_chunked(UPLOAD_CHUNK)),
        }
    elif op.method in BODY_METHODS and ignores_body(op):
        given = {}
    elif op.method in BODY_METHODS:
        raw = await request.read()  # bounded by the app's client_max_size (413 beyond it)
        try:
            given = decode(raw if raw.strip() not in _NO_BODY else b"{}", dict[str, Any])
        except MalformedJson as exc:
            raise MalformedBody(text=exc.detail) from exc
    else:
        given = dict(request.query)
    for name in request.match_info:
        if name in given:
            raise InvalidInput(f"unknown field `{name}`", field=name)
    return {**given, **request.match_info}


def ignores_body(op: Operation[Any, Any]) -> bool:
    """A request whose every field is in the path and that ignores unknown fields (the
    toolkit's POST of the account list) has nothing to read in a body: whatever is sent
    (a form, as ``curl -d`` sends, or no JSON at all) is not read, as it never was."""
    ignores_unknown = not op.request.__struct_config__.forbid_unknown_fields
    return ignores_unknown and len(path_fields(op)) == len(msgspec.structs.fields(op.request))


def handler(op: Operation[Any, Any]) -> Any:
    async def handle(request: web.Request) -> web.StreamResponse:
        principal = await caller(request)
        typed = convert(await _parameters(request, op), op.request)
        answer = await op(request.app[SERVICES], principal, typed)
        if isinstance(answer, Spooled):
            with answer.scratch() as path:
                name = await answer.write(path)
                return await send_file(request, path, name, answer.media_type)
        if isinstance(answer, Download):
            response = _download(answer)
        elif op.csv is not None:
            response = _as_asked(request, answer, op.csv, typed)
        else:
            response = render(answer)
        if op.no_store:
            response.headers["Cache-Control"] = "no-store"
        return response

    handle.__name__ = op.name
    return handle


def _download(answer: Download) -> web.Response:
    return web.Response(
        body=answer.content,
        content_type=answer.media_type,
        charset=answer.charset,
        headers={"Content-Disposition": attachment(answer.filename)},
    )


def _as_asked(
    request: web.Request, answer: msgspec.Struct, field: str, typed: msgspec.Struct
) -> web.Response:
    """An answer that has a CSV form: CSV when the request's Accept prefers it, else JSON.
    Caches are told the answer varies with Accept. A paged answer's CSV, which has no
    ``totalRecords``, says it in headers: ``X-Total-Count`` and, unless it is the last
    page, ``Link: <...>; rel="next"`` (this request with the next ``offset``)."""
    if _wants_csv(request.headers.get("Accept", "")):
        response = web.Response(
            text=tables.as_csv(answer, field), content_type=tables.MEDIA_TYPE, charset="utf-8"
        )
        page = tables.page_of(answer, field, typed)
        if page is not None:
            total, next_offset = page
            response.headers["X-Total-Count"] = str(total)
            if next_offset is not None:
                following = request.rel_url.update_query(offset=str(next_offset))
                response.headers["Link"] = f'<{following}>; rel="next"'
    else:
        response = render(answer)
    response.headers["Vary"] = "Accept"
    return response


def _wants_csv(accept: str) -> bool:
    """Whether an Accept header asks for CSV before JSON: it names ``text/csv`` with a
    quality above 0 and at least that of ``application/json`` (wildcards such as ``*/*``
    never choose CSV)."""
    quality: dict[str, float] = {}
    for item in accept.split(","):
        media_type, *params = (part.strip() for part in item.split(";"))
        q = 1.0
        for param in params:
            name, _, value = param.partition("=")
            if name.strip().lower() == "q":
                try:
                    q = float(value)
                except ValueError:
                    q = 0.0
        quality[media_type.lower()] = max(q, quality.get(media_type.lower(), 0.0))
    csv_q = quality.get(tables.MEDIA_TYPE, 0.0)
    return csv_q > 0 and csv_q >= quality.get("application/json", 0.0)
