"""``satellite reservation ...``: specific license reservation (SLR) from the host."""

from __future__ import annotations

import re
from pathlib import Path

import click

from satellite.api import reservations as api
from satellite.api.context import Services
from satellite.cli.context import CliContext, json_option, pass_cli
from satellite.cli.output import emit, emit_one
from satellite.domain.reservation import Precedence


@click.group()
def reservation() -> None:
    """Specific license reservation: reserve licenses for a product by its request code,
    update, confirm, return, force-remove."""


def _licenses(pairs: tuple[str, ...], precedence: Precedence) -> list[api.ReservationLicenseIn]:
    wanted = []
    for pair in pairs:
        tag, sep, count = pair.partition("=")
        if (
            not sep
            or not tag.strip()
            or not re.fullmatch(r"[0-9]+", count.strip())
            or int(count) < 1
        ):
            raise click.BadParameter(f"{pair!r} is not TAG=COUNT", param_hint="--license")
        wanted.append(
            api.ReservationLicenseIn(
                entitlement_tag=tag.strip(), quantity=int(count), precedence=precedence
            )
        )
    return wanted


license_option = click.option(
    "--license",
    "pairs",
    multiple=True,
    required=True,
    metavar="TAG=COUNT",
    help="Licenses to reserve; repeatable. An update names them all.",
)
precedence_option = click.option(
    "--precedence",
    type=click.Choice(["LONGEST_TERM_FIRST", "SHORTEST_TERM_FIRST"]),
    default="LONGEST_TERM_FIRST",
    show_default=True,
    help="Which pool lines to take from first (PERPETUAL counts as the longest term).",
)
out_option = click.option(
    "--out",
    type=click.Path(path_type=Path, dir_okay=False),
    default=None,
    help="Also write the authorization code to this file (for install-file).",
)


def _emit_codes(as_json: bool, document: api.ReserveLicensesOut, out: Path | None) -> None:
    if out is not None:
        [issued] = document.authorization_codes
        out.write_text(issued.authorization_code + "\n")
    if as_json:
        emit(True, document, [], [])
        return
    for issued in document.authorization_codes:
        click.echo(
            f"product instance {issued.product_instance_id} "
            f"(PID:{issued.sudi.udi_pid} SN:{issued.sudi.udi_serial}): "
            f"{issued.reservation.status}"
        )
        for held in issued.reservation.reserved_licenses:
            click.echo(f"  reserved: {held.license} = {held.quantity}")
        click.echo("authorization code (install it on the product):")
        click.echo(issued.authorization_code)


@reservation.command("list")
@click.argument("account")
@click.argument("va_name", metavar="VA")
@click.option("--all", "include_ended", is_flag=True, help="Include returned and removed ones.")
@json_option
@pass_cli
def reservation_list(
    obj: CliContext, account: str, va_name: str, include_ended: bool, as_json: bool
) -> None:
    """The reservations of VA, newest first: each product and what it holds."""
    query = api.ReservationsQuery(
        account=account, va=va_name, status="all" if include_ended else "active", limit=1000
    )
    answer = obj.call(api.list_reservations, query)
    emit(
        as_json,
        answer,
        ["PRODUCT", "UDI", "TYPE", "RESERVATION", "RESERVED", "CREATED"],
        [
            [
                r.product_instance_id,
                f"PID:{r.sudi.udi_pid} SN:{r.sudi.udi_serial}",
                r.product_tag_name,
                r.reservation.status,
                [f"{u.license}={u.quantity}" for u in r.reservation.reserved_licenses],
                r.reservation.created_at,
            ]
            for r in answer.reservations
        ],
    )


@reservation.command("reserve")
@click.argument("account")
@click.argument("va_name", metavar="VA")
@click.option("--code", "request_code", required=True, help="The product's request code.")
@license_option
@precedence_option
@out_option
@json_option
@pass_cli
def reservation_reserve(
    obj: CliContext,
    account: str,
    va_name: str,
    request_code: str,
    pairs: tuple[str, ...],
    precedence: Precedence,
    out: Path | None,
    as_json: bool,
) -> None:
    """Reserve licenses of VA for the product whose request code is given; print the
    authorization code."""
    wanted = api.ReservationRequestIn(
        reservation_code=request_code, licenses=_licenses(pairs, precedence)
    )
    request = api.ReserveLicenses(account=account, va=va_name, reservation_requests=[wanted])
    _emit_codes(as_json, obj.call(api.reserve_licenses, request), out)


@reservation.command("update")
@click.argument("account")
@click.argument("va_name", metavar="VA")
@click.argument("product_id", metavar="ID")
@license_option
@precedence_option
@out_option
@json_option
@pass_cli
def reservation_update(
    obj: CliContext,
    account: str,
    va_name: str,
    product_id: str,
    pairs: tuple[str, ...],
    precedence: Precedence,
    out: Path | None,
    as_json: bool,
) -> None:
    """Change the reserved licenses of product instance ID (a new authorization code; in
    transition until its confirmation code is entered)."""
    request = api.ReservationUpdate(
        account=account, va=va_name, product=product_id, licenses=_licenses(pairs, precedence)
    )
    _emit_codes(as_json, obj.call(api.update_reservation, request), out)


@reservation.command("code")
@click.argument("account")
@click.argument("va_name", metavar="VA")
@click.argument("product_id", metavar="ID")
@out_option
@pass_cli
def reservation_code(
    obj: CliContext, account: str, va_name: str, product_id: str, out: Path | None
) -> None:
    """Print (or write to a file) the latest authorization code of product instance ID."""
    request = api.AuthorizationCodeQuery(account=account, va=va_name, product=product_id)
    code = obj.call(api.download_authorization_code, request).content.decode()
    if out is not None:
        out.write_text(code + "\n")
        click.echo(f"authorization code written to {out}")
    else:
        click.echo(code)


def _emit_change(as_json: bool, document: api.ReservationChange) -> None:
    if as_json:
        emit(True, document, [], [])
        return
    device = document.device
    fields: list[tuple[str, object]] = [
        ("result", document.message),
        ("product instance", device.product_instance_id),
        ("status", device.status),
    ]
    if device.reservation is not None:
        fields.append(("reservation", device.reservation.status))
        fields += [
            (f"reserved: {u.license}", u.quantity) for u in device.reservation.reserved_licenses
        ]
    emit_one(False, document, fields)


@reservation.command("confirm")
@click.argument("account")
@click.argument("va_name", metavar="VA")
@click.argument("confirmation_code", metavar="CODE")
@json_option
@pass_cli
def reservation_confirm(
    obj: CliContext, account: str, va_name: str, confirmation_code: str, as_json: bool
) -> None:
    """Enter a product's confirmation code: its reservation settles on the installed code."""
    request = api.ConfirmationCodeIn(
        account=account, va=va_name, confirmation_code=confirmation_code
    )
    _emit_change(as_json, obj.call(api.confirm_reservation, request))


@reservation.command("return")
@click.argument("account")
@click.argument("va_name", metavar="VA")
@click.argument("return_code", metavar="CODE")
@json_option
@pass_cli
def reservation_return(
    obj: CliContext, account: str, va_name: str, return_code: str, as_json: bool
) -> None:
    """Enter a product's return code: its licenses go back, the product is removed."""
    request = api.ReturnCodeIn(account=account, va=va_name, return_code=return_code)
    _emit_change(as_json, obj.call(api.return_reservation, request))


@reservation.command("force-remove")
@click.argument("account")
@click.argument("va_name", metavar="VA")
@click.argument("product_id", metavar="ID")
@click.option("--reason", required=True, help="Why (kept in the audit log), e.g. an RMA case.")
@json_option
@pass_cli
def reservation_force_remove(
    obj: CliContext, account: str, va_name: str, product_id: str, reason: str, as_json: bool
) -> None:
    """Remove a reserved product that cannot make a return code (failed, destroyed)."""
    request = api.ForceRemoveIn(account=account, va=va_name, product=product_id, reason=reason)
    _emit_change(as_json, obj.call(api.force_remove, request))


@reservation.command("signing-key")
@pass_cli
def reservation_signing_key(obj: CliContext) -> None:
    """The public key authorization codes are signed with: give it to products
    ('satellite-agent license smart reservation trust FILE')."""

    async def action(s: Services) -> str:
        return s.reservations.signing_public_key()

    click.echo(obj.run(action).rstrip())
