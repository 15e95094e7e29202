"""Every operation, in the order the OpenAPI document lists them."""

from __future__ import annotations

from typing import Any

from satellite.api import (
    accounts,
    activity,
    exports,
    jobs,
    licenses,
    principals,
    product_instances,
    reservations,
    subscriptions,
    sync,
    tokens,
    upstream,
    usage,
    webhooks,
)
from satellite.api.operation import Operation

OPERATIONS: tuple[Operation[Any, Any], ...] = (
    *accounts.OPERATIONS,
    *tokens.OPERATIONS,
    *product_instances.OPERATIONS,
    *exports.OPERATIONS,
    *reservations.OPERATIONS,
    *licenses.OPERATIONS,
    *usage.OPERATIONS,
    *subscriptions.OPERATIONS,
    *activity.OPERATIONS,
    *principals.OPERATIONS,
    *sync.OPERATIONS,
    *upstream.OPERATIONS,
    *jobs.OPERATIONS,
    *webhooks.OPERATIONS,
)
