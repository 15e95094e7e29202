"""The README's tour and the docs' walk-throughs, run as written against a real daemon.

Every ```sh block of the README's "Tour" section and of the walk-through pages in ``WALKS``
runs in order with ``bash -e -o pipefail``, in a scratch checkout with a fresh home (so
``~/.local/state/satellite`` is the new daemon's), against ``satellite serve`` on the embedded
PostgreSQL, as the README starts it, but bound to 127.0.0.1 on a free port (the README's
``127.0.0.1:8443`` is rewritten to it). Variables a block sets carry to the next ones, as in
one terminal. An exit code is not enough (``curl -s`` exits 0 on a 401): every block is
followed by an ``<!-- expect ... -->`` comment whose lines its output must contain.

Blocks that are not meant to run (set-up, systemd, examples with placeholders) are fenced
as anything but ```sh, or sit outside these pages.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import ssl
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import msgspec
import msgspec.inspect

from satellite.config import Settings

REPO = Path(__file__).resolve().parent.parent
# (page, heading of the section whose blocks run; None: the whole page), in the order they run
WALKS: list[tuple[str, str | None]] = [
    ("README.md", "## Tour"),
    ("docs/admin-api.md", None),
    ("docs/slr.md", None),
    ("docs/export-control.md", None),
    ("docs/sync.md", None),
]
README_ADDRESS = "127.0.0.1:8443"
README_UPSTREAM_ADDRESS = "127.0.0.1:8444"
START_TIMEOUT = 120.0
BLOCK_TIMEOUT = 120.0
STOP_TIMEOUT = 60.0
POLL = 0.2


@dataclass(frozen=True)
class Block:
    where: str  # page:line of the opening fence
    text: str
    expect: tuple[str, ...]


@dataclass(frozen=True)
class Outcome:
    returncode: int
    stdout: str
    stderr: str


def page_blocks(page: str, section: str | None) -> list[Block]:
    """The ```sh blocks of ``page`` (of its ``section`` only, if named), with expect lines."""
    lines = (REPO / page).read_text(encoding="utf-8").splitlines()
    blocks: list[Block] = []
    inside = section is None
    i = 0
    while i < len(lines):
        line = lines[i]
        if section is not None and line.startswith("## "):
            inside = line.strip() == section
        if inside and line.strip() == "```sh":
            start = i
            body: list[str] = []
            i += 1
            while lines[i].strip() != "```":
                body.append(lines[i])
                i += 1
            i += 1
            expect: list[str] = []
            if i < len(lines) and lines[i].strip() == "<!-- expect":
                i += 1
                while lines[i].strip() != "-->":
                    if lines[i].strip():
                        expect.append(lines[i].strip())
                    i += 1
            blocks.append(Block(f"{page}:{start + 1}", "\n".join(body) + "\n", tuple(expect)))
        i += 1
    return blocks


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def shell_env(home: Path) -> dict[str, str]:
    """The environment of a fresh user: a new home, no config or state directory of ours."""
    drop = {"SATELLITE_CONFIG", "STATE_DIRECTORY", "NOTIFY_SOCKET", "WATCHDOG_USEC"}
    env = {k: v for k, v in os.environ.items() if k not in drop and not k.startswith("XDG_")}
    env["HOME"] = str(home)
    return env


@dataclass(frozen=True)
class Shell:
    """One terminal's worth of state: where blocks run, and what they exported so far."""

    cwd: Path
    env: dict[str, str]
    variables: Path  # `export -p` after the last block (`set -a` exports every assignment)
    port: int
    upstream_port: int

    def run(self, block: Block) -> Outcome:
        text = block.text.replace(README_ADDRESS, f"127.0.0.1:{self.port}").replace(
            README_UPSTREAM_ADDRESS, f"127.0.0.1:{self.upstream_port}"
        )
        script = f"set -a\n. {self.variables}\n{text}\nexport -p > {self.variables}\n"
        done = subprocess.run(
            ["bash", "-e", "-o", "pipefail", "-c", script],
            cwd=self.cwd,
            env=self.env,
            stdin=subprocess.DEVNULL,
            capture_output=True,
            text=True,
            timeout=BLOCK_TIMEOUT,
            check=False,
        )
        return Outcome(done.returncode, done.stdout, done.stderr)


def problems(block: Block, outcome: Outcome) -> list[str]:
    """What is wrong with a block's run: its exit code, or an expected line it did not print."""
    found = []
    if outcome.returncode != 0:
        found.append(f"exit code {outcome.returncode}")
    found += [f"no {line!r} in its output" for line in block.expect if line not in outcome.stdout]
    return found


def report(block: Block, outcome: Outcome, daemon_log: Path) -> str:
    log = daemon_log.read_text(encoding="utf-8", errors="replace")[-3000:]
    return (
        f"{block.where}: {'; '.join(problems(block, outcome))}\n--- block\n{block.text}"
        f"--- stdout\n{outcome.stdout[-3000:]}\n--- stderr\n{outcome.stderr[-3000:]}"
        f"\n--- daemon's stderr (end)\n{log}"
    )


def wait_ready(daemon: subprocess.Popen[bytes], url: str, ca: Path, log: Path) -> None:
    deadline = time.monotonic() + START_TIMEOUT
    while time.monotonic() < deadline:
        assert daemon.poll() is None, log.read_text(encoding="utf-8", errors="replace")
        if ca.exists():
            context = ssl.create_default_context(cafile=str(ca))
            with (
                contextlib.suppress(OSError),
                urllib.request.urlopen(  # noqa: S310 (https)
                    f"{url}/readyz", context=context, timeout=5
                ) as answer,
            ):
                if answer.status == 200:
                    return
        time.sleep(POLL)
    raise AssertionError(f"not ready in {START_TIMEOUT} s: {log.read_text(errors='replace')}")


def stop(daemon: subprocess.Popen[bytes]) -> None:
    if daemon.poll() is None:
        daemon.send_signal(signal.SIGTERM)
        try:
            daemon.wait(timeout=STOP_TIMEOUT)
        except subprocess.TimeoutExpired:
            daemon.kill()
            daemon.wait(timeout=STOP_TIMEOUT)


def git_ignored(name: str) -> bool:
    done = subprocess.run(["git", "check-ignore", "-q", "--no-index", name], cwd=REPO, check=False)
    return done.returncode == 0


def test_every_block_of_the_walk_throughs_does_what_it_says(tmp_path: Path) -> None:
    blocks = [block for page, section in WALKS for block in page_blocks(page, section)]
    assert len(blocks) >= 10, [b.where for b in blocks]
    unchecked = [block.where for block in blocks if not block.expect]
    assert not unchecked, f"blocks with no <!-- expect --> lines: {unchecked}"

    venv = Path(sys.prefix)
    assert (venv / "bin" / "satellite").exists(), f"no satellite command in {venv}"
    checkout, home = tmp_path / "checkout", tmp_path / "home"
    checkout.mkdir()
    home.mkdir()
    (checkout / ".venv").symlink_to(venv)
    env = shell_env(home)
    variables = tmp_path / "shell.env"
    variables.write_text("", encoding="utf-8")
    port = free_port()
    shell = Shell(checkout, env, variables, port, free_port())
    url = f"https://127.0.0.1:{port}"
    ca = home / ".local" / "state" / "satellite" / "keys" / "ca.crt"
    log = tmp_path / "serve.err"
    with (tmp_path / "serve.out").open("wb") as out, log.open("wb") as err:
        daemon = subprocess.Popen(
            [str(venv / "bin" / "satellite"), "serve", "--listen", f"127.0.0.1:{port}"],
            cwd=checkout,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=err,
        )
    try:
        wait_ready(daemon, url, ca, log)
        for block in blocks:
            outcome = shell.run(block)
            assert not problems(block, outcome), report(block, outcome, log)

        # An example that rots fails. The licenses view (it changes nothing) passes again as
        # written; a copy with a path changed fails, and so does a copy that gets a 401
        # through `curl -s` (exit code 0) but no longer prints what the block promised.
        licenses = next(b for b in blocks if '"inUse":25' in b.expect)
        assert not problems(licenses, shell.run(licenses)), "the licenses view changed"
        moved = replace(licenses, text=licenses.text.replace("/licenses", "/licences"))
        assert problems(moved, shell.run(moved))[:1] == ["exit code 22"], "a wrong path passed"
        quiet = replace(
            licenses,
            text=licenses.text.replace("--fail-with-body -sS", "-s").replace("$TOKEN", "x"),
        )
        outcome = shell.run(quiet)
        assert outcome.returncode == 0, outcome
        assert problems(quiet, outcome), f"a 401 passed: {outcome}"
    finally:
        stop(daemon)

    created = sorted(
        p.name + ("/" if p.is_dir() else "") for p in checkout.iterdir() if p.name != ".venv"
    )
    assert created, "the walk-throughs created no file in the checkout"
    if (REPO / ".git").exists():
        assert [name for name in created if not git_ignored(name)] == [], ".gitignore them"


def _toml(value: Any) -> str:
    """A default as docs/configuration.md shows it."""
    if value is None:
        return "unset"
    if isinstance(value, bool):
        return "`true`" if value else "`false`"
    if isinstance(value, list):
        return "`[" + ", ".join(json.dumps(item) for item in value) + "]`"
    return f"`{json.dumps(value)}`" if isinstance(value, str) else f"`{value!r}`"


def _settings(struct: type[msgspec.Struct], prefix: str = "") -> Iterator[tuple[str, str]]:
    """Every leaf setting by its dotted name, with its default."""
    info = msgspec.inspect.type_info(struct)
    assert isinstance(info, msgspec.inspect.StructType)
    for field in info.fields:
        if isinstance(field.type, msgspec.inspect.StructType):
            yield from _settings(field.type.cls, f"{prefix}{field.name}.")
            continue
        default = field.default
        if default is msgspec.NODEFAULT:
            default = field.default_factory()
        yield prefix + field.name, _toml(default)


def test_the_configuration_page_names_every_setting_with_its_default() -> None:
    rows = {}
    for line in (REPO / "docs" / "configuration.md").read_text(encoding="utf-8").splitlines():
        cells = [cell.strip() for cell in line.split("|")]
        if len(cells) > 3 and cells[1].startswith("`"):
            rows[cells[1].strip("`")] = cells[2]
    settings = dict(_settings(Settings))
    assert len(settings) > 50
    assert {name: rows.get(name) for name in settings} == settings
    assert set(rows) - set(settings) == set(), "settings the code does not have"
