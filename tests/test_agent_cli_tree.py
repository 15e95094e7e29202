"""``from satellite_agent.cli import cli`` is the whole ``satellite-agent`` tree (commands are
added in one place, not by imports inside ``main``). Import circles, the agent's included,
are found by tests/test_import_cycles.py."""

from __future__ import annotations

import click
import pytest
from click.testing import CliRunner

from satellite_agent.cli import cli

pytestmark = pytest.mark.unit


def test_the_imported_group_holds_every_command() -> None:
    assert set(cli.commands) == {
        "init",
        "register",
        "reregister",
        "renew",
        "usage",
        "deregister",
        "status",
        "transport",
        "clock-tolerance",
        "privacy",
        "run",
        "license",
    }
    smart = cli.commands["license"]
    assert isinstance(smart, click.Group)
    assert set(smart.commands) == {"smart"}
    grammar = smart.commands["smart"]
    assert isinstance(grammar, click.Group)
    assert set(grammar.commands) == {"reservation", "export", "register"}
    shown = CliRunner().invoke(cli, ["license", "smart", "reservation", "--help"])
    assert shown.exit_code == 0, shown.output
    assert "install-file" in shown.output
