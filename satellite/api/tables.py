"""Answers as CSV, for the operations that declare a CSV form (``csv=`` in
``satellite.api.operation``: the answer's field holding a list of flat records).

One row per record under a header row of the records' wire names, in RFC 4180's form
(commas, quotes and line breaks quoted, CRLF line ends). A cell that a spreadsheet would
read as a formula (text starting with ``=``, ``+``, ``-``, ``@``, a tab or a carriage
return: a virtual account named ``=HYPERLINK(...)``) is prefixed with ``'`` so it stays
text; numbers are written as they are (``-3`` is a number, not a formula). The HTTP layer
answers this when the request's ``Accept`` asks for ``text/csv``, the CLI with ``--csv``.

A paged answer (``totalRecords`` beside the records, ``offset`` in the request) loses its
total in CSV: ``page_of`` gives it, and the next page's offset, for the HTTP layer to put
in headers.
"""

from __future__ import annotations

import csv
import io
from typing import Any, get_args, get_origin, get_type_hints

import msgspec

MEDIA_TYPE = "text/csv"
_FORMULA_START = ("=", "+", "-", "@", "\t", "\r")


def _record_type(answer: type[msgspec.Struct], field: str) -> type[msgspec.Struct]:
    hint = get_type_hints(answer).get(field)
    (item,) = get_args(hint) if get_origin(hint) is list else (None,)
    if not (isinstance(item, type) and issubclass(item, msgspec.Struct)):
        raise TypeError(f"{answer.__name__}.{field} is not a list of records")
    return item


def columns(answer: type[msgspec.Struct], field: str) -> list[str]:
    """The header: the wire names of the records' fields, each a plain value."""
    record = _record_type(answer, field)
    hints = get_type_hints(record)
    for f in msgspec.structs.fields(record):
        if not _plain(hints[f.name]):
            raise TypeError(f"{record.__name__}.{f.name} is not a plain value for a CSV cell")
    return [f.encode_name for f in msgspec.structs.fields(record)]


def _plain(hint: Any) -> bool:
    nested = isinstance(hint, type) and issubclass(hint, msgspec.Struct)
    return not nested and get_origin(hint) not in (list, dict)


def _cell(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return "'" + value if value.startswith(_FORMULA_START) else value
    return str(value)


def as_csv(answer: msgspec.Struct, field: str) -> str:
    """The answer's records as RFC 4180 text: the header row, then a row per record in the
    header's order (values as the JSON answer writes them: dates and times in ISO 8601)."""
    header = columns(type(answer), field)
    records: list[dict[str, Any]] = msgspec.to_builtins(getattr(answer, field))
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\r\n")
    writer.writerow(header)
    writer.writerows([_cell(record[name]) for name in header] for record in records)
    return out.getvalue()


def page_of(
    answer: msgspec.Struct, field: str, request: msgspec.Struct
) -> tuple[int, int | None] | None:
    """A paged answer's total, and the offset of the page after it (None: this is the
    last); None for an answer that is not paged."""
    total = getattr(answer, "total_records", None)
    offset = getattr(request, "offset", None)
    if not isinstance(total, int) or not isinstance(offset, int):
        return None
    following = offset + len(getattr(answer, field))
    return total, following if following < total else None
