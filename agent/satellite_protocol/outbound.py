"""Outbound HTTP, as both clients make it (a product's agent to its server, a satellite to
its upstream): whom to trust for TLS, and how to go through a proxy."""

from __future__ import annotations

import ssl
from typing import Any
from urllib.parse import urlsplit

import aiohttp


def tls_context(ca_file: str | None, pinned_ca: str | None = None) -> ssl.SSLContext | None:
    """The trust for an https:// server and an HTTPS proxy: ``ca_file`` instead of the
    system's CAs when given, and besides either ``pinned_ca`` (PEM: the server's own CA,
    whose fingerprint a registration token carries). None: aiohttp's default (the system's).
    Raises OSError or ssl.SSLError when a file or the PEM is not usable."""
    if not ca_file and not pinned_ca:
        return None
    context = ssl.create_default_context(cafile=ca_file)
    if pinned_ca:
        context.load_verify_locations(cadata=pinned_ca)
    return context


def proxy_arguments(
    target_url: str, proxy_url: str | None, user: str | None, password: str | None
) -> dict[str, Any]:
    """aiohttp request arguments for a proxy, if any; ``headers`` (when present) are to be
    merged into the request's own.

    Basic credentials go where the proxy reads them: in the CONNECT request for an https://
    target (never inside the tunnel, where the target would see them), in the request
    itself for an http:// target.
    """
    if not proxy_url:
        return {}
    arguments: dict[str, Any] = {"proxy": proxy_url}
    if user is not None:
        credentials = {"Proxy-Authorization": aiohttp.encode_basic_auth(user, password or "")}
        tunnel = target_url.startswith("https://")
        arguments["proxy_headers" if tunnel else "headers"] = credentials
    return arguments


def url_refusal(url: str) -> str | None:
    """Why ``url`` cannot name a server to connect to, or None: http(s), a host that can be
    looked up (each label 1 to 63 characters: else the resolver raises UnicodeError) and a
    port that exists."""
    if not url.startswith(("http://", "https://")):
        return "the URL must start with http:// or https://"
    try:
        parts = urlsplit(url)
        host, port = parts.hostname, parts.port  # (the port: ValueError beyond 65535)
        if not host:
            return "the URL names no host"
        if port == 0:
            return "the URL's port is 0, where no server listens"
        host.encode("idna")
    except (ValueError, UnicodeError) as exc:
        return f"the URL is not valid: {exc}"
    return None
