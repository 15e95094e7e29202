"""A hostile tenant's webhooks: a flood of its deliveries does not hold up another account's
(fair claims, one test delivery waiting per webhook, a cap on what waits per webhook), and
a URL with control characters or a mailto: address with more than an address is refused."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import MutableMapping
from typing import Any

import msgspec
import pytest
import structlog

from satellite.config import Settings, SmtpSettings
from satellite.domain.access import host_operator
from satellite.domain.webhooks import Delivery
from satellite.scheduler.deliveries import DeliveryWorker
from satellite.services.webhooks import NewSecret
from satellite.storage import webhooks as queue
from satellite.wiring import open_services
from tests.conftest import AiohttpClient, Api, Credentials
from tests.helpers.webhooks import (
    FAST,
    HOOKS,
    WAIT_SECONDS,
    Receiver,
    admin_with,
    alert_webhook,
    create_hook,
    deliveries_in,
    get,
    ok,
    runtime_with,
    start_receiver,
    until,
)

OPERATOR = host_operator("pytest")
FLOOD = 100


@pytest.fixture
async def api(
    settings: Settings, db_dsn: str, system_admin: Credentials, aiohttp_client: AiohttpClient
) -> Api:
    admin = await admin_with(settings, db_dsn, system_admin, aiohttp_client, FAST)
    return admin


async def _flood(services: Any, new: NewSecret, count: int) -> None:
    """``count`` deliveries waiting for the webhook, as a burst of alerts would leave them."""
    async with services.db.transaction() as conn:
        for n in range(count):
            await queue.enqueue(conn, new.webhook.id, "alert.raised", f'{{"n": {n}}}')


async def _deliveries(services: Any, new: NewSecret) -> list[Delivery]:
    async with services.db.connection() as conn:
        found = await queue.list_deliveries(conn, new.webhook.id, -1, 0)
    return [delivery for delivery, _ in found]


async def test_a_flooded_webhook_does_not_delay_another_accounts_delivery(
    settings: Settings, db_dsn: str, receiver: Receiver
) -> None:
    """Acme's receiver never answers (each attempt runs to the timeout) and 100 of its
    deliveries wait, ten passes' worth: Victim's test delivery goes out in the next pass,
    while most of Acme's flood has not been tried yet."""
    tarpit = await start_receiver()
    tarpit.hold = asyncio.Event()
    hooks = msgspec.structs.replace(FAST, timeout_seconds=1.0, batch=10)
    try:
        async with open_services(runtime_with(settings, db_dsn, hooks)) as services:
            for name in ("Acme", "Victim"):
                await services.accounts.create_account(OPERATOR, name, "", False)
            flooded = await alert_webhook(services, OPERATOR, tarpit.url())
            victim = await alert_webhook(services, OPERATOR, receiver.url(), "Victim")
            await _flood(services, flooded, FLOOD)
            worker = DeliveryWorker(services.deliveries)
            worker.start()
            try:
                deadline = time.monotonic() + WAIT_SECONDS
                while not tarpit.got:  # (the flood is being tried)
                    assert time.monotonic() < deadline, "the flood was never tried"
                    await asyncio.sleep(0.02)
                await services.webhooks.send_test(OPERATOR, "Victim", victim.webhook.public_id)
                while not receiver.got:
                    assert time.monotonic() < deadline, "Victim's delivery never arrived"
                    await asyncio.sleep(0.02)
                untried = [d for d in await _deliveries(services, flooded) if d.attempts == 0]
            finally:
                tarpit.hold.set()
                await worker.stop()
    finally:
        tarpit.hold.set()
        await tarpit.server.close()
    assert receiver.got[0].headers["Satellite-Event"] == "webhook.test"
    # Victim's delivery did not wait for Acme's flood to be tried first.
    assert len(untried) > FLOOD // 2, len(untried)


async def test_beyond_the_cap_the_oldest_waiting_deliveries_are_dropped(
    settings: Settings, db_dsn: str, receiver: Receiver
) -> None:
    hooks = msgspec.structs.replace(FAST, max_pending_per_webhook=3)
    async with open_services(runtime_with(settings, db_dsn, hooks)) as services:
        await services.accounts.create_account(OPERATOR, "Acme", "", False)
        new = await alert_webhook(services, OPERATOR, receiver.url())
        await _flood(services, new, 10)
        with structlog.testing.capture_logs() as logs:
            await services.deliveries.deliver_due()
        async with services.db.connection() as conn:
            found = await queue.list_deliveries(conn, new.webhook.id, -1, 0)
    states = [delivery.state for delivery, _ in found]  # (newest first)
    assert states == ["delivered"] * 3 + ["cancelled"] * 7, states
    assert sorted(json.loads(r.body)["n"] for r in receiver.got) == [7, 8, 9]
    for _, attempts in found[3:]:
        [note] = attempts
        assert note.error is not None
        assert "dropped" in note.error
        assert "webhooks.max_pending_per_webhook" in note.error
    [dropped] = _events(logs, "webhook.deliveries_dropped")
    assert dropped["dropped"] == 7
    assert dropped["webhook"] == str(new.webhook.public_id)


def _events(logs: list[MutableMapping[str, Any]], event: str) -> list[MutableMapping[str, Any]]:
    return [entry for entry in logs if entry["event"] == event]


async def test_one_test_delivery_waits_per_webhook(api: Api, receiver: Receiver) -> None:
    hook, _ = await create_hook(api, receiver.url())
    other, _ = await create_hook(api, receiver.url(), description="other")
    receiver.hold = asyncio.Event()
    first = await ok(api, f"{HOOKS}/{hook}/test")
    status, problem = await api.post(f"{HOOKS}/{hook}/test", {})
    assert status == 409, problem
    assert str(first["deliveryId"]) in problem["detail"]
    assert "waits" in problem["detail"]
    # Another webhook is tested meanwhile: the rule is per webhook.
    await ok(api, f"{HOOKS}/{other}/test")
    receiver.hold.set()
    await until("delivered", deliveries_in(api, hook, "delivered"))
    await ok(api, f"{HOOKS}/{hook}/test")
    log = await until("both delivered", deliveries_in(api, hook, "delivered", 2))
    assert log["totalRecords"] == 2


@pytest.mark.parametrize("limit", ["-1", "0", "201", "100000"])
async def test_the_deliveries_page_is_bounded(api: Api, receiver: Receiver, limit: str) -> None:
    hook, _ = await create_hook(api, receiver.url())
    status, problem = await api.get(f"{HOOKS}/{hook}/deliveries?limit={limit}")
    assert status == 422, problem
    assert problem["field"] == "limit"
    assert (await get(api, f"{HOOKS}/{hook}/deliveries?limit=200"))["totalRecords"] == 0


@pytest.mark.parametrize("char", ["\x1b", "\x07", "\r", "\n", "\t", "\x01", "\x1f", "\x7f"])
async def test_a_url_with_a_control_character_is_refused(
    api: Api, receiver: Receiver, char: str
) -> None:
    for url in (f"https://example.com/a{char}b", f"https://ex{char}ample.com/"):
        status, problem = await api.post(HOOKS, {"url": url})
        assert (status, problem["field"]) == (422, "url"), problem
        assert "control character" in problem["detail"]
    assert (await get(api, HOOKS))["webhooks"] == []
    hook, _ = await create_hook(api, receiver.url())
    status, problem = await api.post(f"{HOOKS}/{hook}/update", {"url": receiver.url() + char})
    assert (status, problem["field"]) == (422, "url"), problem
    assert (await get(api, f"{HOOKS}/{hook}"))["webhook"]["url"] == receiver.url()


async def test_a_mail_server_answering_slowly_is_cut_at_the_attempts_timeout(
    settings: Settings, db_dsn: str
) -> None:
    """Each answer just inside smtp.timeout_seconds, a whole session well past it: the
    attempt fails at the timeout (past it, the delivery's lease would run out and another
    node send it again while this one still tries)."""

    async def slow_smtp(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        async def answer(line: bytes) -> None:
            await asyncio.sleep(0.4)
            writer.write(line)
            await writer.drain()

        await answer(b"220 slow ESMTP\r\n")
        for _ in range(20):
            command = (await reader.readline()).upper()
            if not command or command.startswith(b"QUIT"):
                break
            if command.startswith(b"DATA"):
                await answer(b"354 go on\r\n")
                while (await reader.readline()) not in (b".\r\n", b""):
                    pass
            await answer(b"250 OK\r\n")
        writer.close()

    server = await asyncio.start_server(slow_smtp, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    smtp = SmtpSettings(
        host="127.0.0.1",
        port=port,
        security="none",
        from_address="satellite@example.com",
        timeout_seconds=1.0,
    )
    slow = msgspec.structs.replace(settings, smtp=smtp)
    try:
        async with open_services(runtime_with(slow, db_dsn, FAST)) as services:
            await services.accounts.create_account(OPERATOR, "Acme", "", False)
            new = await alert_webhook(services, OPERATOR, "mailto:licensing@example.com")
            await services.webhooks.send_test(OPERATOR, "Acme", new.webhook.public_id)
            await services.deliveries.deliver_due()
            async with services.db.connection() as conn:
                [(delivery, [attempt])] = await queue.list_deliveries(conn, new.webhook.id, 1, 0)
    finally:
        server.close()
        await server.wait_closed()
    assert delivery.state == "pending", attempt  # (to be retried)
    assert attempt.error is not None
    assert "within 1 s" in attempt.error
