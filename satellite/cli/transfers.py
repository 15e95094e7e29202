"""``satellite license transfer``: move free licenses between virtual accounts from the host."""

from __future__ import annotations

import re
from typing import get_args

import click

from satellite.api import licenses as api
from satellite.cli.context import CliContext, json_option, pass_cli
from satellite.cli.output import emit
from satellite.domain.reservation import Precedence
from satellite_protocol.catalog import LicenseType


def _items(
    pairs: tuple[str, ...],
    target: str,
    license_type: LicenseType | None,
    precedence: Precedence,
) -> list[api.LicenseTransferItem]:
    items = []
    for pair in pairs:
        # A display name may hold '=' (a tag does not): the count is after the last one.
        name, sep, count = pair.rpartition("=")
        if not sep or not name.strip() or not re.fullmatch(r"[0-9]{1,8}", count.strip()):
            raise click.BadParameter(f"{pair!r} is not LICENSE=COUNT", param_hint="--license")
        if int(count) < 1:
            raise click.BadParameter(f"{pair!r}: the count is at least 1", param_hint="--license")
        items.append(
            api.LicenseTransferItem(
                license=name.strip(),
                quantity=int(count),
                target_virtual_account=target,
                license_type=license_type,
                precedence=precedence,
            )
        )
    return items


@click.command("transfer")
@click.argument("account")
@click.argument("va_name", metavar="VA")
@click.option("--to", "target", required=True, help="The virtual account the licenses go to.")
@click.option(
    "--license",
    "pairs",
    multiple=True,
    required=True,
    metavar="LICENSE=COUNT",
    help="Entitlement tag or display name, and how many; repeatable (all or none move).",
)
@click.option(
    "--type",
    "license_type",
    type=click.Choice(get_args(LicenseType)),
    default=None,
    help="Only lines of this type (default: any).",
)
@click.option(
    "--precedence",
    type=click.Choice(["LONGEST_TERM_FIRST", "SHORTEST_TERM_FIRST"]),
    default="LONGEST_TERM_FIRST",
    show_default=True,
    help="Which pool lines give first (PERPETUAL counts as the longest term).",
)
@json_option
@pass_cli
def license_transfer(
    obj: CliContext,
    account: str,
    va_name: str,
    target: str,
    pairs: tuple[str, ...],
    license_type: LicenseType | None,
    precedence: Precedence,
    as_json: bool,
) -> None:
    """Move free licenses of VA, with their dates and subscription ids, to another virtual
    account of ACCOUNT."""
    request = api.LicenseTransferIn(
        account=account,
        licenses=_items(pairs, target, license_type, precedence),
        source_virtual_account=va_name,
    )
    document = obj.call(api.transfer_licenses, request)
    emit(
        as_json,
        document,
        ["LICENSE", "QUANTITY", "FROM LINE", "TO LINE", "TYPE", "END", "SUBSCRIPTION"],
        [
            [
                t.license,
                m.quantity,
                m.source_line_id,
                m.target_line_id,
                m.license_type,
                m.end_date,
                m.subscription_id,
            ]
            for t in document.transfers
            for m in t.lines
        ],
    )
