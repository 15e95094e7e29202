"""``satellite token``: registration tokens of a virtual account."""

from __future__ import annotations

import click

from satellite.api import tokens as api
from satellite.cli.context import CliContext, json_option, pass_cli
from satellite.cli.output import emit, emit_one


@click.group()
def token() -> None:
    """Registration tokens."""


@token.command("list")
@click.argument("account")
@click.argument("va", metavar="VA")
@json_option
@pass_cli
def token_list(obj: CliContext, account: str, va: str, as_json: bool) -> None:
    """Registration tokens of virtual account VA."""
    answer = obj.call(api.list_tokens, api.TokensQuery(account=account, va=va))
    emit(
        as_json,
        answer,
        ["TOKEN", "STATUS", "EXPIRES", "USES", "EXPORT", "DESCRIPTION"],
        [
            [
                i.token,
                i.status,
                i.expiration_date,
                f"{i.uses}/{i.number_of_uses or '-'}",
                i.export_controlled,
                i.description,
            ]
            for i in answer.tokens
        ],
    )


@token.command("create")
@click.argument("account")
@click.argument("va", metavar="VA")
@click.option("--description", default="")
@click.option("--expires-after-days", type=click.IntRange(1, 365), default=None)
@click.option("--export-controlled/--no-export-controlled", default=None)
@click.option("--uses", type=click.IntRange(1, 1_000_000), default=None, help="Maximum uses.")
@json_option
@pass_cli
def token_create(
    obj: CliContext,
    account: str,
    va: str,
    description: str,
    expires_after_days: int | None,
    export_controlled: bool | None,
    uses: int | None,
    as_json: bool,
) -> None:
    """Create a registration token for virtual account VA.

    Export-controlled functionality is allowed by default where the account may use it.
    """
    request = api.TokenCreate(
        account=account,
        va=va,
        description=description,
        expires_after_days=expires_after_days,
        export_controlled=export_controlled,
        number_of_uses=uses,
    )
    answer = obj.call(api.create_token, request)
    info = answer.token_info
    emit_one(
        as_json,
        answer,
        [
            ("token", info.token),
            ("expires", info.expiration_date),
            ("export-controlled", info.export_controlled),
            ("uses", info.number_of_uses),
        ],
    )


@token.command("revoke")
@click.argument("account")
@click.argument("va", metavar="VA")
@click.argument("tokens", nargs=-1, required=True)
@pass_cli
def token_revoke(obj: CliContext, account: str, va: str, tokens: tuple[str, ...]) -> None:
    """Revoke TOKENS of virtual account VA."""
    answer = obj.call(api.revoke_tokens, api.TokenRevoke(account=account, va=va, tokens=[*tokens]))
    click.echo(f"{len(answer.tokens)} token(s) revoked")
