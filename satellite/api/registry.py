"""Every operation, in the order the OpenAPI document lists them."""

from __future__ import annotations

from typing import Any

from satellite.api import licenses, product_instances, subscriptions, tokens
from satellite.api.operation import Operation

OPERATIONS: tuple[Operation[Any, Any], ...] = (
    *tokens.OPERATIONS,
    *product_instances.OPERATIONS,
    *licenses.OPERATIONS,
    *subscriptions.OPERATIONS,
)
