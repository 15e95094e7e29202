"""``satellite-agent license smart register idtoken TOKEN [force]``: the reference's
command grammar for registration."""

from __future__ import annotations

import click

from satellite_agent.cli.context import FORCE_HELP, pass_agent, register_with
from satellite_agent.client import Agent, AgentError


@click.group("register")
def register() -> None:
    """Register with the server."""


@register.command(
    "idtoken",
    help=f"Register with TOKEN (registered already: only with 'force'). 'force': {FORCE_HELP}",
)
@click.argument("token")
@click.argument("force", required=False, type=click.Choice(["force"]))
@pass_agent
def idtoken(agent: Agent, token: str, force: str | None) -> None:
    if agent.state.registration == "registered" and force is None:
        raise AgentError("already registered: add 'force' to register again")
    register_with(agent, token, force is not None)
