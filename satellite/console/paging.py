"""One page of a list: which rows it shows and the links to the pages before and after it,
with the page's filters kept on them."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any
from urllib.parse import urlencode


def page(
    path: str,
    kept: Mapping[str, str],
    *,
    offset: int,
    size: int,
    shown: int,
    more: bool,
    key: str = "offset",
) -> dict[str, Any]:
    """``first``/``last`` (1-based) of the ``shown`` rows at ``offset``, and ``previous``/
    ``next`` links (None at either end; ``more``: rows follow this page), each ``path``
    with ``kept`` and the offset under ``key``."""

    def link(at: int) -> str:
        return path + "?" + urlencode({**kept, key: str(at)})

    return {
        "first": offset + 1,
        "last": offset + shown,
        "previous": link(max(offset - size, 0)) if offset > 0 else None,
        "next": link(offset + size) if more else None,
    }
