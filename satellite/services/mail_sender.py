"""One attempt at a delivery by e-mail (a webhook whose URL is ``mailto:ADDRESS``): the
alert as a short text, its JSON document below, through the ``[smtp]`` server.

The server's certificate is verified (the system's CAs, and besides them ``smtp.ca_file``)
unless ``smtp.security`` is "none".
"""

from __future__ import annotations

import asyncio
import json
import ssl
import time
from email.message import EmailMessage
from email.utils import formatdate, make_msgid
from pathlib import Path
from typing import Any

import aiosmtplib

from satellite.config import SmtpSettings
from satellite.domain.clock import utc_now
from satellite.domain.webhooks import (
    ERROR_CHARS,
    EXCERPT_CHARS,
    DueDelivery,
    Outcome,
    log_text,
)
from satellite_protocol import outbound


def _one_line(value: object) -> str:
    """A header's text: no line breaks (they would start new headers)."""
    return " ".join(str(value).split())[:200]


def message_for(settings: SmtpSettings, delivery: DueDelivery) -> EmailMessage:
    document: dict[str, Any] = json.loads(delivery.payload)
    account = document.get("account")
    where = "/".join(str(p) for p in (account, document.get("virtualAccount")) if p)
    if delivery.event == "webhook.test":
        subject = f"satellite: test delivery for {where}"
    else:
        happened = "cleared" if delivery.event == "alert.cleared" else "raised"
        subject = f"satellite: {document.get('type')} {happened} ({where})"
    message = EmailMessage()
    message["From"] = settings.from_address or ""
    message["To"] = delivery.url.removeprefix("mailto:")
    message["Subject"] = _one_line(subject)
    message["Date"] = formatdate(usegmt=True)
    message["Message-ID"] = make_msgid("satellite")
    message["Satellite-Event"] = delivery.event
    message["Satellite-Delivery"] = str(delivery.id)
    message["Satellite-Webhook"] = str(delivery.webhook)
    lines = [str(document.get("message", ""))]
    lines += [f"{key}: {value}" for key, value in document.items() if key != "message"]
    message.set_content("\n".join(lines) + "\n\n" + delivery.payload + "\n")
    return message


def _read_files(settings: SmtpSettings) -> tuple[str | None, ssl.SSLContext | None]:
    """The password (``smtp.password_file``) and the trust (``smtp.ca_file``), if set."""
    password = None
    if settings.password_file is not None:
        password = Path(settings.password_file).read_text().strip()
    context = None
    if settings.ca_file is not None:
        context = outbound.tls_context(None, Path(settings.ca_file).read_text())
    return password, context


class MailSender:
    def __init__(self, settings: SmtpSettings) -> None:
        self._settings = settings

    async def send(self, delivery: DueDelivery) -> Outcome:
        settings = self._settings
        started_at = utc_now()
        started = time.monotonic()
        error: str | None = None
        reply = ""
        try:
            if settings.host is None:
                raise aiosmtplib.SMTPException("no smtp.host is configured")
            password, context = _read_files(settings)
            # (aiosmtplib's timeout bounds each answer; this, the whole session: the
            # delivery's lease outlasts one attempt of this length only.)
            async with asyncio.timeout(settings.timeout_seconds):
                _, reply = await aiosmtplib.send(
                    message_for(settings, delivery),
                    hostname=settings.host,
                    port=settings.port,
                    username=settings.username,
                    password=password,
                    timeout=settings.timeout_seconds,
                    use_tls=settings.security == "tls",
                    start_tls=settings.security == "starttls",
                    tls_context=context,
                )
        except aiosmtplib.SMTPException as exc:
            error = f"the mail server refused or failed: {exc}"
        except TimeoutError:
            error = f"the mail server did not finish within {settings.timeout_seconds:g} s"
        except (OSError, ssl.SSLError, ValueError) as exc:
            error = f"cannot send the e-mail: {exc}"
        return Outcome(
            delivered=error is None,
            attempted_at=started_at,
            status_code=None,
            error=None if error is None else log_text(error, ERROR_CHARS),
            duration_ms=round((time.monotonic() - started) * 1000),
            response_excerpt=log_text(reply, EXCERPT_CHARS),
        )
