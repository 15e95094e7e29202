"""Request bases for operations inside an account or a virtual account: the path's
``{account}`` and ``{va}`` segments are these fields."""

from __future__ import annotations

from satellite.api.types import Request


class InAccount(Request):
    account: str


class InVirtualAccount(InAccount):
    va: str
