"""``satellite license``: license positions, pool lines and the catalog (and ``license
transfer``, ``satellite.cli.transfers``)."""

from __future__ import annotations

import datetime as dt
import functools
from collections.abc import Callable
from typing import Any, get_args

import click
import msgspec

from satellite.api import licenses as api
from satellite.cli.context import CliContext, json_option, pass_cli
from satellite.cli.output import emit, emit_one
from satellite.cli.transfers import license_transfer
from satellite_protocol.catalog import LicenseType

DATE = click.DateTime(formats=["%Y-%m-%d"])
# Line ids go to the database as bigint: a larger number is refused here, in one line.
LINE_ID = click.IntRange(1, 2**63 - 1)


@click.group()
def license() -> None:
    """License positions, pool lines and the catalog."""


license.add_command(license_transfer)


@license.command("list")
@click.argument("account")
@click.option("--va", "vas", multiple=True, help="Only this virtual account; repeatable.")
@json_option
@pass_cli
def license_list(obj: CliContext, account: str, vas: tuple[str, ...], as_json: bool) -> None:
    """License positions of ACCOUNT per virtual account and tag."""
    request = api.LicensesQuery(account=account, virtual_accounts=list(vas) or None)
    answer = obj.call(api.licenses_view, request)
    emit(
        as_json,
        answer,
        [
            "VIRTUAL ACCOUNT",
            "LICENSE",
            "QUANTITY",
            "IN USE",
            "EXPORT KEYS",
            "RESERVED",
            "AVAILABLE",
            "STATUS",
        ],
        [
            [
                p.virtual_account,
                p.license,
                p.quantity,
                p.in_use,
                p.export_keys,
                p.reserved,
                p.available,
                p.status,
            ]
            for p in answer.licenses
        ],
    )


@license.command("pool")
@click.argument("account")
@click.argument("va", metavar="VA")
@json_option
@pass_cli
def license_pool(obj: CliContext, account: str, va: str, as_json: bool) -> None:
    """Pool lines of virtual account VA."""
    answer = obj.call(api.list_pool, api.PoolQuery(account=account, va=va))
    emit(
        as_json,
        answer,
        ["ID", "LICENSE", "QUANTITY", "TYPE", "START", "END", "STATUS", "SOURCE"],
        [
            [
                line.id,
                line.license,
                line.quantity,
                line.license_type,
                line.start_date,
                line.end_date,
                line.status,
                line.source,
            ]
            for line in answer.licenses
        ],
    )


def _line_options(command: Callable[..., None]) -> Callable[..., None]:
    """The pool line options, handed to ``command`` as one ``line: PoolLineIn`` (of the
    command's ACCOUNT and VA)."""

    @functools.wraps(command)
    def with_line(
        *args: Any,
        tag: str,
        quantity: int,
        license_type: LicenseType,
        start: dt.datetime | None,
        end: dt.datetime | None,
        subscription_id: str | None,
        export_restricted: bool | None,
        **kwargs: Any,
    ) -> None:
        line = api.PoolLineIn(
            account=kwargs.pop("account"),
            va=kwargs.pop("va"),
            entitlement_tag=tag,
            quantity=quantity,
            license_type=license_type,
            start_date=start.date() if start else None,
            end_date=end.date() if end else None,
            subscription_id=subscription_id,
            export_restricted=export_restricted,
        )
        command(*args, line=line, **kwargs)

    options = [
        click.option("--tag", required=True, help="Entitlement tag (see 'license catalog')."),
        click.option("--quantity", required=True, type=click.IntRange(1, 10_000_000)),
        click.option(
            "--type",
            "license_type",
            type=click.Choice(get_args(LicenseType)),
            default="PERPETUAL",
            show_default=True,
        ),
        click.option("--start", type=DATE, default=None, help="YYYY-MM-DD"),
        click.option("--end", type=DATE, default=None, help="YYYY-MM-DD (TERM, SUBSCRIPTION)"),
        click.option("--subscription-id", default=None),
        click.option("--export-restricted/--not-export-restricted", default=None),
    ]
    decorated: Callable[..., None] = with_line
    for option in reversed(options):
        decorated = option(decorated)
    return decorated


def _emit_line(as_json: bool, answer: api.PoolLineOne) -> None:
    line = answer.license
    emit_one(
        as_json, answer, [("id", line.id), ("license", line.license), ("quantity", line.quantity)]
    )


@license.command("add")
@click.argument("account")
@click.argument("va", metavar="VA")
@_line_options
@json_option
@pass_cli
def license_add(obj: CliContext, line: api.PoolLineIn, as_json: bool) -> None:
    """Add a pool line to virtual account VA."""
    _emit_line(as_json, obj.call(api.add_pool_line, line))


@license.command("update")
@click.argument("account")
@click.argument("va", metavar="VA")
@click.argument("line_id", metavar="LINE", type=LINE_ID)
@_line_options
@json_option
@pass_cli
def license_update(obj: CliContext, line: api.PoolLineIn, line_id: int, as_json: bool) -> None:
    """Replace pool line LINE of virtual account VA."""
    request = api.PoolLineUpdate(**msgspec.structs.asdict(line), line=str(line_id))
    _emit_line(as_json, obj.call(api.update_pool_line, request))


@license.command("remove")
@click.argument("account")
@click.argument("va", metavar="VA")
@click.argument("line_id", metavar="LINE", type=LINE_ID)
@pass_cli
def license_remove(obj: CliContext, account: str, va: str, line_id: int) -> None:
    """Remove pool line LINE of virtual account VA."""
    request = api.PoolLineRemove(account=account, va=va, line=str(line_id))
    click.echo(obj.call(api.remove_pool_line, request).message)


@license.command("catalog")
@json_option
@pass_cli
def license_catalog(obj: CliContext, as_json: bool) -> None:
    """The license catalog: tags, display names, tiers, where each tag comes from
    (vendor, or made up by satellite) and what a version-independent license covers."""
    answer = obj.call(api.catalog, api.CatalogQuery())
    emit(
        as_json,
        answer,
        ["FAMILY", "TIER", "DISPLAY NAME", "ORIGIN", "TAG"],
        [
            [e.family, e.tier, e.display_name, e.tag_origin, e.entitlement_tag]
            for e in answer.licenses
        ],
    )
