"""One page of a list: its rows' numbers and the links before and after it, filters kept."""

from __future__ import annotations

import pytest

from satellite.console.paging import page

pytestmark = pytest.mark.unit


def test_a_middle_page_links_both_ways_with_the_filters() -> None:
    links = page("/events", {"actor": "ann b"}, offset=25, size=25, shown=25, more=True)
    assert links == {
        "first": 26,
        "last": 50,
        "previous": "/events?actor=ann+b&offset=0",
        "next": "/events?actor=ann+b&offset=50",
    }


def test_the_first_and_last_pages_have_no_link_past_their_end() -> None:
    first = page("/p", {}, offset=0, size=20, shown=20, more=True)
    assert first["previous"] is None
    assert first["next"] == "/p?offset=20"
    # An offset between pages (typed into the address) goes back to 0, not below it.
    last = page("/p", {}, offset=10, size=20, shown=3, more=False, key="history_offset")
    assert (last["first"], last["last"]) == (11, 13)
    assert last["previous"] == "/p?history_offset=0"
    assert last["next"] is None
