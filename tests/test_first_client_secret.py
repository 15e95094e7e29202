"""The first system-admin client's secret and the first console user's password are for the
operator's eyes once: on the terminal (or, when standard output is the journal, in a 0600
file), never in a log; with them a newcomer signs in to the console the start names."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import re
import signal
import socket
import ssl
import stat
import subprocess
import time
from pathlib import Path

import aiohttp
import asyncpg
import pytest

from satellite.daemon import console_urls
from tests.conftest import satellite_exe
from tests.helpers.daemon import Daemon, kill_daemon, named_values, start

START_TIMEOUT = 60.0
POLL = 0.1


def config_file(tmp_path: Path, dsn: str) -> Path:
    path = tmp_path / "satellite.toml"
    path.write_text(
        f"[database]\ndsn = {json.dumps(dsn)}\n"
        # Everything the daemon can log, logged.
        '[log]\nlevel = "debug"\nformat = "json"\n',
        encoding="utf-8",
    )
    return path


def environment(tmp_path: Path, extra: dict[str, str] | None = None) -> dict[str, str]:
    env = {
        k: v
        for k, v in os.environ.items()
        if k
        not in {
            "SATELLITE_CONFIG",
            "STATE_DIRECTORY",
            "NOTIFY_SOCKET",
            "WATCHDOG_USEC",
            "JOURNAL_STREAM",
        }
    }
    env["XDG_STATE_HOME"] = str(tmp_path / "xdg-state")
    return env | (extra or {})


def secret_of(out: str) -> str:
    [secret] = [
        line.removeprefix("client_secret: ").strip()
        for line in out.splitlines()
        if line.startswith("client_secret: ")
    ]
    return secret


async def events_text(dsn: str) -> str:
    conn = await asyncpg.connect(dsn)
    try:
        rows = await conn.fetch("SELECT actor, action, target, details::text FROM events")
    finally:
        await conn.close()
    return "\n".join(" ".join(str(value) for value in row) for row in rows)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def test_serve_shows_the_first_secret_on_the_terminal_and_never_logs_it(
    tmp_path: Path, db_dsn: str
) -> None:
    out_path, err_path = tmp_path / "serve.out", tmp_path / "serve.err"
    args = [
        satellite_exe(),
        "--config",
        str(config_file(tmp_path, db_dsn)),
        "serve",
        "--state-dir",
        str(tmp_path / "state"),
        "--listen",
        f"127.0.0.1:{free_port()}",
    ]
    with out_path.open("wb") as out, err_path.open("wb") as err:
        proc = subprocess.Popen(
            args, stdout=out, stderr=err, stdin=subprocess.DEVNULL, env=environment(tmp_path)
        )
    try:
        deadline = time.monotonic() + START_TIMEOUT
        for _ in range(int(START_TIMEOUT / POLL)):
            assert proc.poll() is None, err_path.read_text()
            if "daemon.listening" in err_path.read_text() or time.monotonic() > deadline:
                break
            time.sleep(POLL)
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=30) == 0, err_path.read_text()
    finally:
        with contextlib.suppress(ProcessLookupError):
            proc.kill()
        proc.wait(timeout=30)
    log = err_path.read_text()
    assert "daemon.listening" in log
    secret = secret_of(out_path.read_text())
    assert len(secret) >= 32
    assert secret not in log
    assert secret not in asyncio.run(events_text(db_dsn))
    assert not (tmp_path / "state" / "first-client.txt").exists()


def test_init_under_the_journal_writes_the_first_secret_to_a_private_file(
    tmp_path: Path, db_dsn: str
) -> None:
    out_path, err_path = tmp_path / "init.out", tmp_path / "init.err"
    with out_path.open("wb") as out, err_path.open("wb") as err:
        info = os.fstat(out.fileno())
        done = subprocess.run(
            [
                satellite_exe(),
                "--config",
                str(config_file(tmp_path, db_dsn)),
                "init",
                "--state-dir",
                str(tmp_path / "state"),
            ],
            stdout=out,
            stderr=err,
            stdin=subprocess.DEVNULL,
            env=environment(tmp_path, {"JOURNAL_STREAM": f"{info.st_dev}:{info.st_ino}"}),
            timeout=START_TIMEOUT,
            check=False,
        )
    assert done.returncode == 0, err_path.read_text()
    written = tmp_path / "state" / "first-client.txt"
    assert stat.S_IMODE(written.stat().st_mode) == 0o600
    secret = secret_of(written.read_text())
    assert named_values(written.read_text(), "username") == ["admin"]
    [password] = named_values(written.read_text(), "password")
    assert f"written to {written}" in out_path.read_text()
    for shown in (out_path.read_text(), err_path.read_text()):
        assert secret not in shown
        assert password not in shown
    assert secret not in asyncio.run(events_text(db_dsn))
    assert password not in asyncio.run(events_text(db_dsn))


def test_a_first_client_file_left_from_before_gives_way_to_the_new_one(
    tmp_path: Path, db_dsn: str
) -> None:
    """The file of an earlier init (not deleted, as it asks) while the database is new
    again: its old secret stayed, the new one was written nowhere, yet init said so."""
    state = tmp_path / "state"
    state.mkdir(mode=0o700)
    written = state / "first-client.txt"
    written.write_text("client_id: sat-0000000000000000\nclient_secret: old\n")
    written.chmod(0o644)
    out_path = tmp_path / "init.out"
    with out_path.open("wb") as out:
        info = os.fstat(out.fileno())
        done = subprocess.run(
            [
                satellite_exe(),
                "--config",
                str(config_file(tmp_path, db_dsn)),
                "init",
                "--state-dir",
                str(state),
            ],
            stdout=out,
            stderr=subprocess.PIPE,
            stdin=subprocess.DEVNULL,
            env=environment(tmp_path, {"JOURNAL_STREAM": f"{info.st_dev}:{info.st_ino}"}),
            timeout=START_TIMEOUT,
            check=False,
        )
    assert done.returncode == 0, done.stderr
    assert f"written to {written}" in out_path.read_text()
    assert stat.S_IMODE(written.stat().st_mode) == 0o600
    [client_id] = [
        line.removeprefix("client_id: ").strip()
        for line in written.read_text().splitlines()
        if line.startswith("client_id: ")
    ]
    assert secret_of(written.read_text()) != "old"

    async def logins() -> list[str]:
        conn = await asyncpg.connect(db_dsn)
        try:
            return [r["login"] for r in await conn.fetch("SELECT login FROM principals")]
        finally:
            await conn.close()

    assert client_id in asyncio.run(logins())


async def console_sign_in(url: str, username: str, password: str, ca: Path) -> str:
    """Sign in to the console at ``url`` as a browser does; the page it leads to."""
    tls = ssl.create_default_context(cafile=str(ca))
    async with aiohttp.ClientSession(cookie_jar=aiohttp.CookieJar(unsafe=True)) as browser:
        async with browser.get(url, ssl=tls) as start:
            assert start.url.path == "/sign-in", start.url
            [csrf] = re.findall(r'name="csrf" value="([^"]+)"', await start.text())
        form = {"username": username, "password": password, "csrf": csrf}
        async with browser.post(f"{url}sign-in", data=form, ssl=tls) as signed_in:
            assert (signed_in.status, signed_in.url.path) == (200, "/accounts")
            return await signed_in.text()


async def user_logins(dsn: str) -> list[str]:
    conn = await asyncpg.connect(dsn)
    try:
        rows = await conn.fetch("SELECT login FROM principals WHERE kind = 'user'")
    finally:
        await conn.close()
    return [row["login"] for row in rows]


def started(args: list[str], tmp_path: Path) -> Daemon:
    """``satellite serve`` once it printed where its console is."""
    running = start(args, tmp_path / "logs", environment(tmp_path))
    for _ in range(int(START_TIMEOUT / POLL)):
        if "console: " in running.out or running.proc.poll() is not None:
            break
        time.sleep(POLL)
    assert "console: " in running.out, running.err
    return running


def test_a_newcomer_signs_in_to_the_console_with_the_user_the_first_start_prints(
    tmp_path: Path, db_dsn: str
) -> None:
    port = free_port()
    args = [
        "--config",
        str(config_file(tmp_path, db_dsn)),
        "serve",
        "--state-dir",
        str(tmp_path / "state"),
        "--listen",
        f"127.0.0.1:{port}",
    ]
    first: Daemon | None = None
    second: Daemon | None = None
    try:
        first = started(args, tmp_path)
        assert named_values(first.out, "console") == [f"https://127.0.0.1:{port}/"]
        [username] = named_values(first.out, "username")
        [password] = named_values(first.out, "password")
        assert len(password) >= 12
        ca = tmp_path / "state" / "keys" / "ca.crt"
        page = asyncio.run(console_sign_in(f"https://127.0.0.1:{port}/", username, password, ca))
        assert f'<span class="user">{username}</span>' in page
        assert first.stop() == 0, first.err
        assert password not in first.err
        assert password not in asyncio.run(events_text(db_dsn))

        # A second start: the user is there, no other is made, no password printed.
        second = started(args, tmp_path)
        assert "password" not in second.out
        assert "username" not in second.out
        assert named_values(second.out, "console") == [f"https://127.0.0.1:{port}/"]
        assert second.stop() == 0, second.err
    finally:
        kill_daemon(first)
        kill_daemon(second)
    assert asyncio.run(user_logins(db_dsn)) == [username]


@pytest.mark.unit
def test_the_console_urls_of_every_interface_are_the_loopbacks() -> None:
    """The default listen addresses (0.0.0.0:8443, [::]:8443) as a browser on the host
    opens them; a named address as it is."""
    every = "0.0.0.0"  # noqa: S104 (what aiohttp answers for the default address)
    bound: list[tuple[str, int] | tuple[str, int, int, int]] = [
        (every, 8443),
        ("::", 8443, 0, 0),
        ("192.0.2.7", 9443),
    ]
    assert console_urls("https", bound) == [
        "https://127.0.0.1:8443/",
        "https://[::1]:8443/",
        "https://192.0.2.7:9443/",
    ]
    assert console_urls("http", [("127.0.0.1", 80), (every, 80)]) == ["http://127.0.0.1:80/"]
