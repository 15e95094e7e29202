"""Whom the agent's TLS trusts, and the server's CA fetched before a first registration.

A registration token pins the server's CA by fingerprint; the CA issues the server's TLS
certificate. So that a product needs no CA file of its own, the agent fetches the CA
certificate over an unverified connection (the request carries nothing) and uses it only
once its fingerprint is the token's.
"""

from __future__ import annotations

from typing import Any

import aiohttp

from satellite_agent.state import AgentState
from satellite_protocol import device as wire
from satellite_protocol.crypto.pki import (
    CertificateError,
    certificate_fingerprint,
    load_pem_certificate,
    to_pem,
)

MAX_CA_BYTES = 65_536
Trust = tuple[str | None, str | None]  # CA file (else the system's CAs), pinned CA (PEM)


def trust(state: AgentState) -> Trust:
    """The configured CA file and the server's CA that the registration token pinned."""
    return state.transport.ca_file, state.ca_certificate


def fingerprint(pem: str | None) -> str | None:
    """A certificate's fingerprint as a token carries it; None for none or a bad PEM."""
    try:
        return certificate_fingerprint(load_pem_certificate(pem)) if pem else None
    except CertificateError:
        return None


async def fetch_ca(
    state: AgentState, proxy: dict[str, Any], limits: aiohttp.ClientTimeout
) -> tuple[str | None, str | None]:
    """The server's CA certificate (PEM), unverified: the caller compares its fingerprint
    with the token's. None when there is nothing to fetch (plain http), when the proxy is
    an HTTPS one (never spoken to unverified: its credentials would go along), or when the
    server does not offer it; the system's or the CA file's trust then decides.

    And the nonce the answer carries (a device API answer hands out the next one), for
    the registration that follows: unverified too, which costs nothing (a bad one is
    refused and replaced by a good one in the refusal)."""
    transport = state.transport
    if not transport.url.startswith("https://") or (transport.proxy_url or "").startswith(
        "https://"
    ):
        return None, None
    url = transport.url.rstrip("/") + wire.PREFIX + wire.CA_CERTIFICATE
    raw = b""
    async with aiohttp.ClientSession(
        connector=aiohttp.TCPConnector(ssl=False), timeout=limits, trust_env=False
    ) as session:
        try:
            async with session.get(url, **proxy) as response:
                nonce = response.headers.get(wire.NONCE_HEADER)
                if response.status != 200:
                    return None, nonce
                async for chunk in response.content.iter_chunked(4096):
                    raw += chunk
                    if len(raw) > MAX_CA_BYTES:
                        return None, nonce
        except (aiohttp.ClientError, TimeoutError):
            return None, None  # the registration's own request says what is wrong
    try:
        return to_pem(load_pem_certificate(raw.decode("ascii"))), nonce
    except (CertificateError, UnicodeDecodeError):
        return None, nonce
