"""Issue 13 section 4: one name per concept in code (docs/glossary.md), and the wire names
the toolkit fixes unchanged by it. Reads the source; no database."""

from __future__ import annotations

import io
import tokenize
from pathlib import Path

import msgspec

from satellite.api.product_instances import DevicesQuery
from satellite.api.products import Sudi
from satellite_protocol import device as device_wire

ROOT = Path(__file__).resolve().parent.parent
PACKAGES = [ROOT / "satellite", ROOT / "sync", ROOT / "agent"]

# Old names of one concept, and what says it now.
RETIRED = {
    "DeviceService": "DeviceApiService",
    "ProductService": "ProductInstanceService",
    "ProductStatus": "ProductInstanceStatus",
    "udi_serial_number": "udi_serial",
    "ExportedRequest": "WrittenSyncRequest (a sync request is written, not exported)",
    "export_request": "write_request (on the sync service: a sync request is written)",
    "live_product_by_udi": "live_instance_by_udi",
}


def _names(path: Path) -> list[tuple[int, str]]:
    source = path.read_text(encoding="utf-8")
    tokens = tokenize.generate_tokens(io.StringIO(source).readline)
    return [(t.start[0], t.string) for t in tokens if t.type == tokenize.NAME]


def _sources() -> list[Path]:
    return sorted(p for package in PACKAGES for p in package.rglob("*.py"))


def test_retired_names_are_gone_from_the_code() -> None:
    found = [
        f"{path.relative_to(ROOT)}:{line}: {name} (now {RETIRED[name]})"
        for path in _sources()
        for line, name in _names(path)
        if name in RETIRED
    ]
    assert found == []


def test_the_old_modules_are_gone() -> None:
    # Spelled in parts: the rename script rewrites these paths wherever they are written.
    for package, module in (
        ("storage", "devices"),
        ("services", "devices"),
        ("services", "products"),
    ):
        assert not (ROOT / "satellite" / package / f"{module}.py").exists(), (package, module)


def test_license_type_is_defined_once_in_the_catalog() -> None:
    defined = [
        str(path.relative_to(ROOT))
        for package in PACKAGES
        for path in sorted(package.rglob("*.py"))
        if "\nLicenseType = " in path.read_text(encoding="utf-8")
    ]
    assert defined == ["agent/satellite_protocol/catalog.py"]


def test_udi_fields_keep_the_toolkits_json_names() -> None:
    sudi = Sudi(udi_pid="C9300", udi_serial="FOC1", udi_uuid="u-1")
    assert msgspec.to_builtins(sudi) == {
        "udiPid": "C9300",
        "udiSerialNumber": "FOC1",
        "uuid": "u-1",
    }
    query = msgspec.convert(
        {"account": "Acme", "va": "DEFAULT", "udiSerialNumber": "FOC1"}, DevicesQuery
    )
    assert query.udi_serial == "FOC1"
    sent = {"pid": "C9300", "serialNumber": "FOC1", "uuid": "u-1"}
    udi = msgspec.convert(sent, device_wire.Udi)
    assert (udi.udi_pid, udi.udi_serial, udi.udi_uuid) == ("C9300", "FOC1", "u-1")
    assert msgspec.to_builtins(udi) == sent
