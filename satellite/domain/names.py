"""What a name or a description may be, wherever it comes from (API or CLI)."""

from __future__ import annotations

import re

from satellite.errors import InvalidInput

NAME_MAX = 100
DESCRIPTION_MAX = 500
# Names travel in URL paths: no slash, no control characters, no surrounding blanks.
# (Matched whole, with fullmatch: ``$`` would let a final newline through.)
_NAME_RE = re.compile(r"[^/\s\x00-\x1f\x7f](?:[^/\x00-\x1f\x7f]*[^/\s\x00-\x1f\x7f])?")


# A path segment of these is resolved away by browsers and URL libraries ("a/.." is "").
DOT_SEGMENTS = (".", "..")


def check_name(value: str, field: str = "name") -> str:
    if not _NAME_RE.fullmatch(value) or len(value) > NAME_MAX:
        raise InvalidInput(
            f"{field} must be 1 to {NAME_MAX} characters without '/', control characters "
            "or blanks at either end",
            field=field,
        )
    if value in DOT_SEGMENTS:
        raise InvalidInput(f"{field} must not be '.' or '..' (URLs drop those)", field=field)
    return value


DOMAIN_MAX = 253
# A DNS name (``acme.example``): dot-separated labels of letters, digits and inner hyphens.
_LABEL = r"[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?"
_DOMAIN_RE = re.compile(rf"{_LABEL}(?:\.{_LABEL})*")  # whole: fullmatch, as names


def check_domain(value: str, field: str = "domain") -> str:
    """A smart account's domain name; ``""`` (no domain) passes."""
    if value and (len(value) > DOMAIN_MAX or not _DOMAIN_RE.fullmatch(value)):
        raise InvalidInput(
            f"{field} must be a domain name such as acme.example (letters, digits and "
            f"hyphens in dot-separated labels, at most {DOMAIN_MAX} characters)",
            field=field,
        )
    return value


def check_description(value: str, field: str = "description") -> str:
    if len(value) > DESCRIPTION_MAX or any(ord(c) < 32 and c not in "\t\n" for c in value):
        raise InvalidInput(
            f"{field} must be at most {DESCRIPTION_MAX} characters of printable text",
            field=field,
        )
    return value
