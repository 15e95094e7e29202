"""The scheduled jobs: each asks one service to do one run as at the clock's time (the
sync with the upstream excepted: it exchanges with the upstream now).

A job reads the time once, from the clock it is given: the scheduler gives it the server's
clock (``domain.clock.utc_now``), a test a clock fixed at any date, so it can run a job
"at" that date. When another node holds the job's lock the run is skipped (that node does
the work).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Awaitable, Callable

import structlog

from satellite.api.context import Services
from satellite.services.maintenance import JobReport, MaintenanceService

log = structlog.get_logger("satellite.scheduler")

Clock = Callable[[], dt.datetime]
Job = Callable[[Services, Clock], Awaitable[JobReport | None]]


async def _run(
    name: str,
    run: Callable[[MaintenanceService, dt.datetime], Awaitable[JobReport | None]],
    services: Services,
    clock: Clock,
) -> JobReport | None:
    now = clock()
    report = await run(services.maintenance, now)
    if report is None:
        log.info(
            "job.skipped",
            job=name,
            node=services.jobs.node,
            reason="another node holds the job's lock",
        )
    else:
        log.info("job.done", job=name, node=services.jobs.node, at=now.isoformat(), **report.counts)
    return report


async def expire_registrations(services: Services, clock: Clock) -> JobReport | None:
    return await _run(
        "expire-registrations", MaintenanceService.expire_registrations, services, clock
    )


async def expire_authorizations(services: Services, clock: Clock) -> JobReport | None:
    return await _run(
        "expire-authorizations", MaintenanceService.expire_authorizations, services, clock
    )


async def certificate_alerts(services: Services, clock: Clock) -> JobReport | None:
    return await _run("certificate-alerts", MaintenanceService.certificate_alerts, services, clock)


async def pool_alerts(services: Services, clock: Clock) -> JobReport | None:
    return await _run("pool-alerts", MaintenanceService.pool_alerts, services, clock)


async def forget_nonces(services: Services, clock: Clock) -> JobReport | None:
    return await _run("forget-nonces", MaintenanceService.forget_nonces, services, clock)


async def forget_usage_history(services: Services, clock: Clock) -> JobReport | None:
    return await _run(
        "forget-usage-history", MaintenanceService.forget_usage_history, services, clock
    )


async def forget_rate_limits(services: Services, clock: Clock) -> JobReport | None:
    return await _run("forget-rate-limits", MaintenanceService.forget_rate_limits, services, clock)


async def forget_sessions(services: Services, clock: Clock) -> JobReport | None:
    return await _run("forget-sessions", MaintenanceService.forget_sessions, services, clock)


async def sync_with_upstream(services: Services, clock: Clock) -> JobReport | None:
    """Connected mode: every linked account syncs (its own lock; a busy one is skipped).

    ``clock`` is not used: a sync talks to the upstream now, and the sync service reads the
    server's time itself."""
    report = await services.sync.run_scheduled()
    log.info("job.done", job="sync", node=services.jobs.node, **report.counts)
    return report


async def sync_alerts(services: Services, clock: Clock) -> JobReport | None:
    return await _run(
        "sync-alerts", lambda _, now: services.sync.horizon_alerts(now), services, clock
    )


async def usage_rollup(services: Services, clock: Clock) -> JobReport | None:
    return await _run("usage-rollup", lambda _, now: services.usage.rollup(now), services, clock)


# In the order a run of all of them makes sense: registrations end before authorizations are
# looked at, and pool alerts see both.
JOBS: dict[str, Job] = {
    "expire-registrations": expire_registrations,
    "expire-authorizations": expire_authorizations,
    "certificate-alerts": certificate_alerts,
    "pool-alerts": pool_alerts,
    "forget-nonces": forget_nonces,
    "forget-usage-history": forget_usage_history,
    "usage-rollup": usage_rollup,
    "forget-rate-limits": forget_rate_limits,
    "forget-sessions": forget_sessions,
    "sync-alerts": sync_alerts,
    "sync": sync_with_upstream,
}
