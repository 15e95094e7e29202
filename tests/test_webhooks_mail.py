"""Webhooks whose URL is ``mailto:ADDRESS``: the alert sent as an e-mail through the
``[smtp]`` server, from the same queue (a real SMTP server, aiosmtpd, on 127.0.0.1)."""

from __future__ import annotations

import datetime as dt
import email
import email.policy
import json
import socket
from collections.abc import Iterator
from dataclasses import dataclass, field
from email.message import EmailMessage
from typing import Any

import msgspec
import pytest
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import SMTP, Envelope, Session

from satellite.config import Settings, SmtpSettings
from tests.conftest import ENHANCED, AiohttpClient, Api, Credentials
from tests.helpers.daemon import free_port
from tests.helpers.webhooks import (
    FAST,
    HOOKS,
    admin_with,
    create_hook,
    deliveries_in,
    get,
    ok,
    until,
)


@dataclass
class Mailbox:
    port: int
    messages: list[tuple[str, list[str], EmailMessage]] = field(default_factory=list)

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        content = envelope.content if isinstance(envelope.content, bytes) else b""
        parsed = email.message_from_bytes(content, policy=email.policy.default)
        assert isinstance(parsed, EmailMessage)
        self.messages.append((str(envelope.mail_from), list(envelope.rcpt_tos), parsed))
        return "250 Message accepted for delivery"


@pytest.fixture
def mailbox() -> Iterator[Mailbox]:
    box = Mailbox(free_port(socket.AF_INET, "127.0.0.1"))
    controller = Controller(box, hostname="127.0.0.1", port=box.port)
    controller.start()
    try:
        yield box
    finally:
        controller.stop()


def with_smtp(settings: Settings, port: int) -> Settings:
    smtp = SmtpSettings(
        host="127.0.0.1", port=port, security="none", from_address="satellite@example.com"
    )
    return msgspec.structs.replace(settings, smtp=smtp)


async def mail_api(
    aiohttp_client: AiohttpClient, settings: Settings, db_dsn: str, creds: Credentials
) -> Api:
    admin = await admin_with(settings, db_dsn, creds, aiohttp_client, FAST)
    return admin


async def test_an_alert_reaches_a_mailto_webhook_as_an_email(
    settings: Settings,
    db_dsn: str,
    system_admin: Credentials,
    mailbox: Mailbox,
    aiohttp_client: AiohttpClient,
) -> None:
    api = await mail_api(aiohttp_client, with_smtp(settings, mailbox.port), db_dsn, system_admin)
    hook, _ = await create_hook(api, "mailto:licensing@example.com")
    queued = await ok(api, f"{HOOKS}/{hook}/test")
    log = await until("sent", deliveries_in(api, hook, "delivered"))
    [(sender, recipients, message)] = mailbox.messages
    assert sender == "satellite@example.com"
    assert recipients == ["licensing@example.com"]
    assert message["Subject"] == "satellite: test delivery for Acme"
    assert message["Satellite-Event"] == "webhook.test"
    assert message["Satellite-Delivery"] == str(queued["deliveryId"])
    body = message.get_content()
    document: dict[str, Any] = json.loads(body.strip().splitlines()[-1])
    assert document["event"] == "webhook.test"
    assert document["webhook"] == hook
    [attempt] = log["deliveries"][0]["attempts"]
    assert attempt["statusCode"] is None
    assert "accepted" in attempt["responseExcerpt"]

    # An alert: a TERM line about to expire raises "Licenses Expiring" as it is added.
    await ok(api, "/api/v1/accounts/Acme/virtual-accounts", {"name": "Voice"})
    end = (dt.datetime.now(dt.UTC) + dt.timedelta(days=10)).date().isoformat()
    line = {"entitlementTag": ENHANCED, "quantity": 1, "licenseType": "TERM", "endDate": end}
    await ok(api, "/api/v1/accounts/Acme/virtual-accounts/Voice/license-pool", line)
    await until("sent", deliveries_in(api, hook, "delivered", 2))
    alert = mailbox.messages[1][2]
    assert alert["Subject"] == "satellite: Licenses Expiring raised (Acme/Voice)"
    assert alert.get_content().startswith(f"1 UC Manager Enhanced License (12.x) expire on {end}")


async def test_a_mail_server_that_is_down_is_a_failed_attempt(
    settings: Settings, db_dsn: str, system_admin: Credentials, aiohttp_client: AiohttpClient
) -> None:
    nobody = free_port(socket.AF_INET, "127.0.0.1")  # (nothing listens there)
    api = await mail_api(aiohttp_client, with_smtp(settings, nobody), db_dsn, system_admin)
    hook, _ = await create_hook(api, "mailto:licensing@example.com")
    await ok(api, f"{HOOKS}/{hook}/test")

    async def attempted() -> Any:
        [delivery] = (await get(api, f"{HOOKS}/{hook}/deliveries"))["deliveries"]
        return delivery["attempts"]

    [attempt, *_] = await until("an attempt", attempted)
    assert "e-mail" in attempt["error"] or "mail server" in attempt["error"]


@pytest.mark.parametrize(
    ("url", "smtp", "words"),
    [
        ("mailto:licensing@example.com", False, "smtp.host"),
        ("mailto:a@example.com,b@example.com", True, "one e-mail address"),
        ("mailto:a@example.com?subject=x", True, "one e-mail address"),
        ("mailto:<a@example.com>", True, "one e-mail address"),
        # A group ("undisclosed: victim@example.com;" in the To header), an encoded word.
        ("mailto:undisclosed:victim@example.com", True, "one e-mail address"),
        ("mailto:=?utf-8?q?x?=@example.com", True, "one e-mail address"),
        ("mailto:a..b@example.com", True, "one e-mail address"),
    ],
)
async def test_a_mailto_url_is_checked(
    settings: Settings,
    db_dsn: str,
    system_admin: Credentials,
    aiohttp_client: AiohttpClient,
    url: str,
    smtp: bool,
    words: str,
) -> None:
    configured = with_smtp(settings, 25) if smtp else settings
    api = await mail_api(aiohttp_client, configured, db_dsn, system_admin)
    status, problem = await api.post(HOOKS, {"url": url})
    assert (status, problem["field"]) == (422, "url"), problem
    assert words in problem["detail"]
    assert (await get(api, HOOKS))["webhooks"] == []
