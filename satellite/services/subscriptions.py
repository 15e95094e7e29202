"""The subscriptions behind an account's pool lines."""

from __future__ import annotations

from satellite.domain.access import Principal
from satellite.domain.paging import ALL, page
from satellite.domain.subscriptions import Subscription, subscriptions
from satellite.services import scope
from satellite.services.licenses import LicenseService
from satellite.storage import accounts, licenses
from satellite.storage.db import Database


class SubscriptionService:
    def __init__(self, db: Database, licenses_: LicenseService) -> None:
        self._db = db
        self._licenses = licenses_

    async def list_subscriptions(
        self,
        principal: Principal,
        account: str,
        va_names: list[str] | None,
        *,
        limit: int = ALL,
        offset: int = 0,
    ) -> tuple[int, list[Subscription]]:
        """The account's subscriptions (of the named virtual accounts, or all): the total,
        and the page of ``limit`` (-1: all) from ``offset``."""
        async with self._db.connection() as conn:
            acc = await scope.readable_account(conn, principal, account)
            vas = await accounts.list_virtual_accounts(conn, acc.id)
            if va_names is not None:
                vas = scope.named_virtual_accounts(vas, va_names, account)
            lines = await licenses.lines_of_account(conn, acc.id, [va.name for va in vas])
        found = subscriptions(lines, self._licenses.today())
        return len(found), page(found, limit, offset)
