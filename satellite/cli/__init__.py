"""The ``satellite`` command: the daemon, migrations, init, and host-side administration.

Administration commands call the same services as the admin API, straight to the database
(no daemon needed), as the operator on the host.
"""

from __future__ import annotations

import asyncio
import getpass
import sys
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar

import click

from satellite import __version__
from satellite.api.context import Services
from satellite.config import LogSettings, Settings, load_settings
from satellite.domain.access import Principal, host_operator
from satellite.errors import SatelliteError, StateDirError
from satellite.logging import configure_logging
from satellite.protocol.untrusted import first_not_utf8
from satellite.services import health
from satellite.wiring import database_server, is_initialized, load_runtime, open_services

T = TypeVar("T")
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


pass_cli = click.make_pass_decorator(CliContext)
json_option = click.option("--json", "as_json", is_flag=True, help="Print JSON for scripts.")


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.option(
    "--config",
    type=click.Path(path_type=Path, dir_okay=False),
    envvar="SATELLITE_CONFIG",
    help="TOML config file (default: $SATELLITE_CONFIG, else built-in defaults).",
)
@click.option(
    "--state-dir",
    type=click.Path(path_type=Path, file_okay=False),
    help="State directory (overrides the config).",
)
@click.version_option(__version__, prog_name="satellite")
@click.pass_context
def cli(ctx: click.Context, config: Path | None, state_dir: Path | None) -> None:
    """satellite: an on-prem Smart Software Licensing server."""
    ctx.obj = CliContext(config, state_dir)


def main() -> None:
    from satellite.cli import (  # noqa: F401 - registers the commands
        admin,
        exports,
        reservations,
        server,
        sync,
        transfers,
    )

    undecodable = first_not_utf8(sys.argv[1:])
    if undecodable is not None:
        click.echo(f"error: argument {undecodable} is not UTF-8 text", err=True)
        sys.exit(2)
    try:
        code = cli.main(standalone_mode=False)
    except click.exceptions.Abort:
        click.echo("error: aborted", err=True)
        sys.exit(1)
    except click.ClickException as exc:
        click.echo(f"error: {exc.format_message()}", err=True)
        sys.exit(exc.exit_code)
    except SatelliteError as exc:
        click.echo(f"error: {exc.detail}", err=True)
        sys.exit(1)
    except OSError as exc:
        click.echo(f"error: {exc}", err=True)
        sys.exit(1)
    if isinstance(code, int) and code:
        sys.exit(code)
