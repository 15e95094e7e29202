"""Host-side administration of export-controlled features: the export keys granted."""

from __future__ import annotations

import click

from satellite.api import exports as api
from satellite.cli.context import CliContext, json_option, pass_cli
from satellite.cli.output import emit


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
    if product_id is not None:
        answer = obj.call(
            api.product_export_keys,
            api.ProductExportKeysQuery(account=account, va=va_name, product=product_id),
        )
        if not include_ended:
            granted = [k for k in answer.export_keys if k.status == "Granted"]
            answer = api.ExportKeyList(total_records=len(granted), export_keys=granted)
    else:
        status = "all" if include_ended else "Granted"
        query = api.ExportKeysQuery(account=account, va=va_name, status=status, limit=100_000)
        answer = obj.call(api.list_export_keys, query)
    emit(
        as_json,
        answer,
        ["FEATURE", "PRODUCT", "UDI", "STATUS", "GRANTED", "ENDED", "KEY ID"],
        [
            [
                k.feature,
                k.product_instance_id,
                f"PID:{k.sudi.udi_pid} SN:{k.sudi.udi_serial}",
                k.status.lower(),
                k.granted_at,
                f"{k.ended_at:%Y-%m-%d} ({k.end_reason})" if k.ended_at else None,
                k.key_id,
            ]
            for k in answer.export_keys
        ],
    )
