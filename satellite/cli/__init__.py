"""The ``satellite`` command: the daemon, migrations, init, and host-side administration.

Administration commands call the same operations as the admin API, straight to the
database (no daemon needed), as the operator on the host. Every command is added here, in
one visible place: ``from satellite.cli import cli`` is the whole tree.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence
from pathlib import Path

import click

from satellite import __version__
from satellite.cli import (
    accounts,
    activity,
    backup,
    exports,
    jobs,
    licenses,
    principals,
    product_instances,
    reservations,
    server,
    sync,
    tokens,
    usage,
    webhooks,
)
from satellite.cli.context import CliContext
from satellite.errors import SatelliteError
from satellite_protocol.untrusted import first_not_utf8


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


for command in (
    server.init,
    server.migrate,
    server.serve,
    accounts.account,
    accounts.va,
    licenses.license,
    tokens.token,
    product_instances.device,
    principals.client,
    principals.user,
    activity.events,
    activity.alert,
    reservations.reservation,
    exports.export,
    sync.sync,
    jobs.job,
    usage.usage,
    backup.backup,
    backup.restore,
    webhooks.webhook,
):
    cli.add_command(command)


def run(args: Sequence[str]) -> int:
    """Run the command line ``args`` (without the program name); the exit code. Whatever goes
    wrong is one line on stderr, never a traceback (``main`` and the tests' in-process runner
    both come through here)."""
    undecodable = first_not_utf8(list(args))
    if undecodable is not None:
        click.echo(f"error: argument {undecodable} is not UTF-8 text", err=True)
        return 2
    try:
        code = cli.main(args=list(args), prog_name="satellite", standalone_mode=False)
    except click.exceptions.Abort:
        click.echo("error: aborted", err=True)
        return 1
    except click.ClickException as exc:
        click.echo(f"error: {exc.format_message()}", err=True)
        return exc.exit_code
    except SatelliteError as exc:
        click.echo(f"error: {exc.detail}", err=True)
        return 1
    except OSError as exc:
        click.echo(f"error: {exc}", err=True)
        return 1
    return code if isinstance(code, int) else 0


def main() -> None:
    sys.exit(run(sys.argv[1:]))
