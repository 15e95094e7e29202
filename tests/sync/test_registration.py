"""Registering a satellite with its upstream, online or by files (disconnected mode),
and what is refused: another request's answer, a spent token, another upstream's key,
a revoked satellite."""

from __future__ import annotations

from pathlib import Path

import asyncpg
import pytest
from aiohttp.test_utils import TestServer

from satellite.api.context import Services
from satellite.errors import Conflict
from sync.bundle import BundleError
from sync.transport import UpstreamRefused
from tests.conftest import (
    ENHANCED,
    Api,
)
from tests.helpers.api import new_agent
from tests.helpers.sync import (
    OPERATOR,
    SITE,
    UP_ACCOUNT,
    Upstream,
    answer_file,
    in_use,
    mirrored_products,
    ok,
    pool,
    register_online,
    satellite_token,
    setup_site,
    setup_upstream,
    site_token,
)


async def test_registration_and_sync_by_files(
    upstream: Upstream, admin: Api, services: Services, tmp_path: Path, db: asyncpg.Connection
) -> None:
    await setup_upstream(upstream, enhanced=3, export=True)
    await setup_site(admin)
    token = await satellite_token(upstream)
    request, answer = tmp_path / "reg-request", tmp_path / "reg-answer"
    await services.sync.request_registration(
        OPERATOR, "Site", token=token, name="dark-site", upstream_url=None, out=request
    )
    status = await services.sync.status(OPERATOR, "Site")
    assert status.link is None
    assert status.pending_registration
    answered = await answer_file(upstream, request, answer, OPERATOR)
    assert answered.kind == "registration"
    # The same registration request again: the same answer (the token was spent once).
    again = tmp_path / "reg-answer-2"
    assert (await answer_file(upstream, request, again, OPERATOR)).repeated
    link = await services.sync.complete_registration(OPERATOR, "Site", answer)
    assert link.mode == "disconnected"
    assert link.upstream_account == "Acme"
    with pytest.raises(Conflict, match="disconnected mode"):
        await services.sync.sync_now(OPERATOR, "Site")

    # The cycle through the admin APIs, as the web console would do it.
    async with admin.client.get(SITE + "/sync/request", headers=admin._headers()) as response:
        assert response.status == 200, await response.text()
        assert "attachment" in response.headers["Content-Disposition"]
        request_bytes = await response.read()
    async with upstream.admin.client.post(
        "/api/v1/sync/answer", data=request_bytes, headers=upstream.admin._headers()
    ) as response:
        assert response.status == 200, await response.text()
        answer_bytes = await response.read()
    result = await ok(admin.post(SITE + "/sync/answer", raw=answer_bytes))
    assert result["counts"]["added"] == 1
    assert result["counts"]["flagsChanged"] == 1
    assert [x["quantity"] for x in await pool(admin, SITE)] == [3]
    assert await db.fetchval("SELECT export_controlled_allowed FROM accounts WHERE name = 'Site'")
    status_body = await ok(admin.get(SITE + "/sync"))
    assert status_body["mode"] == "disconnected"
    assert [h["operation"] for h in status_body["history"]] == ["import", "export"]


async def test_an_answer_to_another_registration_request_is_refused(
    upstream: Upstream, admin: Api, services: Services, tmp_path: Path
) -> None:
    await setup_upstream(upstream)
    await setup_site(admin)
    first, answer = tmp_path / "first", tmp_path / "answer"
    await services.sync.request_registration(
        OPERATOR,
        "Site",
        token=await satellite_token(upstream),
        name="a",
        upstream_url=None,
        out=first,
    )
    await answer_file(upstream, first, answer, OPERATOR)
    await services.sync.request_registration(  # a newer request replaces the first
        OPERATOR,
        "Site",
        token=await satellite_token(upstream),
        name="a",
        upstream_url=None,
        out=tmp_path / "second",
    )
    with pytest.raises(BundleError, match="another registration request"):
        await services.sync.complete_registration(OPERATOR, "Site", answer)
    assert (await services.sync.status(OPERATOR, "Site")).link is None


async def test_a_spent_or_unknown_satellite_token_is_refused(
    upstream: Upstream, admin: Api, services: Services
) -> None:
    await setup_upstream(upstream)
    await setup_site(admin)
    with pytest.raises(UpstreamRefused, match="satellite token is not known here"):
        await services.sync.register_online(
            OPERATOR, "Site", upstream_url=upstream.url, token="sat-nonsense", name="x"
        )
    assert (await services.sync.status(OPERATOR, "Site")).link is None


async def test_a_registration_answer_with_another_upstream_key_is_refused(
    upstream: Upstream, admin: Api, services: Services
) -> None:
    await setup_upstream(upstream)
    await setup_site(admin)
    right = upstream.services.upstream.fingerprint()
    with pytest.raises(BundleError, match="does not come from that upstream"):
        await services.sync.register_online(
            OPERATOR,
            "Site",
            upstream_url=upstream.url,
            token=await satellite_token(upstream),
            name="s",
            expected_fingerprint="A" + right[1:] if right[0] != "A" else "B" + right[1:],
        )
    assert (await services.sync.status(OPERATOR, "Site")).link is None
    link = await services.sync.register_online(
        OPERATOR,
        "Site",
        upstream_url=upstream.url,
        token=await satellite_token(upstream),
        name="s",
        expected_fingerprint=right,
    )
    assert (await services.sync.status(OPERATOR, "Site")).upstream_fingerprint == right
    assert link.upstream_account == "Acme"


async def test_a_lost_registration_answer_is_fetched_again_with_the_same_token(
    upstream: Upstream, admin: Api, services: Services, tmp_path: Path
) -> None:
    await setup_upstream(upstream)
    await setup_site(admin)
    token = await satellite_token(upstream)
    request = tmp_path / "request"
    await services.sync.request_registration(
        OPERATOR, "Site", token=token, name="s", upstream_url=upstream.url, out=request
    )
    await answer_file(upstream, request, tmp_path / "lost", OPERATOR)  # token spent; answer lost
    link = await services.sync.register_online(
        OPERATOR, "Site", upstream_url=upstream.url, token=token, name="s"
    )
    satellites = await ok(upstream.admin.get(UP_ACCOUNT + "/satellites"))
    assert [s["satelliteId"] for s in satellites["satellites"]] == [link.satellite_id]
    await services.sync.sync_now(OPERATOR, "Site")


async def test_a_revoked_satellite_is_refused_until_it_registers_again(
    upstream: Upstream,
    admin: Api,
    services: Services,
    server: TestServer,
    tmp_path: Path,
) -> None:
    await setup_upstream(upstream)
    await setup_site(admin)
    satellite_id = await register_online(upstream, services)
    agent = new_agent(tmp_path, server)
    await agent.register(await site_token(admin))
    await agent.report_usage({ENHANCED: 3})
    await services.sync.sync_now(OPERATOR, "Site")
    assert await in_use(upstream.admin, UP_ACCOUNT) == {("Voice", ENHANCED): 3}

    await ok(upstream.admin.post(f"{UP_ACCOUNT}/satellites/{satellite_id}/revoke", {}))
    assert await in_use(upstream.admin, UP_ACCOUNT) == {}  # what it reported is gone
    assert await mirrored_products(upstream, satellite_id) == set()
    with pytest.raises(UpstreamRefused, match="was revoked at the upstream"):
        await services.sync.sync_now(OPERATOR, "Site")
    status, _ = await upstream.admin.post(f"{UP_ACCOUNT}/satellites/{satellite_id}/revoke", {})
    assert status == 404  # (revoked already)

    await ok(admin.post(SITE + "/sync/unregister", {}))
    assert not (await ok(admin.get(SITE + "/sync")))["registered"]
    new_id = await register_online(upstream, services)
    assert new_id != satellite_id
    await services.sync.sync_now(OPERATOR, "Site")
    assert await in_use(upstream.admin, UP_ACCOUNT) == {("Voice", ENHANCED): 3}
    listed = await ok(upstream.admin.get(UP_ACCOUNT + "/satellites"))
    assert [(s["satelliteId"], s["revokedAt"] is None) for s in listed["satellites"]] == [
        (satellite_id, False),
        (new_id, True),
    ]
