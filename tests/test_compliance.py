"""License positions: what counts, and borrowing from higher tiers (pure rules)."""

from __future__ import annotations

import datetime as dt

import pytest

from satellite.domain.compliance import LicenseType, PoolLine, positions_for_virtual_account
from satellite.errors import ConfigError
from satellite.resources import config_dir
from satellite.wiring import load_catalog
from satellite_protocol.catalog import Catalog, parse_catalog
from tests.conftest import (
    BASIC,
    CUWL,
    ENHANCED,
    FLEX_ACCESS,
    FLEX_EA,
    FLEX_ENHANCED,
    FLEX_PROFESSIONAL,
)

TODAY = dt.date(2026, 11, 28)
ESSENTIAL = "regid.2016-07.com.cisco.UCM_Essential_12.0_8c3a1f2e-2d8b-4e57-9d0e-5b1f3c6a7e01"
ENHANCED_PLUS = "regid.2016-07.com.cisco.UCM_EnhancedPlus_12.0_5e2c8a90-7b14-4d3f-a6c2-9f81e0d4b723"
ROOM = "regid.2016-07.com.cisco.UCM_TelePresenceRoom_12.0_a4f7e3d2-1c9b-4a68-b0e5-7d2c6f8e9a34"


@pytest.fixture(scope="module")
def catalog() -> Catalog:
    return load_catalog(config_dir() / "catalog.toml")


def line(
    tag: str,
    quantity: int,
    license_type: LicenseType = "PERPETUAL",
    start: dt.date | None = None,
    end: dt.date | None = None,
) -> PoolLine:
    return PoolLine(
        id=1,
        virtual_account="Voice",
        tag=tag,
        quantity=quantity,
        license_type=license_type,
        start_date=start,
        end_date=end,
        subscription_id=None,
        export_restricted=False,
        source="local",
    )


def test_default_catalog_orders_the_uc_tiers(catalog: Catalog) -> None:
    assert catalog.higher_tiers(ESSENTIAL) == [BASIC, ENHANCED, ENHANCED_PLUS, CUWL]
    assert catalog.higher_tiers(ENHANCED) == [ENHANCED_PLUS, CUWL]
    assert catalog.higher_tiers(CUWL) == []
    assert catalog.higher_tiers(ROOM) == []  # another family: never stands in for users


def test_term_lines_count_only_between_their_dates(catalog: Catalog) -> None:
    positions = positions_for_virtual_account(
        "Voice",
        catalog,
        [
            line(ENHANCED, 10),
            line(ENHANCED, 5, "TERM", TODAY - dt.timedelta(days=30), TODAY),  # last day: counts
            line(ENHANCED, 7, "TERM", None, TODAY - dt.timedelta(days=1)),  # expired
            line(ENHANCED, 3, "TERM", TODAY + dt.timedelta(days=1), TODAY + dt.timedelta(days=9)),
        ],
        TODAY,
    )
    (enhanced,) = positions
    assert enhanced.purchased == 15
    assert enhanced.available == 15
    assert enhanced.status == "In Compliance"


def test_shortage_borrows_from_the_nearest_higher_tier_with_spare(catalog: Catalog) -> None:
    positions = positions_for_virtual_account(
        "Voice",
        catalog,
        [line(BASIC, 10), line(ENHANCED, 4), line(CUWL, 20)],
        TODAY,
        in_use={BASIC: 16, ENHANCED: 2, CUWL: 5},
    )
    got = {p.tag: p for p in positions}
    # Basic is 6 short: Enhanced has 2 to spare, CUWL covers the other 4.
    assert got[BASIC].borrowed == {ENHANCED: 2, CUWL: 4}
    assert got[BASIC].available == 0
    assert got[BASIC].status == "In Compliance"
    assert got[ENHANCED].lent == {BASIC: 2}
    assert got[ENHANCED].available == 0
    assert got[CUWL].lent == {BASIC: 4}
    assert got[CUWL].available == 20 - 5 - 4
    assert [p.tag for p in positions] == [BASIC, ENHANCED, CUWL]


def test_shortage_beyond_every_higher_tier_is_out_of_compliance(catalog: Catalog) -> None:
    got = {
        p.tag: p
        for p in positions_for_virtual_account(
            "Voice",
            catalog,
            [line(ENHANCED, 5), line(CUWL, 2)],
            TODAY,
            in_use={ENHANCED: 9},
        )
    }
    assert got[ENHANCED].borrowed == {CUWL: 2}
    assert got[ENHANCED].available == -2
    assert got[ENHANCED].status == "Out Of Compliance"
    assert got[CUWL].available == 0


def test_a_higher_tier_never_borrows_from_a_lower_one(catalog: Catalog) -> None:
    got = {
        p.tag: p
        for p in positions_for_virtual_account(
            "Voice", catalog, [line(BASIC, 50)], TODAY, in_use={CUWL: 1}
        )
    }
    assert got[CUWL].available == -1
    assert got[CUWL].borrowed == {}
    assert got[BASIC].lent == {}


def test_reserved_licenses_leave_the_pool(catalog: Catalog) -> None:
    (enhanced,) = positions_for_virtual_account(
        "Voice", catalog, [line(ENHANCED, 10)], TODAY, reserved={ENHANCED: 4}, in_use={ENHANCED: 6}
    )
    assert (enhanced.purchased, enhanced.reserved, enhanced.in_use) == (10, 4, 6)
    assert enhanced.available == 0


def test_catalog_refuses_a_duplicate_tag() -> None:
    text = b"""
[[families]]
name = "a"
[[families.licenses]]
tag = "t"
display_name = "T"
[[families]]
name = "b"
[[families.licenses]]
tag = "t"
display_name = "T again"
"""
    with pytest.raises(ConfigError, match="appears twice"):
        parse_catalog(text, "catalog.toml")


# --- version-independent licenses ------------------------------------------------------------


def test_catalog_says_which_version_independent_licenses_stand_in(catalog: Catalog) -> None:
    # Own family first (nearest tier first), then the version-independent licenses from
    # the one at the short tag's own tier upwards.
    assert catalog.substitutes(ENHANCED) == [
        ENHANCED_PLUS,
        CUWL,
        FLEX_ENHANCED,
        FLEX_EA,
        FLEX_PROFESSIONAL,
    ]
    assert catalog.substitutes(BASIC)[-4:] == [
        FLEX_ACCESS,
        FLEX_ENHANCED,
        FLEX_EA,
        FLEX_PROFESSIONAL,
    ]
    assert catalog.substitutes(ENHANCED_PLUS) == [CUWL, FLEX_EA, FLEX_PROFESSIONAL]
    assert catalog.substitutes(ROOM) == []  # no user license stands in for a room
    assert catalog.substitutes(FLEX_ENHANCED) == [FLEX_PROFESSIONAL]
    assert catalog.substitutes(FLEX_EA) == []
    entry = catalog.get(FLEX_ENHANCED)
    assert entry is not None
    assert (entry.tag_origin, entry.license_type) == ("satellite", "SUBSCRIPTION")
    assert entry.stands_in_for == (ESSENTIAL, BASIC, ENHANCED)
    for vendors in (ENHANCED, CUWL):  # the tags products report, as the seed shows them
        vendor_entry = catalog.get(vendors)
        assert vendor_entry is not None
        assert vendor_entry.tag_origin == "vendor"


def test_own_family_covers_before_a_version_independent_license(catalog: Catalog) -> None:
    got = {
        p.tag: p
        for p in positions_for_virtual_account(
            "Voice",
            catalog,
            [
                line(ENHANCED, 2),
                line(CUWL, 1),
                line(FLEX_ENHANCED, 5, "SUBSCRIPTION", TODAY, TODAY + dt.timedelta(days=364)),
            ],
            TODAY,
            in_use={ENHANCED: 5},
        )
    }
    assert got[ENHANCED].borrowed == {CUWL: 1, FLEX_ENHANCED: 2}
    assert got[ENHANCED].status == "In Compliance"
    assert got[FLEX_ENHANCED].lent == {ENHANCED: 2}
    assert got[FLEX_ENHANCED].available == 3
    assert got[FLEX_ENHANCED].free == 3  # what it lent is no longer free to reserve


def test_loans_move_so_that_every_shortfall_the_licenses_cover_is_covered(
    catalog: Catalog,
) -> None:
    def subscription(tag: str, quantity: int) -> PoolLine:
        return line(tag, quantity, "SUBSCRIPTION", TODAY, TODAY + dt.timedelta(days=364))

    def covered(lines: list[PoolLine], in_use: dict[str, int]) -> dict[str, dict[str, int]]:
        got = positions_for_virtual_account("Voice", catalog, lines, TODAY, in_use=in_use)
        assert all(p.status == "In Compliance" for p in got), got
        return {p.tag: p.borrowed for p in got if p.borrowed}

    # Basic would take the CUWL first; Enhanced Plus needs it, Flex Access covers Basic.
    assert covered([line(CUWL, 5), subscription(FLEX_ACCESS, 5)], {BASIC: 5, ENHANCED_PLUS: 5}) == {
        BASIC: {FLEX_ACCESS: 5},
        ENHANCED_PLUS: {CUWL: 5},
    }
    # Enhanced takes the CUWL before the Flex Enhanced, which Flex Access then has.
    assert covered(
        [line(CUWL, 5), subscription(FLEX_ENHANCED, 5)], {ENHANCED: 5, FLEX_ACCESS: 5}
    ) == {ENHANCED: {CUWL: 5}, FLEX_ACCESS: {FLEX_ENHANCED: 5}}
    # Part of a loan moves, the rest stays where the first pass put it.
    assert covered([line(CUWL, 5), subscription(FLEX_ACCESS, 2)], {BASIC: 5, ENHANCED_PLUS: 2}) == {
        BASIC: {CUWL: 3, FLEX_ACCESS: 2},
        ENHANCED_PLUS: {CUWL: 2},
    }


CATALOG_HEAD = b"""
[[families]]
name = "v12"
[[families.licenses]]
tag = "low"
display_name = "Low"
[[families.licenses]]
tag = "high"
display_name = "High"
[[families]]
name = "flex"
"""


@pytest.mark.parametrize(
    ("flex", "message"),
    [
        (b'[[families.licenses]]\ntag = "f"\ndisplay_name = "F"\nstands_in_for = ["nope"]\n',
         "stands in for unknown tag 'nope'"),
        (b'[[families.licenses]]\ntag = "f"\ndisplay_name = "F"\nstands_in_for = ["high"]\n',
         "stands in for 'high' but not for the lower tier 'low'"),
        (b'[[families.licenses]]\ntag = "f"\ndisplay_name = "F"\nstands_in_for = ["f"]\n',
         "stands in for 'f' of its own family"),
        (b'[[families.licenses]]\ntag = "f"\ndisplay_name = "F"\n'
         b'stands_in_for = ["low", "high"]\n'
         b'[[families.licenses]]\ntag = "g"\ndisplay_name = "G"\nstands_in_for = ["low"]\n',
         "'g' is a higher tier than 'f' but does not stand in for 'high'"),
    ],
)  # fmt: skip
def test_catalog_refuses_an_inconsistent_tier_mapping(flex: bytes, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        parse_catalog(CATALOG_HEAD + flex, "catalog.toml")
