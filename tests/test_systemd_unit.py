"""The shipped unit: notify type, reload, and hardening that systemd-analyze rates well."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pytest

UNIT = Path(__file__).resolve().parent.parent / "systemd" / "satellite.service"


def _service_section() -> dict[str, list[str]]:
    values: dict[str, list[str]] = {}
    section = ""
    for raw in UNIT.read_text().splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        if line.startswith("["):
            section = line
            continue
        if section == "[Service]":
            key, _, value = line.partition("=")
            values.setdefault(key, []).append(value)
    return values


@pytest.mark.unit
def test_unit_is_notify_with_reload_and_restart() -> None:
    service = _service_section()
    assert service["Type"] == ["notify"]
    assert service["ExecStart"][0].endswith("satellite serve")
    assert "HUP" in service["ExecReload"][0]
    assert service["Restart"] == ["on-failure"]
    assert service["WatchdogSec"]
    assert service["StateDirectory"] == ["satellite"]
    # No config file is required: the unit must not point at one that may not exist.
    assert not any("SATELLITE_CONFIG" in e for e in service.get("Environment", []))


@pytest.mark.skipif(shutil.which("systemd-analyze") is None, reason="no systemd-analyze")
def test_systemd_analyze_rates_the_unit_ok() -> None:
    result = subprocess.run(
        ["systemd-analyze", "security", "--offline=true", str(UNIT)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    match = re.search(r"Overall exposure level for \S+: ([0-9.]+) (\w+)", result.stdout)
    assert match, result.stdout + result.stderr
    assert float(match.group(1)) <= 2.0, match.group(0)
