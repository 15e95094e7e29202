"""``from satellite_agent.cli import cli`` is the whole ``satellite-agent`` tree (commands are
added in one place, not by imports inside ``main``), and no module of the agent
distribution imports one that imports it back."""

from __future__ import annotations

import click
import grimp
from click.testing import CliRunner

from satellite_agent.cli import cli


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


def test_no_import_circle_in_the_agent_distribution() -> None:
    graph = grimp.build_graph("satellite_agent", "satellite_protocol")
    circles = sorted(
        (importer, imported)
        for importer in graph.modules
        for imported in graph.find_modules_directly_imported_by(importer)
        if importer < imported and graph.find_shortest_chain(imported, importer) is not None
    )
    assert circles == []
