"""Scheduled jobs: APScheduler runs thin jobs that call the maintenance service."""

from satellite.scheduler.runner import JobScheduler

__all__ = ["JobScheduler"]
