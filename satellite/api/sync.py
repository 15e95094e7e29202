"""Sync with the upstream, the satellite's side: status, registration (online, or by files:
the registration request out, the upstream's registration answer in), the mode, sync now,
and disconnected mode's files (the sync request out, the sync answer in)."""

from __future__ import annotations

import datetime as dt
import socket
from pathlib import Path
from typing import Annotated, Any

import msgspec

from satellite.api.context import Services
from satellite.api.files import Download, Spooled, Upload, only
from satellite.api.operation import READ, WRITE, operation
from satellite.api.paths import ACCOUNT
from satellite.api.scopes import InAccount
from satellite.api.types import Name, Offset, Response, Secret, StatusResponse
from satellite.domain.access import Principal
from satellite.domain.sync import Outcome, SyncMode, SyncOperation
from sync.satellite import Imported, SyncStatus
from sync.satellite.status import HISTORY_SHOWN
from sync.transport import BUNDLE_TYPE

Url = Annotated[str, msgspec.Meta(min_length=8, max_length=2000, pattern=r"^https?://")]


HISTORY_PAGE = HISTORY_SHOWN  # entries of the history an answer holds


class SyncRegister(InAccount):
    upstream: Url
    token: Secret
    name: Name | None = None  # how the upstream lists this satellite (default: the host name)
    # What `satellite sync fingerprint` prints at the upstream: a key with another is refused.
    upstream_fingerprint: Fingerprint | None = None


Fingerprint = Annotated[str, msgspec.Meta(min_length=1, max_length=100)]


class RegistrationRequestIn(InAccount):
    token: Secret
    name: Name | None = None  # how the upstream lists this satellite (default: the host name)
    # For connected mode once registered; without it the account syncs by files.
    upstream: Url | None = None


class RegistrationAnswerUpload(InAccount):
    answer: Upload  # the upstream's answer to the registration request, the raw body
    # What the upstream's satellites page (or `satellite sync fingerprint`) shows.
    upstream_fingerprint: Fingerprint | None = None


class SyncConnect(InAccount):
    upstream: Url | None = None  # connected mode with this upstream; None: disconnected


class SyncStatusQuery(InAccount, forbid_unknown_fields=False):
    """Other parameters of a query string are ignored, as they always were."""

    history_offset: Offset = 0  # the history is shown HISTORY_PAGE entries from here, latest first


class SyncRequestQuery(InAccount, forbid_unknown_fields=False):
    """No parameters: a query string sent anyway is ignored, as it always was."""


class SyncAnswerUpload(InAccount):
    answer: Upload  # the upstream's sync answer, the raw body


class SyncHistoryOut(Response):
    mode: SyncMode
    operation: SyncOperation
    started_at: dt.datetime
    finished_at: dt.datetime
    outcome: Outcome
    sequence: int | None
    counts: dict[str, Any]
    error: str | None


class SyncStatusOut(Response):
    account: str
    registered: bool
    registration_pending: bool
    mode: SyncMode | None = None
    satellite_id: str | None = None
    upstream: str | None = None
    upstream_account: str | None = None
    upstream_fingerprint: str | None = None  # of the pinned upstream key
    registered_at: dt.datetime | None = None
    last_success: dt.datetime | None = None
    last_attempt: dt.datetime | None = None
    last_error: str | None = None
    last_error_at: dt.datetime | None = None
    next_run: dt.datetime | None = None
    request_sequence: int = 0
    applied_sequence: int = 0
    authorizations_until: dt.datetime | None = None
    horizon_passed: bool = False
    history: list[SyncHistoryOut] = msgspec.field(default_factory=list)
    history_total: int = 0  # entries in the whole history


class SyncResultOut(Response):
    account: str
    sequence: int
    repeated: bool  # the answer had been applied before: nothing changed
    counts: dict[str, int]


@operation("GET", ACCOUNT + "/sync", "Sync status and history", tag="sync", access=READ)
async def sync_status(
    services: Services, caller: Principal, request: SyncStatusQuery
) -> SyncStatusOut:
    return sync_status_out(
        await services.sync.status(caller, request.account, request.history_offset)
    )


@operation(
    "POST",
    ACCOUNT + "/sync/register",
    "Register the account with an upstream (connected mode)",
    tag="sync",
    access=WRITE,
)
async def sync_register(
    services: Services, caller: Principal, request: SyncRegister
) -> SyncStatusOut:
    await services.sync.register_online(
        caller,
        request.account,
        upstream_url=request.upstream,
        token=request.token,
        name=request.name or socket.gethostname(),
        expected_fingerprint=request.upstream_fingerprint,
    )
    return sync_status_out(await services.sync.status(caller, request.account))


@operation(
    "POST",
    ACCOUNT + "/sync/registration-request",
    "Write a registration request to carry to the upstream (registration by files; a file "
    "download)",
    tag="sync",
    access=WRITE,
    no_store=True,
)
async def request_registration(
    services: Services, caller: Principal, request: RegistrationRequestIn
) -> Download:
    """Registration by files, first step: the request (it holds the satellite token)."""
    data = await services.sync.registration_request(
        caller,
        request.account,
        token=request.token,
        name=request.name or socket.gethostname(),
        upstream_url=request.upstream,
    )
    return Download(
        filename=f"registration-request-{request.account}.bundle",
        media_type=BUNDLE_TYPE,
        content=data,
    )


@operation(
    "POST",
    ACCOUNT + "/sync/registration-answer",
    "Complete a registration with the upstream's answer (registration by files; the file "
    "as the body)",
    tag="sync",
    access=WRITE,
)
async def complete_registration(
    services: Services, caller: Principal, request: RegistrationAnswerUpload
) -> SyncStatusOut:
    """Registration by files, last step: the link made, the upstream's key pinned."""
    await services.sync.complete_registration_stream(
        caller, request.account, request.answer.chunks, request.upstream_fingerprint
    )
    return sync_status_out(await services.sync.status(caller, request.account))


@operation(
    "POST",
    ACCOUNT + "/sync/connect",
    "Switch a registered account to connected mode (an upstream URL) or disconnected (none)",
    tag="sync",
    access=WRITE,
)
async def sync_connect(
    services: Services, caller: Principal, request: SyncConnect
) -> SyncStatusOut:
    await services.sync.set_upstream_url(caller, request.account, request.upstream)
    return sync_status_out(await services.sync.status(caller, request.account))


@operation(
    "POST",
    ACCOUNT + "/sync/unregister",
    "Unlink the account from its upstream (to register again)",
    tag="sync",
    access=WRITE,
)
async def sync_unregister(
    services: Services, caller: Principal, request: InAccount
) -> StatusResponse:
    await services.sync.unregister(caller, request.account)
    return StatusResponse(message=f"account {request.account} unregistered")


@operation("POST", ACCOUNT + "/sync/now", "Sync with the upstream now", tag="sync", access=WRITE)
async def sync_now(services: Services, caller: Principal, request: InAccount) -> SyncResultOut:
    return sync_result_out(await services.sync.sync_now(caller, request.account))


@operation(
    "GET",
    ACCOUNT + "/sync/request",
    "Export a sync request bundle (disconnected mode; a file download)",
    tag="sync",
    access=WRITE,
)
async def download_request(
    services: Services, caller: Principal, request: SyncRequestQuery
) -> Spooled:
    """Disconnected mode: the sync request, to carry to the upstream."""

    async def write(path: Path) -> str:
        exported = await services.sync.write_request(caller, request.account, path)
        return f"sync-request-{request.account}-{exported.sequence}.bundle"

    return Spooled(
        media_type=BUNDLE_TYPE,
        write=write,
        scratch=lambda: only(services.sync.spool.files("request")),
    )


@operation(
    "POST",
    ACCOUNT + "/sync/answer",
    "Import the upstream's answer bundle (disconnected mode; the file as the body)",
    tag="sync",
    access=WRITE,
)
async def upload_answer(
    services: Services, caller: Principal, request: SyncAnswerUpload
) -> SyncResultOut:
    """Disconnected mode: the upstream's sync answer, carried back."""
    imported = await services.sync.import_stream(caller, request.account, request.answer.chunks)
    return sync_result_out(imported)


OPERATIONS = (
    sync_status,
    sync_register,
    request_registration,
    complete_registration,
    sync_connect,
    sync_unregister,
    sync_now,
    download_request,
    upload_answer,
)


def sync_status_out(status: SyncStatus) -> SyncStatusOut:
    history = [
        SyncHistoryOut(
            mode=h.mode,
            operation=h.operation,
            started_at=h.started_at,
            finished_at=h.finished_at,
            outcome=h.outcome,
            sequence=h.sequence,
            counts=h.counts,
            error=h.error,
        )
        for h in status.history
    ]
    link = status.link
    if link is None:
        return SyncStatusOut(
            account=status.account,
            registered=False,
            registration_pending=status.pending_registration,
            history=history,
            history_total=status.history_total,
        )
    return SyncStatusOut(
        account=status.account,
        registered=True,
        registration_pending=status.pending_registration,
        mode=link.mode,
        satellite_id=link.satellite_id,
        upstream=link.upstream_url,
        upstream_account=link.upstream_account,
        upstream_fingerprint=status.upstream_fingerprint,
        registered_at=link.registered_at,
        last_success=link.last_success_at,
        last_attempt=link.last_attempt_at,
        last_error=link.last_error,
        last_error_at=link.last_error_at,
        next_run=link.next_run_at,
        request_sequence=link.request_sequence,
        applied_sequence=link.applied_sequence,
        authorizations_until=status.authorizations_until,
        horizon_passed=status.horizon_passed,
        history=history,
        history_total=status.history_total,
    )


def sync_result_out(imported: Imported) -> SyncResultOut:
    return SyncResultOut(
        account=imported.account,
        sequence=imported.sequence,
        repeated=imported.repeated,
        counts=imported.counts,
    )
