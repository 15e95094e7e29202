"""``satellite-agent license smart reservation ...``: the reference's command grammar."""

from __future__ import annotations

import asyncio
from pathlib import Path

import click

from satellite_agent.cli.context import pass_agent
from satellite_agent.client import Agent
from satellite_agent.reservation import Reservations, SftpOptions, fetch_code_file


def _reservations(agent: Agent) -> Reservations:
    return Reservations(agent.dir.path)


@click.group("reservation")
def reservation() -> None:
    """Specific license reservation: licenses reserved for this product, codes carried by
    hand (for networks where the product never talks to a server)."""


@reservation.command("trust")
@click.argument("file", type=click.Path(path_type=Path, dir_okay=False, exists=True))
@pass_agent
def trust(agent: Agent, file: Path) -> None:
    """Trust the server key in FILE for authorization codes (the server's keys/signing.pub
    or keys/signing.crt, or the output of 'satellite reservation signing-key')."""
    if file.stat().st_size > 65_536:
        raise click.BadParameter("the file is too large for a key", param_hint="FILE")
    pem = _reservations(agent).trust(file.read_bytes())
    click.echo("authorization codes must now be signed by:")
    click.echo(pem.rstrip())


@reservation.command("enable")
@pass_agent
def enable(agent: Agent) -> None:
    """Enable specific license reservation (only while unregistered)."""
    _reservations(agent).enable()
    click.echo(
        "specific license reservation enabled: registration state is reservation in progress"
    )


@reservation.command("disable")
@pass_agent
def disable(agent: Agent) -> None:
    """Disable specific license reservation (refused while a reservation is installed)."""
    _reservations(agent).disable()
    click.echo("specific license reservation disabled")


@reservation.command("request")
@pass_agent
def request(agent: Agent) -> None:
    """Print the request code to enter on the server."""
    click.echo(_reservations(agent).request())


@reservation.command("cancel")
@pass_agent
def cancel(agent: Agent) -> None:
    """Cancel the open request (before an authorization code is installed)."""
    _reservations(agent).cancel()
    click.echo("reservation request cancelled")


def _installed(confirmation: str) -> None:
    click.echo("Authorization code installed successfully.")
    click.echo("Enter this confirmation code on the server:")
    click.echo(confirmation)


@reservation.command("install")
@click.argument("code")
@pass_agent
def install(agent: Agent, code: str) -> None:
    """Install an authorization code (verified offline); print the confirmation code."""
    _installed(_reservations(agent).install(code))


@reservation.command("install-file")
@click.argument("url")
@click.option(
    "--password",
    envvar="SATELLITE_AGENT_SFTP_PASSWORD",
    default=None,
    help="SFTP password (or SATELLITE_AGENT_SFTP_PASSWORD).",
)
@click.option(
    "--identity",
    type=click.Path(path_type=Path, dir_okay=False, exists=True),
    default=None,
    help="SFTP private key file.",
)
@click.option(
    "--known-hosts",
    type=click.Path(path_type=Path, dir_okay=False, exists=True),
    default=None,
    help="Known hosts file for the SFTP server's key (default: ~/.ssh/known_hosts).",
)
@pass_agent
def install_file(
    agent: Agent, url: str, password: str | None, identity: Path | None, known_hosts: Path | None
) -> None:
    """Install the authorization code in the file at URL: file:///path or
    sftp://[user@]host:port/path."""
    options = SftpOptions(password=password, identity=identity, known_hosts=known_hosts)
    code = asyncio.run(fetch_code_file(url, options))
    _installed(_reservations(agent).install(code))


@reservation.command("return")
@pass_agent
def give_back(agent: Agent) -> None:
    """Remove the installed authorization; print the return code to enter on the server."""
    code = _reservations(agent).give_back()
    click.echo("Authorization removed. Enter this return code on the server:")
    click.echo(code)


@reservation.command("return-authorization")
@click.argument("code")
@pass_agent
def return_authorization(agent: Agent, code: str) -> None:
    """Print a return code for an authorization code that was never installed."""
    returned = _reservations(agent).return_authorization(code)
    click.echo("Enter this return code on the server:")
    click.echo(returned)
