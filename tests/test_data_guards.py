"""Data guards (issue 11, section 5): a pool line does not go below what its tag's
reservations hold; usage reports carry catalog tags only, a bounded number of them, and
a tag reported as 0 leaves the product's usage."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import asyncpg
import pytest
from aiohttp.test_utils import TestServer

from satellite_agent.client import RequestRefused
from tests.conftest import BASIC, ENHANCED, Api
from tests.test_device import VOICE, licenses, new_agent, new_token, setup_voice
from tests.test_reservation import new_product, reserved_code, setup_pool


async def usage_rows(db: asyncpg.Connection) -> list[Any]:
    return [
        await db.fetchval(f"SELECT count(*) FROM {table}")  # noqa: S608
        for table in ("product_usage", "virtual_account_usage", "usage_reports")
    ]


async def test_a_pool_line_is_not_removed_or_lowered_below_its_reservations(
    admin: Api, state_dir: Path, tmp_path: Path, db: asyncpg.Connection
) -> None:
    """The issue's reproduction: 9 reserved of a line of 9; removing the line left
    available -9."""
    await setup_pool(admin, {"entitlementTag": ENHANCED, "quantity": 9})
    [line_id] = [r["id"] for r in await db.fetch("SELECT id FROM license_lines")]
    product = new_product(tmp_path, state_dir)
    product.enable()
    await reserved_code(admin, product.request(), enhanced=9)

    status, body = await admin.post(f"{VOICE}/license-pool/{line_id}/delete", {})
    assert status == 409, body
    assert body["field"] == "lineId"
    assert f"license line {line_id}" in body["detail"]
    assert "9 reserved" in body["detail"]
    status, body = await admin.post(
        f"{VOICE}/license-pool/{line_id}/update", {"entitlementTag": ENHANCED, "quantity": 5}
    )
    assert status == 409, body
    assert body["field"] == "lineId"
    line = (await licenses(admin))[ENHANCED]
    assert (line["quantity"], line["reserved"], line["available"]) == (9, 9, 0)

    # Raised, or covered by another line of the tag: fine.
    status, body = await admin.post(
        f"{VOICE}/license-pool/{line_id}/update", {"entitlementTag": ENHANCED, "quantity": 12}
    )
    assert status == 200, body
    status, body = await admin.post(
        VOICE + "/license-pool", {"entitlementTag": ENHANCED, "quantity": 9}
    )
    assert status == 200, body
    status, body = await admin.post(f"{VOICE}/license-pool/{line_id}/delete", {})
    assert status == 200, body
    line = (await licenses(admin))[ENHANCED]
    assert (line["quantity"], line["reserved"], line["available"]) == (9, 9, 0)


async def test_junk_usage_tags_are_refused_and_nothing_is_stored(
    admin: Api, server: TestServer, tmp_path: Path, db: asyncpg.Connection
) -> None:
    """The issue's reproduction: 10 reports of 1,000 junk tags left 10,000 rows (shown in
    the licenses view and sent upstream)."""
    await setup_voice(admin, enhanced=5)
    agent = new_agent(tmp_path, server)
    await agent.register(await new_token(admin))
    await agent.report_usage({ENHANCED: 1})
    before = await usage_rows(db)
    for report in range(10):
        junk = {f"regid.2099-01.com.example.Junk_{report}_{n}": 1 for n in range(1000)}
        with pytest.raises(RequestRefused) as refused:
            await agent.report_usage(junk)
        assert refused.value.status == 422
        assert refused.value.problem["field"] == "usage"
        assert "at most 100" in refused.value.problem["detail"]
    assert await usage_rows(db) == before
    assert set(await licenses(admin)) == {ENHANCED}

    # Within the limit, a tag that is not in the catalog is named, and nothing is stored.
    unknown = "regid.2099-01.com.example.Nothing"
    with pytest.raises(RequestRefused) as refused:
        await agent.report_usage({ENHANCED: 2, unknown: 1})
    assert refused.value.status == 422
    assert refused.value.problem["field"] == "usage[1].tag"
    assert unknown in refused.value.problem["detail"]
    assert await usage_rows(db) == before
    assert (await licenses(admin))[ENHANCED]["inUse"] == 1
    assert agent.state.usage == {ENHANCED: 1}


async def test_a_tag_reported_as_zero_leaves_the_usage(
    admin: Api, server: TestServer, tmp_path: Path, db: asyncpg.Connection
) -> None:
    await setup_voice(admin, enhanced=5, basic=5)
    agent = new_agent(tmp_path, server)
    await agent.register(await new_token(admin))
    await agent.report_usage({ENHANCED: 3, BASIC: 2})
    state = await agent.report_usage({ENHANCED: 0, BASIC: 2})
    assert state.authorization is not None
    assert [(t["tag"], t["count"]) for t in state.authorization["tags"]] == [(BASIC, 2)]
    rows = await db.fetch("SELECT tag, count FROM product_usage")
    assert [(r["tag"], r["count"]) for r in rows] == [(BASIC, 2)]
    view = await licenses(admin)
    assert (view[ENHANCED]["inUse"], view[BASIC]["inUse"]) == (0, 2)
    status, body = await admin.get(f"{VOICE}/devices")
    assert status == 200, body
    assert [u["entitlementTag"] for u in body["devices"][0]["licenseUsage"]] == [BASIC]
    # The totals agree with the products' usage.
    totals = await db.fetch(
        "SELECT tag, sum(in_use)::int AS n FROM virtual_account_usage GROUP BY tag "
        "HAVING sum(in_use) <> 0"
    )
    assert [(r["tag"], r["n"]) for r in totals] == [(BASIC, 2)]


async def test_two_lines_removed_at_once_do_not_both_leave_a_reservation_uncovered(
    admin: Api, state_dir: Path, tmp_path: Path, db: asyncpg.Connection
) -> None:
    """5 reserved, two lines of 5: either line alone may go, not both. Each removal checked
    the rule while the other's line was still there (neither had committed)."""
    line = {"entitlementTag": ENHANCED, "quantity": 5}
    await setup_pool(admin, line, line)
    line_ids = [r["id"] for r in await db.fetch("SELECT id FROM license_lines ORDER BY id")]
    product = new_product(tmp_path, state_dir)
    product.enable()
    await reserved_code(admin, product.request(), enhanced=5)

    # Both removals are held at their audit record (after their checks) until both wait.
    async with db.transaction():
        await db.execute("LOCK TABLE events IN SHARE MODE")
        removals = [
            asyncio.ensure_future(admin.post(f"{VOICE}/license-pool/{i}/delete", {}))
            for i in line_ids
        ]
        for _ in range(200):  # bounded: 10 s
            # (pg_locks, not pg_stat_activity: that one is read once per transaction.)
            waiting = await db.fetchval(
                "SELECT count(DISTINCT pid) FROM pg_locks WHERE NOT granted"
            )
            if waiting == 2:
                break
            await asyncio.sleep(0.05)
        assert waiting == 2
    statuses = sorted(status for status, _ in await asyncio.gather(*removals))
    assert statuses == [200, 409]
    view = (await licenses(admin))[ENHANCED]
    assert (view["quantity"], view["reserved"], view["available"]) == (5, 5, 0)
