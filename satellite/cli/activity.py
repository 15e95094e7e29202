"""``satellite events`` and ``satellite alert``: the audit log and an account's alerts."""

from __future__ import annotations

import datetime as dt

import click

from satellite.api import activity as api
from satellite.cli.context import CliContext, json_option, pass_cli
from satellite.cli.options import OFFSET
from satellite.cli.output import emit


def _utc(value: dt.datetime | None) -> dt.datetime | None:
    """A time given without a zone is UTC."""
    return value.replace(tzinfo=dt.UTC) if value and value.tzinfo is None else value


@click.command()
@click.option("--account", default=None)
@click.option("--action", default=None, help="e.g. token.created, or a prefix such as token")
@click.option("--actor", default=None, help="e.g. client:sat-0123 or user:alice")
@click.option("--since", type=click.DateTime(), default=None)
@click.option("--until", type=click.DateTime(), default=None)
@click.option("--limit", type=click.IntRange(1, 1000), default=100, show_default=True)
@click.option("--offset", type=OFFSET, default=0)
@json_option
@pass_cli
def events(
    obj: CliContext,
    account: str | None,
    action: str | None,
    actor: str | None,
    since: dt.datetime | None,
    until: dt.datetime | None,
    limit: int,
    offset: int,
    as_json: bool,
) -> None:
    """The audit log, newest first."""
    request = api.EventsQuery(
        account=account,
        action=action,
        actor=actor,
        since=_utc(since),
        until=_utc(until),
        limit=limit,
        offset=offset,
    )
    answer = obj.call(api.list_events, request)
    emit(
        as_json,
        answer,
        ["TIME", "ACCOUNT", "ACTOR", "ACTION", "TARGET"],
        [[e.occurred_at, e.account, e.actor, e.action, e.target] for e in answer.events],
    )


@click.group()
def alert() -> None:
    """Alerts."""


@alert.command("list")
@click.argument("account")
@click.option("--limit", type=click.IntRange(1, 10_000), default=100, show_default=True)
@click.option("--offset", type=click.IntRange(0, 10**15), default=0, help="Skip this many.")
@click.option("--all", "include_cleared", is_flag=True, help="Include cleared alerts.")
@json_option
@pass_cli
def alert_list(
    obj: CliContext, account: str, limit: int, offset: int, include_cleared: bool, as_json: bool
) -> None:
    """Alerts of ACCOUNT, newest first (--json: with totalRecords, how many there are)."""
    request = api.AlertsQuery(
        account=account, limit=limit, offset=offset, include_cleared=include_cleared
    )
    answer = obj.call(api.list_alerts, request)
    emit(
        as_json,
        answer,
        ["CREATED", "SEVERITY", "TYPE", "SOURCE", "MESSAGE", "CLEARED"],
        [
            [a.created_at, a.severity, a.message_type, a.source, a.message, a.cleared_at]
            for a in answer.alerts
        ],
    )
