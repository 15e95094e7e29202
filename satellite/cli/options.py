"""Option types the commands share."""

from __future__ import annotations

import click

# Row ids and offsets go to the database as bigint: a larger number is refused here, in
# one line, rather than by the driver with a traceback.
INT64_MAX = 2**63 - 1
OFFSET = click.IntRange(0, INT64_MAX)
ROW_ID = click.IntRange(1, INT64_MAX)
DATE = click.DateTime(formats=["%Y-%m-%d"])
