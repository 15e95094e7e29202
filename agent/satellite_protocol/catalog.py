"""The license catalog: entitlement tags, display names, the tier order for borrowing, and
which version-specific tags a version-independent license stands in for."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import msgspec

from satellite_protocol.errors import ConfigError

_PACKAGE = Path(__file__).resolve().parent


def shipped_catalog_path() -> Path:
    """The catalog shipped with satellite: inside a wheel of the agent distribution, else
    ``config/catalog.toml`` of the checkout this package is in (an editable install)."""
    bundled = _PACKAGE / "_data" / "catalog.toml"
    if bundled.is_file():
        return bundled
    return _PACKAGE.parents[1] / "config" / "catalog.toml"


LicenseType = Literal["PERPETUAL", "TERM", "SUBSCRIPTION"]
# "vendor": the vendor's own tag, as products report it; "satellite": a tag this project
# made up in the vendor's style, for a license whose real tag it does not know.
TagOrigin = Literal["vendor", "satellite"]


class _CatalogLicense(msgspec.Struct, forbid_unknown_fields=True, kw_only=True, frozen=True):
    tag: str
    display_name: str
    description: str = ""
    export_restricted: bool = False
    # The export-controlled feature this license's key enables on a product (an export
    # authorization key): the <feature> of 'license smart export request local <feature>'.
    export_feature: str | None = None
    tag_origin: TagOrigin = "vendor"
    # The only type a pool line of the tag may have (None: any).
    license_type: LicenseType | None = None
    # Version-specific tags this (version-independent) license covers when they run short.
    stands_in_for: list[str] = []


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
    tag_origin: TagOrigin = "vendor"
    license_type: LicenseType | None = None
    stands_in_for: tuple[str, ...] = ()  # version-specific tags it covers when they run short


class Catalog:
    """Entries by tag; within a family, a higher tier may stand in for a lower one, and a
    version-independent license for the version-specific tags it lists."""

    def __init__(self, entries: list[CatalogEntry]) -> None:
        self._by_tag = {e.tag: e for e in entries}
        self._by_feature = {e.export_feature: e for e in entries if e.export_feature}
        self._families: dict[str, list[CatalogEntry]] = {}
        for entry in sorted(entries, key=lambda e: (e.family, e.tier)):
            self._families.setdefault(entry.family, []).append(entry)
        self._stand_ins: dict[str, list[str]] = {}
        for entry in sorted(entries, key=self._stand_in_order):
            for covered in entry.stands_in_for:
                self._stand_ins.setdefault(covered, []).append(entry.tag)

    def adopt(self, other: Catalog) -> None:
        """Take ``other``'s entries in place (a reload): every holder of this catalog sees
        the new entries from its next look-up on; one step, no await between the tables."""
        self._by_tag = other._by_tag
        self._by_feature = other._by_feature
        self._families = other._families
        self._stand_ins = other._stand_ins

    def _stand_in_order(self, entry: CatalogEntry) -> tuple[int, str, int]:
        """Nearest first: by the highest tier the license covers, then by its own place."""
        top = max((e.tier for t in entry.stands_in_for if (e := self._by_tag.get(t))), default=0)
        return (top, entry.family, entry.tier)

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

    def substitutes(self, tag: str) -> list[str]:
        """Tags whose spare licenses cover a shortfall of ``tag``, in the order they are
        taken: the higher tiers of its own family, then the version-independent licenses
        that stand in for it."""
        return self.higher_tiers(tag) + self._stand_ins.get(tag, [])

    def tier_order(self, tags: set[str]) -> list[str]:
        """``tags`` sorted so that every lower tier comes before the higher ones of its
        family, and version-specific tags before the version-independent licenses (whose
        spare licenses then go to the version-specific tags first)."""

        def key(tag: str) -> tuple[bool, str, int, str]:
            entry = self._by_tag.get(tag)
            if entry is None:
                return (False, "", 0, tag)
            return (bool(entry.stands_in_for), entry.family, entry.tier, tag)

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
                    tag_origin=lic.tag_origin,
                    license_type=lic.license_type,
                    stands_in_for=tuple(lic.stands_in_for),
                )
            )
    _check_stand_ins(entries, source)
    return Catalog(entries)


def _check_stand_ins(entries: list[CatalogEntry], source: str) -> None:
    """The tier mapping must keep its promise: a license that covers a tier covers every
    lower tier of that family (a lower tier never gets what a higher one is refused), and a
    higher tier of a version-independent family covers at least what the lower ones do."""
    by_tag = {e.tag: e for e in entries}
    previous: dict[str, CatalogEntry] = {}
    for entry in sorted(entries, key=lambda e: (e.family, e.tier)):
        covered = set(entry.stands_in_for)
        for tag in entry.stands_in_for:
            target = by_tag.get(tag)
            if target is None:
                raise ConfigError(f"{source}: {entry.tag!r} stands in for unknown tag {tag!r}")
            if target.family == entry.family:
                raise ConfigError(
                    f"{source}: {entry.tag!r} stands in for {tag!r} of its own family"
                )
            missing = [
                e.tag
                for e in entries
                if e.family == target.family and e.tier < target.tier and e.tag not in covered
            ]
            if missing:
                raise ConfigError(
                    f"{source}: {entry.tag!r} stands in for {tag!r} but not for the lower "
                    f"tier {missing[0]!r}"
                )
        lower = previous.get(entry.family)
        if lower is not None and (lacking := sorted(set(lower.stands_in_for) - covered)):
            raise ConfigError(
                f"{source}: {entry.tag!r} is a higher tier than {lower.tag!r} but does "
                f"not stand in for {lacking[0]!r}"
            )
        previous[entry.family] = entry
