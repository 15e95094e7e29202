"""Typed keys for what the application object carries."""

from __future__ import annotations

from typing import Protocol

from aiohttp import web

from satellite.api.context import Services
from satellite.storage.migrations import Migration
from satellite.storage.supervisor import SupervisorStatus


class SupervisorView(Protocol):
    """What the daemon knows of its embedded PostgreSQL's supervisor: the supervisor itself
    (one process), or what the parent of the workers last told them."""

    def status(self) -> SupervisorStatus: ...


SERVICES = web.AppKey("services", Services)
MIGRATIONS = web.AppKey("migrations", list[Migration])
# Only in the daemon on its embedded PostgreSQL: what /readyz shows of that server.
DATABASE_SUPERVISOR = web.AppKey[SupervisorView]("database_supervisor")
