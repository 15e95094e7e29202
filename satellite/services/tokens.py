"""Registration tokens: created, listed again by authorized readers, revoked.

A token is ``<secret>.<ca-fingerprint>``: the secret authenticates the product to this
server, the fingerprint lets the product authenticate the server it registers to (as a
kubeadm join token does), so a first registration over plain HTTP or a proxy cannot be
intercepted. It is stored encrypted with the server's token key and found by its digest.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

from satellite.config import TimerSettings
from satellite.crypto.keys import ServerKeys
from satellite.crypto.secrets import decrypt, encrypt, random_secret, secret_digest
from satellite.domain.access import Principal
from satellite.domain.models import RegistrationToken
from satellite.domain.names import check_description
from satellite.domain.paging import ALL, page
from satellite.errors import InvalidInput, NotFound
from satellite.services import audit, scope
from satellite.storage import tokens
from satellite.storage.db import Database


@dataclass(frozen=True)
class TokenView:
    """A token row together with the token itself, decrypted for an authorized reader."""

    row: RegistrationToken
    token: str


class TokenService:
    def __init__(self, db: Database, keys: ServerKeys, timers: TimerSettings) -> None:
        self._db = db
        self._keys = keys
        self._timers = timers

    def _view(self, row: RegistrationToken, *, reveal: bool = True) -> TokenView:
        """The row with its token: whole for those who may register products with it,
        a recognizable prefix for viewers (a token is a write permission)."""
        token = decrypt(self._keys.token_key, row.ciphertext, row.digest)
        return TokenView(row, token if reveal else f"{token[:6]}…")

    async def create(
        self,
        principal: Principal,
        account: str,
        va: str,
        *,
        description: str,
        expires_after_days: int | None,
        export_controlled: bool | None,
        max_uses: int | None,
    ) -> TokenView:
        """A new token; ``export_controlled`` None means: allowed where the account allows it."""
        check_description(description)
        # A letter first: a token must never look like a command-line option ("-x...").
        token = f"T{random_secret(32)}.{self._keys.ca_fingerprint}"
        digest = secret_digest(token)
        days = expires_after_days or self._timers.token_expiry_days
        async with self._db.transaction() as conn:
            acc = await scope.writable_account(conn, principal, account)
            vacc = await scope.virtual_account(conn, acc, va, lock="share")
            if export_controlled is None:
                export_controlled = acc.export_controlled_allowed
            if export_controlled and not acc.export_controlled_allowed:
                raise InvalidInput(
                    f"account {account!r} is not allowed export-controlled functionality; "
                    "create the token with exportControlled 'Not Allowed'",
                    field="exportControlled",
                )
            row = await tokens.insert_token(
                conn,
                va_id=vacc.id,
                digest=digest,
                ciphertext=encrypt(self._keys.token_key, token, digest),
                description=description,
                export_controlled=export_controlled,
                max_uses=max_uses,
                created_by=principal.actor,
                expires_at=dt.datetime.now(dt.UTC) + dt.timedelta(days=days),
            )
            await audit.record(
                conn,
                principal,
                "token.created",
                f"{account}/{va}/{row.id}",
                account_id=acc.id,
                expires_at=row.expires_at.isoformat(),
                export_controlled=export_controlled,
                max_uses=max_uses,
            )
        return TokenView(row, token)

    async def list_tokens(
        self, principal: Principal, account: str, va: str, *, limit: int = ALL, offset: int = 0
    ) -> list[TokenView]:
        """The tokens of the virtual account: ``limit`` of them (-1: all) from ``offset``."""
        async with self._db.connection() as conn:
            acc = await scope.readable_account(conn, principal, account)
            vacc = await scope.virtual_account(conn, acc, va)
            rows = await tokens.tokens_of_virtual_account(conn, vacc.id)
        reveal = principal.may_write(acc.id)
        return [self._view(row, reveal=reveal) for row in page(rows, limit, offset)]

    async def revoke(
        self, principal: Principal, account: str, va: str, token_values: list[str]
    ) -> list[TokenView]:
        """Revoke every listed token of the virtual account, or none if one is unknown."""
        if not token_values:
            raise InvalidInput("name at least one token to revoke", field="tokens")
        digests = [secret_digest(t) for t in token_values]
        async with self._db.transaction() as conn:
            acc = await scope.writable_account(conn, principal, account)
            vacc = await scope.virtual_account(conn, acc, va)
            rows = await tokens.tokens_by_digests(conn, vacc.id, digests, for_update=True)
            found = {row.digest for row in rows}
            for index, digest in enumerate(digests):
                if digest not in found:
                    raise NotFound(
                        f"token {index + 1} of the list is not a token of virtual account {va!r}",
                        field=f"tokens[{index}]",
                    )
            live = [row for row in rows if row.revoked_at is None]
            await tokens.revoke_tokens(conn, [row.id for row in live])
            for row in live:
                await audit.record(
                    conn, principal, "token.revoked", f"{account}/{va}/{row.id}", account_id=acc.id
                )
            rows = await tokens.tokens_by_digests(conn, vacc.id, digests)
        return [self._view(row) for row in rows]
