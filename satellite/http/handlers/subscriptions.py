"""The subscriptions behind an account's pool lines."""

from __future__ import annotations

import datetime as dt

from aiohttp import web

from satellite.domain.compliance import line_status
from satellite.domain.subscriptions import Subscription
from satellite.http.auth import caller
from satellite.http.body import read_json, render
from satellite.http.keys import SERVICES
from satellite.http.wire import (
    SubscriptionLicenseOut,
    SubscriptionList,
    SubscriptionOut,
    SubscriptionsQuery,
)
from satellite_protocol.catalog import Catalog


def subscription_out(found: Subscription, catalog: Catalog, today: dt.date) -> SubscriptionOut:
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


async def list_subscriptions(request: web.Request) -> web.Response:
    principal = await caller(request)
    body = await read_json(request, SubscriptionsQuery)
    services = request.app[SERVICES]
    total, found = await services.subscriptions.list_subscriptions(
        principal,
        request.match_info["account"],
        body.virtual_accounts,
        limit=body.limit,
        offset=body.offset,
    )
    today = services.licenses.today()
    return render(
        SubscriptionList(
            total_records=total,
            subscriptions=[subscription_out(s, services.catalog, today) for s in found],
        )
    )
