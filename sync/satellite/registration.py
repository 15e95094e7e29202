"""Registration of an account with its upstream: a registration request written (to a
file, or sent), the upstream's answer applied (the link made, the upstream's key pinned);
later the link's mode changed, or the link undone."""

from __future__ import annotations

import asyncio
import io
from collections.abc import AsyncIterator
from pathlib import Path

from satellite.crypto import bundles
from satellite.crypto.secrets import decrypt, encrypt, secret_digest
from satellite.domain.access import Principal
from satellite.domain.clock import utc_now
from satellite.domain.sync import SyncLink
from satellite.errors import Conflict, InvalidInput
from satellite.services import audit, scope
from satellite.storage import alerts
from satellite.storage import sync as storage
from sync import bundle
from sync.bundle import BundleError, RegistrationAnswer, RegistrationRequest
from sync.satellite.base import SatelliteBase, check_upstream_url, key_context, log
from sync.spool import Incoming, write_atomically
from sync.transport import REGISTER_PATH

# A registration answer is one line (a certificate and a key) and a signature: a file
# beyond this is not one, and is not taken in.
REGISTRATION_ANSWER_MAX_BYTES = 64 * 1024
NOT_A_REGISTRATION_ANSWER = (
    "this file is not the answer to a registration request (for a sync answer, use "
    "'satellite sync import', or the sync page's \"Upload the answer\")"
)


class Registration(SatelliteBase):
    async def request_registration(
        self,
        principal: Principal,
        account: str,
        *,
        token: str,
        name: str,
        upstream_url: str | None,
        out: Path,
    ) -> None:
        """Write a registration request for the account to ``out`` (to carry to the
        upstream, or to send it): ``registration_request``'s file, mode 0600 (it holds the
        satellite token)."""
        data = await self.registration_request(
            principal, account, token=token, name=name, upstream_url=upstream_url
        )
        write_atomically(out, data)

    async def registration_request(
        self,
        principal: Principal,
        account: str,
        *,
        token: str,
        name: str,
        upstream_url: str | None,
    ) -> bytes:
        """A registration request for the account (to carry to the upstream, or to send
        it); its key waits here for the answer. Asked again with the same token (an answer
        was lost), it is the same request."""
        token = token.strip()
        if not token:
            raise InvalidInput("the satellite token is empty", field="token")
        token_digest = secret_digest(token)
        now = utc_now()
        async with self._db.transaction() as conn:
            acc = await scope.writable_account(conn, principal, account, lock="update")
            self._require_satellite()
            link = await storage.get_link(conn, acc.id, lock=None)
            if link is not None:
                raise Conflict(
                    f"account {acc.name!r} is registered with its upstream already "
                    f"(satellite {link.satellite_id})",
                    field="account",
                )
            context = key_context(acc.id)
            earlier = await storage.pending_request(conn, acc.id, token_digest, upstream_url)
            if earlier is not None:
                # The same token again: the same request (the upstream answers it again; a
                # new request would need a new token, the first one being spent).
                return decrypt(self._keys.token_key, earlier, context).encode()
            key = bundles.new_key()
            request = RegistrationRequest(
                name=name,
                local_account=acc.name,
                token=token,
                public_key=bundles.public_pem(key.public_key()),
                created_at=now,
            )
            buffer = io.BytesIO()
            digest = bundle.BundleWriter(buffer, request).finish(key)
            await storage.put_pending_registration(
                conn,
                acc.id,
                private_key=encrypt(
                    self._keys.token_key, bundles.private_key_pem(key).decode("ascii"), context
                ),
                request=encrypt(self._keys.token_key, buffer.getvalue().decode("utf-8"), context),
                token_digest=token_digest,
                request_digest=digest,
                upstream_url=upstream_url,
                now=now,
            )
            await audit.record(
                conn,
                principal,
                "sync.registration_requested",
                f"{acc.name}/sync",
                account_id=acc.id,
                upstream_url=upstream_url,
            )
        return buffer.getvalue()

    async def complete_registration_stream(
        self,
        principal: Principal,
        account: str,
        chunks: AsyncIterator[bytes],
        expected_fingerprint: str | None = None,
    ) -> SyncLink:
        """``complete_registration`` with an answer arriving over HTTP: the account is
        checked, then the answer's first line, before the rest of it is taken in."""
        async with self._db.connection() as conn:
            await scope.writable_account(conn, principal, account, lock=None)
        self._require_satellite()
        incoming = Incoming(chunks)
        if not isinstance(await incoming.header(), RegistrationAnswer):
            raise BundleError(NOT_A_REGISTRATION_ANSWER)
        with self.spool.files("registration.answer") as (path,):
            await incoming.save(path, REGISTRATION_ANSWER_MAX_BYTES)
            return await self.complete_registration(principal, account, path, expected_fingerprint)

    async def complete_registration(
        self,
        principal: Principal,
        account: str,
        answer: Path,
        expected_fingerprint: str | None = None,
    ) -> SyncLink:
        """Apply the upstream's answer to the pending registration: the link is made and the
        upstream's key pinned. With ``expected_fingerprint`` (what `satellite sync
        fingerprint` prints at the upstream), a key with another fingerprint is refused."""
        self._require_satellite()
        header = bundle.read_header(answer)
        if not isinstance(header, RegistrationAnswer):
            raise BundleError(NOT_A_REGISTRATION_ANSWER)
        try:
            upstream_key = bundles.public_key_from_pem(header.upstream_key)
            fingerprint = bundles.pinned_key_fingerprint(header.upstream_key)
        except ValueError as exc:
            raise BundleError(f"the upstream key in the answer is not usable: {exc}") from exc
        if expected_fingerprint is not None and not bundles.fingerprints_equal(
            fingerprint, expected_fingerprint
        ):
            raise BundleError(
                f"the answer's upstream key has fingerprint {fingerprint}, not the expected "
                f"{expected_fingerprint.strip()}: it does not come from that upstream",
                field="upstreamFingerprint",
            )
        # Signed with the key it pins: what this satellite trusts from now on.
        verified = await asyncio.to_thread(
            bundle.verify, answer, upstream_key, self._settings.sync.max_bundle_bytes
        )
        header = bundle.signed_header(verified, header)
        now = utc_now()
        async with self._db.transaction() as conn:
            acc = await scope.writable_account(conn, principal, account, lock="update")
            pending = await storage.take_pending_registration(conn, acc.id)
            if pending is None:
                raise Conflict(
                    f"no registration of account {acc.name!r} is waiting for an answer: "
                    "write a registration request first ('satellite sync register')",
                    field="account",
                )
            sealed, request_digest, upstream_url = pending
            if header.request_digest != request_digest.hex():
                raise BundleError(
                    "this answer is for another registration request (an older one, or "
                    "another satellite's): carry the latest request to the upstream and "
                    "import its answer"
                )
            await storage.insert_link(
                conn,
                account_id=acc.id,
                satellite_id=header.satellite_id,
                upstream_url=upstream_url,
                upstream_account=header.upstream_account,
                upstream_key=header.upstream_key,
                private_key=sealed,
                certificate=header.certificate,
                now=now,
            )
            await audit.record(
                conn,
                principal,
                "sync.registered",
                f"{acc.name}/sync",
                account_id=acc.id,
                satellite_id=header.satellite_id,
                upstream_account=header.upstream_account,
                upstream_url=upstream_url,
                answer=verified.digest_hex,
            )
            link = await storage.get_link(conn, acc.id, lock=None)
        assert link is not None
        log.info("sync.registered", account=acc.name, satellite=link.satellite_id)
        return link

    async def register_online(
        self,
        principal: Principal,
        account: str,
        *,
        upstream_url: str,
        token: str,
        name: str,
        expected_fingerprint: str | None = None,
    ) -> SyncLink:
        check_upstream_url(upstream_url)
        with self.spool.files("registration.request", "registration.answer") as (request, answer):
            await self.request_registration(
                principal, account, token=token, name=name, upstream_url=upstream_url, out=request
            )
            await self._client.post_bundle(upstream_url, REGISTER_PATH, request, answer)
            return await self.complete_registration(
                principal, account, answer, expected_fingerprint
            )

    async def set_upstream_url(self, principal: Principal, account: str, url: str | None) -> None:
        """Connected mode (a URL) or disconnected mode (None) for a registered account."""
        if url is not None:
            check_upstream_url(url)
        async with self._db.transaction() as conn:
            acc, _ = await self._link(conn, principal, account)
            await storage.set_upstream_url(conn, acc.id, url)
            await audit.record(
                conn,
                principal,
                "sync.upstream_set",
                f"{acc.name}/sync",
                account_id=acc.id,
                upstream_url=url,
            )

    async def unregister(self, principal: Principal, account: str) -> None:
        """The account is no longer linked to its upstream (e.g. revoked there): it may
        register again. Lines that came from the upstream stay, read-only, until the next
        link's first answer replaces them."""
        async with self._db.transaction() as conn:
            acc, link = await self._link(conn, principal, account)
            await storage.delete_link(conn, acc.id)
            await alerts.clear_alerts_except(conn, acc.id, "sync-", [])
            await audit.record(
                conn,
                principal,
                "sync.unregistered",
                f"{acc.name}/sync",
                account_id=acc.id,
                satellite_id=link.satellite_id,
            )
