"""``satellite webhook``: where an account's alerts are delivered (docs/webhooks.md)."""

from __future__ import annotations

import uuid

import click

from satellite.api import webhooks as api
from satellite.cli.context import CliContext, json_option, pass_cli
from satellite.cli.output import emit, emit_one
from satellite.domain.webhooks import ALERT_EVENTS, AlertEvent

EVENTS = click.Choice(ALERT_EVENTS)


def _events(events: tuple[str, ...]) -> list[AlertEvent]:
    return [e for e in ALERT_EVENTS if e in events]  # (click.Choice checked them)


def _show(as_json: bool, answer: api.WebhookOne | api.WebhookWithSecret) -> None:
    hook = answer.webhook
    fields: list[tuple[str, object]] = [
        ("id", hook.id),
        ("url", hook.url),
        ("events", hook.events),
        ("alert-types", hook.alert_types or "every type"),
        ("enabled", hook.enabled),
        ("description", hook.description),
    ]
    if isinstance(answer, api.WebhookWithSecret):
        fields.append(("secret", answer.secret))
    emit_one(as_json, answer, fields)


@click.group()
def webhook() -> None:
    """Webhooks: an account's alerts delivered to a URL (signed) or by e-mail."""


@webhook.command("create")
@click.argument("account")
@click.argument("url")
@click.option("--event", "events", type=EVENTS, multiple=True, help="(default: both)")
@click.option("--alert-type", "alert_types", multiple=True, help="Only these (default: every).")
@click.option("--disabled", is_flag=True, help="Create it disabled.")
@click.option("--description", default="")
@json_option
@pass_cli
def webhook_create(
    obj: CliContext,
    account: str,
    url: str,
    events: tuple[str, ...],
    alert_types: tuple[str, ...],
    disabled: bool,
    description: str,
    as_json: bool,
) -> None:
    """Deliver ACCOUNT's alerts to URL (https://..., or mailto:ADDRESS through [smtp]).

    The secret that signs the deliveries is shown this once."""
    request = api.WebhookCreate(
        account=account,
        url=url,
        alert_types=[*alert_types],
        enabled=not disabled,
        description=description,
        events=_events(events) if events else list(ALERT_EVENTS),
    )
    _show(as_json, obj.call(api.create_webhook, request))


@webhook.command("list")
@click.argument("account")
@json_option
@pass_cli
def webhook_list(obj: CliContext, account: str, as_json: bool) -> None:
    """ACCOUNT's webhooks."""
    answer = obj.call(api.list_webhooks, api.WebhooksQuery(account=account))
    emit(
        as_json,
        answer,
        ["ID", "URL", "EVENTS", "ALERT TYPES", "ENABLED"],
        [[w.id, w.url, w.events, w.alert_types, w.enabled] for w in answer.webhooks],
    )


@webhook.command("show")
@click.argument("account")
@click.argument("webhook_id", metavar="WEBHOOK", type=click.UUID)
@json_option
@pass_cli
def webhook_show(obj: CliContext, account: str, webhook_id: uuid.UUID, as_json: bool) -> None:
    """One webhook of ACCOUNT."""
    _show(as_json, obj.call(api.get_webhook, api.InWebhook(account=account, webhook=webhook_id)))


@webhook.command("update")
@click.argument("account")
@click.argument("webhook_id", metavar="WEBHOOK", type=click.UUID)
@click.option("--url", default=None)
@click.option("--event", "events", type=EVENTS, multiple=True, help="(replaces the events)")
@click.option("--alert-type", "alert_types", multiple=True, help="(replaces the alert types)")
@click.option("--every-alert-type", is_flag=True, help="Deliver alerts of every type.")
@click.option("--enable/--disable", "enabled", default=None)
@click.option("--description", default=None)
@json_option
@pass_cli
def webhook_update(
    obj: CliContext,
    account: str,
    webhook_id: uuid.UUID,
    url: str | None,
    events: tuple[str, ...],
    alert_types: tuple[str, ...],
    every_alert_type: bool,
    enabled: bool | None,
    description: str | None,
    as_json: bool,
) -> None:
    """Change a webhook of ACCOUNT (disabling it cancels what waits for it)."""
    if every_alert_type and alert_types:
        raise click.UsageError("--alert-type and --every-alert-type exclude each other")
    request = api.WebhookUpdate(
        account=account,
        webhook=webhook_id,
        url=url,
        alert_types=[] if every_alert_type else ([*alert_types] or None),
        enabled=enabled,
        description=description,
        events=_events(events) if events else None,
    )
    _show(as_json, obj.call(api.update_webhook, request))


@webhook.command("delete")
@click.argument("account")
@click.argument("webhook_id", metavar="WEBHOOK", type=click.UUID)
@pass_cli
def webhook_delete(obj: CliContext, account: str, webhook_id: uuid.UUID) -> None:
    """Delete a webhook of ACCOUNT and its delivery log."""
    obj.call(api.delete_webhook, api.InWebhook(account=account, webhook=webhook_id))
    click.echo(f"webhook {webhook_id} deleted")


@webhook.command("rotate-secret")
@click.argument("account")
@click.argument("webhook_id", metavar="WEBHOOK", type=click.UUID)
@json_option
@pass_cli
def webhook_rotate(obj: CliContext, account: str, webhook_id: uuid.UUID, as_json: bool) -> None:
    """Give a webhook a new secret, shown this once (the old one signs nothing more)."""
    request = api.InWebhook(account=account, webhook=webhook_id)
    _show(as_json, obj.call(api.rotate_webhook_secret, request))


@webhook.command("test")
@click.argument("account")
@click.argument("webhook_id", metavar="WEBHOOK", type=click.UUID)
@json_option
@pass_cli
def webhook_test(obj: CliContext, account: str, webhook_id: uuid.UUID, as_json: bool) -> None:
    """Queue a webhook.test delivery; `webhook deliveries` shows how it went."""
    answer = obj.call(api.send_test_delivery, api.InWebhook(account=account, webhook=webhook_id))
    emit_one(as_json, answer, [("delivery", answer.delivery_id), ("message", answer.message)])


@webhook.command("deliveries")
@click.argument("account")
@click.argument("webhook_id", metavar="WEBHOOK", type=click.UUID)
@click.option(
    "--limit", type=click.IntRange(1, api.MAX_DELIVERIES_PAGE), default=50, show_default=True
)
@click.option("--offset", type=click.IntRange(0), default=0)
@json_option
@pass_cli
def webhook_deliveries(
    obj: CliContext, account: str, webhook_id: uuid.UUID, limit: int, offset: int, as_json: bool
) -> None:
    """A webhook's deliveries, newest first, with their last attempt."""
    request = api.DeliveriesQuery(account=account, webhook=webhook_id, limit=limit, offset=offset)
    answer = obj.call(api.list_webhook_deliveries, request)
    rows = []
    for d in answer.deliveries:
        last = d.attempts[-1] if d.attempts else None
        outcome = None if last is None else (last.status_code or last.error)
        rows.append([d.id, d.event, d.state, d.created_at, len(d.attempts), outcome])
    emit(as_json, answer, ["ID", "EVENT", "STATE", "CREATED", "ATTEMPTS", "LAST"], rows)
