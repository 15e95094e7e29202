"""SIGHUP: read the config file and the catalog again and apply what can change while the
daemon runs; report what cannot as needing a restart.

Both files are checked whole before anything changes: an invalid one is refused in one log
line and the running config stays.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import msgspec
import structlog

from satellite.config import Settings
from satellite.errors import ConfigError
from satellite.logging import configure_logging
from satellite.tls import ServerTls
from satellite.wiring import catalog_path, load_catalog
from satellite_protocol.catalog import Catalog

log = structlog.get_logger("satellite.reload")

# Settings a reload applies (by dotted-name prefix); every other one that changed is
# reported as needing a restart. The catalog file is read again whatever its setting says;
# the limits are counted by the running rate limiter, which takes new values; the timers
# are read by the services on every use, and the scheduler takes the jobs' new intervals;
# the webhook settings are read by the webhook service and its worker at each pass.
LIVE = ("log.", "catalog", "limits.", "timers.", "webhooks.")


class Reloader:
    """Holds the settings the daemon runs with now (the app holds the reloader)."""

    def __init__(
        self,
        settings: Settings,
        read_settings: Callable[[], Settings],
        catalog: Catalog,
        tls: ServerTls | None,
        apply: Callable[[Settings], None],
        worker: int | None = None,
    ) -> None:
        """``apply``: makes the running daemon use the live part of new settings (the log
        and the catalog aside, which the reloader sets itself); ``worker``: this process is
        that worker of several (its log lines keep saying so)."""
        self.settings = settings
        self._read_settings = read_settings
        self._catalog = catalog
        self._tls = tls
        self._apply = apply
        self._worker = worker

    def reload(self) -> None:
        try:
            new = self._read_settings()
            catalog = load_catalog(catalog_path(new))
        except ConfigError as exc:
            log.error("config.reload_refused", reason=exc.detail)
            return
        changed = changed_settings(self.settings, new)
        restart = [name for name in changed if not name.startswith(LIVE)]
        configure_logging(new.log, self._worker)
        self._catalog.adopt(catalog)
        self._apply(new)
        if self._tls is not None:
            self._tls.reload()
        self.settings = new
        log.info("config.reloaded", changed=[n for n in changed if n not in restart])
        if restart:
            log.warning("config.restart_needed", settings=restart)

    def catch_up(self) -> None:
        """A worker started after its daemon (satellite.workers), on the daemon's settings:
        what the config file says now that differs, as a SIGHUP would apply it."""
        try:
            if not changed_settings(self.settings, self._read_settings()):
                return
        except ConfigError:
            pass  # (reload says why, in its line)
        self.reload()


def changed_settings(old: Settings, new: Settings) -> list[str]:
    """Dotted names of the settings whose values differ."""
    before, after = dict(_flat(old)), dict(_flat(new))
    return sorted(k for k in before.keys() | after.keys() if before.get(k) != after.get(k))


def _flat(value: Any, prefix: str = "") -> Iterator[tuple[str, Any]]:
    if isinstance(value, msgspec.Struct):
        for name in value.__struct_fields__:
            yield from _flat(getattr(value, name), f"{prefix}{name}.")
    else:
        yield prefix.rstrip("."), value
