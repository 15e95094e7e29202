"""Host-side administration: licenses and product instances."""

from __future__ import annotations

import datetime as dt
import functools
from collections.abc import Callable
from typing import Any, get_args

import click

from satellite.api.context import Services
from satellite.cli.context import CliContext, json_option, pass_cli
from satellite.cli.output import emit, emit_one, table
from satellite.cli.transfers import license_transfer
from satellite.domain.compliance import LicenseType, LineValues, PoolLine, Position, line_status
from satellite.http import wire
from satellite.http.views import (
    catalog_entry_out,
    device_change,
    device_detail,
    device_out,
    license_out,
    pool_line_out,
)
from satellite.services.products import (
    ById,
    ProductDetail,
    ProductFilter,
    ProductRef,
    ProductView,
    Transfer,
)
from satellite_protocol.catalog import Catalog, CatalogEntry

DATE = click.DateTime(formats=["%Y-%m-%d"])
# Row ids and offsets go to the database as bigint: a larger number is refused here, in
# one line, rather than by the driver with a traceback.
INT64_MAX = 2**63 - 1
LINE_ID = click.IntRange(1, INT64_MAX)
OFFSET = click.IntRange(0, INT64_MAX)


def _date(value: dt.datetime | None) -> dt.date | None:
    return value.date() if value else None


# --- licenses ------------------------------------------------------------------------------


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

    async def action(s: Services) -> tuple[list[Position], Catalog, dt.date]:
        _, positions = await s.licenses.positions(obj.operator, account, list(vas) or None)
        return positions, s.catalog, s.licenses.today()

    positions, catalog, today = obj.run(action)
    emit(
        as_json,
        wire.LicenseList(
            total_records=len(positions),
            licenses=[license_out(p, catalog, today) for p in positions],
        ),
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
                catalog.display_name(p.tag),
                p.purchased,
                p.in_use + p.exported,
                p.exported,
                p.reserved,
                p.available,
                p.status,
            ]
            for p in positions
        ],
    )


@license.command("pool")
@click.argument("account")
@click.argument("va_name", metavar="VA")
@json_option
@pass_cli
def license_pool(obj: CliContext, account: str, va_name: str, as_json: bool) -> None:
    """Pool lines of virtual account VA."""

    async def action(s: Services) -> tuple[list[PoolLine], Catalog, dt.date]:
        return await s.licenses.pool(obj.operator, account, va_name), s.catalog, s.licenses.today()

    lines, catalog, today = obj.run(action)
    emit(
        as_json,
        wire.PoolLineList(licenses=[pool_line_out(line, catalog, today) for line in lines]),
        ["ID", "LICENSE", "QUANTITY", "TYPE", "START", "END", "STATUS", "SOURCE"],
        [
            [
                line.id,
                catalog.display_name(line.tag),
                line.quantity,
                line.license_type,
                line.start_date,
                line.end_date,
                line_status(line, today),
                line.source,
            ]
            for line in lines
        ],
    )


def _line_options(command: Callable[..., None]) -> Callable[..., None]:
    """The pool line options, handed to ``command`` as one ``values: LineValues``."""

    @functools.wraps(command)
    def with_values(
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
        values = LineValues(
            tag=tag,
            quantity=quantity,
            license_type=license_type,
            start_date=_date(start),
            end_date=_date(end),
            subscription_id=subscription_id,
            export_restricted=export_restricted,
        )
        command(*args, values=values, **kwargs)

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
    decorated: Callable[..., None] = with_values
    for option in reversed(options):
        decorated = option(decorated)
    return decorated


def _emit_line(as_json: bool, out: wire.PoolLineOut) -> None:
    emit_one(
        as_json,
        wire.PoolLineOne(license=out),
        [("id", out.id), ("license", out.license), ("quantity", out.quantity)],
    )


@license.command("add")
@click.argument("account")
@click.argument("va_name", metavar="VA")
@_line_options
@json_option
@pass_cli
def license_add(
    obj: CliContext, account: str, va_name: str, values: LineValues, as_json: bool
) -> None:
    """Add a pool line to virtual account VA."""

    async def action(s: Services) -> wire.PoolLineOut:
        line = await s.licenses.add_line(obj.operator, account, va_name, values)
        return pool_line_out(line, s.catalog, s.licenses.today())

    _emit_line(as_json, obj.run(action))


@license.command("update")
@click.argument("account")
@click.argument("va_name", metavar="VA")
@click.argument("line_id", metavar="LINE", type=LINE_ID)
@_line_options
@json_option
@pass_cli
def license_update(
    obj: CliContext, account: str, va_name: str, line_id: int, values: LineValues, as_json: bool
) -> None:
    """Replace pool line LINE of virtual account VA."""

    async def action(s: Services) -> wire.PoolLineOut:
        line = await s.licenses.update_line(obj.operator, account, va_name, line_id, values)
        return pool_line_out(line, s.catalog, s.licenses.today())

    _emit_line(as_json, obj.run(action))


@license.command("remove")
@click.argument("account")
@click.argument("va_name", metavar="VA")
@click.argument("line_id", metavar="LINE", type=LINE_ID)
@pass_cli
def license_remove(obj: CliContext, account: str, va_name: str, line_id: int) -> None:
    """Remove pool line LINE of virtual account VA."""
    obj.run(lambda s: s.licenses.remove_line(obj.operator, account, va_name, line_id))
    click.echo(f"license line {line_id} removed")


@license.command("catalog")
@json_option
@pass_cli
def license_catalog(obj: CliContext, as_json: bool) -> None:
    """The license catalog: tags, display names, tiers, where each tag comes from
    (vendor, or made up by satellite) and what a version-independent license covers."""

    async def action(s: Services) -> list[CatalogEntry]:
        return list(s.catalog)

    entries = obj.run(action)
    emit(
        as_json,
        wire.CatalogList(licenses=[catalog_entry_out(e) for e in entries]),
        ["FAMILY", "TIER", "DISPLAY NAME", "ORIGIN", "TAG"],
        [[e.family, e.tier, e.display_name, e.tag_origin, e.tag] for e in entries],
    )


# --- product instances ---------------------------------------------------------------------


@click.group()
def device() -> None:
    """Product instances (devices) registered to virtual accounts."""


def _device_rows(devices: list[wire.DeviceOut]) -> list[list[object]]:
    return [
        [
            d.product_instance_id,
            d.display_name,
            d.product_name,
            d.sudi.udi_pid,
            d.sudi.udi_serial_number,
            d.status,
            d.authorization_status,
            d.last_contact_date,
        ]
        for d in devices
    ]


_DEVICE_HEADERS = ["ID", "NAME", "PRODUCT", "PID", "SERIAL", "STATUS", "AUTHORIZATION", "CONTACT"]


def _change(verb: str, views: list[ProductView], s: Services) -> wire.DeviceChange:
    return device_change(verb, views, s.catalog, s.products.now())


def _emit_change(as_json: bool, document: wire.DeviceChange) -> None:
    if as_json:
        emit(True, document, [], [])
    else:
        click.echo(document.message)
        click.echo(table(_DEVICE_HEADERS, _device_rows(document.devices)))


@device.command("list")
@click.argument("account")
@click.argument("va_name", metavar="VA")
@click.option(
    "--status",
    default="registered",
    show_default=True,
    help="A product status (registered, deregistered, removed, ...) or all.",
)
@click.option("--pid", default=None, help="Only this UDI product id.")
@click.option("--serial", default=None, help="Only this UDI serial number.")
@click.option("--hostname", default=None, help="Only host names containing this.")
@click.option("--limit", type=click.IntRange(1, 1000), default=100, show_default=True)
@click.option("--offset", type=OFFSET, default=0)
@json_option
@pass_cli
def device_list(
    obj: CliContext,
    account: str,
    va_name: str,
    status: str,
    pid: str | None,
    serial: str | None,
    hostname: str | None,
    limit: int,
    offset: int,
    as_json: bool,
) -> None:
    """Product instances of virtual account VA."""
    query = ProductFilter(
        status=status,
        udi_pid=pid,
        udi_serial=serial,
        hostname=hostname,
        limit=limit,
        offset=offset,
    )

    async def action(s: Services) -> wire.DeviceList:
        total, views = await s.products.list_products(obj.operator, account, va_name, query)
        now = s.products.now()
        return wire.DeviceList(
            total_records=total, devices=[device_out(v, s.catalog, now) for v in views]
        )

    listing = obj.run(action)
    emit(as_json, listing, _DEVICE_HEADERS, _device_rows(listing.devices))


@device.command("show")
@click.argument("account")
@click.argument("va_name", metavar="VA")
@click.argument("product_id", metavar="ID")
@json_option
@pass_cli
def device_show(
    obj: CliContext, account: str, va_name: str, product_id: str, as_json: bool
) -> None:
    """Product instance ID of virtual account VA, with its recent usage reports."""

    async def action(s: Services) -> wire.DeviceDetail:
        detail: ProductDetail = await s.products.product(obj.operator, account, va_name, product_id)
        return device_detail(detail, s.catalog, s.products.now())

    d = obj.run(action)
    emit_one(
        as_json,
        d,
        [
            ("id", d.product_instance_id),
            ("name", d.display_name),
            ("product", d.product_name),
            ("udi", f"PID:{d.sudi.udi_pid} SN:{d.sudi.udi_serial_number} UUID:{d.sudi.uuid}"),
            ("host name", d.host_name),
            ("ip address", d.ip_address),
            ("virtual account", d.virtual_account),
            ("status", d.status),
            ("registered", d.registration_date),
            ("last contact", d.last_contact_date),
            ("ended", d.ended_at),
            ("certificate expires", d.certificate_expires_at),
            ("authorization", d.authorization_status),
            ("authorization expires", d.authorization_expires_at),
            ("export-controlled", d.export_controlled),
            *((f"usage: {u.license}", u.quantity) for u in d.license_usage),
        ],
    )
    if not as_json and d.usage_history:
        click.echo()
        click.echo(
            table(
                ["REPORTED", "USAGE"],
                [
                    [r.reported_at, [f"{u.license}={u.quantity}" for u in r.license_usage]]
                    for r in d.usage_history
                ],
            )
        )


@device.command("transfer")
@click.argument("account")
@click.argument("va_name", metavar="VA")
@click.argument("product_ids", metavar="ID...", nargs=-1, required=True)
@click.option("--to", "target", required=True, help="The virtual account to move them to.")
@json_option
@pass_cli
def device_transfer(
    obj: CliContext,
    account: str,
    va_name: str,
    product_ids: tuple[str, ...],
    target: str,
    as_json: bool,
) -> None:
    """Move product instances of VA, with their usage, to another virtual account."""
    moves = [Transfer(ById(product_id), target) for product_id in product_ids]

    async def action(s: Services) -> wire.DeviceChange:
        views = await s.products.transfer(obj.operator, account, va_name, moves)
        return _change("transferred", views, s)

    _emit_change(as_json, obj.run(action))


@device.command("remove")
@click.argument("account")
@click.argument("va_name", metavar="VA")
@click.argument("product_ids", metavar="ID...", nargs=-1, required=True)
@json_option
@pass_cli
def device_remove(
    obj: CliContext, account: str, va_name: str, product_ids: tuple[str, ...], as_json: bool
) -> None:
    """Remove product instances of VA: their usage is released at once."""
    refs: list[ProductRef] = [ById(product_id) for product_id in product_ids]

    async def action(s: Services) -> wire.DeviceChange:
        views = await s.products.remove(obj.operator, account, va_name, refs)
        return _change("removed", views, s)

    _emit_change(as_json, obj.run(action))
