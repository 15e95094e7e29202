"""Translate driver errors into domain errors at the storage boundary."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import asyncpg

from satellite.errors import Conflict


@contextmanager
def unique_as_conflict(detail: str, field: str | None = None) -> Iterator[None]:
    try:
        yield
    except asyncpg.UniqueViolationError as exc:
        raise Conflict(detail, field=field) from exc
