"""What every ``satellite`` command is given: the config and state directory it was
started with, and a way to run an operation against that state directory's services."""

from __future__ import annotations

import asyncio
import getpass
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar

import click
import msgspec

from satellite.api.context import Services
from satellite.api.operation import Operation
from satellite.config import LogSettings, Settings, load_settings
from satellite.domain.access import Principal, host_operator
from satellite.errors import StateDirError
from satellite.logging import configure_logging
from satellite.services import health
from satellite.wiring import database_server, is_initialized, load_runtime, open_services

T = TypeVar("T")
RequestT = TypeVar("RequestT", bound=msgspec.Struct)
AnswerT = TypeVar("AnswerT", bound=msgspec.Struct)
QUIET_LOGS = LogSettings(format="console", level="warning")


@dataclass
class CliContext:
    config: Path | None
    state_dir: Path | None

    def settings(self, state_dir: Path | None = None, listen: tuple[str, ...] = ()) -> Settings:
        return load_settings(self.config, state_dir=state_dir or self.state_dir, listen=listen)

    @property
    def operator(self) -> Principal:
        return host_operator(getpass.getuser())

    def run(self, action: Callable[[Services], Awaitable[T]]) -> T:
        """Run ``action`` with the services of an initialized, up-to-date state directory."""
        settings = self.settings()
        configure_logging(QUIET_LOGS)
        if not is_initialized(settings) and settings.database.dsn is None:
            raise StateDirError(
                f"{settings.state_path} is not initialized: run 'satellite init' first"
            )
        with database_server(settings) as dsn:
            runtime = load_runtime(settings, dsn)

            async def go() -> T:
                async with open_services(runtime) as services:
                    await health.check_ready(services.db, runtime.migrations)
                    return await action(services)

            return asyncio.run(go())

    def call(self, op: Operation[RequestT, AnswerT], request: RequestT) -> AnswerT:
        """Call one operation as the host operator: the same operation the admin API
        calls, with the same checks."""
        return self.run(lambda services: op(services, self.operator, request))


pass_cli = click.make_pass_decorator(CliContext)
json_option = click.option("--json", "as_json", is_flag=True, help="Print JSON for scripts.")
