"""The embedded PostgreSQL's socket is private (trust authentication is only as safe as
the socket is unreachable), and a stop stops the server even after holders died."""

from __future__ import annotations

import json
import os
import stat
import subprocess
from pathlib import Path

import pytest

from satellite.storage.embedded import MAX_SOCKET_PATH, SOCKET_NAME, EmbeddedPostgres, alive

_CONNECT = (
    "import socket, sys\n"
    "s = socket.socket(socket.AF_UNIX)\n"
    "try:\n"
    "    s.connect(sys.argv[1])\n"
    "except OSError:\n"
    "    sys.exit(3)\n"
)


def _postmaster(pgdata: Path) -> tuple[int, Path]:
    lines = (pgdata / "postmaster.pid").read_text().splitlines()
    return int(lines[0]), Path(lines[4])


def _server_uid(pid: int) -> int:
    return Path(f"/proc/{pid}").stat().st_uid


def _assert_private(socket_dir: Path, pid: int) -> None:
    info = socket_dir.stat()
    assert stat.S_IMODE(info.st_mode) == 0o700, oct(info.st_mode)
    assert info.st_uid == _server_uid(pid)
    socket_file = (socket_dir / SOCKET_NAME).stat()
    assert stat.S_ISSOCK(socket_file.st_mode)
    assert stat.S_IMODE(socket_file.st_mode) & 0o077 == 0, oct(socket_file.st_mode)


def _another_user_can_connect(socket_path: Path) -> bool:
    """As root: can ``nobody`` open a connection to the socket?"""
    done = subprocess.run(
        ["/usr/bin/python3", "-c", _CONNECT, str(socket_path)],
        user="nobody",
        capture_output=True,
        check=False,
        timeout=30,
    )
    assert done.returncode in (0, 3), done.stderr
    return done.returncode == 0


def test_a_long_state_directory_gets_a_private_socket_directory(tmp_path: Path) -> None:
    state = tmp_path / ("s" * 60) / ("t" * 60)
    assert len(os.fsencode(state / "pgdata" / SOCKET_NAME)) > MAX_SOCKET_PATH
    embedded = EmbeddedPostgres(state)
    embedded.start()
    try:
        pid, socket_dir = _postmaster(embedded.pgdata)
        assert socket_dir != embedded.pgdata.resolve()
        assert not str(socket_dir).startswith("/tmp/runtime-")
        _assert_private(socket_dir, pid)
        if os.geteuid() == 0:
            assert not _another_user_can_connect(socket_dir / SOCKET_NAME)
    finally:
        embedded.stop()
    assert not alive(pid)
    assert not socket_dir.exists()  # the temporary directory went with the server


@pytest.mark.skipif(os.geteuid() != 0, reason="needs root to try as another user")
def test_another_local_user_cannot_reach_the_socket(tmp_path: Path) -> None:
    embedded = EmbeddedPostgres(tmp_path / "state")
    embedded.start()
    try:
        pid, socket_dir = _postmaster(embedded.pgdata)
        assert socket_dir == embedded.pgdata.resolve()
        _assert_private(socket_dir, pid)
        assert not _another_user_can_connect(socket_dir / SOCKET_NAME)
    finally:
        embedded.stop()


def test_a_stop_stops_the_server_though_other_holders_died(tmp_path: Path) -> None:
    embedded = EmbeddedPostgres(tmp_path / "state")
    embedded.start()
    pid, _ = _postmaster(embedded.pgdata)
    # A process that held it and was killed -9 (so never let go): its pid stays listed.
    gone = subprocess.Popen(["/bin/true"])
    gone.wait()
    handles = embedded.pgdata / ".handle_pids.json"
    handles.write_text(json.dumps([gone.pid, *json.loads(handles.read_text())]))
    embedded.stop()
    assert not alive(pid)
    assert not (embedded.pgdata / "postmaster.pid").exists()


@pytest.mark.skipif(os.geteuid() != 0, reason="the wheel changes modes only when run as root")
def test_directories_above_the_data_stay_unlistable_by_others(tmp_path: Path) -> None:
    above = tmp_path / "home"
    above.mkdir(mode=0o700)
    state = above / "state"
    state.mkdir(mode=0o700)
    server = EmbeddedPostgres(state)
    try:
        server.start()  # (it connects, to create the database)
        # The server's own user may pass through (it must, to reach its data); nobody
        # else may read what is in there, as before the server started.
        assert stat.S_IMODE(above.stat().st_mode) == 0o711
        assert stat.S_IMODE(state.stat().st_mode) == 0o711
    finally:
        server.stop()
