"""JSON from outside (request bodies, signed payloads and headers, sync bundles): one
nesting limit, and no U+0000 in any string.

msgspec and the json module decode nested arrays and objects by recursion: at about a
thousand levels they raise RecursionError, which no caller expects. The nesting is
measured on the raw bytes before decoding, so every decoder of untrusted JSON is safe
whatever its own stack. PostgreSQL refuses U+0000 in text, so a string holding it is
refused here, where it enters, with the field it was found in. Command-line arguments
that are not UTF-8 are found here too.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from itertools import accumulate
from typing import Any, TypeVar

import msgspec

from satellite_protocol.errors import InvalidInput, MalformedJson
from satellite_protocol.validation import validation_error

T = TypeVar("T")

MAX_DEPTH = 64  # arrays and objects inside each other: far more than any message needs
NESTED_TOO_DEEP = f"the JSON is nested more than {MAX_DEPTH} levels deep"
NUL = "\x00"

# A JSON string, escapes included (unrolled so that long strings are matched quickly).
_STRING = re.compile(rb'"[^"\\]*(?:\\.[^"\\]*)*"', re.DOTALL)
_NOT_BRACKETS = bytes(b for b in range(256) if b not in b"[]{}")
_NOT_BRACKETS_OR_QUOTES = bytes(b for b in range(256) if b not in b'[]{}"')
# Openers become +1 and closers -1 once read as signed bytes.
_AS_STEPS = bytes.maketrans(b"[{]}", b"\x01\x01\xff\xff")
ESCAPED_NUL = b"\\u0000"


def too_deep(raw: bytes, limit: int = MAX_DEPTH) -> bool:
    """Whether ``raw`` opens more than ``limit`` arrays or objects inside each other
    (brackets inside strings do not count). Malformed JSON is left to the decoder."""
    if raw.count(b"[") + raw.count(b"{") <= limit:
        return False
    if b"\\" in raw:
        outside = _STRING.sub(b"", raw)
    else:  # no escapes: strings end at the next quote (five times faster than the regex)
        outside = b"".join(raw.translate(None, _NOT_BRACKETS_OR_QUOTES).split(b'"')[::2])
    steps = outside.translate(_AS_STEPS, _NOT_BRACKETS)
    return max(accumulate(memoryview(steps).cast("b")), default=0) > limit


def nul_field(value: Any, path: str = "") -> str | None:
    """The path (``udi.serialNumber``, ``usage[0].tag``) of the first string in ``value``
    that holds U+0000, or None. Names are the wire names; a key holding it names itself."""
    for where, text in _strings(value, path):
        if NUL in text:
            return where
    return None


def _strings(value: Any, path: str) -> Iterator[tuple[str, str]]:
    if isinstance(value, str):
        yield path, value
    elif isinstance(value, msgspec.Struct):
        for field in msgspec.structs.fields(value):
            yield from _strings(getattr(value, field.name), _join(path, field.encode_name))
    elif isinstance(value, dict):
        for key, item in value.items():
            where = _join(path, str(key))
            yield from _strings(key, where)
            yield from _strings(item, where)
    elif isinstance(value, list | tuple | set | frozenset):
        for index, item in enumerate(value):
            yield from _strings(item, f"{path}[{index}]")
    # Anything else (numbers, dates, UUIDs) holds no text.


def _join(path: str, name: str) -> str:
    return f"{path}.{name}" if path else name


def refuse_nul(value: Any, path: str = "") -> None:
    """InvalidInput naming the field when a string in ``value`` holds U+0000."""
    where = nul_field(value, path)
    if where is not None:
        raise InvalidInput(f"`{where}` must not contain U+0000 (NUL)", field=where or None)


def decode(raw: bytes, type_: type[T], *, what: str = "the body", strict: bool = True) -> T:
    """Decode untrusted JSON as ``type_``: nesting limited, U+0000 refused, field errors
    naming their field (``InvalidInput``); text that is not JSON is ``MalformedJson``.

    ``strict=False`` takes msgspec's lax conversions: an exact integer may arrive as a
    string or an integral float (``"365"``, ``365.0``), a boolean as ``"true"``."""
    if too_deep(raw):
        raise InvalidInput(f"{what}: {NESTED_TOO_DEEP}")
    try:
        value = msgspec.json.decode(raw, type=type_, strict=strict)
    except msgspec.ValidationError as exc:
        raise validation_error(exc) from exc
    except msgspec.DecodeError as exc:
        raise MalformedJson(f"{what} is not valid JSON: {exc}") from exc
    if ESCAPED_NUL in raw:  # the only way JSON can spell U+0000
        refuse_nul(value)
    return value


def first_not_utf8(args: list[str]) -> int | None:
    """The position (1-based) of the first command-line argument that is not UTF-8, or
    None. Python hands undecodable bytes over as lone surrogates (a terminal in Latin-1
    sends "é" as 0xE9), which neither the database nor a UTF-8 file takes."""
    for position, arg in enumerate(args, 1):
        try:
            arg.encode("utf-8")
        except UnicodeEncodeError:
            return position
    return None
