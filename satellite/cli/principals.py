"""``satellite client`` and ``satellite user``: who may call the admin API."""

from __future__ import annotations

import sys

import click

from satellite.api import principals as api
from satellite.cli.context import CliContext, json_option, pass_cli
from satellite.cli.output import emit, emit_one
from satellite.domain.access import ROLES, Role

role_option = click.option("--role", type=click.Choice(ROLES), required=True)
accounts_option = click.option(
    "--account", "accounts", multiple=True, help="Account the role applies to; repeatable."
)
password_option = click.option(
    "--password",
    envvar="SATELLITE_PASSWORD",
    help="The password; else $SATELLITE_PASSWORD, else asked for on the terminal.",
)


def _emit_list(as_json: bool, answer: api.PrincipalList) -> None:
    emit(
        as_json,
        answer,
        ["NAME", "ROLE", "ACCOUNTS", "DISABLED", "CREATED"],
        [[p.name, p.role, p.accounts, p.disabled, p.created_at] for p in answer.items],
    )


def _password(given: str | None) -> str:
    """The given password, or one typed twice on the terminal; never a prompt on a pipe."""
    if given is not None:
        return given
    if not sys.stdin.isatty():
        raise click.UsageError("--password or $SATELLITE_PASSWORD is needed without a terminal")
    value: str = click.prompt("Password", hide_input=True, confirmation_prompt=True)
    return value


@click.group()
def client() -> None:
    """Admin API clients (OAuth client credentials)."""


@client.command("list")
@json_option
@pass_cli
def client_list(obj: CliContext, as_json: bool) -> None:
    """List API clients."""
    _emit_list(as_json, obj.call(api.list_clients, api.PrincipalsQuery()))


@client.command("create")
@role_option
@accounts_option
@click.option("--description", default="")
@json_option
@pass_cli
def client_create(
    obj: CliContext, role: Role, accounts: tuple[str, ...], description: str, as_json: bool
) -> None:
    """Create an API client; its secret is printed once."""
    request = api.ClientCreate(role=role, accounts=[*accounts], description=description)
    answer = obj.call(api.create_client, request)
    emit_one(
        as_json,
        answer,
        [
            ("client_id", answer.client_id),
            ("client_secret", answer.client_secret),
            ("role", answer.client.role),
        ],
    )


@client.command("disable")
@click.argument("client_id")
@pass_cli
def client_disable(obj: CliContext, client_id: str) -> None:
    """Disable an API client and revoke its access tokens."""
    obj.call(api.disable_client, api.ClientDisable(client=client_id))
    click.echo(f"client {client_id} disabled; its access tokens are revoked")


@click.group()
def user() -> None:
    """Admin API users (OAuth password grant)."""


@user.command("list")
@json_option
@pass_cli
def user_list(obj: CliContext, as_json: bool) -> None:
    """List users."""
    _emit_list(as_json, obj.call(api.list_users, api.PrincipalsQuery()))


@user.command("create")
@click.argument("username")
@role_option
@accounts_option
@password_option
@json_option
@pass_cli
def user_create(
    obj: CliContext,
    username: str,
    role: Role,
    accounts: tuple[str, ...],
    password: str | None,
    as_json: bool,
) -> None:
    """Create a user."""
    request = api.UserCreate(
        username=username, password=_password(password), role=role, accounts=[*accounts]
    )
    answer = obj.call(api.create_user, request)
    out = answer.item
    emit_one(
        as_json,
        answer,
        [("name", out.name), ("role", out.role), ("accounts", out.accounts)],
    )


@user.command("password")
@click.argument("username")
@password_option
@pass_cli
def user_password(obj: CliContext, username: str, password: str | None) -> None:
    """Set a user's password (and revoke the user's access tokens)."""
    obj.call(api.set_user_password, api.PasswordSet(user=username, password=_password(password)))
    click.echo(f"password of user {username} set")


@user.command("disable")
@click.argument("username")
@pass_cli
def user_disable(obj: CliContext, username: str) -> None:
    """Disable a user and revoke the user's access tokens."""
    obj.call(api.disable_user, api.UserDisable(user=username))
    click.echo(f"user {username} disabled; its access tokens are revoked")
