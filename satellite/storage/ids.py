"""Product instance ids as the database keys them."""

from __future__ import annotations

import uuid


def uuids(product_instance_ids: list[str]) -> list[uuid.UUID]:
    """The ids that are UUIDs at all (no other can name a product)."""
    keys = []
    for product_instance_id in product_instance_ids:
        try:
            keys.append(uuid.UUID(product_instance_id))
        except ValueError:
            continue
    return keys
