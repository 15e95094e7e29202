"""Every operation, in the order the OpenAPI document lists them."""

from __future__ import annotations

from typing import Any

from satellite.api import exports, reservations, sync, tokens, upstream
from satellite.api.operation import Operation

OPERATIONS: tuple[Operation[Any, Any], ...] = (
    *tokens.OPERATIONS,
    *exports.OPERATIONS,
    *reservations.OPERATIONS,
    *sync.OPERATIONS,
    *upstream.OPERATIONS,
)
