"""The product's automatic timers: usage reports, authorization and registration renewal.

Each duty runs when it is due; while the server cannot be reached the runner retries with
a doubling, jittered wait (30 s up to an hour, ``satellite_protocol.backoff``), and it
stops at once when asked to.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
from collections.abc import Callable
from dataclasses import dataclass

import structlog

from satellite_agent.client import Agent, AgentError, ServerUnreachable
from satellite_agent.export import ExportControl
from satellite_protocol.backoff import Backoff

log = structlog.get_logger("satellite.agent")

UsageSource = Callable[[], dict[str, int]]


@dataclass(frozen=True)
class Schedule:
    usage_every: dt.timedelta = dt.timedelta(hours=6)
    first_retry: dt.timedelta = dt.timedelta(seconds=30)
    longest_retry: dt.timedelta = dt.timedelta(hours=1)
    idle_check: dt.timedelta = dt.timedelta(minutes=5)  # how often to look for due work


class Runner:
    def __init__(self, agent: Agent, usage: UsageSource, schedule: Schedule | None = None) -> None:
        self._agent = agent
        self._usage = usage
        self._schedule = schedule or Schedule()
        first, longest = self._schedule.first_retry, self._schedule.longest_retry
        self._backoff = Backoff(first.total_seconds(), longest.total_seconds())
        self._last_report: dt.datetime | None = None
        # Pending export requests and returns back off on their own (each its own wait).
        self._exports = ExportControl(
            agent,
            first_retry=self._schedule.first_retry,
            longest_retry=self._schedule.longest_retry,
        )

    def _now(self) -> dt.datetime:
        return dt.datetime.now(dt.UTC)

    async def run_due(self) -> list[str]:
        """Do whatever is due now; return what was done."""
        state = self._agent.state
        if state.registration != "registered":
            return []
        done: list[str] = []
        now = self._now()
        if state.renew_registration_after and now >= state.renew_registration_after:
            await self._agent.renew_registration()
            done.append("registration renewed")
        renew_after = (state.authorization or {}).get("renewAfter")
        if renew_after and now >= dt.datetime.fromisoformat(str(renew_after)):
            await self._agent.renew_authorization()
            done.append("authorization renewed")
        if self._last_report is None or now - self._last_report >= self._schedule.usage_every:
            await self._agent.report_usage(self._usage())
            self._last_report = now
            done.append("usage reported")
        done += await self._exports.retry_due()
        return done

    def _idle_wait(self) -> dt.timedelta:
        """Until more may be due: the next look, or the next export retry if sooner."""
        wait = min(self._schedule.idle_check, self._schedule.usage_every)
        due = self._exports.next_due()
        if due is not None:
            wait = max(dt.timedelta(0), min(wait, due - self._now()))
        return wait

    async def run(self, stop: asyncio.Event) -> None:
        """Until ``stop`` is set: do what is due, then sleep until more may be."""
        failures = 0
        while not stop.is_set():
            try:
                # One HTTP session for what is due together, closed before the wait (a
                # connection idle for hours would be closed by the server anyway).
                async with self._agent.connected():
                    done = await self.run_due()
                for what in done:
                    log.info("agent.duty_done", duty=what)
                wait = self._idle_wait()
                failures = 0
            except ServerUnreachable as exc:
                failures += 1
                wait = dt.timedelta(seconds=self._backoff.wait(failures))
                log.warning("agent.server_unreachable", error=str(exc), retry_in=str(wait))
            except AgentError as exc:
                failures += 1
                wait = dt.timedelta(seconds=self._backoff.wait(failures))
                log.error("agent.request_refused", error=str(exc), retry_in=str(wait))
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), wait.total_seconds())
