"""Readable tables by default, the API's JSON shapes with ``--json``."""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Sequence

import click
import msgspec

# What a terminal would act on (an escape sequence, a line break) rather than show.
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")


def _shown(text: str) -> str:
    """``text`` with each control character written out as Python would (``\x1b``)."""
    return _CONTROL.sub(lambda found: repr(found.group())[1:-1], text)


def _cell(value: object) -> str:
    if value is None:
        return "-"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, dt.datetime):
        return value.astimezone(dt.UTC).strftime("%Y-%m-%d %H:%M:%SZ")
    if isinstance(value, list | tuple):
        return _shown(",".join(str(v) for v in value)) or "-"
    return _shown(str(value))


def table(headers: Sequence[str], rows: Sequence[Sequence[object]]) -> str:
    cells = [[_cell(v) for v in row] for row in rows]
    widths = [max([len(h)] + [len(r[i]) for r in cells]) for i, h in enumerate(headers)]
    lines = ["  ".join(h.ljust(w) for h, w in zip(headers, widths, strict=True)).rstrip()]
    lines += ["  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)).rstrip() for r in cells]
    return "\n".join(lines)


def emit(
    as_json: bool,
    document: msgspec.Struct,
    headers: Sequence[str],
    rows: Sequence[Sequence[object]],
) -> None:
    if as_json:
        click.echo(msgspec.json.format(msgspec.json.encode(document), indent=2).decode("utf-8"))
    else:
        click.echo(table(headers, rows))


def emit_one(as_json: bool, document: msgspec.Struct, fields: Sequence[tuple[str, object]]) -> None:
    if as_json:
        click.echo(msgspec.json.format(msgspec.json.encode(document), indent=2).decode("utf-8"))
    else:
        width = max(len(name) for name, _ in fields)
        for name, value in fields:
            click.echo(f"{name.ljust(width)}  {_cell(value)}")
