"""The subscriptions behind an account's pool lines."""

from __future__ import annotations

import datetime as dt
from typing import Annotated, Literal

import msgspec

from satellite.api.context import Services
from satellite.api.operation import READ, operation
from satellite.api.paths import ACCOUNT
from satellite.api.scopes import InAccount
from satellite.api.types import Limit, Name, Offset, Response
from satellite.domain.access import Principal
from satellite.domain.compliance import line_status
from satellite.domain.paging import ALL
from satellite.domain.subscriptions import Subscription
from satellite_protocol.catalog import Catalog


class SubscriptionsQuery(InAccount):
    virtual_accounts: Annotated[list[Name], msgspec.Meta(max_length=1000)] | None = None
    limit: Limit = ALL
    offset: Offset = 0


class SubscriptionLicenseOut(Response):
    license: str
    entitlement_tag: str
    quantity: int
    license_type: str
    start_date: dt.date | None
    end_date: dt.date | None
    status: Literal["Active", "Pending", "Expired"]


class SubscriptionOut(Response):
    """The pool lines of one subscription in one virtual account."""

    subscription_id: str
    virtual_account: str
    start_date: dt.date | None  # the earliest of its lines
    end_date: dt.date | None  # the latest of its lines
    status: Literal["Active", "Pending", "Expired"]  # Active while one line is
    licenses: list[SubscriptionLicenseOut]


class SubscriptionList(Response):
    total_records: int
    subscriptions: list[SubscriptionOut]


@operation(
    "POST",
    ACCOUNT + "/license-subscriptions",
    "Subscriptions behind the pool lines, per subscription id and virtual account",
    tag="licenses",
    access=READ,
)
async def list_subscriptions(
    services: Services, caller: Principal, request: SubscriptionsQuery
) -> SubscriptionList:
    total, found = await services.subscriptions.list_subscriptions(
        caller,
        request.account,
        request.virtual_accounts,
        limit=request.limit,
        offset=request.offset,
    )
    today = services.licenses.today()
    return SubscriptionList(
        total_records=total,
        subscriptions=[_subscription(s, services.catalog, today) for s in found],
    )


OPERATIONS = (list_subscriptions,)


def _subscription(found: Subscription, catalog: Catalog, today: dt.date) -> SubscriptionOut:
    return SubscriptionOut(
        subscription_id=found.subscription_id,
        virtual_account=found.virtual_account,
        start_date=found.start_date,
        end_date=found.end_date,
        status=found.status,
        licenses=[
            SubscriptionLicenseOut(
                license=catalog.display_name(line.tag),
                entitlement_tag=line.tag,
                quantity=line.quantity,
                license_type=line.license_type,
                start_date=line.start_date,
                end_date=line.end_date,
                status=line_status(line, today),
            )
            for line in found.lines
        ],
    )
