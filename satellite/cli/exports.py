"""Host-side administration of export-controlled features: the export keys granted."""

from __future__ import annotations

import click

from satellite.api.context import Services
from satellite.cli.context import CliContext, json_option, pass_cli
from satellite.cli.output import emit
from satellite.domain.models import ExportKey
from satellite.http import wire
from satellite.http.views import export_key_out
from satellite_protocol.catalog import Catalog


@click.group("export")
def export() -> None:
    """Export-controlled features: export authorization keys granted to products."""


@export.command("list")
@click.argument("account")
@click.argument("va_name", metavar="VA")
@click.option("--product", "product_id", default=None, help="Only this product instance id.")
@click.option("--all", "include_ended", is_flag=True, help="Include returned and released keys.")
@json_option
@pass_cli
def export_list(
    obj: CliContext,
    account: str,
    va_name: str,
    product_id: str | None,
    include_ended: bool,
    as_json: bool,
) -> None:
    """Export keys taken from VA's pool (with --product: one product's, ended ones too)."""

    async def action(s: Services) -> tuple[list[ExportKey], Catalog]:
        if product_id is not None:
            keys = await s.exports.keys_of_instance(obj.operator, account, va_name, product_id)
            if not include_ended:
                keys = [k for k in keys if k.status == "granted"]
            return keys, s.catalog
        page = await s.exports.keys_of_virtual_account(
            obj.operator, account, va_name, granted_only=not include_ended, limit=100_000
        )
        return page.keys, s.catalog

    keys, catalog = obj.run(action)
    emit(
        as_json,
        wire.ExportKeyList(
            total_records=len(keys), export_keys=[export_key_out(k, catalog) for k in keys]
        ),
        ["FEATURE", "PRODUCT", "UDI", "STATUS", "GRANTED", "ENDED", "KEY ID"],
        [
            [
                k.feature,
                k.product_id,
                f"PID:{k.udi_pid} SN:{k.udi_serial}",
                k.status,
                k.granted_at,
                f"{k.ended_at:%Y-%m-%d} ({k.end_reason})" if k.ended_at else None,
                k.id,
            ]
            for k in keys
        ],
    )
