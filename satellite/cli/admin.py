"""Host-side administration: accounts, clients, users, events, alerts."""

from __future__ import annotations

import datetime as dt
import sys
from typing import Literal

import click

from satellite.cli.context import CliContext, json_option, pass_cli
from satellite.cli.output import emit, emit_one
from satellite.domain.access import ROLES, Role
from satellite.http import wire
from satellite.http.views import (
    account_out,
    alert_out,
    event_out,
    principal_out,
    virtual_account_out,
)
from satellite.services.events import EventFilter

# Offsets go to the database as bigint: a larger number is refused here, in one line,
# rather than by the driver with a traceback.
OFFSET = click.IntRange(0, 2**63 - 1)


# --- accounts ------------------------------------------------------------------------------


@click.group()
def account() -> None:
    """Smart accounts."""


@account.command("list")
@json_option
@pass_cli
def account_list(obj: CliContext, as_json: bool) -> None:
    """List accounts."""
    accounts = obj.run(lambda s: s.accounts.visible_accounts(obj.operator))
    emit(
        as_json,
        wire.AccountList(accounts=[account_out(a) for a in accounts]),
        ["NAME", "DOMAIN", "EXPORT-CONTROLLED", "CREATED", "DESCRIPTION"],
        [
            [a.name, a.domain or "", a.export_controlled_allowed, a.created_at, a.description]
            for a in accounts
        ],
    )


@account.command("create")
@click.argument("name")
@click.option("--description", default="")
@click.option("--domain", default=None, help="The smart account's domain name (acme.example).")
@click.option(
    "--export-controlled/--no-export-controlled",
    default=False,
    help="Whether the account may use export-controlled functionality.",
)
@json_option
@pass_cli
def account_create(
    obj: CliContext,
    name: str,
    description: str,
    domain: str | None,
    export_controlled: bool,
    as_json: bool,
) -> None:
    """Create an account (with its DEFAULT virtual account)."""
    created = obj.run(
        lambda s: s.accounts.create_account(
            obj.operator, name, description, export_controlled, domain
        )
    )
    out = account_out(created)
    emit_one(
        as_json,
        wire.AccountOne(account=out),
        [
            ("name", out.name),
            ("domain", out.domain or ""),
            ("export-controlled", out.export_controlled_allowed),
        ],
    )


@account.command("update")
@click.argument("name")
@click.option("--description", default=None)
@click.option("--domain", default=None, help='The domain name ("" removes it).')
@click.option("--export-controlled/--no-export-controlled", default=None)
@json_option
@pass_cli
def account_update(
    obj: CliContext,
    name: str,
    description: str | None,
    domain: str | None,
    export_controlled: bool | None,
    as_json: bool,
) -> None:
    """Change an account's description, domain or export-controlled flag."""
    updated = obj.run(
        lambda s: s.accounts.update_account(
            obj.operator, name, description, export_controlled, domain
        )
    )
    out = account_out(updated)
    emit_one(
        as_json,
        wire.AccountOne(account=out),
        [
            ("name", out.name),
            ("description", out.description),
            ("domain", out.domain or ""),
            ("export-controlled", out.export_controlled_allowed),
        ],
    )


# --- virtual accounts ----------------------------------------------------------------------


@click.group()
def va() -> None:
    """Virtual accounts."""


@va.command("list")
@click.argument("account")
@json_option
@pass_cli
def va_list(obj: CliContext, account: str, as_json: bool) -> None:
    """List the virtual accounts of ACCOUNT."""
    vas = obj.run(lambda s: s.accounts.virtual_accounts(obj.operator, account))
    emit(
        as_json,
        wire.VirtualAccountList(virtual_accounts=[virtual_account_out(v) for v in vas]),
        ["NAME", "DEFAULT", "CREATED", "DESCRIPTION"],
        [[v.name, v.is_default, v.created_at, v.description] for v in vas],
    )


@va.command("create")
@click.argument("account")
@click.argument("name")
@click.option("--description", default="")
@json_option
@pass_cli
def va_create(obj: CliContext, account: str, name: str, description: str, as_json: bool) -> None:
    """Create virtual account NAME in ACCOUNT."""
    created = obj.run(
        lambda s: s.accounts.create_virtual_account(obj.operator, account, name, description)
    )
    emit_one(
        as_json,
        wire.VirtualAccountList(virtual_accounts=[virtual_account_out(created)]),
        [("name", created.name), ("description", created.description)],
    )


@va.command("delete")
@click.argument("account")
@click.argument("name")
@pass_cli
def va_delete(obj: CliContext, account: str, name: str) -> None:
    """Delete an empty virtual account."""
    obj.run(lambda s: s.accounts.delete_virtual_account(obj.operator, account, name))
    click.echo(f"virtual account {name!r} deleted")


# --- clients and users ---------------------------------------------------------------------

role_option = click.option("--role", type=click.Choice(ROLES), required=True)
accounts_option = click.option(
    "--account", "accounts", multiple=True, help="Account the role applies to; repeatable."
)


def _list_principals(obj: CliContext, kind: Literal["client", "user"], as_json: bool) -> None:
    records = obj.run(lambda s: s.principals.list_principals(obj.operator, kind))
    emit(
        as_json,
        wire.PrincipalList(items=[principal_out(r) for r in records]),
        ["NAME", "ROLE", "ACCOUNTS", "DISABLED", "CREATED"],
        [
            [r.login, r.role, list(r.account_names), r.disabled_at is not None, r.created_at]
            for r in records
        ],
    )


@click.group()
def client() -> None:
    """Admin API clients (OAuth client credentials)."""


@client.command("list")
@json_option
@pass_cli
def client_list(obj: CliContext, as_json: bool) -> None:
    """List API clients."""
    _list_principals(obj, "client", as_json)


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
    new = obj.run(
        lambda s: s.principals.create_client(obj.operator, role, list(accounts), description)
    )
    emit_one(
        as_json,
        wire.ClientCreated(
            client_id=new.client_id,
            client_secret=new.client_secret,
            client=principal_out(new.record),
        ),
        [("client_id", new.client_id), ("client_secret", new.client_secret), ("role", role)],
    )


@client.command("disable")
@click.argument("client_id")
@pass_cli
def client_disable(obj: CliContext, client_id: str) -> None:
    """Disable an API client and revoke its access tokens."""
    obj.run(lambda s: s.principals.disable(obj.operator, "client", client_id))
    click.echo(f"client {client_id} disabled; its access tokens are revoked")


@click.group()
def user() -> None:
    """Admin API users (OAuth password grant)."""


@user.command("list")
@json_option
@pass_cli
def user_list(obj: CliContext, as_json: bool) -> None:
    """List users."""
    _list_principals(obj, "user", as_json)


password_option = click.option(
    "--password",
    envvar="SATELLITE_PASSWORD",
    help="The password; else $SATELLITE_PASSWORD, else asked for on the terminal.",
)


def _password(given: str | None) -> str:
    """The given password, or one typed twice on the terminal; never a prompt on a pipe."""
    if given is not None:
        return given
    if not sys.stdin.isatty():
        raise click.UsageError("--password or $SATELLITE_PASSWORD is needed without a terminal")
    value: str = click.prompt("Password", hide_input=True, confirmation_prompt=True)
    return value


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
    password = _password(password)
    record = obj.run(
        lambda s: s.principals.create_user(obj.operator, username, password, role, list(accounts))
    )
    out = principal_out(record)
    emit_one(
        as_json,
        wire.PrincipalOne(item=out),
        [("name", out.name), ("role", out.role), ("accounts", out.accounts)],
    )


@user.command("password")
@click.argument("username")
@password_option
@pass_cli
def user_password(obj: CliContext, username: str, password: str | None) -> None:
    """Set a user's password (and revoke the user's access tokens)."""
    password = _password(password)
    obj.run(lambda s: s.principals.set_password(obj.operator, username, password))
    click.echo(f"password of user {username} set")


@user.command("disable")
@click.argument("username")
@pass_cli
def user_disable(obj: CliContext, username: str) -> None:
    """Disable a user and revoke the user's access tokens."""
    obj.run(lambda s: s.principals.disable(obj.operator, "user", username))
    click.echo(f"user {username} disabled; its access tokens are revoked")


# --- events and alerts ---------------------------------------------------------------------


@click.command()
@click.option("--account", default=None)
@click.option("--action", default=None, help="e.g. token.created, or a prefix such as token")
@click.option("--actor", default=None, help="e.g. client:sat-0123 or user:alice")
@click.option("--since", type=click.DateTime(), default=None)
@click.option("--until", type=click.DateTime(), default=None)
@click.option("--limit", type=click.IntRange(1, 1000), default=100, show_default=True)
@click.option("--offset", type=OFFSET, default=0)
@json_option
@pass_cli
def events(
    obj: CliContext,
    account: str | None,
    action: str | None,
    actor: str | None,
    since: dt.datetime | None,
    until: dt.datetime | None,
    limit: int,
    offset: int,
    as_json: bool,
) -> None:
    """The audit log, newest first."""

    def utc(value: dt.datetime | None) -> dt.datetime | None:
        return value.replace(tzinfo=dt.UTC) if value and value.tzinfo is None else value

    query = EventFilter(account, action, actor, utc(since), utc(until), limit, offset)
    total, found = obj.run(lambda s: s.events.list_events(obj.operator, query))
    emit(
        as_json,
        wire.EventList(total_records=total, events=[event_out(e) for e in found]),
        ["TIME", "ACCOUNT", "ACTOR", "ACTION", "TARGET"],
        [[e.occurred_at, e.account, e.actor, e.action, e.target] for e in found],
    )


@click.group()
def alert() -> None:
    """Alerts."""


@alert.command("list")
@click.argument("account")
@click.option("--limit", type=click.IntRange(1, 10_000), default=100, show_default=True)
@click.option("--all", "include_cleared", is_flag=True, help="Include cleared alerts.")
@json_option
@pass_cli
def alert_list(
    obj: CliContext, account: str, limit: int, include_cleared: bool, as_json: bool
) -> None:
    """Alerts of ACCOUNT, newest first."""
    found = obj.run(lambda s: s.alerts.list_alerts(obj.operator, account, limit, include_cleared))
    emit(
        as_json,
        wire.AlertList(alerts=[alert_out(a) for a in found]),
        ["CREATED", "SEVERITY", "TYPE", "SOURCE", "MESSAGE", "CLEARED"],
        [
            [a.created_at, a.severity, a.message_type, a.source, a.message, a.cleared_at]
            for a in found
        ],
    )
