"""One attempt at a webhook delivery: the signed POST and what came of it.

The receiver is verified as any HTTPS server is (the system's CAs, and besides them
``webhooks.ca_file``); the proxy is the one ``[sync]`` names; a redirect is never followed
(a 3xx is a failed attempt: the receiver named in the webhook is the only one that gets its
alerts); of the answer only a short excerpt is read, for the log.
"""

from __future__ import annotations

import ssl
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import aiohttp

from satellite.config import SyncSettings, WebhookSettings
from satellite.crypto.webhooks import signature_header
from satellite.domain.clock import utc_now
from satellite.domain.webhooks import (
    ERROR_CHARS,
    EXCERPT_CHARS,
    DueDelivery,
    Outcome,
    log_text,
)
from satellite.errors import ConfigError
from satellite.services.outbound import proxy_arguments
from satellite_protocol import outbound

EXCERPT_BYTES = 2048  # (read; the log keeps EXCERPT_CHARS of it)
USER_AGENT = "satellite-webhooks/1"


def _tls(settings: WebhookSettings) -> ssl.SSLContext | None:
    if settings.ca_file is None:
        return None
    try:
        return outbound.tls_context(None, Path(settings.ca_file).read_text())
    except (OSError, ssl.SSLError, ValueError) as exc:
        raise ConfigError(f"cannot use webhooks.ca_file {settings.ca_file}: {exc}") from exc


class WebhookSender:
    """Sends deliveries over one client session (``open`` it for a pass).

    Raises ConfigError when ``webhooks.ca_file`` is not usable (before anything is claimed).
    """

    def __init__(self, settings: WebhookSettings, proxy: SyncSettings) -> None:
        self._settings = settings
        self._proxy = proxy
        self._tls = _tls(settings)
        self._session: aiohttp.ClientSession | None = None

    @asynccontextmanager
    async def open(self) -> AsyncIterator[WebhookSender]:
        context = self._tls
        connector = aiohttp.TCPConnector(ssl=context) if context is not None else None
        async with aiohttp.ClientSession(
            connector=connector,
            timeout=aiohttp.ClientTimeout(
                total=self._settings.timeout_seconds,
                connect=self._settings.connect_timeout_seconds,
            ),
            trust_env=False,  # the proxy is what the settings say, nothing else
        ) as session:
            self._session = session
            try:
                yield self
            finally:
                self._session = None

    async def send(self, delivery: DueDelivery, secret: str) -> Outcome:
        assert self._session is not None, "open() the sender first"
        body = delivery.payload.encode("utf-8")
        started_at = utc_now()
        started = time.monotonic()
        headers = {
            "Content-Type": "application/json",
            "User-Agent": USER_AGENT,
            "Satellite-Event": delivery.event,
            "Satellite-Delivery": str(delivery.id),
            "Satellite-Webhook": str(delivery.webhook),
            "Satellite-Signature": signature_header(secret, int(time.time()), body),
        }
        status: int | None = None
        error: str | None = None
        excerpt = ""
        try:
            proxy = proxy_arguments(self._proxy, delivery.url)
        except OSError as exc:
            proxy, error = {}, f"cannot read sync.proxy_password_file: {exc.strerror}"
        headers.update(proxy.pop("headers", {}))
        try:
            if error is None:
                async with self._session.post(
                    delivery.url, data=body, headers=headers, allow_redirects=False, **proxy
                ) as response:
                    status = response.status
                    raw = await response.content.read(EXCERPT_BYTES)
                    excerpt = raw.decode("utf-8", "replace")
                    if 300 <= status < 400:
                        location = response.headers.get("Location", "")[:200]
                        error = f"redirect to {location!r} not followed"
        except aiohttp.ClientError as exc:
            error = f"cannot reach the receiver: {exc}"
        except TimeoutError:
            error = f"no answer within {self._settings.timeout_seconds:g} s"
        return Outcome(
            delivered=error is None and status is not None and 200 <= status < 300,
            attempted_at=started_at,
            status_code=status,
            error=None if error is None else log_text(error, ERROR_CHARS),
            duration_ms=round((time.monotonic() - started) * 1000),
            response_excerpt=log_text(excerpt, EXCERPT_CHARS),
        )
