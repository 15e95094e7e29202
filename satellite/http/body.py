"""Reading request bodies into wire types: one place for size, media type and validation."""

from __future__ import annotations

import re
from typing import Any, TypeVar
from urllib.parse import parse_qsl

import msgspec
from aiohttp import web

from satellite.errors import InvalidInput

T = TypeVar("T")

_PATH_RE = re.compile(r" - at `\$\.?([^`]*)`$")
_UNKNOWN_RE = re.compile(r"^Object contains unknown field `([^`]+)`")
_MISSING_RE = re.compile(r"^Object missing required field `([^`]+)`")


def validation_error(exc: msgspec.ValidationError) -> InvalidInput:
    """msgspec's message -> a readable detail and the offending field's path."""
    text = str(exc)
    match = _PATH_RE.search(text)
    path = match.group(1) if match else ""
    reason = _PATH_RE.sub("", text)
    for regex in (_UNKNOWN_RE, _MISSING_RE):
        found = regex.match(reason)
        if found:
            path = f"{path}.{found.group(1)}" if path else found.group(1)
            break
    if _UNKNOWN_RE.match(reason):
        reason = f"unknown field `{path}`"
    elif path and not _MISSING_RE.match(reason):
        reason = f"`{path}`: {reason}"
    return InvalidInput(reason, field=path or None)


class MalformedBody(web.HTTPBadRequest):
    pass


async def read_json(request: web.Request, type_: type[T], *, allow_form: bool = False) -> T:
    """Decode the body as ``type_``; an empty body means ``{}``.

    The body is read as JSON whatever the Content-Type says (curl's ``-d`` sends a form
    type); only the OAuth endpoints also take real forms, as OAuth clients send them.
    """
    raw = await request.read()  # bounded by the app's client_max_size (413 beyond it)
    content_type = request.content_type
    data: Any
    if allow_form and content_type == "application/x-www-form-urlencoded":
        data = dict(parse_qsl(raw.decode("utf-8", "replace"), keep_blank_values=True))
        try:
            return msgspec.convert(data, type_, strict=False)
        except msgspec.ValidationError as exc:
            raise validation_error(exc) from exc
    try:
        return msgspec.json.decode(raw if raw.strip() else b"{}", type=type_)
    except msgspec.ValidationError as exc:
        raise validation_error(exc) from exc
    except msgspec.DecodeError as exc:
        raise MalformedBody(text=f"the body is not valid JSON: {exc}") from exc


def read_query(request: web.Request, type_: type[T]) -> T:
    """Decode query parameters as ``type_`` (strings are converted to the field types)."""
    try:
        return msgspec.convert(dict(request.query), type_, strict=False)
    except msgspec.ValidationError as exc:
        raise validation_error(exc) from exc


def render(body: msgspec.Struct, status: int = 200) -> web.Response:
    return web.Response(
        status=status, body=msgspec.json.encode(body), content_type="application/json"
    )
