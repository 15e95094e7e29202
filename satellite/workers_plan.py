"""How many workers ``satellite serve`` starts, and whether they may: the platform and the
listen ports (SO_REUSEPORT), the connections the database lets their pools open, the
listen addresses free (satellite.workers starts them)."""

from __future__ import annotations

import errno
import socket
import sys
from dataclasses import dataclass

import structlog

from satellite.config import Settings, worker_count
from satellite.errors import ConfigError
from satellite.storage import server
from satellite.storage.db import Database

log = structlog.get_logger("satellite.workers")


@dataclass(frozen=True)
class Plan:
    count: int
    auto: bool  # "auto": as many as fit (the platform, the ports, the connections)


def plan(settings: Settings, option: str | None, cores: int | None = None) -> Plan:
    """How many workers: ``--workers`` (``option``) or the config's ``workers`` (``cores``:
    those "auto" counts, by default the ones this process may run on). Several
    need SO_REUSEPORT as Linux has it (the kernel spreads connections over the processes)
    and fixed ports (port 0 would give each worker its own): "auto" is then 1, a number
    is refused."""
    requested = settings.workers if option is None else option
    count = worker_count(requested, cores, "workers" if option is None else "--workers")
    if count == 1:
        return Plan(1, False)
    auto = requested == "auto"
    reason = None
    if not sys.platform.startswith("linux") or not hasattr(socket, "SO_REUSEPORT"):
        reason = f"{count} workers need SO_REUSEPORT as Linux has it (this is {sys.platform})"
    for address in settings.listen_addresses:
        if address.port == 0:
            reason = f"listen: {address}: port 0 with {count} workers: name a port"
    if reason is None:
        return Plan(count, auto)
    if auto:
        return Plan(1, False)
    raise ConfigError(f"workers: {reason}")


async def fit_connections(db: Database, settings: Settings, workers: Plan) -> int:
    """How many workers to start: every worker's pool may grow to
    ``database.pool_max_size``; with the parent's own connection, all of them must fit in
    what the server lets this role open (``max_connections`` less the slots reserved for
    superusers, and any connection limit of the role or the database; else, under load,
    requests would wait for a connection the server refuses). "auto" starts as many as
    fit, a number is refused."""
    async with db.connection() as conn:
        limit = await server.connection_limit(conn)
    count, pool = workers.count, settings.database.pool_max_size
    needed = count * pool + 1
    if needed <= limit.allowed:
        return count
    if workers.auto:
        fitting = max(1, (limit.allowed - 1) // pool)
        log.warning(
            "daemon.workers_limited",
            workers=fitting,
            connections_allowed=limit.allowed,
            max_connections=limit.max_connections,
        )
        return fitting
    allowed = (
        f"the database's max_connections is {limit.max_connections}"
        if limit.allowed == limit.max_connections
        else f"the database allows {limit.allowed} connections of this role "
        f"(max_connections {limit.max_connections})"
    )
    raise ConfigError(
        f"workers: {count} workers of database.pool_max_size "
        f"{settings.database.pool_max_size} (+ 1 of the parent) need {needed} connections, "
        f"{allowed}: lower one or the other"
    )


def refuse_taken_addresses(settings: Settings) -> None:
    """Each listen address must be free before the workers bind it with SO_REUSEPORT: that
    option would let them share a port another process of this user already serves (a
    second daemon started by mistake), each taking part of its connections without an
    error. A bind without the option fails on a port any socket listens on, SO_REUSEPORT or
    not; so does a second daemon's, which runs this check too, on our workers' port."""
    for address in settings.listen_addresses:
        host = address.host or None  # (none: every interface, as the workers bind)
        try:
            found = socket.getaddrinfo(
                host, address.port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE
            )
        except OSError as exc:
            raise ConfigError(f"listen: {address}: {exc}") from exc
        for family, kind, proto, _, sockaddr in found:
            with socket.socket(family, kind, proto) as probe:
                probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
                if family == socket.AF_INET6:
                    probe.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
                try:
                    probe.bind(sockaddr)
                except OSError as exc:
                    served = " (another process serves it)" if exc.errno == errno.EADDRINUSE else ""
                    raise ConfigError(f"listen: {address}: {exc.strerror or exc}{served}") from exc
