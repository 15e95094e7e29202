"""Sync requests and sync answers as files: the same bundle twice changes nothing, an old
or altered one is refused at either end, and one meant for another satellite too."""

from __future__ import annotations

import datetime as dt
from collections.abc import AsyncIterator
from pathlib import Path

import msgspec
import pytest

from satellite.api.context import Services
from satellite.config import DatabaseSettings, Settings
from satellite.errors import Conflict, NotFound, PayloadTooLarge
from satellite.wiring import load_runtime, open_services
from sync.bundle import BundleError, RegistrationRequest, SyncRequest
from tests.conftest import (
    Api,
)
from tests.helpers.sync import (
    OPERATOR,
    SITE,
    Upstream,
    answer_file,
    buy,
    pool,
    register_online,
    satellite_token,
    setup_site,
    setup_upstream,
    sync_settings,
)


async def test_the_same_request_twice_gets_the_same_answer_and_changes_nothing(
    upstream: Upstream, admin: Api, services: Services, tmp_path: Path
) -> None:
    await setup_upstream(upstream)
    await setup_site(admin)
    await register_online(upstream, services)
    request = tmp_path / "request.bundle"
    await services.sync.write_request(OPERATOR, "Site", request)
    first, again = tmp_path / "a1.bundle", tmp_path / "a2.bundle"
    answered = await answer_file(upstream, request, first, OPERATOR)
    assert not answered.repeated
    before = await upstream.db.fetch("SELECT * FROM satellites")
    events = await upstream.db.fetchval("SELECT count(*) FROM events")
    answered = await answer_file(upstream, request, again, OPERATOR)
    assert answered.repeated
    assert first.read_bytes() == again.read_bytes()
    assert await upstream.db.fetch("SELECT * FROM satellites") == before
    assert await upstream.db.fetchval("SELECT count(*) FROM events") == events

    # And at the satellite: the same answer imported twice applies once.
    assert not (await services.sync.import_answer(OPERATOR, first)).repeated
    lines = await pool(admin, SITE)
    assert (await services.sync.import_answer(OPERATOR, again)).repeated
    assert await pool(admin, SITE) == lines


async def test_replayed_old_bundles_are_refused_at_both_ends(
    upstream: Upstream, admin: Api, services: Services, tmp_path: Path
) -> None:
    await setup_upstream(upstream)
    await setup_site(admin)
    await register_online(upstream, services)
    old_request, old_answer = tmp_path / "r1", tmp_path / "a1"
    await services.sync.write_request(OPERATOR, "Site", old_request)
    await answer_file(upstream, old_request, old_answer, OPERATOR)
    await services.sync.import_answer(OPERATOR, old_answer)
    await services.sync.sync_now(OPERATOR, "Site")  # request 2, answered and applied

    with pytest.raises(Conflict, match="stale request: this is request 1"):
        await answer_file(upstream, old_request, tmp_path / "x", OPERATOR)
    await buy(upstream, 7)
    await services.sync.sync_now(OPERATOR, "Site")
    lines = await pool(admin, SITE)
    with pytest.raises(Conflict, match="stale answer: it answers request 1"):
        await services.sync.import_answer(OPERATOR, old_answer)
    assert await pool(admin, SITE) == lines  # the purchase stays


async def test_a_bundle_for_another_satellite_is_refused(
    upstream: Upstream,
    admin: Api,
    services: Services,
    tmp_path: Path,
    other_dsn: str,
    state_dir: Path,
) -> None:
    """Two satellites of one upstream: neither can apply what is meant for the other."""
    await setup_upstream(upstream)
    await setup_site(admin)
    await register_online(upstream, services)
    other = load_runtime(
        Settings(
            state_dir=str(state_dir),
            database=DatabaseSettings(dsn=other_dsn, pool_min_size=1, pool_max_size=2),
            sync=sync_settings(tmp_path / "other"),
        ),
        other_dsn,
    )
    async with open_services(other) as other_services:
        await other_services.accounts.create_account(OPERATOR, "Site", "", False)
        await other_services.sync.register_online(
            OPERATOR,
            "Site",
            upstream_url=upstream.url,
            token=await satellite_token(upstream),
            name="site-2",
        )
        theirs_request, theirs_answer = tmp_path / "r-other", tmp_path / "a-other"
        await other_services.sync.write_request(OPERATOR, "Site", theirs_request)
        await answer_file(upstream, theirs_request, theirs_answer, OPERATOR)
    with pytest.raises(BundleError, match="not for this satellite"):
        await services.sync.import_answer(OPERATOR, theirs_answer)

    # A request signed by the other satellite, claiming to be this one: altered.
    ours = tmp_path / "r-ours"
    await services.sync.write_request(OPERATOR, "Site", ours)
    our_id = (await services.sync.status(OPERATOR, "Site")).link.satellite_id  # type: ignore[union-attr]
    forged = theirs_request.read_bytes().replace(
        theirs_request.read_bytes().split(b'"satelliteId":"')[1].split(b'"')[0],
        our_id.encode(),
        1,
    )
    forged_path = tmp_path / "forged"
    forged_path.write_bytes(forged)
    with pytest.raises(BundleError, match="signature does not verify"):
        await answer_file(upstream, forged_path, tmp_path / "x", None)


@pytest.mark.parametrize("where", ["request", "answer"])
async def test_a_flipped_byte_is_refused_and_changes_nothing(
    upstream: Upstream, admin: Api, services: Services, tmp_path: Path, where: str
) -> None:
    await setup_upstream(upstream)
    await setup_site(admin)
    satellite_id = await register_online(upstream, services)
    request, answer = tmp_path / "request", tmp_path / "answer"
    await services.sync.write_request(OPERATOR, "Site", request)
    target = request
    if where == "answer":
        await answer_file(upstream, request, answer, OPERATOR)
        target = answer
    data = bytearray(target.read_bytes())
    position = data.index(b'"Voice"') + 2  # a byte in a record, not the header
    data[position] ^= 0x01
    target.write_bytes(bytes(data))
    before = await pool(admin, SITE)
    mirror = await upstream.db.fetchval(
        "SELECT last_sequence FROM satellites WHERE id = $1", satellite_id
    )
    refused = (
        answer_file(upstream, request, answer, OPERATOR)
        if where == "request"
        else services.sync.import_answer(OPERATOR, answer)
    )
    with pytest.raises(BundleError, match="signature does not verify"):
        await refused
    assert await pool(admin, SITE) == before == []
    assert (
        await upstream.db.fetchval(
            "SELECT last_sequence FROM satellites WHERE id = $1", satellite_id
        )
        == mirror
    )


async def test_a_bundle_is_taken_in_only_once_its_header_says_it_may_be(
    upstream: Upstream, admin: Api, services: Services, tmp_path: Path
) -> None:
    """Nothing but the first line of a request from an unknown satellite is read; a
    registration request is small or refused."""
    await setup_upstream(upstream)
    consumed = 0

    async def body(first: bytes, size: int) -> AsyncIterator[bytes]:
        nonlocal consumed
        yield first
        for _ in range(size // 65536):  # (bounded: the size asked for)
            consumed += 65536
            yield b"x" * 65536

    header = SyncRequest(
        satellite_id="5a7e0000-0000-4000-8000-000000000000",
        sequence=1,
        local_account="Site",
        since=0,
        through=1,
        created_at=dt.datetime.now(dt.UTC),
    )
    first = msgspec.json.encode(header) + b"\n"
    with pytest.raises(NotFound, match="not registered here"):
        await upstream.services.upstream.answer_stream(body(first, 50 * 2**20), None)
    assert consumed == 0

    registration = RegistrationRequest(
        name="x", local_account="Site", token="sat-x", public_key="-", created_at=header.created_at
    )
    first = msgspec.json.encode(registration) + b"\n"
    with pytest.raises(PayloadTooLarge):
        await upstream.services.upstream.answer_stream(body(first, 2**20), None)
    assert consumed <= 128 * 1024
    assert list(upstream.services.upstream.spool.path.iterdir()) == []  # nothing left behind


async def test_an_answer_to_an_older_request_after_a_newer_one_was_applied_is_stale(
    upstream: Upstream, admin: Api, services: Services, tmp_path: Path
) -> None:
    await setup_upstream(upstream)
    await setup_site(admin)
    await register_online(upstream, services)
    first, second = tmp_path / "r1", tmp_path / "r2"
    await services.sync.write_request(OPERATOR, "Site", first)
    await services.sync.write_request(OPERATOR, "Site", second)  # exported again meanwhile
    # The newer request is answered and applied first; the older one's answer then is stale.
    await answer_file(upstream, second, tmp_path / "a2", OPERATOR)
    assert not (await services.sync.import_answer(OPERATOR, tmp_path / "a2")).repeated
    with pytest.raises(Conflict, match="stale request: this is request 1"):
        await answer_file(upstream, first, tmp_path / "a1", OPERATOR)
