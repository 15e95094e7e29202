"""The positions of a few tags, computed with only the tags related to them through
borrowing (what a usage report judges its shortage alerts by), are exactly those of the
whole virtual account (what the licenses page and the hourly job show)."""

from __future__ import annotations

import datetime as dt

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from satellite.domain.compliance import (
    PoolLine,
    PoolState,
    positions_for_virtual_account,
    positions_of_tags,
    related_tags,
)
from satellite.resources import config_dir
from satellite.wiring import load_catalog
from satellite_protocol.catalog import Catalog

pytestmark = pytest.mark.unit

CATALOG: Catalog = load_catalog(config_dir() / "catalog.toml")
TAGS = sorted(e.tag for e in CATALOG)
TODAY = dt.date(2026, 12, 1)
ENHANCED = "regid.2016-07.com.cisco.UCM_Enhanced_12.0_66d0d1cf-4863-4761-91d0-d01d3eb1949a"
BASIC = "regid.2016-07.com.cisco.UCM_Basic_12.0_3b9d7c41-6a2f-4f1e-8c55-0e7a2d9b4c12"
ROOM = "regid.2016-07.com.cisco.UCM_TelePresenceRoom_12.0_a4f7e3d2-1c9b-4a68-b0e5-7d2c6f8e9a34"
FLEX_ACCESS = "regid.2016-07.com.cisco.UCM_FlexNU_Access_v14_3f75c3f0-45c1-407a-9fd8-7c5e4ac51aed"


def line(index: int, tag: str, quantity: int) -> PoolLine:
    return PoolLine(
        id=index,
        virtual_account="Voice",
        tag=tag,
        quantity=quantity,
        license_type="PERPETUAL",
        start_date=None,
        end_date=None,
        subscription_id=None,
        export_restricted=False,
        source="local",
    )


def test_related_tags_follow_borrowing_both_ways_and_stop_at_unrelated_families() -> None:
    present = {ENHANCED, BASIC, ROOM, FLEX_ACCESS}
    # Basic borrows from Enhanced; Flex NU Access stands in for Basic (not for Enhanced).
    assert related_tags(CATALOG, {ENHANCED}, present) == {ENHANCED, BASIC, FLEX_ACCESS}
    assert related_tags(CATALOG, {ROOM}, present) == {ROOM}
    assert related_tags(CATALOG, {ENHANCED}, {ENHANCED}) == {ENHANCED}


counts = st.dictionaries(st.sampled_from(TAGS), st.integers(0, 12), max_size=8)


@settings(max_examples=300, deadline=None)
@given(
    pool=counts,
    in_use=counts,
    reserved=counts,
    exported=counts,
    changed=st.sets(st.sampled_from(TAGS), min_size=1, max_size=3),
)
def test_positions_of_some_tags_are_those_of_the_whole_virtual_account(
    pool: dict[str, int],
    in_use: dict[str, int],
    reserved: dict[str, int],
    exported: dict[str, int],
    changed: set[str],
) -> None:
    lines = [line(n, tag, quantity) for n, (tag, quantity) in enumerate(sorted(pool.items()))]
    state = PoolState(lines, reserved, in_use, exported)
    whole = {
        p.tag: p
        for p in positions_for_virtual_account(
            "Voice", CATALOG, lines, TODAY, reserved=reserved, in_use=in_use, exported=exported
        )
    }
    some = positions_of_tags("Voice", CATALOG, changed, state, TODAY)
    assert {p.tag for p in some} >= changed & set(whole)
    for position in some:
        assert position == whole[position.tag]
