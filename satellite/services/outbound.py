"""The server's own outbound HTTP (to its upstream, to webhook receivers) goes through the
proxy that ``[sync]`` names, with its basic credentials: one place reads them."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from satellite.config import SyncSettings
from satellite_protocol import outbound


def proxy_arguments(settings: SyncSettings, target_url: str) -> dict[str, Any]:
    """aiohttp request arguments to reach ``target_url`` through the configured proxy, if
    any (``headers``, when present, are to be merged into the request's own).

    Raises OSError when ``sync.proxy_password_file`` cannot be read.
    """
    password = None
    if settings.proxy_username is not None:
        password = ""
        if settings.proxy_password_file is not None:
            password = Path(settings.proxy_password_file).read_text().strip()
    return outbound.proxy_arguments(
        target_url, settings.proxy_url, settings.proxy_username, password
    )
