"""Host-side administration: accounts, licenses, tokens, clients, users, events, alerts."""

from __future__ import annotations

import datetime as dt
import functools
import sys
from collections.abc import Callable
from typing import Any, get_args

import click

from satellite.api.context import Services
from satellite.cli.context import CliContext, json_option, pass_cli
from satellite.cli.output import emit, emit_one, table
from satellite.cli.transfers import license_transfer
from satellite.domain.access import ROLES, Role
from satellite.domain.catalog import Catalog, CatalogEntry
from satellite.domain.compliance import LicenseType, LineValues, PoolLine, Position, line_status
from satellite.domain.models import PrincipalKind
from satellite.http import wire
from satellite.http.views import (
    account_out,
    alert_out,
    catalog_entry_out,
    device_change,
    device_detail,
    device_out,
    event_out,
    license_out,
    pool_line_out,
    principal_out,
    token_info,
    virtual_account_out,
)
from satellite.services.events import EventFilter
from satellite.services.product_instances import (
    ById,
    ProductInstanceDetail,
    ProductInstanceFilter,
    ProductInstanceView,
    ProductRef,
    Transfer,
)

DATE = click.DateTime(formats=["%Y-%m-%d"])
# Row ids and offsets go to the database as bigint: a larger number is refused here, in
# one line, rather than by the driver with a traceback.
INT64_MAX = 2**63 - 1
LINE_ID = click.IntRange(1, INT64_MAX)
OFFSET = click.IntRange(0, INT64_MAX)


def _date(value: dt.datetime | None) -> dt.date | None:
    return value.date() if value else None


# --- accounts ------------------------------------------------------------------------------


@click.group()
def account() -> None:
    """Smart accounts."""


@account.command("list")
@json_option
@pass_cli
def account_list(obj: CliContext, as_json: bool) -> None:
    """List accounts."""
    accounts = obj.run(lambda s: s.accounts.visible_accounts(obj.operator))
    emit(
        as_json,
        wire.AccountList(accounts=[account_out(a) for a in accounts]),
        ["NAME", "DOMAIN", "EXPORT-CONTROLLED", "CREATED", "DESCRIPTION"],
        [
            [a.name, a.domain or "", a.export_controlled_allowed, a.created_at, a.description]
            for a in accounts
        ],
    )


@account.command("create")
@click.argument("name")
@click.option("--description", default="")
@click.option("--domain", default=None, help="The smart account's domain name (acme.example).")
@click.option(
    "--export-controlled/--no-export-controlled",
    default=False,
    help="Whether the account may use export-controlled functionality.",
)
@json_option
@pass_cli
def account_create(
    obj: CliContext,
    name: str,
    description: str,
    domain: str | None,
    export_controlled: bool,
    as_json: bool,
) -> None:
    """Create an account (with its DEFAULT virtual account)."""
    created = obj.run(
        lambda s: s.accounts.create_account(
            obj.operator, name, description, export_controlled, domain
        )
    )
    out = account_out(created)
    emit_one(
        as_json,
        wire.AccountOne(account=out),
        [
            ("name", out.name),
            ("domain", out.domain or ""),
            ("export-controlled", out.export_controlled_allowed),
        ],
    )


@account.command("update")
@click.argument("name")
@click.option("--description", default=None)
@click.option("--domain", default=None, help='The domain name ("" removes it).')
@click.option("--export-controlled/--no-export-controlled", default=None)
@json_option
@pass_cli
def account_update(
    obj: CliContext,
    name: str,
    description: str | None,
    domain: str | None,
    export_controlled: bool | None,
    as_json: bool,
) -> None:
    """Change an account's description, domain or export-controlled flag."""
    updated = obj.run(
        lambda s: s.accounts.update_account(
            obj.operator, name, description, export_controlled, domain
        )
    )
    out = account_out(updated)
    emit_one(
        as_json,
        wire.AccountOne(account=out),
        [
            ("name", out.name),
            ("description", out.description),
            ("domain", out.domain or ""),
            ("export-controlled", out.export_controlled_allowed),
        ],
    )


# --- virtual accounts ----------------------------------------------------------------------


@click.group()
def va() -> None:
    """Virtual accounts."""


@va.command("list")
@click.argument("account")
@json_option
@pass_cli
def va_list(obj: CliContext, account: str, as_json: bool) -> None:
    """List the virtual accounts of ACCOUNT."""
    vas = obj.run(lambda s: s.accounts.virtual_accounts(obj.operator, account))
    emit(
        as_json,
        wire.VirtualAccountList(virtual_accounts=[virtual_account_out(v) for v in vas]),
        ["NAME", "DEFAULT", "CREATED", "DESCRIPTION"],
        [[v.name, v.is_default, v.created_at, v.description] for v in vas],
    )


@va.command("create")
@click.argument("account")
@click.argument("name")
@click.option("--description", default="")
@json_option
@pass_cli
def va_create(obj: CliContext, account: str, name: str, description: str, as_json: bool) -> None:
    """Create virtual account NAME in ACCOUNT."""
    created = obj.run(
        lambda s: s.accounts.create_virtual_account(obj.operator, account, name, description)
    )
    emit_one(
        as_json,
        wire.VirtualAccountList(virtual_accounts=[virtual_account_out(created)]),
        [("name", created.name), ("description", created.description)],
    )


@va.command("delete")
@click.argument("account")
@click.argument("name")
@pass_cli
def va_delete(obj: CliContext, account: str, name: str) -> None:
    """Delete an empty virtual account."""
    obj.run(lambda s: s.accounts.delete_virtual_account(obj.operator, account, name))
    click.echo(f"virtual account {name!r} deleted")


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


# --- tokens --------------------------------------------------------------------------------


@click.group()
def token() -> None:
    """Registration tokens."""


@token.command("list")
@click.argument("account")
@click.argument("va_name", metavar="VA")
@json_option
@pass_cli
def token_list(obj: CliContext, account: str, va_name: str, as_json: bool) -> None:
    """Registration tokens of virtual account VA."""
    views = obj.run(lambda s: s.tokens.list_tokens(obj.operator, account, va_name))
    now = dt.datetime.now(dt.UTC)
    infos = [token_info(v, now) for v in views]
    emit(
        as_json,
        wire.TokenList(tokens=infos),
        ["TOKEN", "STATUS", "EXPIRES", "USES", "EXPORT", "DESCRIPTION"],
        [
            [
                i.token,
                i.status,
                i.expiration_date,
                f"{i.uses}/{i.number_of_uses or '-'}",
                i.export_controlled,
                i.description,
            ]
            for i in infos
        ],
    )


@token.command("create")
@click.argument("account")
@click.argument("va_name", metavar="VA")
@click.option("--description", default="")
@click.option("--expires-after-days", type=click.IntRange(1, 365), default=None)
@click.option("--export-controlled/--no-export-controlled", default=None)
@click.option("--uses", type=click.IntRange(1, 1_000_000), default=None, help="Maximum uses.")
@json_option
@pass_cli
def token_create(
    obj: CliContext,
    account: str,
    va_name: str,
    description: str,
    expires_after_days: int | None,
    export_controlled: bool | None,
    uses: int | None,
    as_json: bool,
) -> None:
    """Create a registration token for virtual account VA.

    Export-controlled functionality is allowed by default where the account may use it.
    """

    view = obj.run(
        lambda s: s.tokens.create(
            obj.operator,
            account,
            va_name,
            description=description,
            expires_after_days=expires_after_days,
            export_controlled=export_controlled,
            max_uses=uses,
        )
    )
    info = token_info(view, dt.datetime.now(dt.UTC))
    emit_one(
        as_json,
        wire.TokenCreated(token_info=info),
        [
            ("token", info.token),
            ("expires", info.expiration_date),
            ("export-controlled", info.export_controlled),
            ("uses", info.number_of_uses),
        ],
    )


@token.command("revoke")
@click.argument("account")
@click.argument("va_name", metavar="VA")
@click.argument("tokens", nargs=-1, required=True)
@pass_cli
def token_revoke(obj: CliContext, account: str, va_name: str, tokens: tuple[str, ...]) -> None:
    """Revoke TOKENS of virtual account VA."""
    views = obj.run(lambda s: s.tokens.revoke(obj.operator, account, va_name, list(tokens)))
    click.echo(f"{len(views)} token(s) revoked")


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
            d.sudi.udi_serial,
            d.status,
            d.authorization_status,
            d.last_contact_date,
        ]
        for d in devices
    ]


_DEVICE_HEADERS = ["ID", "NAME", "PRODUCT", "PID", "SERIAL", "STATUS", "AUTHORIZATION", "CONTACT"]


def _change(verb: str, views: list[ProductInstanceView], s: Services) -> wire.DeviceChange:
    return device_change(verb, views, s.catalog, s.product_instances.now())


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
    query = ProductInstanceFilter(
        status=status,
        udi_pid=pid,
        udi_serial=serial,
        hostname=hostname,
        limit=limit,
        offset=offset,
    )

    async def action(s: Services) -> wire.DeviceList:
        total, views = await s.product_instances.list_instances(
            obj.operator, account, va_name, query
        )
        now = s.product_instances.now()
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
        detail: ProductInstanceDetail = await s.product_instances.show(
            obj.operator, account, va_name, product_id
        )
        return device_detail(detail, s.catalog, s.product_instances.now())

    d = obj.run(action)
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
        views = await s.product_instances.transfer(obj.operator, account, va_name, moves)
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
        views = await s.product_instances.remove(obj.operator, account, va_name, refs)
        return _change("removed", views, s)

    _emit_change(as_json, obj.run(action))


# --- clients and users ---------------------------------------------------------------------

role_option = click.option("--role", type=click.Choice(ROLES), required=True)
accounts_option = click.option(
    "--account", "accounts", multiple=True, help="Account the role applies to; repeatable."
)


def _list_principals(obj: CliContext, kind: PrincipalKind, as_json: bool) -> None:
    records = obj.run(lambda s: s.principals.list_principals(obj.operator, kind))
    emit(
        as_json,
        wire.PrincipalList(items=[principal_out(r) for r in records]),
        ["NAME", "ROLE", "ACCOUNTS", "DISABLED", "CREATED"],
        [
            [r.login, r.role, list(r.account_names), r.disabled_at is not None, r.created_at]
            for r in records
        ],
    )


@click.group()
def client() -> None:
    """Admin API clients (OAuth client credentials)."""


@client.command("list")
@json_option
@pass_cli
def client_list(obj: CliContext, as_json: bool) -> None:
    """List API clients."""
    _list_principals(obj, "client", as_json)


@client.command("create")
@role_option
@accounts_option
@click.option("--description", default="")
@json_option
@pass_cli
def client_create(
    obj: CliContext, role: Role, accounts: tuple[str, ...], description: str, as_json: bool
) -> None:
    """Create an API client; its secret is printed once."""
    new = obj.run(
        lambda s: s.principals.create_client(obj.operator, role, list(accounts), description)
    )
    emit_one(
        as_json,
        wire.ClientCreated(
            client_id=new.client_id,
            client_secret=new.client_secret,
            client=principal_out(new.record),
        ),
        [("client_id", new.client_id), ("client_secret", new.client_secret), ("role", role)],
    )


@client.command("disable")
@click.argument("client_id")
@pass_cli
def client_disable(obj: CliContext, client_id: str) -> None:
    """Disable an API client and revoke its access tokens."""
    obj.run(lambda s: s.principals.disable(obj.operator, "client", client_id))
    click.echo(f"client {client_id} disabled; its access tokens are revoked")


@click.group()
def user() -> None:
    """Admin API users (OAuth password grant)."""


@user.command("list")
@json_option
@pass_cli
def user_list(obj: CliContext, as_json: bool) -> None:
    """List users."""
    _list_principals(obj, "user", as_json)


password_option = click.option(
    "--password",
    envvar="SATELLITE_PASSWORD",
    help="The password; else $SATELLITE_PASSWORD, else asked for on the terminal.",
)


def _password(given: str | None) -> str:
    """The given password, or one typed twice on the terminal; never a prompt on a pipe."""
    if given is not None:
        return given
    if not sys.stdin.isatty():
        raise click.UsageError("--password or $SATELLITE_PASSWORD is needed without a terminal")
    value: str = click.prompt("Password", hide_input=True, confirmation_prompt=True)
    return value


@user.command("create")
@click.argument("username")
@role_option
@accounts_option
@password_option
@json_option
@pass_cli
def user_create(
    obj: CliContext,
    username: str,
    role: Role,
    accounts: tuple[str, ...],
    password: str | None,
    as_json: bool,
) -> None:
    """Create a user."""
    password = _password(password)
    record = obj.run(
        lambda s: s.principals.create_user(obj.operator, username, password, role, list(accounts))
    )
    out = principal_out(record)
    emit_one(
        as_json,
        wire.PrincipalOne(item=out),
        [("name", out.name), ("role", out.role), ("accounts", out.accounts)],
    )


@user.command("password")
@click.argument("username")
@password_option
@pass_cli
def user_password(obj: CliContext, username: str, password: str | None) -> None:
    """Set a user's password (and revoke the user's access tokens)."""
    password = _password(password)
    obj.run(lambda s: s.principals.set_password(obj.operator, username, password))
    click.echo(f"password of user {username} set")


@user.command("disable")
@click.argument("username")
@pass_cli
def user_disable(obj: CliContext, username: str) -> None:
    """Disable a user and revoke the user's access tokens."""
    obj.run(lambda s: s.principals.disable(obj.operator, "user", username))
    click.echo(f"user {username} disabled; its access tokens are revoked")


# --- events and alerts ---------------------------------------------------------------------


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

    def utc(value: dt.datetime | None) -> dt.datetime | None:
        return value.replace(tzinfo=dt.UTC) if value and value.tzinfo is None else value

    query = EventFilter(account, action, actor, utc(since), utc(until), limit, offset)
    total, found = obj.run(lambda s: s.events.list_events(obj.operator, query))
    emit(
        as_json,
        wire.EventList(total_records=total, events=[event_out(e) for e in found]),
        ["TIME", "ACCOUNT", "ACTOR", "ACTION", "TARGET"],
        [[e.occurred_at, e.account, e.actor, e.action, e.target] for e in found],
    )


@click.group()
def alert() -> None:
    """Alerts."""


@alert.command("list")
@click.argument("account")
@click.option("--limit", type=click.IntRange(1, 10_000), default=100, show_default=True)
@click.option("--all", "include_cleared", is_flag=True, help="Include cleared alerts.")
@json_option
@pass_cli
def alert_list(
    obj: CliContext, account: str, limit: int, include_cleared: bool, as_json: bool
) -> None:
    """Alerts of ACCOUNT, newest first."""
    found = obj.run(lambda s: s.alerts.list_alerts(obj.operator, account, limit, include_cleared))
    emit(
        as_json,
        wire.AlertList(alerts=[alert_out(a) for a in found]),
        ["CREATED", "SEVERITY", "TYPE", "SOURCE", "MESSAGE", "CLEARED"],
        [
            [a.created_at, a.severity, a.message_type, a.source, a.message, a.cleared_at]
            for a in found
        ],
    )
