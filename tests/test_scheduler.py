"""Scheduled jobs against a real database: run "at" later dates through the clock they take
(authorizations, registrations, pools, nonces, usage history)."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path

import asyncpg
import pytest
from aiohttp.test_utils import TestServer

from satellite.api.context import Services
from satellite.scheduler import jobs
from satellite_agent.client import RequestRefused
from tests.conftest import CUWL, ENHANCED, Api
from tests.helpers.api import ACCOUNT
from tests.helpers.jobs import (
    DAY,
    PRODUCT,
    alert_messages,
    at,
    in_use,
    now,
    open_alerts,
    registered_agent,
    scheduler_events,
    setup_voice,
)

# --- authorizations ------------------------------------------------------------------------


async def test_an_authorization_not_renewed_expires_and_stops_counting(
    admin: Api, server: TestServer, tmp_path: Path, services: Services, db: asyncpg.Connection
) -> None:
    await setup_voice(admin, [{"entitlementTag": ENHANCED, "quantity": 5}])
    agent = await registered_agent(admin, server, tmp_path, "FCH0001")
    await agent.report_usage({ENHANCED: 7})
    product = agent.state.product_instance_id
    start = now()

    # Today: usage counts, the pool is short, nothing has expired.
    report = await jobs.expire_authorizations(services, at(start))
    assert report is not None
    assert report.counts == {"expired": 0, "lapsed": 0}
    await jobs.pool_alerts(services, at(start))
    assert await open_alerts(admin) == [("Insufficient Licenses", "Major", "Voice")]

    # 91 days on, the product never renewed: recorded once, alerted, and its usage is gone
    # from the pool (so the shortage alert clears).
    later = start + 91 * DAY
    report = await jobs.expire_authorizations(services, at(later))
    assert report is not None
    assert report.counts == {"expired": 1, "lapsed": 1}
    assert await open_alerts(admin) == [("Authorization Expired", "Major", PRODUCT)]
    [message] = await alert_messages(admin, "Authorization Expired")
    assert "no longer counts" in message
    assert await scheduler_events(db) == [("product.authorization_expired", f"Voice/{product}")]
    # Another run finds nothing new: no second event, one alert.
    report = await jobs.expire_authorizations(services, at(later + DAY))
    assert report is not None
    assert report.counts == {"expired": 0, "lapsed": 1}
    assert len(await scheduler_events(db)) == 1
    assert await open_alerts(admin) == [("Authorization Expired", "Major", PRODUCT)]

    # The product renews: the alert clears at the next run and its usage counts again.
    await agent.renew_authorization()
    report = await jobs.expire_authorizations(services, at(now()))
    assert report is not None
    assert report.counts == {"expired": 0, "lapsed": 0}
    await jobs.pool_alerts(services, at(now()))
    assert await open_alerts(admin) == [("Insufficient Licenses", "Major", "Voice")]
    assert await in_use(admin) == 7
    # And when the renewed authorization lapses in turn, that is a new lapse.
    report = await jobs.expire_authorizations(services, at(now() + 91 * DAY))
    assert report is not None
    assert report.counts == {"expired": 1, "lapsed": 1}
    assert len(await scheduler_events(db)) == 2


async def test_a_lapse_is_recorded_with_its_event_or_not_at_all(
    admin: Api, server: TestServer, tmp_path: Path, services: Services, db: asyncpg.Connection
) -> None:
    await setup_voice(admin, [{"entitlementTag": ENHANCED, "quantity": 5}])
    await registered_agent(admin, server, tmp_path, "FCH0001")
    await db.execute(
        "ALTER TABLE events ADD CONSTRAINT refuse_expiry "
        "CHECK (action <> 'product.authorization_expired') NOT VALID"
    )
    later = now() + 91 * DAY
    with pytest.raises(asyncpg.CheckViolationError):
        await jobs.expire_authorizations(services, at(later))
    assert (
        await db.fetchval(
            "SELECT count(*) FROM product_instances WHERE authorization_lapse_recorded IS NOT NULL"
        )
        == 0
    )
    assert await open_alerts(admin) == []
    await db.execute("ALTER TABLE events DROP CONSTRAINT refuse_expiry")
    report = await jobs.expire_authorizations(services, at(later))
    assert report is not None
    assert report.counts["expired"] == 1


# --- registrations -------------------------------------------------------------------------


async def test_an_expired_certificate_ends_the_registration(
    admin: Api, server: TestServer, tmp_path: Path, services: Services, db: asyncpg.Connection
) -> None:
    await setup_voice(admin, [{"entitlementTag": ENHANCED, "quantity": 5}])
    agent = await registered_agent(admin, server, tmp_path, "FCH0001")
    await agent.report_usage({ENHANCED: 3})
    product = agent.state.product_instance_id
    report = await jobs.expire_registrations(services, at(now()))
    assert report is not None
    assert report.counts == {"expired": 0, "export_keys_released": 0}

    report = await jobs.expire_registrations(services, at(now() + 366 * DAY))
    assert report is not None
    assert report.counts == {"expired": 1, "export_keys_released": 0}
    row = await db.fetchrow(
        "SELECT status, ended_at, certificate_expires_at FROM product_instances"
    )
    assert row is not None
    assert row["status"] == "registration_expired"
    assert row["ended_at"] == row["certificate_expires_at"]
    assert await scheduler_events(db) == [("product.registration_expired", f"Voice/{product}")]
    assert await in_use(admin) == 0
    # Its next request is refused with a problem that says what to do.
    with pytest.raises(RequestRefused) as refused:
        await agent.report_usage({ENHANCED: 4})
    assert refused.value.status == 403
    assert refused.value.problem["type"].endswith(":registration-expired")
    assert "register it again with a token" in refused.value.problem["detail"]
    # Nothing more to do on the next run.
    report = await jobs.expire_registrations(services, at(now() + 367 * DAY))
    assert report is not None
    assert report.counts == {"expired": 0, "export_keys_released": 0}
    # Registering again with a token makes a new registration that counts.
    again = await registered_agent(admin, server, tmp_path, "FCH0001")
    await again.report_usage({ENHANCED: 2})
    assert again.state.product_instance_id != product
    assert await in_use(admin) == 2


async def test_a_certificate_past_expiry_counts_for_nothing_before_the_job_runs(
    admin: Api, server: TestServer, tmp_path: Path, db: asyncpg.Connection
) -> None:
    await setup_voice(admin, [{"entitlementTag": ENHANCED, "quantity": 5}])
    agent = await registered_agent(admin, server, tmp_path, "FCH0001")
    await agent.report_usage({ENHANCED: 3})
    assert await in_use(admin) == 3
    # The certificate runs out (time passes for this product only).
    await db.execute(
        "UPDATE product_instances SET certificate_expires_at = now() - interval '1 minute'"
    )
    assert await in_use(admin) == 0
    with pytest.raises(RequestRefused) as refused:
        await agent.renew_authorization()
    assert refused.value.status == 403
    assert refused.value.problem["type"].endswith(":registration-expired")
    assert await db.fetchval("SELECT status FROM product_instances") == "registered"


async def test_certificate_expiring_alert_until_the_registration_is_renewed(
    admin: Api, server: TestServer, tmp_path: Path, services: Services, db: asyncpg.Connection
) -> None:
    await setup_voice(admin, [])
    agent = await registered_agent(admin, server, tmp_path, "FCH0001")
    report = await jobs.certificate_alerts(services, at(now()))
    assert report is not None
    assert report.counts == {"expiring": 0}
    assert await open_alerts(admin) == []

    # 340 days on, the certificate (365 days) has less than 30 days left.
    expires = await db.fetchval("SELECT certificate_expires_at FROM product_instances")
    report = await jobs.certificate_alerts(services, at(now() + 340 * DAY))
    assert report is not None
    assert report.counts == {"expiring": 1}
    assert await open_alerts(admin) == [("Certificate Expiring", "Minor", PRODUCT)]
    [message] = await alert_messages(admin, "Certificate Expiring")
    assert expires.date().isoformat() in message
    # Once a day for the rest of the period: still the same one alert.
    for day in range(341, 365):
        await jobs.certificate_alerts(services, at(now() + day * DAY))
    assert await open_alerts(admin) == [("Certificate Expiring", "Minor", PRODUCT)]

    # The product renews its registration: a new certificate, and the alert clears.
    await db.execute(
        "UPDATE product_instances SET certificate_expires_at = now() + interval '10 days'"
    )
    report = await jobs.certificate_alerts(services, at(now()))
    assert report is not None
    assert report.counts == {"expiring": 1}
    await agent.renew_registration()
    report = await jobs.certificate_alerts(services, at(now()))
    assert report is not None
    assert report.counts == {"expiring": 0}
    assert await open_alerts(admin) == []
    status, body = await admin.post(ACCOUNT + "/alerts", {"includeCleared": True})
    assert status == 200, body
    assert all(a["clearedAt"] for a in body["alerts"])


# --- pools ----------------------------------------------------------------------------------


async def test_pool_alerts_follow_term_lines_and_usage_as_time_passes(
    admin: Api, server: TestServer, tmp_path: Path, services: Services
) -> None:
    start = now()
    end = (start + 40 * DAY).date()
    await setup_voice(
        admin,
        [
            {
                "entitlementTag": ENHANCED,
                "quantity": 5,
                "licenseType": "TERM",
                "endDate": end.isoformat(),
            },
            {"entitlementTag": ENHANCED, "quantity": 2},
        ],
    )
    agent = await registered_agent(admin, server, tmp_path, "FCH0001")
    await agent.report_usage({ENHANCED: 6})
    report = await jobs.pool_alerts(services, at(start))
    assert report is not None
    assert report.counts == {"virtual_accounts": 2}  # Voice and the account's default
    assert await open_alerts(admin) == []

    await jobs.pool_alerts(services, at(start + 15 * DAY))
    assert await open_alerts(admin) == [("Licenses Expiring", "Minor", "Voice")]
    # The TERM line ended: 2 left for 6 in use.
    await jobs.pool_alerts(services, at(start + 45 * DAY))
    assert await open_alerts(admin) == [
        ("Insufficient Licenses", "Major", "Voice"),
        ("Licenses Expired", "Minor", "Voice"),
    ]
    [shortage] = await alert_messages(admin, "Insufficient Licenses")
    assert "4 more in use or reserved than available" in shortage
    # The product's authorization lapsed too: its usage no longer counts.
    await jobs.pool_alerts(services, at(start + 100 * DAY))
    assert await open_alerts(admin) == [("Licenses Expired", "Minor", "Voice")]


async def test_usage_of_a_tag_with_no_licenses_is_a_shortage(
    admin: Api, server: TestServer, tmp_path: Path, services: Services
) -> None:
    await setup_voice(admin, [{"entitlementTag": ENHANCED, "quantity": 5}])
    agent = await registered_agent(admin, server, tmp_path, "FCH0001")
    await agent.report_usage({CUWL: 1})  # the highest tier: nothing to borrow from
    await jobs.pool_alerts(services, at(now()))
    [message] = await alert_messages(admin, "Insufficient Licenses")
    assert "1 more in use" in message
    await agent.report_usage({})
    await jobs.pool_alerts(services, at(now()))
    assert await open_alerts(admin) == []


# --- nonces ---------------------------------------------------------------------------------


async def test_used_nonces_are_forgotten_after_twice_their_lifetime(
    services: Services, db: asyncpg.Connection
) -> None:
    await db.execute(
        "INSERT INTO used_nonces (nonce, used_at) VALUES ('old', now() - interval '31 minutes'), "
        "('recent', now() - interval '29 minutes'), ('new', now())"
    )
    report = await jobs.forget_nonces(services, at(now()))
    assert report is not None
    assert report.counts == {"forgotten": 1}
    assert {r["nonce"] for r in await db.fetch("SELECT nonce FROM used_nonces")} == {
        "recent",
        "new",
    }
    report = await jobs.forget_nonces(services, at(now() + dt.timedelta(hours=1)))
    assert report is not None
    assert report.counts == {"forgotten": 2}


# --- usage history ---------------------------------------------------------------------------


async def test_usage_reports_older_than_the_history_keeps_are_forgotten(
    admin: Api, server: TestServer, tmp_path: Path, services: Services, db: asyncpg.Connection
) -> None:
    await setup_voice(admin, [{"entitlementTag": ENHANCED, "quantity": 5}])
    agent = await registered_agent(admin, server, tmp_path, "FCH0001")
    for count in (1, 2, 3):
        await agent.report_usage({ENHANCED: count})
    # The first two reports were made long ago (time passes for them only).
    await db.execute(
        "UPDATE usage_reports SET reported_at = reported_at - interval '401 days' "
        "WHERE id IN (SELECT id FROM usage_reports ORDER BY id LIMIT 2)"
    )
    report = await jobs.forget_usage_history(services, at(now()))
    assert report is not None
    assert report.counts == {"forgotten": 2, "usage_days_forgotten": 0}
    history = await db.fetch("SELECT usage FROM usage_reports")
    assert [json.loads(row["usage"]) for row in history] == [{ENHANCED: 3}]
    # The current usage is not history: it stays, and still counts.
    assert await in_use(admin) == 3
    # 400 days on, the last report goes too; the current usage still stays.
    report = await jobs.forget_usage_history(services, at(now() + 401 * DAY))
    assert report is not None
    assert report.counts == {"forgotten": 1, "usage_days_forgotten": 0}
    assert await db.fetchval("SELECT count(*) FROM product_usage") == 1
