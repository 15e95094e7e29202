"""Where a webhook may send, and what its log tells whom: an account admin could point a
webhook at an internal address and read the answer, so the answer's excerpt is for system
admins only, and ``webhooks.allowed_networks`` confines receivers, checked on the address
connected to (each address a name resolves to), or through a proxy on the URL's host."""

from __future__ import annotations

from typing import Any

import msgspec
import pytest
from msgspec.structs import replace

from satellite.config import Settings, parse_settings
from satellite.errors import ConfigError
from satellite.wiring import apply_live_settings
from tests.conftest import AiohttpClient, Api, Credentials, new_client
from tests.helpers.webhooks import (
    FAST,
    HOOKS,
    Receiver,
    admin_with,
    create_hook,
    deliveries_in,
    get,
    ok,
    runtime_with,
    served,
    through_proxy,
    until,
)


async def first_attempt(api: Api, hook: str) -> dict[str, Any]:
    async def attempted() -> Any:
        [delivery] = (await get(api, f"{HOOKS}/{hook}/deliveries"))["deliveries"]
        return delivery["attempts"]

    attempts: list[dict[str, Any]] = await until("an attempt", attempted)
    return attempts[0]


async def test_only_system_admins_read_the_receivers_answer(
    settings: Settings,
    db_dsn: str,
    system_admin: Credentials,
    receiver: Receiver,
    aiohttp_client: AiohttpClient,
) -> None:
    admin = await admin_with(settings, db_dsn, system_admin, aiohttp_client, FAST)
    account_admin = await new_client(admin, "account-admin", ["Acme"])
    hook, _ = await create_hook(account_admin, receiver.url("/hostile"))
    await ok(account_admin, f"{HOOKS}/{hook}/test")
    seen_by_admin = await first_attempt(admin, hook)
    assert "red" in seen_by_admin["responseExcerpt"]
    seen = await first_attempt(account_admin, hook)
    # The account's admin sees how it went, not what the receiver said.
    assert (seen["statusCode"], seen["responseExcerpt"]) == (500, None)
    assert seen["durationMs"] >= 0
    assert seen["attemptedAt"] == seen_by_admin["attemptedAt"]
    # Of an error, the kind, not the detail (which may quote the receiver: a header here).
    hook, _ = await create_hook(account_admin, receiver.url("/redirect"))
    await ok(account_admin, f"{HOOKS}/{hook}/test")
    assert (await first_attempt(admin, hook))["error"] == "redirect not followed: to '/hook'"
    assert (await first_attempt(account_admin, hook))["error"] == "redirect not followed"


@pytest.mark.parametrize("host", ["127.0.0.1", "localhost"])
@pytest.mark.parametrize("allowed", [["10.0.0.0/8", "fd00::/8"], ["127.0.0.0/8"]])
async def test_allowed_networks_confine_the_address_connected_to(
    settings: Settings,
    db_dsn: str,
    system_admin: Credentials,
    receiver: Receiver,
    aiohttp_client: AiohttpClient,
    host: str,
    allowed: list[str],
) -> None:
    """An address or a name: each address the name resolves to is checked as it is
    connected to (localhost's ::1 is refused on the way to its 127.0.0.1), also for a
    webhook made before a reload narrowed the setting."""
    runtime = runtime_with(settings, db_dsn, FAST)
    admin, client = await served(aiohttp_client, runtime, system_admin)
    await ok(admin, "/api/v1/accounts", {"name": "Acme"})
    hook, _ = await create_hook(admin, receiver.url().replace("127.0.0.1", host))
    hooks = msgspec.structs.replace(FAST, allowed_networks=allowed)
    apply_live_settings(client.app, runtime.settings, replace(runtime.settings, webhooks=hooks))
    await ok(admin, f"{HOOKS}/{hook}/test")
    if "127.0.0.0/8" in allowed:
        await until("delivered", deliveries_in(admin, hook, "delivered"))
        assert len(receiver.got) == 1
    else:
        attempt = await first_attempt(admin, hook)
        assert attempt["statusCode"] is None
        assert "webhooks.allowed_networks" in attempt["error"]
        assert receiver.got == []


async def test_through_a_proxy_the_receivers_host_is_checked(
    settings: Settings,
    db_dsn: str,
    system_admin: Credentials,
    receiver: Receiver,
    auth_proxy: int,
    tmp_path: Any,
    aiohttp_client: AiohttpClient,
) -> None:
    proxied = through_proxy(settings, auth_proxy, tmp_path / "proxy-password", "s3cret")
    hooks = msgspec.structs.replace(FAST, allowed_networks=["10.0.0.0/8"])
    admin = await admin_with(proxied, db_dsn, system_admin, aiohttp_client, hooks)
    hook, _ = await create_hook(admin, receiver.url().replace("127.0.0.1", "localhost"))
    await ok(admin, f"{HOOKS}/{hook}/test")
    attempt = await first_attempt(admin, hook)
    assert attempt["statusCode"] is None  # (not the proxy's answer: it was not asked)
    assert "webhooks.allowed_networks" in attempt["error"]
    assert receiver.got == []


@pytest.mark.parametrize(
    "url",
    [
        "https://hooks.example.com:0/x",  # no server listens on port 0
        "https://10.1.2.3/x",  # an address outside webhooks.allowed_networks
        "https://[fd00::1]:8443/x",
    ],
)
async def test_a_url_that_cannot_be_a_receiver_is_refused_naming_it(
    settings: Settings,
    db_dsn: str,
    system_admin: Credentials,
    aiohttp_client: AiohttpClient,
    url: str,
) -> None:
    hooks = msgspec.structs.replace(FAST, allowed_networks=["192.168.0.0/16"])
    admin = await admin_with(settings, db_dsn, system_admin, aiohttp_client, hooks)
    status, problem = await admin.post(HOOKS, {"url": url})
    assert (status, problem["field"]) == (422, "url"), problem
    assert (await get(admin, HOOKS))["webhooks"] == []


@pytest.mark.parametrize("network", ["10.0.0.1/8", "ten/8", "::1/129"])
def test_a_network_that_is_not_one_is_refused_naming_the_key(network: str) -> None:
    text = f'[webhooks]\nallowed_networks = ["{network}"]\n'
    with pytest.raises(ConfigError, match=r"webhooks\.allowed_networks"):
        parse_settings(text.encode())
