"""Files shipped with satellite: migrations and the default config and catalog.

In a checkout (or an editable install) they are the top-level ``sql/`` and ``config/``;
a wheel carries them as ``satellite/_data/``.
"""

from __future__ import annotations

from pathlib import Path

_PACKAGE = Path(__file__).resolve().parent


def _data_dir(name: str) -> Path:
    bundled = _PACKAGE / "_data" / name
    if bundled.is_dir():
        return bundled
    return _PACKAGE.parent / name


def migrations_dir() -> Path:
    return _data_dir("sql")


def config_dir() -> Path:
    return _data_dir("config")
