"""Export keys on the SLR path, and the agent's and the host's command lines for export
control."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from aiohttp.test_utils import TestServer

from satellite_agent.client import Agent
from satellite_agent.export import ExportControl, ExportUnavailable
from tests.conftest import Api
from tests.helpers.api import (
    EXPORT_KEY,
    FEATURE,
    VOICE,
    new_product,
    new_token,
)
from tests.helpers.cli import AgentCli, Cli, toml_config
from tests.helpers.export import (
    export_position,
    setup_acme,
)

# --- specific license reservation ---------------------------------------------------------


async def reserve_export_key(admin: Api, request_code: str) -> tuple[int, Any]:
    return await admin.post(
        VOICE + "/reserve-licenses",
        {
            "reservationRequests": [
                {
                    "reservationCode": request_code,
                    "licenses": [{"entitlementTag": EXPORT_KEY, "quantity": 1}],
                }
            ]
        },
    )


async def test_reservation_with_the_export_key_enables_the_feature(
    admin: Api, server: TestServer, tmp_path: Path, state_dir: Path
) -> None:
    await setup_acme(admin, keys=1)
    product = new_product(tmp_path, state_dir, "SLREXP1")
    product.enable()
    agent = Agent(product.dir.path)
    exports = ExportControl(agent)
    with pytest.raises(ExportUnavailable, match="specific license reservation"):
        await exports.request(FEATURE)
    status, body = await reserve_export_key(admin, product.request())
    assert status == 200, body
    product.install(body["authorizationCodes"][0]["authorizationCode"])
    assert exports.features() == {FEATURE: "reservation"}
    assert (await export_position(admin))["reserved"] == 1
    product.give_back()
    assert exports.features() == {}


async def test_an_account_not_allowed_cannot_reserve_an_export_key(
    admin: Api, tmp_path: Path, state_dir: Path
) -> None:
    await setup_acme(admin, keys=0, allowed=False)
    product = new_product(tmp_path, state_dir, "SLREXP2")
    product.enable()
    status, body = await reserve_export_key(admin, product.request())
    assert status == 403, body
    assert body["type"].endswith(":export-account-not-allowed")
    assert body["field"] == "reservationRequests[0].licenses[0].entitlementTag"


# --- the command lines --------------------------------------------------------------------


async def test_agent_and_host_command_lines(
    admin: Api, server: TestServer, tmp_path: Path, db_dsn: str, state_dir: Path
) -> None:
    await setup_acme(admin, keys=1)
    token = await new_token(admin)
    agent = AgentCli(tmp_path / "product")
    url = str(server.make_url("")).rstrip("/")
    await agent.ok("init", "--pid", "UCM", "--serial", "CLIEXP1", "--url", url)
    code, out, err = await agent("license", "smart", "export", "request", "local", FEATURE)
    assert code != 0
    assert err.startswith("error: export-controlled features are not available in evaluation")
    assert err.count("\n") == 1

    await agent.ok("register", token)
    out = await agent.ok("license", "smart", "export", "request", "local", FEATURE)
    assert f"export authorization key for {FEATURE} installed" in out
    status = json.loads(await agent.ok("status", "--json"))
    assert status["exportControlled"] is True
    assert status["exportControl"]["features"] == {FEATURE: "export key"}

    cli = Cli(toml_config(tmp_path / "satellite.toml", state_dir, db_dsn), tmp_path)
    listed, positions, missing = cli.many(
        ["export", "list", "Acme", "Voice", "--json"],
        ["license", "list", "Acme", "--json"],
        ["export", "list", "Acme", "NoSuchVa"],
    )
    [key] = listed.json()["exportKeys"]
    assert (key["feature"], key["status"], key["sudi"]["udiSerialNumber"]) == (
        FEATURE,
        "Granted",
        "CLIEXP1",
    )
    [position] = [p for p in positions.json()["licenses"] if p["entitlementTag"] == EXPORT_KEY]
    assert (position["exportKeys"], position["inUse"], position["available"]) == (1, 1, 0)
    assert "NoSuchVa" in missing.one_error_line()

    code, _, err = await agent("license", "smart", "export", "cancel")
    assert code != 0
    assert "no export request or return is pending" in err
    await agent.ok("deregister")
    out = await agent.ok("status")
    assert f"export-controlled features: {FEATURE} (export key (released: alarm))" in out
    assert "alarm SmartLicenseExportControlNotAllowed: deregistered" in out
    out = await agent.ok("license", "smart", "export", "return", "local", FEATURE)
    assert "returned and removed" in out
    history = cli("export", "list", "Acme", "Voice", "--all").ok().out.splitlines()
    assert len(history) == 2
    assert "released" in history[1]
    assert "deregistered" in history[1]
