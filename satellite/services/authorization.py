"""The authorization a device API answer carries: per tag the product reported, whether it
is authorized, judged on its virtual account's pool."""

from __future__ import annotations

import datetime as dt

from satellite.domain.clock import utc_now
from satellite.domain.compliance import PoolState, Position
from satellite.services.licenses import LicenseService
from satellite_protocol import device as wire
from satellite_protocol.catalog import Catalog

_STATE_ORDER: dict[wire.TagState, int] = {
    "AUTHORIZED": 0,
    "OUT_OF_COMPLIANCE": 1,
    "NOT_AUTHORIZED": 2,
}


def authorization(
    catalog: Catalog,
    licenses: LicenseService,
    va_name: str,
    usage: dict[str, int],
    pool: PoolState | None,
    expires_at: dt.datetime,
    renewal_days: int,
) -> wire.Authorization:
    """``usage``: the product's; ``pool``: its virtual account's (named ``va_name``), read
    after the usage changed (None only when there is no usage)."""
    positions: dict[str, Position] = {}
    if usage:
        assert pool is not None
        positions = {p.tag: p for p in licenses.state_positions(va_name, pool, utc_now())}
    tags = []
    for tag, count in sorted(usage.items()):
        position = positions.get(tag)  # none: nothing purchased, nothing in use
        if tag not in catalog:
            state: wire.TagState = "NOT_AUTHORIZED"
        elif position is None or position.status == "In Compliance":
            state = "AUTHORIZED"
        else:
            state = "OUT_OF_COMPLIANCE"
        tags.append(
            wire.TagAuthorization(
                tag=tag, display_name=catalog.display_name(tag), count=count, state=state
            )
        )
    overall: wire.TagState = max(
        (t.state for t in tags), key=_STATE_ORDER.__getitem__, default="AUTHORIZED"
    )
    now = utc_now()
    return wire.Authorization(
        state=overall,
        tags=tags,
        issued_at=now,
        expires_at=expires_at,
        renew_after=now + dt.timedelta(days=renewal_days),
    )
