"""Errors both sides raise: the base of every domain error, bad input and a bad
configuration (the catalog).

Each class is a name and a sentence: the docstring is the default message. The server's
``satellite.errors`` defines the rest on the same base and maps them to problem documents.
"""

from __future__ import annotations


class SatelliteError(Exception):
    """The operation failed."""

    def __init__(self, detail: str | None = None, *, field: str | None = None) -> None:
        self.detail = detail or (self.__doc__ or "").strip()
        self.field = field
        super().__init__(self.detail)


class ConfigError(SatelliteError):
    """The configuration is not valid."""


class InvalidInput(SatelliteError):
    """The request is not valid."""


class MalformedJson(InvalidInput):
    """The text is not JSON."""
