"""The ``satellite`` command in process (click's runner, through the same error handling as
the console script), the console script itself where the process is the point,
``satellite-agent`` in a subprocess, configuration files and direct queries."""

from __future__ import annotations

import asyncio
import json
import logging
import os
import subprocess
import sys
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import asyncpg
import structlog
from click.testing import CliRunner

from satellite.cli import run
from tests.conftest import satellite_exe

TIMEOUT = 60
# What the host's environment may hold that a command must not see.
_HIDDEN = ("SATELLITE_CONFIG", "STATE_DIRECTORY", "NOTIFY_SOCKET")


@dataclass
class Result:
    args: Sequence[str]
    code: int
    out: str
    err: str

    def ok(self) -> Result:
        assert self.code == 0, f"satellite {' '.join(self.args)} failed: {self.err}"
        return self

    def json(self) -> Any:
        return json.loads(self.ok().out)

    def one_error_line(self) -> str:
        assert self.code != 0, f"satellite {' '.join(self.args)} should have failed: {self.out}"
        lines = self.err.splitlines()
        assert len(lines) == 1, f"expected one line on stderr, got: {self.err!r}"
        assert lines[0].startswith("error: "), lines[0]
        return lines[0]


@dataclass
class Cli:
    """Runs ``satellite --config FILE ...``: in this process (``cli(...)``, ``cli.many(...)``),
    or as the console script in subprocesses (``cli.spawn(...)``, ``cli.spawn_many(...)``)."""

    config: Path
    home: Path

    def env(self, extra: dict[str, str] | None = None) -> dict[str, str]:
        env = {
            k: v
            for k, v in os.environ.items()
            if k not in _HIDDEN and not k.startswith("SATELLITE_PASSWORD")
        }
        # Whatever goes wrong, nothing lands in the real user's state directory.
        env["XDG_STATE_HOME"] = str(self.home / "xdg-state")
        env.update(extra or {})
        return env

    def __call__(self, *args: str, env: dict[str, str] | None = None) -> Result:
        """The command in this process, with the environment ``spawn`` would give it. Called
        from a coroutine it runs in a thread of its own (a command runs its own event loop),
        holding the caller's loop up as waiting for a subprocess did."""
        try:
            asyncio.get_running_loop()
        except RuntimeError:
            return self._invoke(args, env)
        with ThreadPoolExecutor(max_workers=1) as pool:
            return pool.submit(self._invoke, args, env).result()

    def _invoke(self, args: Sequence[str], env: dict[str, str] | None) -> Result:
        overrides: dict[str, str | None] = {
            k: None for k in os.environ if k in _HIDDEN or k.startswith("SATELLITE_PASSWORD")
        }
        overrides["XDG_STATE_HOME"] = str(self.home / "xdg-state")
        overrides.update(env or {})
        # A command configures logging for the stream it was given; the test's own goes on.
        logging_config = structlog.get_config()
        root = logging.getLogger()
        handlers, level = list(root.handlers), root.level
        runner = CliRunner(env=overrides)
        try:
            with runner.isolation() as (out, err, _):
                code = run(["--config", str(self.config), *args])
                return Result(args, code, out.getvalue().decode(), err.getvalue().decode())
        finally:
            structlog.configure(**logging_config)
            root.handlers[:] = handlers
            root.setLevel(level)

    def many(self, *commands: Sequence[str], env: dict[str, str] | None = None) -> list[Result]:
        return [self(*args, env=env) for args in commands]

    def spawn_many(
        self, *commands: Sequence[str], env: dict[str, str] | None = None
    ) -> list[Result]:
        """The console script in subprocesses, all started at once."""
        procs = [
            (
                args,
                subprocess.Popen(
                    [satellite_exe(), "--config", str(self.config), *args],
                    stdout=subprocess.PIPE,
                    stderr=subprocess.PIPE,
                    stdin=subprocess.DEVNULL,
                    text=True,
                    env=self.env(env),
                ),
            )
            for args in commands
        ]
        results = []
        for args, proc in procs:
            try:
                out, err = proc.communicate(timeout=TIMEOUT)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.communicate()
                raise
            results.append(Result(args, proc.returncode, out, err))
        return results

    def spawn(self, *args: str, env: dict[str, str] | None = None) -> Result:
        return self.spawn_many(args, env=env)[0]


def toml_config(path: Path, state_dir: Path | None, dsn: str | None, extra: str = "") -> Path:
    lines = []
    if state_dir is not None:
        lines.append(f"state_dir = {json.dumps(str(state_dir))}")
    lines.append('listen = ["127.0.0.1:0"]')
    if dsn is not None:
        lines += ["[database]", f"dsn = {json.dumps(dsn)}"]
    path.write_text("\n".join(lines) + "\n" + extra, encoding="utf-8")
    return path


def sync_config(path: Path, state_dir: Path, dsn: str, role: str, spool: Path) -> Path:
    path.write_text(
        f'role = "{role}"\n'
        f"state_dir = {json.dumps(str(state_dir))}\n"
        'listen = ["127.0.0.1:0"]\n'
        f"[database]\ndsn = {json.dumps(dsn)}\n"
        f"[sync]\nspool_dir = {json.dumps(str(spool))}\n",
        encoding="utf-8",
    )
    return path


def query(dsn: str, sql: str, *args: Any) -> list[asyncpg.Record]:
    async def go() -> list[asyncpg.Record]:
        conn = await asyncpg.connect(dsn)
        try:
            return list(await conn.fetch(sql, *args))
        finally:
            await conn.close()

    return asyncio.run(go())


def agent_exe() -> str:
    return str(Path(sys.executable).parent / "satellite-agent")


class AgentCli:
    """Runs ``satellite-agent --state-dir DIR ...`` in a subprocess, without blocking the
    event loop (the daemon it talks to may run in this process)."""

    def __init__(self, state_dir: Path) -> None:
        self.state_dir = state_dir

    async def __call__(self, *args: str, env: dict[str, str] | None = None) -> tuple[int, str, str]:
        proc = await asyncio.create_subprocess_exec(
            agent_exe(),
            "--state-dir",
            str(self.state_dir),
            *args,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
            stdin=asyncio.subprocess.DEVNULL,
            env={k: v for k, v in os.environ.items() if not k.startswith("SATELLITE")}
            | (env or {}),
        )
        out, err = await asyncio.wait_for(proc.communicate(), TIMEOUT)
        assert proc.returncode is not None
        return proc.returncode, out.decode(), err.decode()

    async def ok(self, *args: str) -> str:
        code, out, err = await self(*args)
        assert code == 0, (args, out, err)
        return out
