"""The license catalog: entitlement tags, display names and tier order for borrowing."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import msgspec

from satellite.errors import ConfigError


class _CatalogLicense(msgspec.Struct, forbid_unknown_fields=True, kw_only=True, frozen=True):
    tag: str
    display_name: str
    description: str = ""
    export_restricted: bool = False


class _CatalogFamily(msgspec.Struct, forbid_unknown_fields=True, kw_only=True, frozen=True):
    name: str
    licenses: list[_CatalogLicense]


class _CatalogFile(msgspec.Struct, forbid_unknown_fields=True, kw_only=True, frozen=True):
    families: list[_CatalogFamily]


@dataclass(frozen=True)
class CatalogEntry:
    tag: str
    display_name: str
    description: str
    family: str
    tier: int  # position in the family, 0 = lowest
    export_restricted: bool


class Catalog:
    """Entries by tag; within a family, a higher tier may stand in for a lower one."""

    def __init__(self, entries: list[CatalogEntry]) -> None:
        self._by_tag = {e.tag: e for e in entries}
        self._families: dict[str, list[CatalogEntry]] = {}
        for entry in sorted(entries, key=lambda e: (e.family, e.tier)):
            self._families.setdefault(entry.family, []).append(entry)

    def __contains__(self, tag: object) -> bool:
        return tag in self._by_tag

    def __iter__(self) -> Iterator[CatalogEntry]:
        return iter(self._by_tag.values())

    def get(self, tag: str) -> CatalogEntry | None:
        return self._by_tag.get(tag)

    def display_name(self, tag: str) -> str:
        entry = self._by_tag.get(tag)
        return entry.display_name if entry else tag

    def higher_tiers(self, tag: str) -> list[str]:
        """Tags that may stand in for ``tag``, nearest tier first."""
        entry = self._by_tag.get(tag)
        if entry is None:
            return []
        return [e.tag for e in self._families[entry.family] if e.tier > entry.tier]

    def tier_order(self, tags: set[str]) -> list[str]:
        """``tags`` sorted so that every lower tier comes before the higher ones of its family."""

        def key(tag: str) -> tuple[str, int, str]:
            entry = self._by_tag.get(tag)
            return (entry.family, entry.tier, tag) if entry else ("", 0, tag)

        return sorted(tags, key=key)


def parse_catalog(data: bytes, source: str) -> Catalog:
    try:
        parsed = msgspec.toml.decode(data, type=_CatalogFile)
    except msgspec.MsgspecError as exc:
        raise ConfigError(f"{source}: {exc}") from exc
    entries: list[CatalogEntry] = []
    seen: set[str] = set()
    for family in parsed.families:
        for tier, lic in enumerate(family.licenses):
            if lic.tag in seen:
                raise ConfigError(f"{source}: tag {lic.tag} appears twice")
            seen.add(lic.tag)
            entries.append(
                CatalogEntry(
                    tag=lic.tag,
                    display_name=lic.display_name,
                    description=lic.description or lic.display_name,
                    family=family.name,
                    tier=tier,
                    export_restricted=lic.export_restricted,
                )
            )
    return Catalog(entries)
