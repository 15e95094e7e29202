"""The ``satellite-agent`` commands of a product's life: init, register, renew, usage,
deregister, status, its transport and clock settings, and ``run``."""

from __future__ import annotations

import asyncio
import datetime as dt
import signal
from pathlib import Path
from typing import Any

import click
import msgspec

from satellite_agent.arguments import parse_usage, server_url
from satellite_agent.cli.context import FORCE_HELP, pass_agent, register_with, run_async
from satellite_agent.client import Agent, AgentError, ServerUnreachable
from satellite_agent.export import ExportControl
from satellite_agent.reservation import Reservations
from satellite_agent.runner import Runner, Schedule
from satellite_agent.state import (
    MAX_CLOCK_TOLERANCE,
    AgentState,
    Identity,
    new_uuid,
    shown_url,
)
from satellite_protocol import outbound


@click.command()
@click.option("--pid", required=True, help="Product ID of the UDI.")
@click.option("--serial", "serial_number", required=True, help="Serial number of the UDI.")
@click.option("--uuid", "uuid_", default=None, help="UUID of the UDI (default: a new one).")
@click.option("--product-type", default="UCM", show_default=True)
@click.option("--product-version", default="15.0", show_default=True)
@click.option(
    "--url",
    default=None,
    callback=lambda _ctx, _param, value: server_url(value),
    help="Server URL (default: http://127.0.0.1:8443).",
)
@pass_agent
def init(
    agent: Agent,
    pid: str,
    serial_number: str,
    uuid_: str | None,
    product_type: str,
    product_version: str,
    url: str | None,
) -> None:
    """Create the product's state; its evaluation period starts now."""
    state = agent.init(
        Identity(
            pid=pid,
            serial_number=serial_number,
            uuid=uuid_ or new_uuid(),
            product_type=product_type,
            product_version=product_version,
        )
    )
    if url:
        state.transport.url = url
        agent.save(state)
    click.echo(
        f"product {pid}:{serial_number} in evaluation until {agent.evaluation_ends():%Y-%m-%d}"
    )


@click.command()
@click.argument("token")
@click.option("--force", is_flag=True, help=FORCE_HELP)
@pass_agent
def register(agent: Agent, token: str, force: bool) -> None:
    """Register with a token from the server's virtual account."""
    if agent.state.registration == "registered":
        raise AgentError("already registered: use 'reregister TOKEN' to move to another account")
    register_with(agent, token, force)


@click.command()
@click.argument("token")
@click.option("--force", is_flag=True, help=FORCE_HELP)
@pass_agent
def reregister(agent: Agent, token: str, force: bool) -> None:
    """Register again, e.g. with a token of another virtual account (the product moves)."""
    register_with(agent, token, force)


@click.group()
def renew() -> None:
    """Renew the authorization or the registration now."""


@renew.command("authorization")
@pass_agent
def renew_authorization(agent: Agent) -> None:
    state = run_async(agent.renew_authorization)
    click.echo(
        f"authorization {(state.authorization or {}).get('state')}, "
        f"expires {(state.authorization or {}).get('expiresAt')}"
    )


@renew.command("registration")
@pass_agent
def renew_registration(agent: Agent) -> None:
    state = run_async(agent.renew_registration)
    click.echo(f"registration renewed, certificate expires {state.certificate_expires_at}")


@click.group()
def usage() -> None:
    """Usage reports."""


@usage.command("update")
@click.option("--usage", "pairs", multiple=True, metavar="TAG=COUNT", help="Repeatable.")
@click.option(
    "--file",
    type=click.Path(path_type=Path, dir_okay=False, exists=True),
    default=None,
    help="A file of TAG=COUNT lines.",
)
@pass_agent
def usage_update(agent: Agent, pairs: tuple[str, ...], file: Path | None) -> None:
    """Report the product's current usage (it replaces the last report)."""
    report = parse_usage(pairs, file)
    reservations = Reservations(agent.dir.path)
    if reservations.installed(agent.state):
        # Under a reservation nothing is sent: the reserved counts are all there is.
        click.echo("authorization: specific license reservation (checked here, nothing sent)")
        for tag, tag_state in reservations.check_usage(report).items():
            click.echo(f"  {tag}: {report[tag]} {tag_state}")
        return
    state = run_async(lambda: agent.report_usage(report))
    _echo_authorization(state)


@click.command()
@pass_agent
def deregister(agent: Agent) -> None:
    """Leave the server; all usage is released there at once."""
    try:
        run_async(agent.deregister)
    except ServerUnreachable as exc:
        agent.deregister_locally()
        click.echo(
            f"warning: {exc}; deregistered locally only: remove this product on the server by hand",
            err=True,
        )
        return
    click.echo("deregistered")


def _echo_authorization(state: AgentState) -> None:
    authorization = state.authorization or {}
    click.echo(f"authorization: {authorization.get('state', '-')}")
    for tag in authorization.get("tags", []):
        click.echo(f"  {tag['displayName']}: {tag['count']} {tag['state']}")


@click.command()
@click.option("--json", "as_json", is_flag=True, help="Print JSON for scripts.")
@pass_agent
def status(agent: Agent, as_json: bool) -> None:
    """Registration state, authorization per tag, and every expiry date."""
    state = agent.state
    evaluation_ends = agent.evaluation_ends(state)
    clock = agent.now()
    now = agent.judged_now(state)
    reservations = Reservations(agent.dir.path)
    exports = ExportControl(agent)
    reserved = reservations.describe(state)
    if reserved is not None:
        registration = reserved
    elif state.registration == "registered":
        registration = "registered"
    elif state.registration == "registration_expired":
        registration = "registration expired: register again"
    elif state.registration == "replaced":
        registration = state.last_error or "registration replaced: register again"
    elif state.registration == "removed":
        registration = "ended by the server (removed or deregistered there): register again"
    elif now < evaluation_ends:
        registration = "evaluation"
    else:
        registration = "evaluation expired"
    summary: dict[str, Any] = {
        "registration": registration,
        "productInstanceId": state.product_instance_id,
        "virtualAccount": state.virtual_account,
        "exportControlled": state.export_controlled,
        "evaluationEnds": evaluation_ends,
        "certificateExpiresAt": state.certificate_expires_at,
        "renewRegistrationAfter": state.renew_registration_after,
        "authorization": state.authorization,
        "authorizationExpired": agent.authorization_expired(state),
        "mayAddUsers": agent.allows_users(state),
        "clock": {
            "now": clock,
            "latestSeen": state.time_seen.latest,
            "toleranceSeconds": state.time_seen.tolerance_seconds,
            "rollback": state.time_seen.rolled_back(clock),
            "behindSeconds": int(state.time_seen.behind(clock).total_seconds()),
        },
        "transport": state.transport.shown(),
        "shareHostIdentity": state.share_host_identity,
        "reservation": {
            "enabled": state.reservation.enabled,
            "requestOpen": state.reservation.request_nonce is not None,
            "installedAt": state.reservation.installed_at,
            "authorizationCodeTimestamp": state.reservation.timestamp,
            "entitlements": msgspec.to_builtins(state.reservation.entitlements),
            "authorized": reservations.authorized(state),
            "confirmationCode": state.reservation.confirmation_code,
            "returnCode": state.reservation.return_code,
            "trustedKey": state.reservation.trusted_key is not None,
        },
        "exportControl": {
            "unavailable": exports.availability(state),
            "features": exports.features(state),
            "keys": [
                {"feature": k.feature, "keyId": k.key_id, "grantedAt": k.granted_at}
                | {"released": k.released}
                for k in state.export.keys
            ],
            "pending": msgspec.to_builtins(state.export.pending),
            "alarms": msgspec.to_builtins(state.export.alarms),
        },
    }
    if as_json:
        click.echo(msgspec.json.format(msgspec.json.encode(summary)).decode())
        return
    click.echo(f"registration: {registration}")
    if summary["clock"]["rollback"]:
        behind = dt.timedelta(seconds=summary["clock"]["behindSeconds"])
        click.echo(
            f"clock rolled back: this host's clock is {behind} behind the "
            f"latest time this product has seen ({state.time_seen.latest}); expiry is judged "
            "by that time, so nothing expired comes back: set the clock right"
        )
    for key in ("productInstanceId", "virtualAccount", "certificateExpiresAt", "evaluationEnds"):
        if summary[key] is not None:
            click.echo(f"{key}: {summary[key]}")
    if state.authorization:
        expired = " (expired)" if summary["authorizationExpired"] else ""
        click.echo(f"authorization expires: {state.authorization.get('expiresAt')}{expired}")
    _echo_authorization(state)
    if reservations.installed(state):
        authorized = reservations.authorized(state)
        click.echo("reserved licenses:")
        for entitlement in state.reservation.entitlements:
            dates = f" until {entitlement.end_date}" if entitlement.end_date else ""
            live = "" if entitlement.tag in authorized else " (not in force today)"
            click.echo(
                f"  {entitlement.display_name or entitlement.tag}: {entitlement.count} "
                f"{entitlement.license_type}{dates}{live}"
            )
        click.echo(f"confirmation code: {state.reservation.confirmation_code}")
    click.echo(f"may add users: {'yes' if summary['mayAddUsers'] else 'no'}")
    _echo_export(summary["exportControl"])


def _echo_export(export: dict[str, Any]) -> None:
    features = export["features"]
    enabled = ", ".join(f"{name} ({source})" for name, source in sorted(features.items()))
    click.echo(f"export-controlled features: {enabled or 'none'}")
    if export["unavailable"] and not features:
        click.echo(f"  {export['unavailable']}")
    for pending in export["pending"]:
        click.echo(
            f"  pending export {pending['action']} of {pending['feature']}: "
            f"{pending['attempts']} failed attempt(s), next at {pending['next_attempt']}"
            + (f" ({pending['last_error']})" if pending["last_error"] else "")
        )
    for alarm in export["alarms"]:
        click.echo(f"alarm {alarm['name']}: {alarm['message']}")


@click.group()
def transport() -> None:
    """How the product reaches the server."""


@transport.command("url")
@click.argument("url", callback=lambda _ctx, _param, value: server_url(value))
@click.option(
    "--ca-file",
    type=click.Path(path_type=Path, dir_okay=False, exists=True),
    default=None,
    help="PEM certificates to verify TLS peers with: an https:// server, an HTTPS proxy "
    "(one bundle for both; default: the system's).",
)
@pass_agent
def transport_url(agent: Agent, url: str, ca_file: Path | None) -> None:
    """The satellite (or transport gateway) URL, e.g. https://satellite.example:8443."""

    def change(state: AgentState) -> None:
        state.transport.url = url
        state.transport.ca_file = str(ca_file.resolve()) if ca_file else None

    agent.update(change)
    click.echo(f"server: {shown_url(url)}{f' (trusting {ca_file})' if ca_file else ''}")


@transport.command("proxy")
@click.option("--host", required=True)
@click.option("--port", required=True, type=click.IntRange(1, 65535))
@click.option("--https", "use_https", is_flag=True, help="The proxy itself speaks TLS.")
@click.option("--user", default=None)
@click.option("--password", default=None, envvar="SATELLITE_AGENT_PROXY_PASSWORD")
@click.option(
    "--ca-file",
    type=click.Path(path_type=Path, dir_okay=False, exists=True),
    default=None,
    help="PEM certificates to verify an HTTPS proxy (and an https:// server) with; "
    "replaces the bundle 'transport url --ca-file' set.",
)
@pass_agent
def transport_proxy(
    agent: Agent,
    host: str,
    port: int,
    use_https: bool,
    user: str | None,
    password: str | None,
    ca_file: Path | None,
) -> None:
    """Go through an HTTP or HTTPS proxy, optionally with basic authentication."""

    proxy_url = f"{'https' if use_https else 'http'}://{host}:{port}"
    refusal = outbound.url_refusal(proxy_url)
    if refusal is not None:
        raise click.BadParameter(f"{host!r} is not a host name or address", param_hint="--host")

    def change(state: AgentState) -> AgentState:
        if ca_file is not None:
            state.transport.ca_file = str(ca_file.resolve())
        state.transport.proxy_url = proxy_url
        state.transport.proxy_user = user
        state.transport.proxy_password = password
        return state

    state = agent.update(change)
    shown = shown_url(state.transport.proxy_url or "")
    click.echo(f"proxy: {shown}{' with credentials' if user else ''}")


@transport.command("direct")
@pass_agent
def transport_direct(agent: Agent) -> None:
    """No proxy."""

    def change(state: AgentState) -> None:
        state.transport.proxy_url = state.transport.proxy_user = None
        state.transport.proxy_password = None

    agent.update(change)
    click.echo("direct (no proxy)")


@click.command("clock-tolerance")
@click.argument("seconds", type=click.IntRange(0, MAX_CLOCK_TOLERANCE))
@pass_agent
def clock_tolerance(agent: Agent, seconds: int) -> None:
    """How far (SECONDS, default 300) this host's clock may be behind the latest time the
    product has seen before 'status' shows it as rolled back. Expiry is judged by the
    latest time seen whatever this is."""

    def change(state: AgentState) -> None:
        state.time_seen.tolerance_seconds = seconds

    agent.update(change)
    click.echo(f"clock tolerance: {seconds} s")


@click.command()
@click.argument("setting", type=click.Choice(["on", "off"]))
@pass_agent
def privacy(agent: Agent, setting: str) -> None:
    """'on': do not share this host's name or IP address with the server."""

    def change(state: AgentState) -> None:
        state.share_host_identity = setting == "off"

    agent.update(change)
    click.echo(f"privacy {setting}")


@click.command()
@click.option(
    "--usage-file",
    type=click.Path(path_type=Path, dir_okay=False, exists=True),
    default=None,
    help="TAG=COUNT lines, read again for every report (default: the last usage reported).",
)
@click.option(
    "--usage-every",
    # (At most a year: a larger number of seconds is no schedule, and overflows the clock.)
    type=click.IntRange(1, 366 * 86400),
    default=6 * 3600,
    show_default=True,
    help="Seconds between usage reports.",
)
@pass_agent
def run(agent: Agent, usage_file: Path | None, usage_every: int) -> None:
    """Keep the product licensed: report usage, renew on time, retry while unreachable.

    Stops cleanly on SIGTERM or SIGINT.
    """

    def usage() -> dict[str, int]:
        if usage_file is not None:
            return parse_usage((), usage_file)
        return dict(agent.state.usage)

    usage()  # (a file that cannot be read is refused now, not at the first report)
    schedule = Schedule(usage_every=dt.timedelta(seconds=usage_every))

    async def go() -> None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for signum in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(signum, stop.set)
        click.echo("running; SIGTERM stops", err=True)
        await Runner(agent, usage, schedule).run(stop)

    asyncio.run(go())
    click.echo("stopped", err=True)
