"""The daemon's HTTPS: which certificate, for which names, renewed and reloaded in place.

By default (``tls.managed``) the server's own CA issues the certificate in the state
directory, for the names and addresses this host answers to. A certificate of the
operator's (``tls.certificate`` and ``tls.key``) is used as it is; ``tls.plain_http``
serves no TLS at all.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import ipaddress
import re
import socket
import ssl
from collections.abc import Callable
from pathlib import Path

import structlog

from satellite.config import Settings
from satellite.crypto.keys import KeyPaths, ensure_tls_certificate
from satellite.errors import ConfigError, SatelliteError

log = structlog.get_logger("satellite.tls")

_DNS_NAME_RE = re.compile(
    r"^(?=.{1,253}$)[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?"
    r"(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?)*$"
)
# Documentation prefixes (RFC 5737, RFC 3849): "connecting" a UDP socket there sends
# nothing, it only asks the kernel which source address its routes would use.
_ROUTE_PROBES = ((socket.AF_INET, "192.0.2.1"), (socket.AF_INET6, "2001:db8::1"))


def _usable(name: str) -> str | None:
    """``name`` as a certificate may hold it (a bare IP address or an ASCII host name);
    None for what cannot be one (wildcard listens, link-local addresses, odd names)."""
    try:
        address = ipaddress.ip_address(name)
    except ValueError:
        return name.lower() if _DNS_NAME_RE.match(name) else None
    if address.is_unspecified or address.is_link_local or address.is_multicast:
        return None
    return str(address)


def _route_sources() -> list[str]:
    found = []
    for family, probe in _ROUTE_PROBES:
        with (
            contextlib.suppress(OSError),
            socket.socket(family, socket.SOCK_DGRAM) as sock,
        ):
            sock.connect((probe, 9))
            found.append(str(sock.getsockname()[0]))
    return found


def _resolved(name: str) -> list[str]:
    """The addresses the host's name resolves to (the hosts file, usually)."""
    with contextlib.suppress(OSError, UnicodeError):
        infos = socket.getaddrinfo(name, None, proto=socket.IPPROTO_TCP)
        return [str(info[4][0]) for info in infos]
    return []


def check_requested_names(settings: Settings, names: list[str]) -> None:
    """``init --tls-hostname`` names: each one a host name or IP address, and only where
    the CA issues the certificate (refused before anything is made)."""
    for name in names:
        if _usable(name) is None:
            raise ConfigError(
                f"--tls-hostname {name!r} is not a host name or a (non link-local) IP address"
            )
    if names and not settings.tls.managed:
        raise ConfigError(
            "--tls-hostname: the config says plain HTTP or names a certificate of its own "
            "(tls.plain_http, tls.certificate)"
        )


def host_names(settings: Settings, extra: list[str] | None = None) -> list[str]:
    """What the daemon's certificate is for: ``extra`` (``--tls-hostname``), the host's
    names, the specific listen addresses, loopback and the host's own addresses."""
    hostname = socket.gethostname()
    candidates = [
        *(extra or []),
        hostname,
        socket.getfqdn(),
        "localhost",
        *(address.host for address in settings.listen_addresses),
        "127.0.0.1",
        "::1",
        *_route_sources(),
        *_resolved(hostname),
    ]
    names: list[str] = []
    for candidate in candidates:
        name = _usable(candidate)
        if name is not None and name not in names:
            names.append(name)
    return names


def ensure_certificate(
    settings: Settings, extra: list[str] | None = None, now: dt.datetime | None = None
) -> str | None:
    """Issue or renew the state directory's certificate when ``tls.managed``; return why
    (None: nothing to do). The caller tells: at start in what ``init`` and ``serve``
    print, later in the daemon's log."""
    if not settings.tls.managed:
        return None
    return ensure_tls_certificate(
        KeyPaths(settings.state_path),
        host_names(settings, extra),
        renew_before=dt.timedelta(days=settings.tls.renew_before_days),
        now=now,
    )


def _files(settings: Settings) -> tuple[Path, Path]:
    if settings.tls.certificate and settings.tls.key:
        return Path(settings.tls.certificate), Path(settings.tls.key)
    paths = KeyPaths(settings.state_path)
    return paths.tls_cert, paths.tls_key


class ServerTls:
    """The SSL context the daemon's listening sockets share. Loading a certificate into it
    again changes what new connections get; existing ones keep theirs."""

    def __init__(self, settings: Settings) -> None:
        self._settings = settings
        self.certificate, self.key = _files(settings)
        self.context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        self.context.minimum_version = ssl.TLSVersion.TLSv1_2
        try:
            self._loaded = self._on_disk()
            self.context.load_cert_chain(self.certificate, self.key)
        except (OSError, ssl.SSLError) as exc:
            raise ConfigError(f"tls: cannot load {self.certificate} / {self.key}: {exc}") from exc

    def _on_disk(self) -> bytes:
        return self.certificate.read_bytes()

    @classmethod
    def for_settings(cls, settings: Settings) -> ServerTls | None:
        """None when the config says plain HTTP; else the certificate in place (issued at
        start by ``runtime.create_key_material``)."""
        if settings.tls.plain_http:
            return None
        return cls(settings)

    def reload(self) -> None:
        try:
            loaded = self._on_disk()
            self.context.load_cert_chain(self.certificate, self.key)
            self._loaded = loaded
        except (OSError, ssl.SSLError) as exc:
            log.error("tls.reload_failed", certificate=str(self.certificate), error=str(exc))
            return
        log.info("tls.reloaded", certificate=str(self.certificate))

    def _issue_if_due(self, now: dt.datetime | None) -> bool:
        """Issue the certificate if due; True when the one on disk is not the one served
        (issued now, or by another daemon on this state directory, or by ``init``)."""
        try:
            reason = ensure_certificate(self._settings, now=now)
            changed = self._on_disk() != self._loaded
        except (OSError, ValueError, SatelliteError) as exc:
            log.error("tls.renewal_failed", error=str(exc))
            return False
        if reason is not None:
            log.info("tls.certificate_issued", reason=reason, certificate=str(self.certificate))
        return changed

    def renew(self, now: dt.datetime | None = None) -> bool:
        """Issue the certificate again if it is due (see ``ensure_certificate``) and serve
        the new one; True when a new one is served."""
        if not self._issue_if_due(now):
            return False
        self.reload()
        return True

    async def renew_periodically(
        self, interval: Callable[[], dt.timedelta], renewed: Callable[[], None] | None = None
    ) -> None:
        """Check every ``interval()`` (as the config says now), for as long as the daemon
        runs; ``renewed``: told each time a new certificate is served (the daemon's other
        workers load it then)."""
        while True:
            await asyncio.sleep(interval().total_seconds())
            # Issuing signs with the CA key and writes files: off the event loop; loading
            # into the context the sockets use: on it.
            if await asyncio.to_thread(self._issue_if_due, None):
                self.reload()
                if renewed is not None:
                    renewed()
