"""``satellite sync ...``: sync with the upstream, from the host.

On a satellite: register with an upstream (online, or by files), sync now, export a
request and import an answer (disconnected mode), status. On an upstream: satellite
tokens, the satellites registered, and answering a request carried in.
"""

from __future__ import annotations

import socket
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import TypeVar

import click
import msgspec

from satellite.api import sync as api
from satellite.api import upstream as upstream_api
from satellite.api.context import Services
from satellite.api.files import UPLOAD_CHUNK, Upload
from satellite.api.operation import Operation
from satellite.api.scopes import InAccount
from satellite.cli.context import CliContext, json_option, pass_cli
from satellite.cli.output import emit, emit_one
from sync.spool import write_atomically

RequestT = TypeVar("RequestT", bound=msgspec.Struct)
AnswerT = TypeVar("AnswerT", bound=msgspec.Struct)

account_option = click.option(
    "--account",
    default=None,
    help="The local account (may be left out when there is only one).",
)


@click.group()
def sync() -> None:
    """Sync with the upstream: connected mode (register --upstream, now) or disconnected
    mode (register --out / --answer, export, import); on an upstream: token, answer."""


def _call_in(
    obj: CliContext,
    account: str | None,
    op: Operation[RequestT, AnswerT],
    request: Callable[[str], RequestT],
) -> tuple[str, AnswerT]:
    """Call ``op`` in ``account``, or in the one account the operator sees when it is left
    out: that account's name and the answer."""

    async def action(s: Services) -> tuple[str, AnswerT]:
        name = await s.sync.account_or_only(obj.operator, account)
        return name, await op(s, obj.operator, request(name))

    return obj.run(action)


async def file_chunks(path: Path) -> AsyncIterator[bytes]:
    """A file given on the command line as an operation's ``Upload``."""
    with path.open("rb") as handle:
        while chunk := handle.read(UPLOAD_CHUNK):
            yield chunk


def _print_result(as_json: bool, result: api.SyncResultOut) -> None:
    if as_json:
        emit(True, result, [], [])
    elif result.repeated:
        click.echo(
            f"account {result.account}: the answer to request {result.sequence} was imported "
            "before; nothing changed"
        )
    else:
        counts = ", ".join(f"{k} {v}" for k, v in sorted(result.counts.items()))
        click.echo(f"account {result.account}: synced (request {result.sequence}): {counts}")


@sync.command("register")
@account_option
@click.option("--upstream", default=None, help="The upstream's URL (connected mode).")
@click.option(
    "--token",
    default=None,
    envvar="SATELLITE_SYNC_TOKEN",
    help="The satellite token from the upstream (or $SATELLITE_SYNC_TOKEN: not in ps).",
)
@click.option("--name", default=None, help="How the upstream lists this satellite.")
@click.option(
    "--out",
    type=click.Path(path_type=Path, dir_okay=False),
    default=None,
    help="Write a registration request to this file instead (to carry to the upstream).",
)
@click.option(
    "--answer",
    type=click.Path(path_type=Path, dir_okay=False, exists=True),
    default=None,
    help="Complete a registration with the upstream's answer file.",
)
@click.option(
    "--upstream-fingerprint",
    "fingerprint",
    default=None,
    help="What 'satellite sync fingerprint' prints at the upstream: another key is refused.",
)
@pass_cli
def sync_register(
    obj: CliContext,
    account: str | None,
    upstream: str | None,
    token: str | None,
    name: str | None,
    out: Path | None,
    answer: Path | None,
    fingerprint: str | None,
) -> None:
    """Register an account with its upstream.

    Online: --upstream URL --token T. By files: --token T --out REQUEST (optionally with
    --upstream, for connected mode afterwards), carry REQUEST to the upstream ('satellite
    sync answer' there), then --answer ANSWER here.
    """
    if answer is not None:
        if token or out:
            raise click.UsageError("--answer completes a registration: give it alone")
        name_, status = _call_in(
            obj,
            account,
            api.complete_registration,
            lambda name_: api.RegistrationAnswerUpload(
                account=name_, answer=Upload(file_chunks(answer)), upstream_fingerprint=fingerprint
            ),
        )
        click.echo(_registered(name_, str(status.satellite_id), f"({status.mode})"))
        return
    if not token:
        raise click.UsageError("--token is required (or --answer FILE to complete)")
    label = name or socket.gethostname()
    if out is not None:
        name_, written = _call_in(
            obj,
            account,
            api.request_registration,
            lambda name_: api.RegistrationRequestIn(
                account=name_, token=token, name=label, upstream=upstream
            ),
        )
        write_atomically(out, written.content)  # mode 0600: it holds the satellite token
        click.echo(
            f"account {name_}: registration request written to {out}; carry it to the "
            "upstream ('satellite sync answer --in FILE --out ANSWER' there), then run "
            "'satellite sync register --answer ANSWER' here"
        )
        return
    if upstream is None:
        raise click.UsageError("--upstream URL is required (or --out FILE to register by files)")

    name_, status = _call_in(
        obj,
        account,
        api.sync_register,
        lambda name_: api.SyncRegister(
            account=name_,
            upstream=upstream,
            token=token,
            name=label,
            upstream_fingerprint=fingerprint,
        ),
    )
    click.echo(_registered(name_, str(status.satellite_id), f"with {upstream}"))


def _registered(account: str, satellite_id: str, how: str) -> str:
    return f"account {account}: registered as satellite {satellite_id} {how}"


@sync.command("connect")
@account_option
@click.option("--upstream", default=None, help="The upstream's URL; leave out to go disconnected.")
@pass_cli
def sync_connect(obj: CliContext, account: str | None, upstream: str | None) -> None:
    """Switch a registered account to connected mode (with --upstream) or disconnected."""
    name_, _ = _call_in(
        obj,
        account,
        api.sync_connect,
        lambda name_: api.SyncConnect(account=name_, upstream=upstream),
    )
    mode = f"connected to {upstream}" if upstream else "disconnected (files only)"
    click.echo(f"account {name_}: {mode}")


@sync.command("unregister")
@account_option
@pass_cli
def sync_unregister(obj: CliContext, account: str | None) -> None:
    """Unlink an account from its upstream (e.g. after the upstream revoked it)."""
    name_, _ = _call_in(obj, account, api.sync_unregister, lambda name_: InAccount(account=name_))
    click.echo(f"account {name_}: no longer registered with an upstream")


@sync.command("now")
@account_option
@json_option
@pass_cli
def sync_now(obj: CliContext, account: str | None, as_json: bool) -> None:
    """Sync with the upstream now (connected mode)."""
    _, result = _call_in(obj, account, api.sync_now, lambda name_: InAccount(account=name_))
    _print_result(as_json, result)


@sync.command("export")
@account_option
@click.option(
    "--out", type=click.Path(path_type=Path, dir_okay=False), required=True, help="Request file."
)
@pass_cli
def sync_write_request(obj: CliContext, account: str | None, out: Path) -> None:
    """Disconnected mode: write a request to carry to the upstream."""

    async def action(s: Services) -> str:
        name_ = await s.sync.account_or_only(obj.operator, account)
        written = await s.sync.write_request(obj.operator, name_, out)
        return (
            f"account {name_}: request {written.sequence} written to {out}; answer it at the "
            "upstream ('satellite sync answer'), then 'satellite sync import ANSWER' here"
        )

    click.echo(obj.run(action))


@sync.command("import")
@click.argument("answer", type=click.Path(path_type=Path, dir_okay=False, exists=True))
@json_option
@pass_cli
def sync_import(obj: CliContext, answer: Path, as_json: bool) -> None:
    """Disconnected mode: apply the upstream's answer file."""
    _print_result(as_json, obj.run(lambda s: _imported(s, obj, answer)))


async def _imported(s: Services, obj: CliContext, answer: Path) -> api.SyncResultOut:
    # The host's operator may leave the account out: the answer names it (the admin API's
    # upload names it in its path).
    return api.sync_result_out(await s.sync.import_answer(obj.operator, answer))


@sync.command("status")
@account_option
@click.option(
    "--history-offset",
    type=click.IntRange(min=0),
    default=0,
    show_default=True,
    help=f"Show the history {api.HISTORY_PAGE} entries from here (the latest first).",
)
@json_option
@pass_cli
def sync_status(obj: CliContext, account: str | None, history_offset: int, as_json: bool) -> None:
    """Mode, last success, last error, next run, sequence numbers and recent history."""
    _, status = _call_in(
        obj,
        account,
        api.sync_status,
        lambda name_: api.SyncStatusQuery(account=name_, history_offset=history_offset),
    )
    if as_json:
        emit(True, status, [], [])
        return
    emit_one(
        False,
        status,
        [
            ("account", status.account),
            ("registered", status.registered),
            ("registration pending", status.registration_pending),
            ("mode", status.mode),
            ("satellite id", status.satellite_id),
            ("upstream", status.upstream),
            ("upstream account", status.upstream_account),
            ("upstream fingerprint", status.upstream_fingerprint),
            ("last success", status.last_success),
            ("last attempt", status.last_attempt),
            ("last error", status.last_error),
            ("last error at", status.last_error_at),
            ("next run", status.next_run),
            ("request sequence", status.request_sequence),
            ("applied sequence", status.applied_sequence),
            ("authorizations until", status.authorizations_until),
            ("horizon passed", status.horizon_passed),
        ],
    )
    if status.history:
        click.echo("")
        emit(
            False,
            status,
            ["FINISHED", "MODE", "OPERATION", "OUTCOME", "SEQUENCE", "DETAIL"],
            [
                (
                    h.finished_at,
                    h.mode,
                    h.operation,
                    h.outcome,
                    h.sequence,
                    h.error or ", ".join(f"{k} {v}" for k, v in sorted(h.counts.items())),
                )
                for h in status.history
            ],
        )


# --- upstream side -------------------------------------------------------------------------


@sync.command("answer")
@click.option(
    "--in",
    "request",
    type=click.Path(path_type=Path, dir_okay=False, exists=True),
    required=True,
    help="A satellite's request file (registration or sync).",
)
@click.option(
    "--out", type=click.Path(path_type=Path, dir_okay=False), required=True, help="Answer file."
)
@pass_cli
def sync_answer(obj: CliContext, request: Path, out: Path) -> None:
    """On the upstream: answer a request a satellite's operator carried in."""

    async def action(s: Services) -> str:
        answered, data = await s.upstream.answer(request, obj.operator)
        write_atomically(out, data)
        what = "registration" if answered.kind == "registration" else f"request {answered.sequence}"
        again = " (answered before: the same answer again)" if answered.repeated else ""
        return (
            f"satellite {answered.satellite_id} of account {answered.account}: {what} "
            f"answered in {out}{again}; import it at the satellite"
        )

    click.echo(obj.run(action))


@sync.command("fingerprint")
@pass_cli
def sync_fingerprint(obj: CliContext) -> None:
    """On the upstream: the fingerprint of its signing key, for satellites' operators to
    check when they register ('--upstream-fingerprint')."""
    click.echo(
        obj.call(upstream_api.upstream_fingerprint, upstream_api.FingerprintQuery()).fingerprint
    )


@sync.group("token")
def sync_token() -> None:
    """On the upstream: satellite registration tokens."""


@sync_token.command("create")
@click.option("--account", required=True)
@click.option("--description", default="")
@click.option("--expires-days", type=click.IntRange(1, 365), default=None)
@json_option
@pass_cli
def token_create(
    obj: CliContext, account: str, description: str, expires_days: int | None, as_json: bool
) -> None:
    """Create a token a satellite registers with (shown once)."""
    request = upstream_api.SatelliteTokenCreate(
        account=account, description=description, expires_days=expires_days
    )
    out = obj.call(upstream_api.create_satellite_token, request)
    if as_json:
        emit(True, out, [], [])
    else:
        click.echo(out.token)


@sync_token.command("list")
@click.option("--account", required=True)
@json_option
@pass_cli
def token_list(obj: CliContext, account: str, as_json: bool) -> None:
    out = obj.call(
        upstream_api.list_satellite_tokens, upstream_api.SatelliteTokensQuery(account=account)
    )
    emit(
        as_json,
        out,
        ["ID", "STATUS", "EXPIRES", "DESCRIPTION"],
        [(t.id, t.status, t.expires_at, t.description) for t in out.satellite_tokens],
    )


@sync_token.command("revoke")
@click.option("--account", required=True)
@click.argument("token_id")
@pass_cli
def token_revoke(obj: CliContext, account: str, token_id: str) -> None:
    request = upstream_api.SatelliteTokenRevoke(account=account, token=token_id)
    obj.call(upstream_api.revoke_satellite_token, request)
    click.echo(f"satellite token {token_id} revoked")


@sync.command("revoke")
@click.option("--account", required=True)
@click.argument("satellite_id")
@pass_cli
def sync_revoke(obj: CliContext, account: str, satellite_id: str) -> None:
    """On the upstream: no more syncs from a satellite; what it reported leaves the view."""
    request = upstream_api.SatelliteIn(account=account, satellite=satellite_id)
    obj.call(upstream_api.revoke_satellite, request)
    click.echo(f"satellite {satellite_id} revoked")


@sync.command("satellites")
@click.option("--account", required=True)
@json_option
@pass_cli
def sync_satellites(obj: CliContext, account: str, as_json: bool) -> None:
    """On the upstream: the satellites registered for an account."""
    out = obj.call(upstream_api.list_satellites, upstream_api.SatellitesQuery(account=account))
    emit(
        as_json,
        out,
        ["SATELLITE", "NAME", "REGISTERED", "LAST SYNC", "SEQUENCE", "PRODUCTS"],
        [
            (x.satellite_id, x.name, x.registered_at, x.last_sync, x.last_sequence, x.products)
            for x in out.satellites
        ],
    )
