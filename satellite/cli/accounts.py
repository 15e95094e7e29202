"""``satellite account`` and ``satellite va``: smart accounts and their virtual accounts."""

from __future__ import annotations

import click

from satellite.api import accounts as api
from satellite.cli.context import CliContext, json_option, pass_cli
from satellite.cli.output import emit, emit_one


@click.group()
def account() -> None:
    """Smart accounts."""


@account.command("list")
@json_option
@pass_cli
def account_list(obj: CliContext, as_json: bool) -> None:
    """List accounts."""
    answer = obj.call(api.list_accounts, api.AccountsQuery())
    emit(
        as_json,
        answer,
        ["NAME", "DOMAIN", "EXPORT-CONTROLLED", "CREATED", "DESCRIPTION"],
        [
            [a.name, a.domain or "", a.export_controlled_allowed, a.created_at, a.description]
            for a in answer.accounts
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
    request = api.AccountCreate(
        name=name,
        domain=domain,
        description=description,
        export_controlled_allowed=export_controlled,
    )
    answer = obj.call(api.create_account, request)
    out = answer.account
    emit_one(
        as_json,
        answer,
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
    request = api.AccountUpdate(
        account=name,
        domain=domain,
        description=description,
        export_controlled_allowed=export_controlled,
    )
    answer = obj.call(api.update_account, request)
    out = answer.account
    emit_one(
        as_json,
        answer,
        [
            ("name", out.name),
            ("description", out.description),
            ("domain", out.domain or ""),
            ("export-controlled", out.export_controlled_allowed),
        ],
    )


@click.group()
def va() -> None:
    """Virtual accounts."""


@va.command("list")
@click.argument("account")
@json_option
@pass_cli
def va_list(obj: CliContext, account: str, as_json: bool) -> None:
    """List the virtual accounts of ACCOUNT."""
    answer = obj.call(api.list_virtual_accounts, api.VirtualAccountsQuery(account=account))
    emit(
        as_json,
        answer,
        ["NAME", "DEFAULT", "CREATED", "DESCRIPTION"],
        [
            [v.name, v.is_default == "true", v.created_at, v.description]
            for v in answer.virtual_accounts
        ],
    )


@va.command("show")
@click.argument("account")
@click.argument("name")
@json_option
@pass_cli
def va_show(obj: CliContext, account: str, name: str, as_json: bool) -> None:
    """Show virtual account NAME of ACCOUNT."""
    answer = obj.call(api.get_virtual_account, api.VirtualAccountQuery(account=account, va=name))
    out = answer.virtual_account
    emit_one(
        as_json,
        answer,
        [
            ("name", out.name),
            ("default", out.is_default == "true"),
            ("created", out.created_at),
            ("description", out.description),
        ],
    )


@va.command("create")
@click.argument("account")
@click.argument("name")
@click.option("--description", default="")
@json_option
@pass_cli
def va_create(obj: CliContext, account: str, name: str, description: str, as_json: bool) -> None:
    """Create virtual account NAME in ACCOUNT."""
    request = api.VirtualAccountCreate(account=account, name=name, description=description)
    answer = obj.call(api.create_virtual_account, request)
    (created,) = answer.virtual_accounts
    emit_one(as_json, answer, [("name", created.name), ("description", created.description)])


@va.command("update")
@click.argument("account")
@click.argument("name")
@click.option("--name", "new_name", default=None, help="Its new name.")
@click.option("--description", default=None)
@json_option
@pass_cli
def va_update(
    obj: CliContext,
    account: str,
    name: str,
    new_name: str | None,
    description: str | None,
    as_json: bool,
) -> None:
    """Rename virtual account NAME of ACCOUNT or change its description."""
    request = api.VirtualAccountUpdate(
        account=account, va=name, name=new_name, description=description
    )
    answer = obj.call(api.update_virtual_account, request)
    (updated,) = answer.virtual_accounts
    emit_one(as_json, answer, [("name", updated.name), ("description", updated.description)])


@va.command("delete")
@click.argument("account")
@click.argument("name")
@pass_cli
def va_delete(obj: CliContext, account: str, name: str) -> None:
    """Delete an empty virtual account."""
    answer = obj.call(
        api.delete_virtual_account, api.VirtualAccountDelete(account=account, va=name)
    )
    click.echo(answer.message)
