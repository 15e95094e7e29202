"""``satellite-agent``: what a licensed product does, from the command line.

Every command is added here, in one visible place: ``from satellite_agent.cli import cli``
is the whole tree.
"""

from __future__ import annotations

import sys
from pathlib import Path

import click
import platformdirs

from satellite_agent.cli import commands, smart_export, smart_register, smart_reservation
from satellite_agent.client import Agent, AgentError
from satellite_protocol.untrusted import first_not_utf8


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.option(
    "--state-dir",
    type=click.Path(path_type=Path, file_okay=False),
    envvar="SATELLITE_AGENT_STATE",
    default=lambda: platformdirs.user_state_dir("satellite-agent"),
    show_default="the user's state directory",
    help="Where the product keeps its registration and key.",
)
@click.pass_context
def cli(ctx: click.Context, state_dir: Path) -> None:
    """The product side of satellite: register, report usage, renew, deregister."""
    agent = Agent(Path(state_dir))
    agent.dir.remove_leftovers()  # a crashed write's temporary file (it may hold a key)
    ctx.obj = agent


@click.group("license")
def license_() -> None:
    """Licensing commands in the reference's grammar."""


@license_.group("smart")
def smart() -> None:
    """Smart licensing."""


for subgroup in (
    smart_reservation.reservation,
    smart_export.export,
    smart_register.register,
):
    smart.add_command(subgroup)

for command in (
    commands.init,
    commands.register,
    commands.reregister,
    commands.renew,
    commands.usage,
    commands.deregister,
    commands.status,
    commands.transport,
    commands.clock_tolerance,
    commands.privacy,
    commands.run,
    license_,
):
    cli.add_command(command)


def main() -> None:
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
    except (AgentError, FileNotFoundError, OSError) as exc:
        click.echo(f"error: {exc}", err=True)
        sys.exit(1)
    if isinstance(code, int) and code:
        sys.exit(code)
