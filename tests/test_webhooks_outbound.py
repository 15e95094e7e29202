"""Webhook deliveries leave as the server's other outbound calls do: through the proxy that
``[sync]`` names (with its credentials), to receivers whose certificate is verified."""

from __future__ import annotations

import ssl
import time
from pathlib import Path
from typing import Any

import msgspec
import pytest
import trustme

from satellite.config import Settings, WebhookSettings
from satellite.domain.access import host_operator
from satellite.errors import ConfigError
from satellite.wiring import open_services
from tests.conftest import AiohttpClient, Credentials
from tests.helpers.webhooks import (
    FAST,
    HOOKS,
    Receiver,
    admin_with,
    alert_webhook,
    create_hook,
    deliveries_in,
    get,
    ok,
    runtime_with,
    start_receiver,
    through_proxy,
    until,
    verify,
)


async def first_attempt(api: Any, hook: str) -> dict[str, Any]:
    async def attempted() -> Any:
        [delivery] = (await get(api, f"{HOOKS}/{hook}/deliveries"))["deliveries"]
        return delivery["attempts"]

    attempts: list[dict[str, Any]] = await until("an attempt", attempted)
    return attempts[0]


@pytest.mark.parametrize(("password", "delivered"), [("wrong", False), ("s3cret", True)])
async def test_deliveries_go_through_the_configured_proxy_with_its_credentials(
    settings: Settings,
    db_dsn: str,
    system_admin: Credentials,
    receiver: Receiver,
    auth_proxy: int,
    tmp_path: Path,
    password: str,
    delivered: bool,
    aiohttp_client: AiohttpClient,
) -> None:
    proxied = through_proxy(settings, auth_proxy, tmp_path / "proxy-password", password)
    admin = await admin_with(proxied, db_dsn, system_admin, aiohttp_client, FAST)
    hook, secret = await create_hook(admin, receiver.url())
    await ok(admin, f"{HOOKS}/{hook}/test")
    if delivered:
        await until("delivered", deliveries_in(admin, hook, "delivered"))
        [got] = receiver.got
        assert verify(secret, got, time.time())["event"] == "webhook.test"
        assert "Proxy-Authorization" not in got.headers  # (the proxy's, not the receiver's)
    else:
        attempt = await first_attempt(admin, hook)
        assert attempt["statusCode"] == 407  # the proxy refused: it is in the way
        assert receiver.got == []


@pytest.mark.parametrize("trusted", [False, True])
async def test_a_receivers_certificate_is_verified(
    settings: Settings,
    db_dsn: str,
    system_admin: Credentials,
    tmp_path: Path,
    trusted: bool,
    aiohttp_client: AiohttpClient,
) -> None:
    """An HTTPS receiver whose CA is not the system's: refused unless ``webhooks.ca_file``
    names it (and https:// needs no ``allow_http``)."""
    authority = trustme.CA()
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    authority.issue_cert("127.0.0.1").configure_cert(context)
    ca_file = tmp_path / "receiver-ca.pem"
    authority.cert_pem.write_to_path(str(ca_file))
    hooks = WebhookSettings(
        poll_interval_seconds=FAST.poll_interval_seconds,
        backoff_first_seconds=FAST.backoff_first_seconds,
        backoff_longest_seconds=FAST.backoff_longest_seconds,
        ca_file=str(ca_file) if trusted else None,
    )
    receiver = await start_receiver(tls=context)
    try:
        admin = await admin_with(settings, db_dsn, system_admin, aiohttp_client, hooks)
        url = receiver.url()
        assert url.startswith("https://127.0.0.1:")
        hook, _ = await create_hook(admin, url)
        await ok(admin, f"{HOOKS}/{hook}/test")
        if trusted:
            await until("delivered", deliveries_in(admin, hook, "delivered"))
            assert len(receiver.got) == 1
        else:
            attempt = await first_attempt(admin, hook)
            assert attempt["statusCode"] is None
            assert "certificate" in attempt["error"].lower()
            assert receiver.got == []
    finally:
        await receiver.server.close()


async def test_an_unusable_ca_file_claims_nothing(
    settings: Settings, db_dsn: str, tmp_path: Path, receiver: Receiver
) -> None:
    """The pass fails (logged, the worker goes on) before it takes a delivery: nothing is
    leased or counted as an attempt while the file is wrong, and all is sent once it is
    right."""
    missing = msgspec.structs.replace(FAST, ca_file=str(tmp_path / "no-such-ca.pem"))
    operator = host_operator("pytest")
    async with open_services(runtime_with(settings, db_dsn, missing)) as services:
        await services.accounts.create_account(operator, "Acme", "", False)
        new = await alert_webhook(services, operator, receiver.url())
        await services.webhooks.send_test(operator, "Acme", new.webhook.public_id)
        with pytest.raises(ConfigError, match=r"webhooks\.ca_file"):
            await services.deliveries.deliver_due()
        [(delivery, attempts)] = (
            await services.webhooks.deliveries(operator, "Acme", new.webhook.public_id, -1, 0)
        )[1]
        assert (delivery.attempts, attempts, receiver.got) == (0, [], [])
        services.deliveries.use_settings(FAST)  # (the file fixed, and reloaded)
        assert await services.deliveries.deliver_due() == 1
        assert len(receiver.got) == 1


async def test_an_https_receiver_is_reached_through_the_proxys_tunnel(
    settings: Settings,
    db_dsn: str,
    system_admin: Credentials,
    auth_proxy: int,
    tmp_path: Path,
    aiohttp_client: AiohttpClient,
) -> None:
    """CONNECT through the proxy (its credentials in the CONNECT request), TLS to the
    receiver inside the tunnel, its certificate verified with ``webhooks.ca_file``."""
    authority = trustme.CA()
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    authority.issue_cert("127.0.0.1").configure_cert(context)
    ca_file = tmp_path / "receiver-ca.pem"
    authority.cert_pem.write_to_path(str(ca_file))
    proxied = through_proxy(settings, auth_proxy, tmp_path / "proxy-password", "s3cret")
    hooks = msgspec.structs.replace(FAST, allow_http=False, ca_file=str(ca_file))
    receiver = await start_receiver(tls=context)
    try:
        admin = await admin_with(proxied, db_dsn, system_admin, aiohttp_client, hooks)
        hook, secret = await create_hook(admin, receiver.url())
        await ok(admin, f"{HOOKS}/{hook}/test")
        await until("delivered", deliveries_in(admin, hook, "delivered"))
        [got] = receiver.got
        assert verify(secret, got, time.time())["event"] == "webhook.test"
        assert "Proxy-Authorization" not in got.headers  # (never inside the tunnel)
    finally:
        await receiver.server.close()
