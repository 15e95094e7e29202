"""Connected mode's transport: a bundle POSTed to the upstream, its answer read back.

Bodies are streamed from and to files (a request may hold a million products). The
upstream is reached directly or through an HTTP or HTTPS proxy, with optional basic
credentials; ``ca_file`` is the one trust bundle for an https:// upstream and an HTTPS
proxy.
"""

from __future__ import annotations

import json
import ssl
from pathlib import Path

import aiohttp

from satellite.config import SyncSettings
from satellite.errors import UpstreamError
from satellite.services.outbound import proxy_arguments
from satellite_protocol import outbound
from satellite_protocol.untrusted import NESTED_TOO_DEEP, too_deep

BUNDLE_TYPE = "application/x-satellite-sync"
REGISTER_PATH = "/sync/v1/register"
EXCHANGE_PATH = "/sync/v1/exchange"
CHUNK = 256 * 1024


class UpstreamUnreachable(UpstreamError):
    """The upstream (or the proxy in between) could not be reached."""


class UpstreamRefused(UpstreamError):
    """The upstream refused the bundle."""

    def __init__(self, detail: str, *, status: int) -> None:
        super().__init__(detail)
        self.status = status


class UpstreamClient:
    def __init__(self, settings: SyncSettings) -> None:
        self._settings = settings

    def _session(self) -> aiohttp.ClientSession:
        connector = None
        try:
            context = outbound.tls_context(self._settings.ca_file)
        except (OSError, ssl.SSLError) as exc:
            raise UpstreamUnreachable(
                f"cannot use sync.ca_file {self._settings.ca_file}: {exc}"
            ) from exc
        if context is not None:
            connector = aiohttp.TCPConnector(ssl=context)
        return aiohttp.ClientSession(
            connector=connector,
            timeout=aiohttp.ClientTimeout(
                total=self._settings.timeout_seconds,
                connect=self._settings.connect_timeout_seconds,
            ),
            trust_env=False,  # the proxy is what the settings say, nothing else
        )

    async def post_bundle(self, base_url: str, path: str, bundle: Path, answer: Path) -> None:
        """POST ``bundle``; write the upstream's answer bundle to ``answer``."""
        url = base_url.rstrip("/") + path
        settings = self._settings
        try:
            proxy = proxy_arguments(settings, url)
        except OSError as exc:
            raise UpstreamUnreachable(
                f"cannot read sync.proxy_password_file {settings.proxy_password_file}: "
                f"{exc.strerror}"
            ) from exc
        headers = proxy.pop("headers", {})
        limit = self._settings.max_bundle_bytes
        try:
            async with self._session() as session:
                with bundle.open("rb") as body:
                    async with session.post(
                        url,
                        data=body,
                        headers={"Content-Type": BUNDLE_TYPE, **headers},
                        **proxy,
                    ) as response:
                        if response.status == 407:  # (not retried: it would not pass)
                            raise UpstreamRefused(
                                "the proxy refused the credentials (407): check "
                                "sync.proxy_username and sync.proxy_password_file",
                                status=407,
                            )
                        if response.status != 200:
                            raise UpstreamRefused(await _refusal(response), status=response.status)
                        written = 0
                        with answer.open("wb") as out:
                            async for chunk in response.content.iter_chunked(CHUNK):
                                written += len(chunk)
                                if written > limit:
                                    raise UpstreamRefused(
                                        f"the upstream's answer is larger than "
                                        f"sync.max_bundle_bytes ({limit})",
                                        status=413,
                                    )
                                out.write(chunk)
        except aiohttp.ClientError as exc:
            raise UpstreamUnreachable(f"cannot reach the upstream at {base_url}: {exc}") from exc
        except TimeoutError as exc:
            raise UpstreamUnreachable(
                f"the upstream at {base_url} did not answer within "
                f"{self._settings.timeout_seconds:g} s"
            ) from exc


async def _refusal(response: aiohttp.ClientResponse) -> str:
    """The upstream's reason, from its problem document."""
    raw = await response.content.read(64 * 1024)
    try:
        if too_deep(raw):
            raise ValueError(NESTED_TOO_DEEP)
        problem = json.loads(raw)
        detail = problem.get("detail") or problem.get("title")
    except (ValueError, AttributeError):
        detail = None
    return f"the upstream refused the bundle ({response.status}): {detail or 'no reason given'}"
