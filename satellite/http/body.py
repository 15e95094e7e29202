"""Reading request bodies into wire types: one place for size, media type and validation."""

from __future__ import annotations

from pathlib import Path
from typing import Any, TypeVar
from urllib.parse import parse_qsl

import msgspec
from aiohttp import web

from satellite.api.files import attachment
from satellite.errors import MalformedJson
from satellite_protocol.untrusted import decode, refuse_nul
from satellite_protocol.validation import validation_error

T = TypeVar("T")


_NO_BODY = (b"", b"null")


class MalformedBody(web.HTTPBadRequest):
    pass


async def read_json(request: web.Request, type_: type[T], *, allow_form: bool = False) -> T:
    """Decode the body as ``type_``; an empty body and a JSON ``null`` mean ``{}``.

    The body is read as JSON whatever the Content-Type says (curl's ``-d`` sends a form
    type); only the OAuth endpoints also take real forms, as OAuth clients send them.
    Values convert as in a query string (``convert``): the toolkit's automation sends
    numbers as JSON strings or integral floats (``"365"``, ``365.0``), and an exact integer
    in any of these forms is taken; ``"1.5"``, ``"abc"`` or ``true`` are refused naming
    the field.
    """
    raw = await request.read()  # bounded by the app's client_max_size (413 beyond it)
    content_type = request.content_type
    data: Any
    if allow_form and content_type == "application/x-www-form-urlencoded":
        data = dict(parse_qsl(raw.decode("utf-8", "replace"), keep_blank_values=True))
        refuse_nul(data)
        return convert(data, type_)
    try:
        return decode(raw if raw.strip() not in _NO_BODY else b"{}", type_, strict=False)
    except MalformedJson as exc:
        raise MalformedBody(text=exc.detail) from exc


def convert(data: dict[str, Any], type_: type[T]) -> T:
    """Parameters (of a query string or a form, strings) as ``type_``, converted to the
    field types; a field that does not convert is InvalidInput naming it."""
    try:
        return msgspec.convert(data, type_, strict=False)
    except msgspec.ValidationError as exc:
        raise validation_error(exc) from exc


def render(body: msgspec.Struct, status: int = 200) -> web.Response:
    return web.Response(
        status=status, body=msgspec.json.encode(body), content_type="application/json"
    )


async def send_file(
    request: web.Request, path: Path, filename: str, media_type: str
) -> web.StreamResponse:
    """Stream a file as a download; the response is sent when this returns (so the caller
    may remove the file)."""
    response = web.StreamResponse(
        headers={
            "Content-Type": media_type,
            "Content-Disposition": attachment(filename),
        }
    )
    response.content_length = path.stat().st_size  # noqa: ASYNC240 - a stat
    await response.prepare(request)
    with path.open("rb") as handle:
        while chunk := handle.read(256 * 1024):
            await response.write(chunk)
    await response.write_eof()
    return response
