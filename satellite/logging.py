"""structlog configuration: JSON lines (or console) with event names and context."""

from __future__ import annotations

import logging
import sys

import structlog

from satellite.config import LogSettings

# Fields on every line this process logs (a worker's index), whatever the request's context.
_PROCESS_FIELDS: dict[str, object] = {}


def bind_process(**fields: object) -> None:
    """Put ``fields`` on every line this process logs from now on (a reload keeps them)."""
    _PROCESS_FIELDS.update(fields)


def _process_fields(
    logger: object, method: str, event: structlog.types.EventDict
) -> structlog.types.EventDict:
    event.update(_PROCESS_FIELDS)
    return event


def configure_logging(settings: LogSettings) -> None:
    level = logging.getLevelName(settings.level.upper())
    renderer: structlog.types.Processor = (
        structlog.processors.JSONRenderer()
        if settings.format == "json"
        else structlog.dev.ConsoleRenderer(colors=False)
    )
    structlog.configure(
        processors=[
            structlog.contextvars.merge_contextvars,
            _process_fields,
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
                _process_fields,
                structlog.stdlib.add_log_level,
                structlog.processors.TimeStamper(fmt="iso", utc=True),
                structlog.processors.format_exc_info,
            ],
            processors=[structlog.stdlib.ProcessorFormatter.remove_processors_meta, renderer],
        )
    )
    logging.basicConfig(handlers=[handler], level=max(level, logging.WARNING), force=True)
