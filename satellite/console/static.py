"""The console's static assets: read once from the package, served with a long cache
(their addresses carry the file's digest, so a changed file is a new address)."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path

from aiohttp import web

STATIC_DIR = Path(__file__).parent / "static"
# (Named here, not guessed from the host's MIME table, which differs between hosts.)
_SERVED = {".css": "text/css", ".js": "text/javascript"}
LONG_CACHE = "public, max-age=31536000, immutable"


@dataclass(frozen=True)
class Asset:
    body: bytes
    content_type: str
    version: str


def _load() -> dict[str, Asset]:
    assets = {}
    for path in sorted(STATIC_DIR.iterdir()):
        if path.suffix in _SERVED:
            body = path.read_bytes()
            version = hashlib.sha256(body).hexdigest()[:16]
            assets[path.name] = Asset(body, _SERVED[path.suffix], version)
    return assets


ASSETS = _load()


def url(name: str) -> str:
    """The address of an asset, for templates: a name not shipped is a bug, so KeyError."""
    return f"/static/{name}?v={ASSETS[name].version}"


async def serve(request: web.Request) -> web.StreamResponse:
    asset = ASSETS.get(request.match_info["name"])
    if asset is None:
        raise web.HTTPNotFound()
    return web.Response(
        body=asset.body,
        content_type=asset.content_type,
        charset="utf-8",
        headers={"Cache-Control": LONG_CACHE},
    )
