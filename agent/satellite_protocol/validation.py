"""msgspec validation errors as domain errors naming the offending field."""

from __future__ import annotations

import re

import msgspec

from satellite_protocol.errors import InvalidInput

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
