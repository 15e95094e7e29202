"""Webhooks: alerts delivered to a receiver in the test (a real aiohttp server on 127.0.0.1),
signed (checked here with ``hmac`` alone), retried from the queue in PostgreSQL (across a
restart), given up after the configured age (which raises its own alert), never redirected."""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import time
from collections.abc import MutableMapping
from typing import Any

import msgspec
import pytest
import structlog

from satellite.config import Settings, WebhookSettings
from tests.conftest import ENHANCED, AiohttpClient, Api, Credentials, new_client
from tests.helpers.webhooks import (
    ACCOUNT,
    FAST,
    HOOKS,
    Receiver,
    admin_with,
    create_hook,
    deliveries_in,
    documented_verifier,
    get,
    ok,
    runtime_with,
    served,
    start_receiver,
    until,
    verify,
)


@pytest.fixture
async def api(
    settings: Settings,
    db_dsn: str,
    system_admin: Credentials,
    aiohttp_client: AiohttpClient,
) -> Api:
    admin = await admin_with(settings, db_dsn, system_admin, aiohttp_client, FAST)
    await ok(admin, ACCOUNT + "/virtual-accounts", {"name": "Voice"})
    return admin


async def test_alert_raised_and_cleared_each_delivered_once_signed(
    api: Api, receiver: Receiver
) -> None:
    with structlog.testing.capture_logs() as logs:
        hook, secret = await create_hook(api, receiver.url(), description="pager")
        # A TERM line that expires within 30 days raises "Licenses Expiring" in the same
        # transaction that adds it; removing the line clears it.
        end = (dt.datetime.now(dt.UTC) + dt.timedelta(days=10)).date()
        line = await ok(
            api,
            ACCOUNT + "/virtual-accounts/Voice/license-pool",
            {
                "entitlementTag": ENHANCED,
                "quantity": 3,
                "licenseType": "TERM",
                "startDate": "2020-01-01",
                "endDate": end.isoformat(),
            },
        )
        line_id = line["license"]["id"]
        await ok(api, f"{ACCOUNT}/virtual-accounts/Voice/license-pool/{line_id}/delete", {})
        log = await until("both delivered", deliveries_in(api, hook, "delivered", 2))
        listed = await get(api, HOOKS)
        one = await get(api, f"{HOOKS}/{hook}")
    assert len(receiver.got) == 2  # once each
    raised, cleared = (verify(secret, r, time.time()) for r in receiver.got)
    # ... and as the snippet of docs/webhooks.md verifies them.
    verified = documented_verifier()
    assert all(verified(secret, r.headers["Satellite-Signature"], r.body) for r in receiver.got)
    raw = receiver.got[0].body
    assert not verified(secret, receiver.got[0].headers["Satellite-Signature"], raw + b" ")
    assert not verified("whsec_other", receiver.got[0].headers["Satellite-Signature"], raw)
    # A v1 that is not hex (nor ASCII) is a wrong signature, not an error of the snippet.
    stamp = receiver.got[0].headers["Satellite-Signature"].split(",")[0]
    assert not verified(secret, f"{stamp},v1=\u00e9t\u00e9", raw)
    assert [r.headers["Satellite-Event"] for r in receiver.got] == ["alert.raised", "alert.cleared"]
    assert raised["event"] == "alert.raised"
    assert cleared["event"] == "alert.cleared"
    for document in (raised, cleared):
        assert document["account"] == "Acme"
        assert document["virtualAccount"] == "Voice"
        assert document["type"] == "Licenses Expiring"
        assert document["severity"] == "Minor"
        assert document["source"] == "Voice"
        assert end.isoformat() in document["message"]
        # The values the message is made of, as the API's alert answer has them.
        assert document["details"] == {"tag": ENHANCED, "quantity": 3, "end_date": str(end)}
        assert document["raisedAt"].endswith("Z")
    assert raised["clearedAt"] is None
    assert cleared["clearedAt"].endswith("Z")
    # The delivery's id is in the signed body too: what a receiver drops a duplicate by.
    for r, document in zip(receiver.got, (raised, cleared), strict=True):
        assert document["deliveryId"] == int(r.headers["Satellite-Delivery"])
    ids = sorted(int(r.headers["Satellite-Delivery"]) for r in receiver.got)
    assert ids == sorted(d["id"] for d in log["deliveries"])
    assert all(r.headers["Satellite-Webhook"] == hook for r in receiver.got)
    # The secret was shown once: never again in an answer, never in the log.
    assert secret not in json.dumps(listed)
    assert secret not in json.dumps(one)
    assert listed["webhooks"][0]["description"] == "pager"
    assert logs
    assert secret not in repr(logs)
    events = await get(api, "/api/v1/events?account=Acme&limit=-1")
    assert "webhook.created" in {e["action"] for e in events["events"]}
    assert secret not in json.dumps(events)


async def test_alert_type_filter_and_events_chosen(api: Api, receiver: Receiver) -> None:
    only_cleared, _ = await create_hook(api, receiver.url(), events=["alert.cleared"])
    other_type, _ = await create_hook(api, receiver.url(), alertTypes=["Insufficient Licenses"])
    end = (dt.datetime.now(dt.UTC) + dt.timedelta(days=10)).date().isoformat()
    line = await ok(
        api,
        ACCOUNT + "/virtual-accounts/Voice/license-pool",
        {"entitlementTag": ENHANCED, "quantity": 1, "licenseType": "TERM", "endDate": end},
    )
    await ok(api, f"{ACCOUNT}/virtual-accounts/Voice/license-pool/{line['license']['id']}/delete")
    await until("the cleared one", deliveries_in(api, only_cleared, "delivered"))
    assert [r.headers["Satellite-Event"] for r in receiver.got] == ["alert.cleared"]
    assert (await get(api, f"{HOOKS}/{other_type}/deliveries"))["deliveries"] == []


async def test_receiver_failing_then_answering_is_retried_and_logged(
    api: Api, receiver: Receiver
) -> None:
    hook, secret = await create_hook(api, receiver.url())
    receiver.answers = [500]
    queued = await ok(api, f"{HOOKS}/{hook}/test")
    log = await until("delivered", deliveries_in(api, hook, "delivered"))
    [delivery] = log["deliveries"]
    assert delivery["id"] == queued["deliveryId"]
    assert delivery["event"] == "webhook.test"
    assert [a["statusCode"] for a in delivery["attempts"]] == [500, 200]
    assert delivery["attempts"][0]["responseExcerpt"] == "answered 500"
    assert all(a["durationMs"] >= 0 for a in delivery["attempts"])
    assert len(receiver.got) == 2
    assert verify(secret, receiver.got[1], time.time())["event"] == "webhook.test"
    # The retry carries the very body of the first attempt (built once, when queued).
    assert receiver.got[0].body == receiver.got[1].body
    assert verify(secret, receiver.got[1], time.time())["deliveryId"] == queued["deliveryId"]


async def test_failed_delivery_is_retried_after_a_restart(
    settings: Settings,
    db_dsn: str,
    system_admin: Credentials,
    aiohttp_client: AiohttpClient,
) -> None:
    """The receiver is down while the daemon runs; the daemon stops; it starts again and the
    receiver is up: the delivery waited in the database, and is made."""
    probe = await start_receiver()
    port = probe.server.port
    assert port is not None
    url = probe.url()
    await probe.server.close()  # (nothing listens there now)
    runtime = runtime_with(settings, db_dsn, FAST)
    first, client = await served(aiohttp_client, runtime, system_admin)
    await ok(first, "/api/v1/accounts", {"name": "Acme"})
    hook, secret = await create_hook(first, url)
    await ok(first, f"{HOOKS}/{hook}/test")

    async def failed_once() -> Any:
        [delivery] = (await get(first, f"{HOOKS}/{hook}/deliveries"))["deliveries"]
        return delivery["attempts"] and delivery["state"] == "pending"

    await until("a failed attempt", failed_once)
    await client.close()  # the daemon stops, its worker with it

    back = await start_receiver(port)
    try:
        second, _ = await served(aiohttp_client, runtime, system_admin)
        log = await until("delivered", deliveries_in(second, hook, "delivered"))
        [delivery] = log["deliveries"]
        assert delivery["attempts"][0]["statusCode"] is None
        assert "cannot reach the receiver" in delivery["attempts"][0]["error"]
        assert delivery["attempts"][-1]["statusCode"] == 200
        assert [verify(secret, r, time.time())["event"] for r in back.got] == ["webhook.test"]
    finally:
        await back.server.close()


async def test_give_up_after_the_configured_age_raises_an_alert(
    settings: Settings,
    db_dsn: str,
    system_admin: Credentials,
    receiver: Receiver,
    aiohttp_client: AiohttpClient,
) -> None:
    soon = msgspec.structs.replace(FAST, give_up_after_hours=0.5 / 3600)  # half a second
    admin = await admin_with(settings, db_dsn, system_admin, aiohttp_client, soon)
    hook, _ = await create_hook(admin, receiver.url())
    receiver.answers = [503] * 1000
    await ok(admin, f"{HOOKS}/{hook}/test")
    log = await until("given up", deliveries_in(admin, hook, "failed"))
    given_up = next(d for d in log["deliveries"] if d["event"] == "webhook.test")
    assert given_up["finishedAt"] is not None
    assert given_up["nextAttemptAt"] is None
    assert {a["statusCode"] for a in given_up["attempts"]} == {503}
    alerts = (await ok(admin, ACCOUNT + "/alerts", {}))["alerts"]
    [failed] = [a for a in alerts if a["messageType"] == "Webhook Delivery Failed"]
    assert failed["severity"] == "Major"
    assert hook in failed["source"]
    assert "HTTP 503" in failed["message"]
    # The receiver answers again: the next delivery (the alert's own) clears the alert.
    receiver.answers = []

    async def cleared() -> Any:
        found = (await ok(admin, ACCOUNT + "/alerts", {}))["alerts"]
        return not [a for a in found if a["messageType"] == "Webhook Delivery Failed"]

    await ok(admin, f"{HOOKS}/{hook}/test")
    await until("the alert cleared", cleared)


async def test_redirect_is_not_followed(api: Api, receiver: Receiver) -> None:
    hook, _ = await create_hook(api, receiver.url("/redirect"))
    await ok(api, f"{HOOKS}/{hook}/test")

    async def attempted() -> Any:
        [delivery] = (await get(api, f"{HOOKS}/{hook}/deliveries"))["deliveries"]
        return delivery["attempts"]

    [attempt, *_] = await until("an attempt", attempted)
    assert attempt["statusCode"] == 302
    assert attempt["error"] == "redirect not followed: to '/hook'"
    assert receiver.got == []  # /hook was never reached


async def test_a_hostile_answer_is_logged_as_a_short_clean_excerpt(
    api: Api, receiver: Receiver
) -> None:
    hook, _ = await create_hook(api, receiver.url("/hostile"))
    await ok(api, f"{HOOKS}/{hook}/test")

    async def two_attempts() -> Any:
        [delivery] = (await get(api, f"{HOOKS}/{hook}/deliveries"))["deliveries"]
        return delivery["attempts"][1:] and delivery["attempts"]

    attempts = await until("two logged attempts", two_attempts)
    excerpt = attempts[0]["responseExcerpt"]
    assert attempts[0]["statusCode"] == 500
    assert "\x00" not in excerpt
    assert "\x1b" not in excerpt
    assert "red" in excerpt
    assert len(excerpt) <= 512


async def test_disable_cancels_and_rotate_signs_with_the_new_secret(
    api: Api, receiver: Receiver
) -> None:
    hook, old = await create_hook(api, receiver.url())
    rotated = await ok(api, f"{HOOKS}/{hook}/rotate-secret", {})
    new = rotated["secret"]
    assert new != old
    assert rotated["webhook"]["id"] == hook
    await ok(api, f"{HOOKS}/{hook}/test")
    await until("delivered", deliveries_in(api, hook, "delivered"))
    verify(new, receiver.got[0], time.time())
    disabled = await ok(api, f"{HOOKS}/{hook}/update", {"enabled": False})
    assert disabled["webhook"]["enabled"] is False
    status, problem = await api.post(f"{HOOKS}/{hook}/test", {})
    assert status == 409, problem
    gone = await ok(api, f"{HOOKS}/{hook}/delete", {})
    assert gone["webhook"]["id"] == hook
    status, problem = await api.get(f"{HOOKS}/{hook}")
    assert status == 404
    assert problem["field"] == "webhook"


async def test_another_accounts_admin_cannot_see_or_touch_them(api: Api) -> None:
    hook, _ = await create_hook(api, "https://hooks.example.com/acme")
    await ok(api, "/api/v1/accounts", {"name": "Other"})
    other = await new_client(api, "account-admin", ["Other"])
    viewer = await new_client(api, "account-viewer", ["Acme"])
    for method, path, body in [
        ("GET", HOOKS, None),
        ("GET", f"{HOOKS}/{hook}", None),
        ("POST", f"{HOOKS}/{hook}/update", {"enabled": False}),
        ("POST", f"{HOOKS}/{hook}/delete", {}),
        ("POST", f"{HOOKS}/{hook}/rotate-secret", {}),
        ("POST", f"{HOOKS}/{hook}/test", {}),
        ("GET", f"{HOOKS}/{hook}/deliveries", None),
    ]:
        status, problem = await other.call(method, path, body)
        assert (status, problem["field"]) == (404, "account"), (path, problem)
        # ... and through its own account, Acme's webhook does not exist.
        mine = path.replace("/Acme/", "/Other/")
        status, answer = await other.call(method, mine, body)
        if path == HOOKS:
            assert (status, answer["webhooks"]) == (200, []), answer
        else:
            assert (status, answer["field"]) == (404, "webhook"), (mine, answer)
        # A viewer of Acme may not see where its alerts go.
        status, problem = await viewer.call(method, path, body)
        assert status == 403, (path, problem)
    assert (await get(api, f"{HOOKS}/{hook}"))["webhook"]["enabled"] is True


@pytest.mark.parametrize(
    ("body", "field_name"),
    [
        ({"url": "ftp://hooks.example.com/x"}, "url"),
        ({"url": "https://user:pw@hooks.example.com/x"}, "url"),
        ({"url": "https://" + "h" * 2000}, "url"),
        ({"url": "https://hooks.example.com/x", "events": ["alert.maybe"]}, "events[0]"),
        ({"url": "https://hooks.example.com/x", "events": []}, "events"),
        ({"url": "https://hooks.example.com/x", "alertTypes": ["a/b"]}, "alertTypes[0]"),
        ({"url": "https://hooks.example.com/x", "secret": "mine"}, "secret"),
        ({"url": "https://hooks.example.com/x", "description": "d" * 501}, "description"),
        ({"events": ["alert.raised"]}, "url"),
    ],
)
async def test_bad_input_is_refused_naming_the_field(
    api: Api, body: dict[str, Any], field_name: str
) -> None:
    status, problem = await api.post(HOOKS, body)
    assert status == 422, problem
    assert problem["field"] == field_name, problem
    assert (await get(api, HOOKS))["webhooks"] == []


@pytest.mark.parametrize(
    ("body", "field_name"),
    [
        ({"url": "gopher://hooks.example.com/x"}, "url"),
        ({"events": []}, "events"),
        ({"events": ["alert.raised", "alert.raised", "alert.cleared"]}, "events"),
        ({"alertTypes": ["x"] * 51}, "alertTypes"),
        ({"enabled": "yes"}, "enabled"),
        ({"secret": "whsec_mine"}, "secret"),
    ],
)
async def test_a_bad_update_is_refused_naming_the_field_and_changes_nothing(
    api: Api, body: dict[str, Any], field_name: str
) -> None:
    hook, _ = await create_hook(api, "https://hooks.example.com/x")
    before = await get(api, f"{HOOKS}/{hook}")
    status, problem = await api.post(f"{HOOKS}/{hook}/update", body)
    assert status == 422, problem
    assert problem["field"] == field_name, problem
    assert await get(api, f"{HOOKS}/{hook}") == before


async def test_a_webhook_id_that_is_not_one_is_refused_naming_it(api: Api) -> None:
    for method, path in [("GET", f"{HOOKS}/not-a-uuid"), ("POST", f"{HOOKS}/%00/test")]:
        status, problem = await api.call(method, path, {} if method == "POST" else None)
        assert status == 422, (path, problem)
        assert problem["field"] == "webhook", problem


async def test_a_webhook_deleted_while_its_delivery_is_in_flight(
    api: Api, receiver: Receiver
) -> None:
    """The attempt's outcome has nowhere to go: it is dropped, and the worker goes on."""
    doomed, _ = await create_hook(api, receiver.url())
    kept, _ = await create_hook(api, receiver.url(), description="kept")
    receiver.hold = asyncio.Event()
    with structlog.testing.capture_logs() as logs:

        async def held() -> bool:
            return bool(receiver.got)

        async def dropped() -> bool:
            return _logged(logs, "webhook.dropped")

        await ok(api, f"{HOOKS}/{doomed}/test")
        await until("the request held", held)
        await ok(api, f"{HOOKS}/{doomed}/delete", {})
        receiver.hold.set()
        await until("the attempt dropped", dropped)
        await ok(api, f"{HOOKS}/{kept}/test")
        await until("the next delivered", deliveries_in(api, kept, "delivered"))
    assert not _logged(logs, "webhooks.pass_crashed"), logs
    assert len(receiver.got) == 2


def _logged(logs: list[MutableMapping[str, Any]], event: str) -> bool:
    return any(entry["event"] == event for entry in logs)


async def test_an_account_has_at_most_twenty_webhooks(api: Api) -> None:
    for n in range(20):
        await create_hook(api, f"https://hooks.example.com/{n}")
    status, problem = await api.post(HOOKS, {"url": "https://hooks.example.com/more"})
    assert status == 409, problem
    assert "20 webhooks" in problem["detail"]
    assert len((await get(api, HOOKS))["webhooks"]) == 20


async def test_plain_http_needs_the_config_key(
    settings: Settings, db_dsn: str, system_admin: Credentials, aiohttp_client: AiohttpClient
) -> None:
    strict = runtime_with(settings, db_dsn, WebhookSettings())
    admin, _ = await served(aiohttp_client, strict, system_admin)
    await ok(admin, "/api/v1/accounts", {"name": "Acme"})
    status, problem = await admin.post(HOOKS, {"url": "http://hooks.example.com/x"})
    assert status == 422
    assert problem["field"] == "url"
    assert "webhooks.allow_http" in problem["detail"]
    hook, _ = await create_hook(admin, "https://hooks.example.com/x")
    status, problem = await admin.post(
        f"{HOOKS}/{hook}/update", {"url": "http://hooks.example.com/x"}
    )
    assert status == 422
    assert problem["field"] == "url"
    assert (await get(admin, f"{HOOKS}/{hook}"))["webhook"]["url"] == "https://hooks.example.com/x"
