"""What the agent command takes from its user and checks before anything is written or
sent: a server URL, usage as TAG=COUNT pairs or a file of them."""

from __future__ import annotations

import re
from pathlib import Path

import click

from satellite_protocol import outbound


def server_url(url: str | None) -> str | None:
    """A server URL that can name a server, else refused before anything is written (one
    that cannot failed every later request with a traceback)."""
    refusal = None if url is None else outbound.url_refusal(url)
    if refusal is not None:
        raise click.BadParameter(refusal)
    return url


# A usage file's size limit: a report holds at most 1000 tags of at most 200 characters,
# and a file (a device such as /dev/zero) is otherwise read until memory runs out.
MAX_USAGE_FILE_BYTES = 1 << 20


def _usage_lines(file: Path) -> list[str]:
    with file.open("rb") as handle:
        raw = handle.read(MAX_USAGE_FILE_BYTES + 1)
    if len(raw) > MAX_USAGE_FILE_BYTES:
        raise click.BadParameter(f"usage file {file} is larger than {MAX_USAGE_FILE_BYTES} bytes")
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise click.BadParameter(f"usage file {file} is not UTF-8 text: {exc}") from exc
    return [line.strip() for line in text.splitlines() if line.strip()]


def parse_usage(pairs: tuple[str, ...], file: Path | None) -> dict[str, int]:
    usage: dict[str, int] = {}
    lines = list(pairs)
    if file is not None:
        lines += _usage_lines(file)
    for pair in lines:
        tag, sep, count = pair.partition("=")
        if not sep or not tag or not re.fullmatch(r"[0-9]+", count.strip()):
            shown = pair if len(pair) <= 80 else pair[:80] + "..."
            raise click.BadParameter(f"{shown!r} is not TAG=COUNT", param_hint="--usage")
        usage[tag.strip()] = int(count)
    return usage
