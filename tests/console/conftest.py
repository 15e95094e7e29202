"""Console fixtures: visitors (each with its own cookie jar), closed after the test."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable

import pytest

from tests.conftest import Api
from tests.helpers.console import Visitor


@pytest.fixture
async def visitors(admin: Api) -> AsyncIterator[Callable[..., Visitor]]:
    opened: list[Visitor] = []

    def open_visitor(accept_language: str = "en") -> Visitor:
        visitor = Visitor(admin, accept_language)
        opened.append(visitor)
        return visitor

    yield open_visitor
    for visitor in opened:
        await visitor.close()
