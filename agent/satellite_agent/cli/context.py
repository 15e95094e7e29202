"""What every ``satellite-agent`` command is given (the product's ``Agent``) and the
helpers commands of several modules share."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Coroutine
from typing import Any, TypeVar

import click

from satellite_agent.client import Agent

T = TypeVar("T")

pass_agent = click.make_pass_decorator(Agent)


def run_async(action: Callable[[], Coroutine[Any, Any, T]]) -> T:
    return asyncio.run(action())


FORCE_HELP = (
    "Replace a registration of this UDI in the token's virtual account that this product "
    "cannot prove is its own (e.g. after its key was lost); that registration ends."
)


def register_with(agent: Agent, token: str, force: bool) -> None:
    state = run_async(lambda: agent.register(token, force=force))
    click.echo(f"registered as {state.product_instance_id} in {state.virtual_account}")
