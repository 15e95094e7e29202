"""The device API: products register with a token, report usage, renew, deregister.

Every request and answer goes through the envelope (satellite.services.envelope): a JWS
checked before anything is read, with a server nonce used once in the transaction of the
change it allows, so a refused request changes nothing.
"""

from __future__ import annotations

import datetime as dt
import uuid
from typing import Any

from satellite.config import TimerSettings
from satellite.crypto.keys import ServerKeys
from satellite.crypto.secrets import (
    decrypt,
    digest_of_token_id,
    token_proof_is_valid,
)
from satellite.domain.access import product_actor
from satellite.domain.clock import utc_now
from satellite.domain.models import ExportKey, ProductInstance
from satellite.errors import (
    BadSignature,
    Conflict,
    Forbidden,
    InvalidInput,
    NotAuthenticated,
)
from satellite.services import audit, exports, horizon, reregistration
from satellite.services.authorization import authorization
from satellite.services.envelope import DeviceEnvelope
from satellite.services.licenses import LicenseService
from satellite.services.limits import RateLimiter
from satellite.services.usage_report import UsageReports
from satellite.storage import product_instances, reservations, tokens
from satellite.storage.db import Connection, Database
from satellite_protocol import device as wire
from satellite_protocol.catalog import Catalog
from satellite_protocol.crypto import jose
from satellite_protocol.crypto.keys import PublicKey
from satellite_protocol.crypto.pki import (
    CertificateError,
    csr_public_key,
    issue_certificate,
    to_pem,
)


class DeviceApiService:
    def __init__(
        self,
        db: Database,
        keys: ServerKeys,
        catalog: Catalog,
        licenses: LicenseService,
        timers: TimerSettings,
        max_usage_tags: int,
        limiter: RateLimiter,
        envelope: DeviceEnvelope,
    ) -> None:
        """``max_usage_tags``: the most tags one usage report may carry."""
        self._db = db
        self._keys = keys
        self._catalog = catalog
        self._licenses = licenses
        self._timers = timers
        self._limiter = limiter
        self._envelope = envelope
        self._usage_reports = UsageReports(
            db, envelope, licenses, catalog, max_usage_tags, timers.authorization_renewal_days
        )

    # --- authorization -------------------------------------------------------------------

    async def check_horizon(self, conn: Connection, account_id: int, now: dt.datetime) -> None:
        await horizon.require_in_step(conn, account_id, now, self._timers.sync_horizon_days)

    async def _authorization(
        self,
        conn: Connection,
        instance: ProductInstance,
        expires_at: dt.datetime,
        *,
        usage: dict[str, int] | None = None,
    ) -> wire.Authorization:
        """``usage``: the product's usage, when the caller has it at hand (saves a query)."""
        if usage is None:
            usage = await product_instances.usage_of(conn, instance.id)
        pool = None
        if usage:  # (a new registration has none: no need to read the pool)
            pool = await self._licenses.pool_state(conn, instance.virtual_account_id, utc_now())
        return authorization(
            self._catalog,
            self._licenses,
            instance.virtual_account,
            usage,
            pool,
            expires_at,
            self._timers.authorization_renewal_days,
        )

    def _certificate(
        self, product_instance_id: str, udi: wire.Udi, key: PublicKey
    ) -> tuple[str, dt.datetime]:
        """An ID certificate for ``key`` (the CSR's, checked by ``_csr_key``)."""
        now = utc_now()
        validity = dt.timedelta(days=self._timers.certificate_validity_days)
        cert = issue_certificate(
            self._keys.ca_key,
            self._keys.ca_cert,
            key,
            product_instance_id,
            f"PID:{udi.udi_pid} SN:{udi.udi_serial}",
            validity,
            now,
            identity_uri=f"urn:uuid:{product_instance_id}",
        )
        return to_pem(cert), cert.not_valid_after_utc

    @staticmethod
    def _csr_key(csr: str) -> PublicKey:
        """The CSR's key, its signature checked: once per request (it costs a verify)."""
        try:
            return csr_public_key(csr)
        except CertificateError as exc:
            raise InvalidInput(str(exc), field="csr") from exc

    def _registration(
        self,
        instance: ProductInstance,
        certificate: str,
        expires: dt.datetime,
        now: dt.datetime,
    ) -> wire.Registration:
        return wire.Registration(
            product_instance_id=instance.id,
            virtual_account=instance.virtual_account,
            certificate=certificate,
            certificate_expires_at=expires,
            renew_registration_after=now
            + dt.timedelta(days=self._timers.registration_renewal_days),
            export_controlled=instance.export_controlled,
        )

    # --- requests ------------------------------------------------------------------------

    async def register(
        self, message: dict[str, Any], path: str, source: str | None
    ) -> dict[str, str]:
        """Register a product with a token; consume one use.

        A UDI that is live already: the product itself (it proves its current key) registers
        again, maybe moving elsewhere; anyone else only replaces it with force and a token
        of its own virtual account (the old registration ends as replaced), else 409.

        Limited (satellite.services.limits): registrations per token and per virtual
        account, and failed token proofs per token and per ``source`` address, looked at
        before the token is. Only an unknown token or a wrong proof is a failure.
        """
        try:
            header = jose.protected_header(message)
            key = jose.key_from_jwk(header.get("jwk") or {})
            _, payload = jose.verify(message, key)
        except jose.InvalidSignature as exc:
            raise BadSignature(str(exc)) from exc
        request = self._envelope.decode(payload, wire.RegisterRequest)
        csr_key = self._csr_key(request.csr)
        if csr_key.public_numbers() != key.public_numbers():
            raise InvalidInput("the CSR is not for the key that signed the request", field="csr")
        attempt = await self._limiter.begin_registration(request.token_id, source)
        try:
            answer = await self._register(header, key, request, path)
        except NotAuthenticated:
            await self._limiter.failed(attempt)  # an unknown token or a wrong proof
            raise
        except Exception:
            await self._limiter.passed(attempt)  # refused for another reason: no guess
            raise
        await self._limiter.passed(attempt)
        return answer

    async def _register(
        self,
        header: dict[str, Any],
        key: PublicKey,
        request: wire.RegisterRequest,
        path: str,
    ) -> dict[str, str]:
        """``key``: the product's, which signed the request and is its CSR's."""
        jwk = jose.public_jwk(key)
        now = utc_now()
        async with self._db.transaction() as conn:
            nonce = await self._envelope.use_nonce(conn, header, path)
            found = await tokens.token_for_registration(conn, digest_of_token_id(request.token_id))
            if found is None:
                raise NotAuthenticated("the registration token is not known here")
            token, account_id, export_allowed = found.token, found.account_id, found.export_allowed
            secret = decrypt(self._keys.token_key, token.ciphertext, token.digest)
            thumbprint = jose.key_thumbprint(key)
            if not token_proof_is_valid(secret, nonce, thumbprint, request.token_proof):
                raise NotAuthenticated("the proof of the registration token does not verify")
            status = token.status(now)
            if status != "Active":
                raise Forbidden(f"the registration token is {status.lower()}")
            horizon.refuse_if_passed(found.in_step_since, now, self._timers.sync_horizon_days)
            authorization_expires = now + dt.timedelta(
                days=self._timers.authorization_validity_days
            )
            export_controlled = token.export_controlled and export_allowed
            fields: dict[str, Any] = {
                "va_id": token.virtual_account_id,
                "product_type": request.product_type,
                "product_version": request.product_version,
                "hostname": request.hostname,
                "ip_address": request.ip_address,
                "public_jwk": jwk,
                "export_controlled": export_controlled,
                "now": now,
                "authorization_expires_at": authorization_expires,
            }
            udi = request.udi
            existing = await product_instances.live_instance_by_udi(
                conn, udi.udi_pid, udi.udi_serial
            )
            proven = existing is not None and reregistration.proves_current_key(
                existing,
                self._envelope.product_keys,
                request.current_key_proof,
                nonce=nonce,
                path=path,
                thumbprint=thumbprint,
            )
            # (Told only to the product itself or within its virtual account.)
            if (
                existing is not None
                and (proven or existing.virtual_account_id == token.virtual_account_id)
                and await reservations.get_reservation(conn, existing.id) is not None
            ):
                raise Conflict(
                    f"PID:{udi.udi_pid} SN:{udi.udi_serial} holds a specific license "
                    "reservation: return it (return code) before registering with a token"
                )
            replaced: ProductInstance | None = None
            # The tags whose shortages this may begin or end, by virtual account (with the
            # instance as counted there): usage released, moved or counting again, and
            # export keys given back.
            moved: dict[int, tuple[ProductInstance, set[str]]] = {}
            if existing is not None and not proven:
                reregistration.require_replaceable(
                    existing, token.virtual_account_id, request.force
                )
                # Forced: the old registration ends as a deregistration would, and its
                # product is told so on its next request (signed_by_product).
                replaced, existing = existing, None
                keys = await exports.release(
                    conn, product_actor(replaced.id), replaced, "replaced", now
                )
                usage = await product_instances.usage_of(conn, replaced.id)
                await product_instances.end_instance(conn, replaced.id, "replaced", now)
                moved[replaced.virtual_account_id] = (replaced, {*usage, *(k.tag for k in keys)})
            # The ID certificate first: its expiry is what the product row records.
            product_instance_id = existing.id if existing else str(uuid.uuid4())
            certificate, certificate_expires = self._certificate(product_instance_id, udi, key)
            released: list[ExportKey] = []
            if existing is None:
                instance = await product_instances.insert_instance(
                    conn,
                    product_instance_id,
                    udi=(udi.udi_pid, udi.udi_serial, udi.udi_uuid),
                    certificate_expires_at=certificate_expires,
                    **fields,
                )
                instance_usage: dict[str, int] = {}  # (a new one has reported nothing yet)
            else:
                if existing.virtual_account_id != token.virtual_account_id or not export_controlled:
                    # Its export keys came from the old pool, or the new registration
                    # does not allow them: they go back.
                    released = await exports.release(
                        conn, product_actor(product_instance_id), existing, "re-registered", now
                    )
                instance = await product_instances.reregister_instance(
                    conn,
                    product_instance_id,
                    udi_uuid=udi.udi_uuid,
                    certificate_expires_at=certificate_expires,
                    **fields,
                )
                # Its usage leaves the old virtual account for the new one (or, in the
                # same one, counts again if its authorization had lapsed).
                instance_usage = await product_instances.usage_of(conn, product_instance_id)
                if tags := {*instance_usage, *(key.tag for key in released)}:
                    moved[existing.virtual_account_id] = (existing, tags)
                    moved[instance.virtual_account_id] = (instance, tags)
            if replaced is not None:
                await audit.record(
                    conn,
                    product_actor(product_instance_id),
                    "product.replaced",
                    f"{replaced.virtual_account}/{replaced.id}",
                    account_id=account_id,
                    udi=f"PID:{udi.udi_pid} SN:{udi.udi_serial}",
                    token_id=token.id,
                    replaced_by=product_instance_id,
                )
            await audit.record(
                conn,
                product_actor(product_instance_id),
                "product.reregistered" if existing else "product.registered",
                f"{instance.virtual_account}/{product_instance_id}",
                account_id=account_id,
                udi=f"PID:{udi.udi_pid} SN:{udi.udi_serial}",
                token_id=token.id,
                **(
                    {"from_virtual_account": existing.virtual_account}
                    if existing and existing.virtual_account != instance.virtual_account
                    else {}
                ),
            )
            if existing and existing.account_id != account_id:
                await audit.record(
                    conn,
                    product_actor(product_instance_id),
                    "product.moved_out",
                    f"{existing.virtual_account}/{product_instance_id}",
                    account_id=existing.account_id,
                )
            for va_id in sorted(moved):  # (in id order: the order of the lock it takes)
                await self._licenses.refresh_shortages_of(conn, *moved[va_id], now)
            authorization = await self._authorization(
                conn, instance, authorization_expires, usage=instance_usage
            )
            # The token's use last, so that what it locks stays locked only for the commit:
            # the registrations of a whole site share one token.
            if not await tokens.use_token(conn, token, now):
                raise Forbidden("the registration token was used up, expired or revoked meanwhile")
        answer = wire.RegisterAnswer(
            registration=self._registration(instance, certificate, certificate_expires, now),
            authorization=authorization,
            ca_certificate=to_pem(self._keys.ca_cert),
            signing_certificate=to_pem(self._keys.signing_cert),
            released_export_features=[key.feature for key in released],
        )
        self._envelope.remember_key(instance.id, jwk)  # (its reports verify with it)
        return self._envelope.answer(nonce, path, answer)

    async def report_usage(
        self, product_instance_id: str, message: dict[str, Any], path: str
    ) -> dict[str, str]:
        """The product's usage becomes what it reports; the answer says what is authorized."""
        return await self._usage_reports.report(product_instance_id, message, path)

    async def renew_authorization(
        self, product_instance_id: str, message: dict[str, Any], path: str
    ) -> dict[str, str]:
        async with self._db.transaction() as conn:
            instance, payload, nonce = await self._envelope.signed_by_instance(
                conn, product_instance_id, message, path
            )
            self._envelope.decode(payload, wire.NoParameters)
            now = utc_now()
            await self.check_horizon(conn, instance.account_id, now)
            expires = now + dt.timedelta(days=self._timers.authorization_validity_days)
            await product_instances.touch(
                conn, product_instance_id, now, authorization_expires_at=expires
            )
            usage = await product_instances.usage_of(conn, product_instance_id)
            if usage and instance.authorization_expires_at <= now:  # its usage counts again
                await self._licenses.refresh_shortages_of(conn, instance, set(usage), now)
            authorization = await self._authorization(conn, instance, expires, usage=usage)
        return self._envelope.answer(nonce, path, authorization)

    async def renew_registration(
        self, product_instance_id: str, message: dict[str, Any], path: str
    ) -> dict[str, str]:
        """A new ID certificate for a new key; later requests must be signed with that key."""
        async with self._db.transaction() as conn:
            instance, payload, nonce = await self._envelope.signed_by_instance(
                conn, product_instance_id, message, path
            )
            request = self._envelope.decode(payload, wire.RenewRegistrationRequest)
            udi = wire.Udi(
                udi_pid=instance.udi_pid, udi_serial=instance.udi_serial, udi_uuid=instance.udi_uuid
            )
            key = self._csr_key(request.csr)
            certificate, expires = self._certificate(product_instance_id, udi, key)
            now = utc_now()
            await product_instances.touch(
                conn,
                product_instance_id,
                now,
                certificate_expires_at=expires,
                public_jwk=jose.public_jwk(key),
            )
            await audit.record(
                conn,
                product_actor(product_instance_id),
                "product.registration_renewed",
                f"{instance.virtual_account}/{product_instance_id}",
                account_id=instance.account_id,
            )
        self._envelope.remember_key(product_instance_id, jose.public_jwk(key))
        answer = self._registration(instance, certificate, expires, now)
        return self._envelope.answer(nonce, path, answer)

    async def deregister(
        self, product_instance_id: str, message: dict[str, Any], path: str
    ) -> dict[str, str]:
        """The product leaves: all its usage is released at once."""
        async with self._db.transaction() as conn:
            instance, payload, nonce = await self._envelope.signed_by_instance(
                conn, product_instance_id, message, path
            )
            self._envelope.decode(payload, wire.NoParameters)
            now = utc_now()
            released = await exports.release(
                conn, product_actor(product_instance_id), instance, "deregistered", now
            )
            usage = await product_instances.usage_of(conn, product_instance_id)
            await product_instances.end_instance(conn, product_instance_id, "deregistered", now)
            # The usage and the export keys it releases may end a shortage.
            if tags := {*usage, *(key.tag for key in released)}:
                await self._licenses.refresh_shortages_of(conn, instance, tags, now)
            await audit.record(
                conn,
                product_actor(product_instance_id),
                "product.deregistered",
                f"{instance.virtual_account}/{product_instance_id}",
                account_id=instance.account_id,
            )
        return self._envelope.answer(
            nonce,
            path,
            wire.Deregistered(
                product_instance_id=product_instance_id,
                deregistered_at=now,
                released_export_features=[key.feature for key in released],
            ),
        )
