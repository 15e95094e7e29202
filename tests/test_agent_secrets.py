"""The agent never shows a secret (proxy password, a password in a URL, the token), and a
write that crashed leaves no readable secret behind: its temporary file is 0600 and the
next start removes it."""

from __future__ import annotations

import json
import os
import signal
import stat
import subprocess
import sys
from pathlib import Path

from satellite_agent.client import Agent
from satellite_agent.state import Identity

TIMEOUT = 60
PROXY_PASSWORD = "pr0xy-pa55-Zq81"
URL_PASSWORD = "url-pa55-Kd73"


def agent_cli(
    state_dir: Path, *args: str, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [
            str(Path(sys.executable).parent / "satellite-agent"),
            "--state-dir",
            str(state_dir),
            *args,
        ],
        capture_output=True,
        text=True,
        timeout=TIMEOUT,
        env={k: v for k, v in os.environ.items() if not k.startswith("SATELLITE")} | (env or {}),
        check=False,
    )


def ok(state_dir: Path, *args: str, env: dict[str, str] | None = None) -> str:
    done = agent_cli(state_dir, *args, env=env)
    assert done.returncode == 0, (args, done.stdout, done.stderr)
    return done.stdout + done.stderr


def new_state(path: Path, serial: str) -> Agent:
    agent = Agent(path)
    agent.init(
        Identity(
            pid="UCM", serial_number=serial, uuid="u", product_type="UCM", product_version="15"
        )
    )
    return agent


def test_status_shows_no_password(tmp_path: Path) -> None:
    product = tmp_path / "product"
    new_state(product, "S1")
    ok(
        product,
        "transport",
        "proxy",
        "--host",
        "127.0.0.1",
        "--port",
        "3128",
        "--user",
        "proxyuser",
        env={"SATELLITE_AGENT_PROXY_PASSWORD": PROXY_PASSWORD},
    )
    ok(product, "transport", "url", f"https://operator:{URL_PASSWORD}@satellite.example:8443")
    shown = ok(product, "status", "--json")
    assert PROXY_PASSWORD not in shown
    assert URL_PASSWORD not in shown
    transport = json.loads(shown)["transport"]
    assert transport["proxy_password"] == "set"
    assert transport["proxy_user"] == "proxyuser"
    assert transport["url"] == "https://operator:***@satellite.example:8443"
    text = ok(product, "status")
    assert PROXY_PASSWORD not in text
    assert URL_PASSWORD not in text
    # The password is still what the proxy gets: it is kept, only never shown.
    assert Agent(product).state.transport.proxy_password == PROXY_PASSWORD


def test_the_transport_commands_do_not_echo_a_password(tmp_path: Path) -> None:
    product = tmp_path / "product"
    new_state(product, "S5")
    said = ok(product, "transport", "url", f"https://operator:{URL_PASSWORD}@sat.example:8443")
    assert said.strip() == "server: https://operator:***@sat.example:8443"
    said = ok(
        product, "transport", "proxy", "--host", f"bob:{URL_PASSWORD}@proxy", "--port", "3128"
    )
    assert said.strip() == "proxy: http://bob:***@proxy:3128"


def test_errors_show_no_password_and_no_token(tmp_path: Path) -> None:
    product = tmp_path / "product"
    new_state(product, "S2")
    ok(product, "transport", "url", f"http://operator:{URL_PASSWORD}@127.0.0.1:9")
    token_secret = "Tk9sZWFrLXRoaXMtc2VjcmV0LXBsZWFzZQ"
    token = f"{token_secret}.{'A' * 43}"
    done = agent_cli(product, "register", token)
    assert done.returncode != 0
    assert "cannot reach http://operator:***@127.0.0.1:9" in done.stderr
    for shown in (done.stdout, done.stderr):
        assert URL_PASSWORD not in shown
        assert token_secret not in shown
    assert "Traceback" not in done.stderr


# Dies in the middle of writing a new key, as a full disk or a kill would stop it: the
# file-size limit makes the kernel end the process (SIGXFSZ) once the temporary file holds
# its first bytes of the key, before the rename. The umask would let anyone read a file
# created with the default mode.
_CRASHING_WRITER = """
import os, resource, signal, sys
from pathlib import Path
from satellite_agent.state import StateDir

signal.signal(signal.SIGXFSZ, signal.SIG_DFL)  # (Python ignores it: a handled error, no crash)
os.umask(0)
state_dir = StateDir(Path(sys.argv[1]))
key = state_dir.new_key()
soft, hard = resource.getrlimit(resource.RLIMIT_FSIZE)
resource.setrlimit(resource.RLIMIT_FSIZE, (64, hard))
state_dir.save_key(key)
"""


def test_a_crashed_key_write_leaves_a_private_file_that_the_next_start_removes(
    tmp_path: Path,
) -> None:
    product = tmp_path / "product"
    new_state(product, "S3")
    done = subprocess.run(
        [sys.executable, "-c", _CRASHING_WRITER, str(product)],
        capture_output=True,
        timeout=TIMEOUT,
        check=False,
    )
    assert done.returncode == -signal.SIGXFSZ, done.stderr
    [leftover] = [p for p in product.iterdir() if p.name.startswith(".key.pem.")]
    assert leftover.read_bytes().startswith(b"-----BEGIN PRIVATE KEY")
    assert stat.S_IMODE(leftover.stat().st_mode) == 0o600
    assert not (product / "key.pem").exists()

    ok(product, "status")  # the next start of the agent
    assert not leftover.exists()
    assert sorted(p.name for p in product.iterdir()) == ["state.json", "state.lock"]


def test_the_library_removes_leftovers_when_it_first_writes(tmp_path: Path) -> None:
    product = tmp_path / "product"
    new_state(product, "S4")
    leftover = product / ".state.json.k2j4h1"
    leftover.write_text('{"transport": {"proxy_password": "left-behind"}}')
    other = product / "notes.txt"  # not the agent's: stays
    other.write_text("mine")
    agent = Agent(product)
    agent.update(lambda state: None)
    assert not leftover.exists()
    assert other.read_text() == "mine"


def test_a_damaged_state_file_is_one_line(tmp_path: Path) -> None:
    """A state file cut short (a full disk under an older version), or not the agent's."""
    product = tmp_path / "product"
    new_state(product, "S6")
    for damaged in (b'{"identity": {', b"\xff\xfe", b"[]", b"{}"):
        (product / "state.json").write_bytes(damaged)
        done = agent_cli(product, "status")
        assert done.returncode != 0
        assert done.stderr.count("\n") == 1, done.stderr[-300:]
        assert "not an agent state" in done.stderr
