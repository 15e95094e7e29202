"""What every part of the upstream's side of sync shares: its collaborators, and the
checks of who sent or carried in a bundle."""

from __future__ import annotations

import asyncio
import io
from dataclasses import dataclass
from pathlib import Path

import structlog

from satellite.config import Settings
from satellite.crypto.bundles import pinned_key_fingerprint, public_key_from_pem
from satellite.crypto.keys import ServerKeys
from satellite.domain.access import Principal
from satellite.domain.sync import RegisteredSatellite
from satellite.errors import Conflict, Forbidden, NotFound
from satellite.services import scope
from satellite.storage import upstream
from satellite.storage.db import Database
from satellite_protocol.crypto.pki import to_pem
from sync import bundle
from sync.bundle import BundleError
from sync.spool import Spool

log = structlog.get_logger("sync.upstream")


@dataclass(frozen=True)
class Answered:
    kind: str  # "registration" or "sync"
    satellite_id: str
    account: str
    sequence: int
    repeated: bool  # the same request again: the answer given before
    counts: dict[str, int]


class UpstreamBase:
    """The state the upstream side's parts share (each part is a class over this one;
    ``sync.upstream.UpstreamSync`` puts them together)."""

    def __init__(
        self,
        db: Database,
        keys: ServerKeys,
        settings: Settings,
    ) -> None:
        self._db = db
        self._keys = keys
        self._settings = settings
        self.spool = Spool(settings)

    def fingerprint(self) -> str:
        """What a satellite's operator checks when it pins this upstream's key."""
        return pinned_key_fingerprint(public_pem(self._keys))

    def _require_upstream(self) -> None:
        """(Checked after the account: to a caller who may not see it, it does not exist.)"""
        if self._settings.role != "upstream":
            raise Conflict(
                "this server's role is satellite: satellites register and sync with a server "
                'whose role is "upstream"'
            )

    async def _verify(self, path: Path, key_pem: str) -> bundle.VerifiedBundle:
        try:
            key = public_key_from_pem(key_pem)
        except ValueError as exc:
            raise BundleError(f"the bundle's key is not usable: {exc}") from exc
        return await asyncio.to_thread(
            bundle.verify, path, key, self._settings.sync.max_bundle_bytes
        )

    async def _sender(self, satellite_id: str, principal: Principal | None) -> RegisteredSatellite:
        """The live satellite a sync request names (not yet verified to come from it), which
        the operator who carried it in may change."""
        async with self._db.connection() as conn:
            known = await upstream.get_satellite(conn, satellite_id, lock=None)
        if known is None:
            raise unknown_satellite(satellite_id)
        self._check_operator(principal, known.account_id, known.account)
        refuse_revoked(known)
        return known

    @staticmethod
    def _check_operator(principal: Principal | None, account_id: int, account: str) -> None:
        if principal is not None and not principal.may_write(account_id):
            # As everywhere: an account the caller may not see does not exist for them.
            if not principal.sees(account_id):
                raise NotFound("the bundle's account is not one of yours", field="account")
            raise scope.may_not_change(principal, account)

    def _signed(self, header: bundle.Header, records: list[bundle.Record]) -> bytes:
        buffer = io.BytesIO()
        writer = bundle.BundleWriter(buffer, header)
        for record in records:
            writer.write(record)
        writer.finish(self._keys.signing_key)
        return buffer.getvalue()


NOT_A_REQUEST = (
    "this file is an answer from an upstream, not a request: import it at the satellite "
    "('satellite sync import')"
)


def refuse_revoked(sat: RegisteredSatellite) -> None:
    if sat.revoked_at is not None:
        raise Forbidden(
            f"satellite {sat.id} was revoked at the upstream on {sat.revoked_at:%Y-%m-%d}: "
            "unregister it ('satellite sync unregister') and register it again with a new "
            "satellite token"
        )


def unknown_satellite(satellite_id: str) -> NotFound:
    return NotFound(
        f"satellite {satellite_id} is not registered here: register the satellite with this "
        "upstream first ('satellite sync register')"
    )


def public_pem(keys: ServerKeys) -> str:
    return to_pem(keys.signing_cert)


def satellite_actor(satellite_id: str) -> Principal:
    return Principal(kind="satellite", login=satellite_id, role="account-viewer")
