"""structlog configuration: JSON lines (or console) with event names and context."""

from __future__ import annotations

import logging
import sys

import structlog

from satellite.config import LogSettings


def configure_logging(settings: LogSettings, worker: int | None = None) -> None:
    """``worker``: this process is that worker of ``satellite serve --workers``, a field of
    every line it logs whatever the request's context."""

    def process_fields(
        logger: object, method: str, event: structlog.types.EventDict
    ) -> structlog.types.EventDict:
        if worker is not None:
            event["worker"] = worker
        return event

    level = logging.getLevelName(settings.level.upper())
    renderer: structlog.types.Processor = (
        structlog.processors.JSONRenderer()
        if settings.format == "json"
        else structlog.dev.ConsoleRenderer(colors=False)
    )
    structlog.configure(
        processors=[
            structlog.contextvars.merge_contextvars,
            process_fields,
            structlog.processors.add_log_level,
            structlog.processors.TimeStamper(fmt="iso", utc=True),
            structlog.processors.format_exc_info,
            renderer,
        ],
        wrapper_class=structlog.make_filtering_bound_logger(level),
        # (A line and its newline in one write: print() writes them apart, and the workers
        # of one daemon write to one stderr, where another's line would land in between.)
        logger_factory=structlog.WriteLoggerFactory(sys.stderr),
        cache_logger_on_first_use=False,
    )
    # Libraries that use the stdlib logger (aiohttp, apscheduler, asyncpg's pool while the
    # database is away) go to stderr at our level, rendered as our own lines are (one JSON
    # object a line: a traceback is a field, not lines of its own).
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(
        structlog.stdlib.ProcessorFormatter(
            foreign_pre_chain=[
                structlog.stdlib.add_logger_name,
                process_fields,
                structlog.stdlib.add_log_level,
                structlog.processors.TimeStamper(fmt="iso", utc=True),
                structlog.processors.format_exc_info,
            ],
            processors=[structlog.stdlib.ProcessorFormatter.remove_processors_meta, renderer],
        )
    )
    logging.basicConfig(handlers=[handler], level=max(level, logging.WARNING), force=True)
