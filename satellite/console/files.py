"""Files in and out of the console: a file uploaded with a form (``multipart/form-data``)
read as a stream and handed to an operation as its ``Upload``, as the HTTP layer hands it
the raw body (so the operation's own limit is the only one, and the file is never held
whole); and an operation's file answer sent as an attachment.

A form that uploads a file puts its ``csrf`` field first: the guard reads that part alone
(``csrf_part``) and leaves the rest of the stream for the page (``file_part``).
"""

from __future__ import annotations

from collections.abc import AsyncIterator

import structlog
from aiohttp import BodyPartReader, MultipartReader, web

from satellite.api.files import UPLOAD_CHUNK, Download, Spooled, Upload, attachment
from satellite.console import i18n
from satellite.console.headers import SECURITY_HEADERS
from satellite.errors import InvalidInput

log = structlog.get_logger(__name__)

MULTIPART = "multipart/form-data"
MAX_CSRF_BYTES = 256  # a CSRF token is 43 characters; anything longer is not one
_READER = web.RequestKey("console_multipart", MultipartReader)


def is_multipart(request: web.Request) -> bool:
    return request.content_type == MULTIPART


async def csrf_part(request: web.Request) -> str:
    """The ``csrf`` field of a multipart form, its first part; "" when it is not there (or
    the body is not multipart at all). The reader is kept for ``file_part``."""
    try:
        reader = await request.multipart()
        request[_READER] = reader
        part = await reader.next()
        if not isinstance(part, BodyPartReader) or part.name != "csrf" or part.filename:
            return ""
        value = bytearray()
        while chunk := await part.read_chunk(MAX_CSRF_BYTES):
            value += chunk
            if len(value) > MAX_CSRF_BYTES:
                return ""
        return value.decode("ascii", "replace")
    except (ValueError, AssertionError, RuntimeError) as exc:
        # A body that is not the multipart it claims (no boundary, a broken part header):
        # no CSRF token read, so the guard refuses the form.
        log.info("console.multipart_unreadable", error=str(exc))
        return ""


async def text_part(request: web.Request, name: str, limit: int) -> str | None:
    """The form's next part, a text field ``name`` (after ``csrf``, before the file), read
    to at most ``limit`` bytes (a longer value is the operation's to refuse); None when
    the next part is not that field."""
    reader = request.get(_READER)
    if reader is None:
        return None
    try:
        part = await reader.next()
        if not isinstance(part, BodyPartReader) or part.name != name or part.filename:
            return None
        value = bytearray()
        while len(value) <= limit and (chunk := await part.read_chunk(limit + 1)):
            value += chunk
    except (ValueError, AssertionError, RuntimeError):
        return None
    return value[: limit + 1].decode("utf-8", "replace")


async def file_part(request: web.Request, language: i18n.Language, name: str) -> Upload | None:
    """The form's file field ``name`` (after ``csrf``) as an ``Upload`` the operation reads
    as far as it decides to; None when the form sent no file in it."""
    reader = request.get(_READER)
    if reader is None:
        return None
    try:
        part = await reader.next()
    except (ValueError, AssertionError, RuntimeError):
        return None
    if not isinstance(part, BodyPartReader) or part.name != name or not part.filename:
        return None  # (a browser sends an empty file name when no file was chosen)
    return Upload(_chunks(part, language))


async def _chunks(part: BodyPartReader, language: i18n.Language) -> AsyncIterator[bytes]:
    try:
        while chunk := await part.read_chunk(UPLOAD_CHUNK):
            yield chunk
    except (ValueError, AssertionError, RuntimeError) as exc:
        cut = i18n.gettext(language, "The uploaded file was cut off or malformed.")
        raise InvalidInput(cut, field="file") from exc


def download(answer: Download) -> web.Response:
    return web.Response(
        body=answer.content,
        content_type=answer.media_type,
        charset=answer.charset,
        headers=_file_headers(answer.filename),
    )


async def send_spooled(request: web.Request, answer: Spooled) -> web.StreamResponse:
    """Write the operation's file to its scratch path and stream it; the scratch file is
    removed once it is sent."""
    with answer.scratch() as path:
        filename = await answer.write(path)
        response = web.StreamResponse(
            headers={"Content-Type": answer.media_type, **_file_headers(filename)}
        )
        response.content_length = path.stat().st_size
        await response.prepare(request)
        with path.open("rb") as handle:
            while chunk := handle.read(UPLOAD_CHUNK):
                await response.write(chunk)
        await response.write_eof()
        return response


def _file_headers(filename: str) -> dict[str, str]:
    # Set here: a streamed answer's headers are sent before the guard could add them.
    return {
        **SECURITY_HEADERS,
        "Content-Disposition": attachment(filename),
        "Cache-Control": "no-store",
    }
