"""Pages of a list, the toolkit's way: ``limit`` -1 is every record, ``offset`` the number
of records skipped in the list's order, the same on every list."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TypeVar

T = TypeVar("T")

ALL = -1


def sql_limit(limit: int) -> int | None:
    """The value for SQL ``LIMIT``: PostgreSQL reads ``LIMIT NULL`` as no limit."""
    return None if limit == ALL else limit


def page(items: Sequence[T], limit: int, offset: int) -> list[T]:
    """The page of a list already in memory, as SQL ``LIMIT``/``OFFSET`` would cut it."""
    end = None if limit == ALL else offset + limit
    return list(items[offset:end])
