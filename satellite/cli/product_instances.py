"""``satellite device``: product instances registered to virtual accounts."""

from __future__ import annotations

import click

from satellite.api import product_instances as api
from satellite.api.products import DeviceOut
from satellite.cli.context import CliContext, json_option, pass_cli
from satellite.cli.output import emit, emit_one, table

# Offsets go to the database as bigint: a larger one is refused here, in one line.
OFFSET = click.IntRange(0, 2**63 - 1)


@click.group()
def device() -> None:
    """Product instances (devices) registered to virtual accounts."""


_HEADERS = ["ID", "NAME", "PRODUCT", "PID", "SERIAL", "STATUS", "AUTHORIZATION", "CONTACT"]


def _rows(devices: list[DeviceOut]) -> list[list[object]]:
    return [
        [
            d.product_instance_id,
            d.display_name,
            d.product_name,
            d.sudi.udi_pid,
            d.sudi.udi_serial,
            d.status,
            d.authorization_status,
            d.last_contact_date,
        ]
        for d in devices
    ]


def _emit_change(as_json: bool, answer: api.DeviceChange) -> None:
    if as_json:
        emit(True, answer, [], [])
    else:
        click.echo(answer.message)
        click.echo(table(_HEADERS, _rows(answer.devices)))


@device.command("list")
@click.argument("account")
@click.argument("va", metavar="VA")
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
    va: str,
    status: str,
    pid: str | None,
    serial: str | None,
    hostname: str | None,
    limit: int,
    offset: int,
    as_json: bool,
) -> None:
    """Product instances of virtual account VA."""
    request = api.DevicesQuery(
        account=account,
        va=va,
        status=status,
        udi_pid=pid,
        udi_serial=serial,
        host_name=hostname,
        limit=limit,
        offset=offset,
    )
    answer = obj.call(api.list_devices, request)
    emit(as_json, answer, _HEADERS, _rows(answer.devices))


@device.command("show")
@click.argument("account")
@click.argument("va", metavar="VA")
@click.argument("product_id", metavar="ID")
@json_option
@pass_cli
def device_show(obj: CliContext, account: str, va: str, product_id: str, as_json: bool) -> None:
    """Product instance ID of virtual account VA, with its recent usage reports."""
    d = obj.call(api.show_device, api.DeviceShow(account=account, va=va, product=product_id))
    emit_one(
        as_json,
        d,
        [
            ("id", d.product_instance_id),
            ("name", d.display_name),
            ("product", d.product_name),
            ("udi", f"PID:{d.sudi.udi_pid} SN:{d.sudi.udi_serial} UUID:{d.sudi.udi_uuid}"),
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
@click.argument("va", metavar="VA")
@click.argument("product_ids", metavar="ID...", nargs=-1, required=True)
@click.option("--to", "target", required=True, help="The virtual account to move them to.")
@json_option
@pass_cli
def device_transfer(
    obj: CliContext,
    account: str,
    va: str,
    product_ids: tuple[str, ...],
    target: str,
    as_json: bool,
) -> None:
    """Move product instances of VA, with their usage, to another virtual account."""
    request = api.DeviceTransfer(
        account=account,
        va=va,
        product_instances=[
            api.DeviceTransferItem(product_instance_id=product_id, target_virtual_account=target)
            for product_id in product_ids
        ],
    )
    _emit_change(as_json, obj.call(api.transfer_devices, request))


@device.command("remove")
@click.argument("account")
@click.argument("va", metavar="VA")
@click.argument("product_ids", metavar="ID...", nargs=-1, required=True)
@json_option
@pass_cli
def device_remove(
    obj: CliContext, account: str, va: str, product_ids: tuple[str, ...], as_json: bool
) -> None:
    """Remove product instances of VA: their usage is released at once."""
    request = api.DeviceRemove(
        account=account,
        va=va,
        product_instances_remove_requests=[
            api.DeviceRemoveItem(product_instance_id=product_id) for product_id in product_ids
        ],
    )
    _emit_change(as_json, obj.call(api.remove_devices, request))
