"""Files as operations' answers and requests, where the answer or the request is a file
rather than a JSON document.

* :class:`Download`: a small file held whole (an authorization code); HTTP sends it as an
  attachment, the CLI prints it or writes it.
* :class:`Spooled`: a file too large to hold in memory (a sync request bundle, up to
  ``sync.max_bundle_bytes``): ``write`` makes it at a path the receiver chooses (HTTP: a
  ``scratch`` file it streams and then removes).
* :class:`Upload`: a request field holding a file the caller sends, as chunks (HTTP: the
  raw body); the operation reads it only as far as it decides to (a bundle's header
  first).

The HTTP layer knows these types (``satellite.http.operations``). None of them has a JSON
schema: the OpenAPI document lists no JSON body, or answer, for them.
"""

from __future__ import annotations

import contextlib
import re
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from pathlib import Path
from urllib.parse import quote

import msgspec


class Download(msgspec.Struct, frozen=True, kw_only=True):
    filename: str
    media_type: str
    content: bytes
    charset: str | None = None  # of a text file


class Spooled(msgspec.Struct, frozen=True, kw_only=True):
    media_type: str
    # Writes the file at the path given and returns the name to offer it by.
    write: Callable[[Path], Awaitable[str]]
    # Where a receiver with no path of its own keeps the file meanwhile: a path in a
    # private directory, removed when the context ends.
    scratch: Callable[[], contextlib.AbstractContextManager[Path]]


# The size of the chunks an uploaded file is read in, as the operation takes it in (the
# operation, not its caller, decides how much of a file it takes: the sync services stop
# at ``sync.max_bundle_bytes``).
UPLOAD_CHUNK = 256 * 1024
# What a file name may hold as it is in a quoted ``filename=`` parameter.
_PLAIN_NAME = re.compile(r"[A-Za-z0-9._-]+")


def attachment(filename: str) -> str:
    """The Content-Disposition of a file offered by ``filename``, for HTTP and the
    console alike. Names hold account names, which may hold quotes, semicolons and any
    letters: such a name is sent as RFC 6266 says (``filename*``, percent-encoded UTF-8)
    beside an ASCII fallback with every other character replaced, so no name can end the
    quoted string and add parameters of its own. (Control characters, CR and LF, are
    never in a name: ``satellite.domain.names``.)"""
    if _PLAIN_NAME.fullmatch(filename):
        return f'attachment; filename="{filename}"'
    fallback = "".join(c if _PLAIN_NAME.fullmatch(c) else "_" for c in filename)
    return f"attachment; filename=\"{fallback}\"; filename*=UTF-8''{quote(filename, safe='')}"


class Upload:
    """A file sent with a request, as chunks; read once."""

    def __init__(self, chunks: AsyncIterator[bytes]) -> None:
        self.chunks = chunks


def upload_field(request: type[msgspec.Struct]) -> str | None:
    """The wire name of the request's :class:`Upload` field, if it has one."""
    for field in msgspec.structs.fields(request):
        if field.type is Upload:
            return field.encode_name
    return None


def is_file(answer: type[msgspec.Struct]) -> bool:
    return answer in (Download, Spooled)


@contextlib.contextmanager
def only(paths: contextlib.AbstractContextManager[list[Path]]) -> Iterator[Path]:
    """The one path of a context yielding a list of one (``Spool.files(name)``)."""
    with paths as (path,):
        yield path
