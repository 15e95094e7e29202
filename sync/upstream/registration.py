"""Registering a satellite: its registration request (signed with the key it asks a
certificate for) spends a satellite token, and the answer carries the satellite's
certificate and the key this upstream signs every sync answer with."""

from __future__ import annotations

import datetime as dt
import uuid
from pathlib import Path

from satellite.crypto.bundles import satellite_certificate
from satellite.crypto.secrets import secret_digest
from satellite.domain.access import Principal
from satellite.errors import Forbidden
from satellite.services import audit
from satellite.storage import upstream
from satellite_protocol.crypto.pki import to_pem
from sync import bundle
from sync.bundle import RegistrationAnswer, RegistrationRequest
from sync.upstream.base import Answered, UpstreamBase, public_pem, satellite_actor

SATELLITE_CERTIFICATE_VALIDITY = dt.timedelta(days=5 * 365)


class UpstreamRegistration(UpstreamBase):
    async def _register(
        self, path: Path, header: RegistrationRequest, principal: Principal | None
    ) -> tuple[Answered, bytes]:
        # Signed with the key it asks a certificate for: the satellite holds that key.
        verified = await self._verify(path, header.public_key)
        header = bundle.signed_header(verified, header)
        now = self._clock()
        async with self._db.transaction() as conn:
            earlier = await upstream.registration_answer(conn, verified.digest)
            if earlier is not None:
                sat = await upstream.get_satellite(conn, earlier[0], lock=None)
                assert sat is not None
                self._check_operator(principal, sat.account_id, sat.account)
                return Answered("registration", sat.id, sat.account, 0, True, {}), earlier[1]
            spent = await upstream.use_token(conn, secret_digest(header.token), now)
            if spent is None:
                raise Forbidden(
                    "the satellite token is not known here, or it was used, revoked or has "
                    "expired: create a new satellite token at the upstream"
                )
            account_id, account = spent
            self._check_operator(principal, account_id, account)
            satellite_id = str(uuid.uuid4())
            certificate = satellite_certificate(
                self._keys.ca_key,
                to_pem(self._keys.ca_cert),
                header.public_key,
                satellite_id,
                account,
                SATELLITE_CERTIFICATE_VALIDITY,
                now,
            )
            answer = RegistrationAnswer(
                satellite_id=satellite_id,
                request_digest=verified.digest_hex,
                upstream_account=account,
                certificate=certificate,
                upstream_key=public_pem(self._keys),
                created_at=now,
            )
            data = self._signed(answer, [])
            await upstream.insert_satellite(
                conn,
                satellite_id=satellite_id,
                account_id=account_id,
                name=header.name,
                public_key=header.public_key,
                request_digest=verified.digest,
                answer=data,
                now=now,
            )
            await audit.record(
                conn,
                principal or satellite_actor(satellite_id),
                "satellite.registered",
                f"{account}/satellites/{satellite_id}",
                account_id=account_id,
                name=header.name,
                local_account=header.local_account,
            )
        return Answered("registration", satellite_id, account, 0, False, {}), data
