"""``satellite usage``: an account's usage per virtual account and tag, day by day (the
admin API's usage report, every page of it), as a table, JSON or CSV."""

from __future__ import annotations

import datetime as dt

import click
import msgspec

from satellite.api import tables
from satellite.api import usage as api
from satellite.api.context import Services
from satellite.cli.context import CliContext, json_option, pass_cli
from satellite.cli.options import DATE
from satellite.cli.output import emit
from satellite.domain.access import Principal


async def _every_page(
    services: Services, caller: Principal, request: api.UsageQuery
) -> api.UsageReport:
    """Every row of the range, page after page (at most the total's pages: a page that
    comes back empty, as rows are forgotten meanwhile, ends it)."""
    answer = await api.usage_report(services, caller, request)
    rows = list(answer.usage)
    while answer.usage and len(rows) < answer.total_records:
        answer = await api.usage_report(
            services, caller, msgspec.structs.replace(request, offset=len(rows))
        )
        rows += answer.usage
    return api.UsageReport(total_records=len(rows), usage=rows)


@click.command("usage")
@click.argument("account")
@click.option("--from", "first", type=DATE, required=True, help="First day, YYYY-MM-DD (UTC).")
@click.option("--to", "last", type=DATE, required=True, help="Last day, YYYY-MM-DD (included).")
@click.option("--virtual-account", default=None, help="Only this virtual account.")
@click.option("--tag", default=None, help="Only this entitlement tag.")
@click.option("--csv", "as_csv", is_flag=True, help="Print CSV (a header row, then a row a day).")
@json_option
@pass_cli
def usage(
    obj: CliContext,
    account: str,
    first: dt.datetime,
    last: dt.datetime,
    virtual_account: str | None,
    tag: str | None,
    as_csv: bool,
    as_json: bool,
) -> None:
    """Usage of ACCOUNT per virtual account and tag, one row a UTC day, oldest first.

    PEAK is the highest in use among the day's samples (the usage-rollup job samples every
    timers.usage_rollup_minutes), LAST the day's last sample; SAMPLES says how many."""
    if as_csv and as_json:
        raise click.UsageError("--csv and --json: choose one")
    request = api.UsageQuery(
        account=account,
        first=first.date(),
        last=last.date(),
        virtual_account=virtual_account,
        tag=tag,
    )
    report = obj.run(lambda services: _every_page(services, obj.operator, request))
    if as_csv:
        click.echo(tables.as_csv(report, "usage"), nl=False)
        return
    emit(
        as_json,
        report,
        [
            "DAY",
            "VIRTUAL ACCOUNT",
            "LICENSE",
            "PEAK",
            "LAST",
            "PURCHASED",
            "RESERVED",
            "AVAILABLE",
            "SAMPLES",
        ],
        [
            [
                d.day,
                d.virtual_account,
                d.license,
                d.peak_in_use,
                d.last_in_use,
                d.purchased,
                d.reserved,
                d.available,
                d.samples,
            ]
            for d in report.usage
        ],
    )
