"""Webhook deliveries in /metrics: attempts counted by outcome as the worker makes them,
and, read at scrape time, each account's pending deliveries and the age of its oldest; and
the job-duration histogram, which times only the runs that ran."""

from __future__ import annotations

import asyncio
import datetime as dt
from collections.abc import AsyncIterator
from pathlib import Path

import msgspec
import pytest
from prometheus_client.exposition import generate_latest
from prometheus_client.parser import text_string_to_metric_families

from satellite.config import MetricsSettings, Settings
from satellite.http.metrics import Metrics
from satellite.storage.job_runs import JobRunRow, Outcome
from tests.conftest import AiohttpClient, Credentials
from tests.helpers.metrics import scrape, with_metrics
from tests.helpers.webhooks import (
    FAST,
    HOOKS,
    Receiver,
    create_hook,
    deliveries_in,
    ok,
    runtime_with,
    served,
    start_receiver,
    until,
)

ATTEMPTS = "satellite_webhook_attempts_total"
PENDING = "satellite_webhook_deliveries_pending"
OLDEST = "satellite_webhook_oldest_pending_seconds"


@pytest.fixture
async def receiver() -> AsyncIterator[Receiver]:
    started = await start_receiver()
    yield started
    await started.server.close()


async def test_attempts_by_outcome_and_what_waits_per_account(
    settings: Settings,
    db_dsn: str,
    tmp_path: Path,
    system_admin: Credentials,
    receiver: Receiver,
    aiohttp_client: AiohttpClient,
) -> None:
    soon = msgspec.structs.replace(FAST, give_up_after_hours=0.3 / 3600)
    runtime = runtime_with(with_metrics(settings, tmp_path), db_dsn, soon)
    admin, _ = await served(aiohttp_client, runtime, system_admin)
    await ok(admin, "/api/v1/accounts", {"name": "Acme"})
    before = await scrape(admin)
    for outcome in ("delivered", "failed", "given_up"):
        assert before.value(ATTEMPTS, outcome=outcome) == 0, outcome
    assert before.labels(PENDING, "account") == set()
    # One delivered at once; one that fails, is retried and given up.
    # (Neither hears of the Webhook Delivery Failed alert: only their test deliveries.)
    only = {"alertTypes": ["Insufficient Licenses"]}
    fine, _ = await create_hook(admin, receiver.url(), **only)
    await ok(admin, f"{HOOKS}/{fine}/test")
    await until("delivered", deliveries_in(admin, fine, "delivered"))
    failing, _ = await create_hook(admin, receiver.url("/hostile"), **only)
    await ok(admin, f"{HOOKS}/{failing}/test")
    await until("given up", deliveries_in(admin, failing, "failed"))
    seen = await scrape(admin)
    assert seen.value(ATTEMPTS, outcome="delivered") == 1
    assert (seen.value(ATTEMPTS, outcome="failed") or 0) >= 1  # (retried before giving up)
    assert seen.value(ATTEMPTS, outcome="given_up") == 1
    # A delivery that waits: the receiver holds it, so it stays pending meanwhile.
    await ok(admin, "/api/v1/accounts", {"name": "Other"})
    receiver.hold = asyncio.Event()
    got = len(receiver.got)
    status, answer = await admin.post("/api/v1/accounts/Other/webhooks", {"url": receiver.url()})
    assert status == 200, answer
    hook = answer["webhook"]["id"]
    await ok(admin, f"/api/v1/accounts/Other/webhooks/{hook}/test")
    try:
        await until(
            "the receiver holding a delivery", lambda: asyncio.sleep(0, len(receiver.got) > got)
        )
        seen = await scrape(admin)
    finally:
        receiver.hold.set()
    assert seen.value(PENDING, account="Other") == 1
    assert seen.value(PENDING, account="Acme") is None  # (nothing waits there)
    oldest = seen.value(OLDEST, account="Other")
    assert oldest is not None
    assert 0 <= oldest < 3600
    # No label names a webhook or its URL.
    for name in (ATTEMPTS, PENDING, OLDEST):
        assert {k for s in seen.samples if s.name == name for k in s.labels} <= {
            "outcome",
            "account",
        }


def test_the_job_duration_histogram_times_only_runs_that_ran() -> None:
    metrics = Metrics(MetricsSettings())
    start = dt.datetime(2026, 12, 1, tzinfo=dt.UTC)
    runs: list[tuple[Outcome, int]] = [("done", 2), ("skipped", 0), ("failed", 1)]
    for outcome, seconds in runs:
        metrics.job_run(
            JobRunRow(
                "pool-alerts",
                "node-a",
                start,
                start + dt.timedelta(seconds=seconds),
                outcome,
                {},
                None,
            )
        )
    text = generate_latest(metrics.registry).decode()
    samples = {
        (s.name, s.labels.get("outcome")): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }
    assert samples[("satellite_job_run_duration_seconds_count", None)] == 2
    assert samples[("satellite_job_runs_total", "skipped")] == 1
