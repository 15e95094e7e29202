"""What a product's usage report (device API) sets, checked before anything is changed."""

from __future__ import annotations

from satellite.errors import InvalidInput
from satellite_protocol import device as wire
from satellite_protocol.catalog import Catalog


def reported_usage(report: wire.UsageReport, catalog: Catalog, max_tags: int) -> dict[str, int]:
    """The usage a report sets: catalog tags only, each once, at most ``max_tags``; a tag
    reported as 0 is left out (it is no longer in use)."""
    if len(report.usage) > max_tags:
        raise InvalidInput(
            f"a usage report carries at most {max_tags} tags, this one {len(report.usage)}",
            field="usage",
        )
    usage: dict[str, int] = {}
    seen: set[str] = set()
    for index, entry in enumerate(report.usage):
        if entry.tag in seen:
            raise InvalidInput(f"tag {entry.tag} is reported twice", field=f"usage[{index}].tag")
        if entry.tag not in catalog:
            raise InvalidInput(
                f"tag {entry.tag} is not in the license catalog", field=f"usage[{index}].tag"
            )
        seen.add(entry.tag)
        if entry.count:
            usage[entry.tag] = entry.count
    return usage
