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
    # The export-controlled feature this license's key enables on a product (an export
    # authorization key): the <feature> of 'license smart export request local <feature>'.
    export_feature: str | None = None


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
    export_feature: str | None = None


class Catalog:
    """Entries by tag; within a family, a higher tier may stand in for a lower one."""

    def __init__(self, entries: list[CatalogEntry]) -> None:
        self._by_tag = {e.tag: e for e in entries}
        self._by_feature = {e.export_feature: e for e in entries if e.export_feature}
        self._families: dict[str, list[CatalogEntry]] = {}
        for entry in sorted(entries, key=lambda e: (e.family, e.tier)):
            self._families.setdefault(entry.family, []).append(entry)

    def __contains__(self, tag: object) -> bool:
        return tag in self._by_tag

    def __iter__(self) -> Iterator[CatalogEntry]:
        return iter(self._by_tag.values())

    def get(self, tag: str) -> CatalogEntry | None:
        return self._by_tag.get(tag)

    def export_key(self, feature: str) -> CatalogEntry | None:
        """The export authorization-key license that enables ``feature``."""
        return self._by_feature.get(feature)

    def export_features(self) -> list[str]:
        return sorted(self._by_feature)

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
    features: set[str] = set()
    for family in parsed.families:
        for tier, lic in enumerate(family.licenses):
            if lic.tag in seen:
                raise ConfigError(f"{source}: tag {lic.tag} appears twice")
            seen.add(lic.tag)
            if lic.export_feature is not None:
                if not lic.export_restricted:
                    raise ConfigError(
                        f"{source}: tag {lic.tag} enables export feature "
                        f"{lic.export_feature!r} but is not export_restricted"
                    )
                if lic.export_feature in features:
                    raise ConfigError(
                        f"{source}: export feature {lic.export_feature!r} appears twice"
                    )
                features.add(lic.export_feature)
            entries.append(
                CatalogEntry(
                    tag=lic.tag,
                    display_name=lic.display_name,
                    description=lic.description or lic.display_name,
                    family=family.name,
                    tier=tier,
                    export_restricted=lic.export_restricted,
                    export_feature=lic.export_feature,
                )
            )
    return Catalog(entries)
