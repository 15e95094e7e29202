"""Typed keys for what the application object carries."""

from __future__ import annotations

from aiohttp import web

from satellite.api.context import Services
from satellite.storage.migrations import Migration
from satellite.storage.supervisor import PostgresSupervisor

SERVICES = web.AppKey("services", Services)
MIGRATIONS = web.AppKey("migrations", list[Migration])
# Only in the daemon on its embedded PostgreSQL: what /readyz shows of that server.
DATABASE_SUPERVISOR = web.AppKey("database_supervisor", PostgresSupervisor)
