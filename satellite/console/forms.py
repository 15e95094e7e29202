"""The fields of the console's forms and query strings, read one way: a whole number (ASCII
digits only: ``str.isdigit()`` takes "²", which ``int()`` then refuses), a paging offset,
a date, a date and time, one of a list of choices. A field that is not what it should be
is ``InvalidInput`` naming it, with the page's words (``refusal``: the caller translates
them, so its catalog lookup stays a literal the message test finds)."""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Mapping
from typing import TypeVar

from aiohttp import web
from multidict import MultiDictProxy

from satellite.console import i18n
from satellite.errors import InvalidInput, PayloadTooLarge
from satellite_protocol.untrusted import NUL

DIGITS = 9  # a count or a number of days: within the API's 32-bit numbers
OFFSET_DIGITS = 18  # a paging offset: within the API's Offset range
_DIGITS = re.compile(r"[0-9]+")
DATE_LENGTH = len("YYYY-MM-DD")

T = TypeVar("T")
# A posted form, as aiohttp reads it.
Form = MultiDictProxy[str | bytes | bytearray | web.FileField]


async def posted(request: web.Request) -> Form:
    """The posted form. A body that is not the form it claims to be (a multipart one with
    no boundary or cut off, bytes that are not UTF-8) or a field holding U+0000 is refused
    as input, and one with more fields than aiohttp reads as too large, instead of
    escaping as an error."""
    language = i18n.choose(request)[0]
    try:
        form = await request.post()
    except web.HTTPRequestEntityTooLarge:
        too_large = i18n.gettext(language, "The form is larger than the server takes.")
        raise PayloadTooLarge(too_large, field="form") from None
    except (ValueError, AssertionError, RuntimeError) as exc:
        # (UnicodeDecodeError is a ValueError.)
        unread = i18n.gettext(language, "The form could not be read.")
        raise InvalidInput(unread, field="form") from exc
    for name, value in form.items():
        # PostgreSQL cannot store U+0000: refused here, as the HTTP layer refuses it in
        # paths, queries and bodies, before an operation would look it up.
        if NUL in name or (isinstance(value, str) and NUL in value):
            nul = i18n.gettext(language, "A field holds the character U+0000, which none takes.")
            raise InvalidInput(nul, field=name)
    return form


def whole_number(text: str, field: str, refusal: str, *, digits: int = DIGITS) -> int | None:
    """An optional number field: empty is absent."""
    text = text.strip()
    if not text:
        return None
    if len(text) > digits or not _DIGITS.fullmatch(text):
        raise InvalidInput(refusal, field=field)
    return int(text)


def required_number(text: str, field: str, refusal: str, *, digits: int = DIGITS) -> int:
    """A number field the form must fill."""
    number = whole_number(text, field, refusal, digits=digits)
    if number is None:
        raise InvalidInput(refusal, field=field)
    return number


def offset(language: i18n.Language, text: str, field: str = "offset") -> int:
    """A paging offset of a query string: empty is 0."""
    refusal = i18n.gettext(language, "The offset is a whole number.")
    return whole_number(text, field, refusal, digits=OFFSET_DIGITS) or 0


def date(text: str, field: str, refusal: str) -> dt.date | None:
    """An optional date field, written YYYY-MM-DD (as a browser's date input sends it)."""
    text = text.strip()
    if not text:
        return None
    try:
        if len(text) != DATE_LENGTH:
            raise ValueError(text)
        return dt.date.fromisoformat(text)
    except ValueError:
        raise InvalidInput(refusal, field=field) from None


def moment(text: str, field: str, refusal: str) -> dt.datetime | None:
    """An optional date (or date and time) field; a naive one is UTC. A moment a UTC
    timestamp cannot hold (year 1 east of Greenwich, say) is refused like a bad one."""
    text = text.strip()
    if not text:
        return None
    try:
        found = dt.datetime.fromisoformat(text)
        found = found if found.tzinfo else found.replace(tzinfo=dt.UTC)
        return found.astimezone(dt.UTC)
    except (ValueError, OverflowError):
        raise InvalidInput(refusal, field=field) from None


def choice(choices: Mapping[str, T], text: str, field: str, refusal: str) -> T:
    """One of ``choices``, by the form's exact word."""
    if text not in choices:
        raise InvalidInput(refusal, field=field)
    return choices[text]
