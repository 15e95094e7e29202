"""``satellite-agent license smart export ...``: the reference's command grammar."""

from __future__ import annotations

import asyncio

import click

from satellite_agent.cli.context import pass_agent
from satellite_agent.client import Agent
from satellite_agent.export import ExportControl


@click.group("export")
def export() -> None:
    """Export-controlled features: an export authorization key per feature, granted by the
    server when the account and this product's registration allow them."""


@export.group("request")
def request() -> None:
    """Ask for an export-controlled feature."""


@request.command("local")
@click.argument("feature")
@pass_agent
def request_local(agent: Agent, feature: str) -> None:
    """Request FEATURE's export authorization key; the feature is enabled once the key is
    verified and stored. A request that fails is retried automatically ('run')."""
    key = asyncio.run(ExportControl(agent).request(feature))
    click.echo(
        f"export authorization key for {feature} installed ({key.display_name or key.tag}): "
        "feature enabled"
    )


@export.group("return")
def return_() -> None:
    """Give an export-controlled feature back."""


@return_.command("local")
@click.argument("feature")
@pass_agent
def return_local(agent: Agent, feature: str) -> None:
    """Return FEATURE's license to the server and remove its key from this product."""
    asyncio.run(ExportControl(agent).give_back(feature))
    click.echo(f"export authorization key for {feature} returned and removed: feature disabled")


@export.command("cancel")
@pass_agent
def cancel(agent: Agent) -> None:
    """Stop the automatic retries of a failed export request, or end a pending return."""
    for pending in ExportControl(agent).cancel():
        click.echo(f"export {pending.action} of {pending.feature} cancelled")
