"""One attempt at a webhook delivery: the signed POST and what came of it.

The receiver is verified as any HTTPS server is (the system's CAs, and besides them
``webhooks.ca_file``); the proxy is the one ``[sync]`` names; a redirect is never followed
(a 3xx is a failed attempt: the receiver named in the webhook is the only one that gets its
alerts); of the answer only a short excerpt is read, for the log.

``webhooks.allowed_networks`` confines receivers. Without a proxy it is checked on each
address a connection is opened to (the connector's socket factory: whatever the name in the
URL resolves to at that moment, each of its addresses, is checked before it is connected,
so a name that changes its address after the webhook was made gains nothing). Through a
proxy the daemon connects only to the proxy (the operator's choice, not checked), so the
receiver's host is resolved here and each of its addresses checked before the request; the
proxy resolves the name again, on its own.
"""

from __future__ import annotations

import asyncio
import errno
import socket
import ssl
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from urllib.parse import urlsplit

import aiohttp
from aiohappyeyeballs import AddrInfoType, SocketFactoryType

from satellite.config import SyncSettings, WebhookSettings
from satellite.crypto.webhooks import signature_header
from satellite.domain.clock import utc_now
from satellite.domain.webhooks import (
    ERROR_CHARS,
    EXCERPT_CHARS,
    DueDelivery,
    Network,
    Outcome,
    address_allowed,
    log_text,
    networks,
)
from satellite.errors import ConfigError
from satellite.services.outbound import proxy_arguments
from satellite_protocol import outbound

EXCERPT_BYTES = 2048  # (read; the log keeps EXCERPT_CHARS of it)
OUTSIDE_NETWORKS = "outside webhooks.allowed_networks"
USER_AGENT = "satellite-webhooks/1"


def _tls(settings: WebhookSettings) -> ssl.SSLContext | None:
    if settings.ca_file is None:
        return None
    try:
        return outbound.tls_context(None, Path(settings.ca_file).read_text())
    except (OSError, ssl.SSLError, ValueError) as exc:
        raise ConfigError(f"cannot use webhooks.ca_file {settings.ca_file}: {exc}") from exc


def _confined(allowed: tuple[Network, ...]) -> SocketFactoryType:
    """A socket factory that refuses an address outside ``allowed`` (the connector then
    tries the name's next address, or fails the attempt with this reason)."""

    def socket_for(addr_info: AddrInfoType) -> socket.socket:
        family, type_, proto, _, sockaddr = addr_info
        address = str(sockaddr[0])
        if not address_allowed(address, allowed):
            raise OSError(errno.EACCES, f"{address}: {OUTSIDE_NETWORKS}")
        return socket.socket(family=family, type=type_, proto=proto)

    return socket_for


async def _resolved_refusal(url: str, allowed: tuple[Network, ...]) -> str | None:
    """Why the receiver's host (resolved here, as a proxy will resolve it) is not allowed,
    or None."""
    parts = urlsplit(url)
    port = parts.port or (443 if parts.scheme == "https" else 80)
    try:
        found = await asyncio.get_running_loop().getaddrinfo(
            parts.hostname, port, type=socket.SOCK_STREAM
        )
    except OSError as exc:
        return f"cannot resolve the receiver's host (to check it): {parts.hostname}: {exc}"
    for *_, sockaddr in found:
        if not address_allowed(str(sockaddr[0]), allowed):
            return f"{OUTSIDE_NETWORKS}: {sockaddr[0]} ({parts.hostname})"
    return None


class WebhookSender:
    """Sends deliveries over one client session (``open`` it for a pass).

    Raises ConfigError when ``webhooks.ca_file`` is not usable (before anything is claimed).
    """

    def __init__(self, settings: WebhookSettings, proxy: SyncSettings) -> None:
        self._settings = settings
        self._proxy = proxy
        self._tls = _tls(settings)
        self._allowed = networks(settings.allowed_networks)
        self._session: aiohttp.ClientSession | None = None

    @asynccontextmanager
    async def open(self) -> AsyncIterator[WebhookSender]:
        # (Through a proxy the only connection is to the proxy: see _resolved_refusal.)
        confined = bool(self._allowed) and not self._proxy.proxy_url
        connector = aiohttp.TCPConnector(
            ssl=self._tls if self._tls is not None else True,
            socket_factory=_confined(self._allowed) if confined else None,
        )
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
        if error is None and proxy and self._allowed:
            error = await _resolved_refusal(delivery.url, self._allowed)
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
                        error = f"redirect not followed: to {location!r}"
        except aiohttp.ClientConnectorCertificateError as exc:
            error = f"the receiver's certificate is not trusted: {exc}"
        except aiohttp.ClientConnectorError as exc:
            outside = OUTSIDE_NETWORKS in str(exc)
            error = f"{OUTSIDE_NETWORKS if outside else 'cannot reach the receiver'}: {exc}"
        except aiohttp.ClientError as exc:
            # (The detail may quote what the receiver sent: a status line, a header.)
            error = f"the exchange with the receiver failed: {exc}"
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
