"""SLR with the real command lines: ``satellite-agent license smart reservation ...`` (the
reference's grammar) and ``satellite reservation ...`` (in process), codes carried between
them; and ``install-file`` from file:// and from an in-process SFTP server (password and key)."""

from __future__ import annotations

import asyncio
import base64
import json
import os
import sys
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path

import asyncssh
import pytest
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec

from satellite.crypto.keys import KeyPaths
from satellite.domain.access import host_operator
from satellite.domain.compliance import LineValues
from satellite.wiring import Runtime, open_services
from satellite_agent.client import Agent, AgentError
from satellite_agent.reservation import SftpOptions, fetch_code_file
from satellite_protocol.crypto.slr import (
    CodeError,
    Entitlement,
    issue_authorization_code,
    verify_authorization_code,
)
from tests.conftest import ENHANCED, Api
from tests.helpers.api import licenses, new_product, reserved_code, setup_pool
from tests.helpers.cli import Cli

TIMEOUT = 60


async def run(*argv: str, env: dict[str, str] | None = None) -> tuple[int, str, str]:
    proc = await asyncio.create_subprocess_exec(
        *argv,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        stdin=asyncio.subprocess.DEVNULL,
        env={k: v for k, v in os.environ.items() if not k.startswith("SATELLITE")} | (env or {}),
    )
    out, err = await asyncio.wait_for(proc.communicate(), TIMEOUT)
    assert proc.returncode is not None
    return proc.returncode, out.decode(), err.decode()


@dataclass
class Clis:
    product: Path
    config: Path
    # In-process commands share this process's stdout and stderr (click's runner swaps
    # them): two at once would read each other's output, so they take turns.
    in_process: asyncio.Lock = field(default_factory=asyncio.Lock)

    async def agent(self, *args: str, ok: bool = True, **env: str) -> tuple[int, str, str]:
        exe = str(Path(sys.executable).parent / "satellite-agent")
        result = await run(exe, "--state-dir", str(self.product), *args, env=env)
        if ok:
            assert result[0] == 0, (args, result)
        return result

    async def admin(self, *args: str, ok: bool = True) -> tuple[int, str, str]:
        """``satellite --config CONFIG ...``, in this process."""
        async with self.in_process:
            done = await asyncio.to_thread(Cli(self.config, self.config.parent), *args)
        result = (done.code, done.out, done.err)
        if ok:
            assert result[0] == 0, (args, result)
        return result


def one_error(result: tuple[int, str, str]) -> str:
    code, _, err = result
    assert code != 0
    lines = err.splitlines()
    assert len(lines) == 1, err
    assert lines[0].startswith("error: "), err
    return lines[0]


@pytest.fixture
def clis(tmp_path: Path, state_dir: Path, db_dsn: str) -> Clis:
    config = tmp_path / "satellite.toml"
    config.write_text(
        f"state_dir = {json.dumps(str(state_dir))}\n[database]\ndsn = {json.dumps(db_dsn)}\n"
    )
    return Clis(tmp_path / "product", config)


async def test_both_command_lines_end_to_end(clis: Clis, tmp_path: Path, runtime: Runtime) -> None:
    operator = host_operator("pytest")
    async with open_services(runtime) as services:
        await services.accounts.create_account(operator, "Acme", "", False)
        await services.accounts.create_virtual_account(operator, "Acme", "Voice", "")
        await services.licenses.add_line(
            operator, "Acme", "Voice", LineValues(ENHANCED, 4, "PERPETUAL", None, None, None, None)
        )

        async def reserved() -> int:
            _, lines = await services.licenses.positions(operator, "Acme", None)
            return lines[0].reserved

        (_, key, _), (_, _, _), (_, grammar, _) = await asyncio.gather(
            clis.admin("reservation", "signing-key"),
            clis.agent("init", "--pid", "UCM", "--serial", "CLI0001"),
            run(str(Path(sys.executable).parent / "satellite-agent"),
                "license", "smart", "reservation", "--help"),
        )  # fmt: skip
        for command in (
            "enable", "disable", "request", "install", "install-file", "cancel", "return",
            "return-authorization", "trust",
        ):  # fmt: skip
            assert f"  {command} " in grammar, grammar
        (tmp_path / "server.pub").write_text(key)
        await clis.agent("license", "smart", "reservation", "trust", str(tmp_path / "server.pub"))
        _, out, _ = await clis.agent("license", "smart", "reservation", "enable")
        assert "reservation in progress" in out
        _, request, _ = await clis.agent("license", "smart", "reservation", "request")
        code_file = tmp_path / "code.xml"
        _, out, _ = await clis.admin(
            "reservation", "reserve", "Acme", "Voice", "--code", request.strip(),
            "--license", f"{ENHANCED}=3", "--out", str(code_file), "--json",
        )  # fmt: skip
        issued = json.loads(out)["authorizationCodes"][0]
        assert issued["reservation"]["status"] == "Pending Confirmation"
        assert await reserved() == 3

        # A tampered code is refused with one line; then the file, by file://.
        tampered = code_file.read_text().replace("<count>3</count>", "<count>4</count>")
        error = one_error(
            await clis.agent("license", "smart", "reservation", "install", tampered, ok=False)
        )
        assert "signature does not verify" in error
        _, out, _ = await clis.agent(
            "license", "smart", "reservation", "install-file", code_file.as_uri()
        )
        assert "Authorization code installed successfully." in out
        confirmation = out.strip().splitlines()[-1]
        (_, out, _), (_, usage, _) = await asyncio.gather(
            clis.agent("status", "--json"),
            clis.agent("usage", "update", "--usage", f"{ENHANCED}=4"),
        )
        status = json.loads(out)
        assert status["registration"] == "registered - specific license reservation"
        assert status["reservation"]["authorized"] == {ENHANCED: 3}
        assert status["mayAddUsers"] is True
        assert "OUT_OF_COMPLIANCE" in usage  # checked on the product, nothing sent

        (_, confirmed, _), (_, out, _) = await asyncio.gather(
            clis.admin("reservation", "confirm", "Acme", "Voice", confirmation),
            clis.agent("license", "smart", "reservation", "return"),
        )
        assert "Reserved" in confirmed
        return_code = out.strip().splitlines()[-1]
        _, out, _ = await clis.admin(
            "reservation", "return", "Acme", "Voice", return_code, "--json"
        )
        assert json.loads(out)["device"]["status"] == "Removed"
        assert await reserved() == 0


async def test_update_code_force_remove_and_export_keys_from_the_host(
    clis: Clis, admin: Api, tmp_path: Path, state_dir: Path
) -> None:
    await setup_pool(admin, {"entitlementTag": ENHANCED, "quantity": 5})
    product = new_product(tmp_path, state_dir, "CLI0009")
    product.enable()
    _, out, _ = await clis.admin(
        "reservation", "reserve", "Acme", "Voice", "--code", product.request(),
        "--license", f"{ENHANCED}=2", "--json",
    )  # fmt: skip
    [issued] = json.loads(out)["authorizationCodes"]
    product_id = issued["productInstanceId"]
    _, confirmed, _ = await clis.admin(
        "reservation", "confirm", "Acme", "Voice", product.install(issued["authorizationCode"])
    )
    assert "Reserved" in confirmed

    updated_file = tmp_path / "updated.xml"
    _, out, _ = await clis.admin(
        "reservation", "update", "Acme", "Voice", product_id,
        "--license", f"{ENHANCED}=3", "--out", str(updated_file), "--json",
    )  # fmt: skip
    [updated] = json.loads(out)["authorizationCodes"]
    assert updated["reservation"]["status"] == "In Transition"
    assert updated_file.read_text() == updated["authorizationCode"] + "\n"
    # The latest code, printed or written: the one the update issued.
    code_file = tmp_path / "latest.xml"
    (_, printed, _), (_, written, _) = await asyncio.gather(
        clis.admin("reservation", "code", "Acme", "Voice", product_id),
        clis.admin("reservation", "code", "Acme", "Voice", product_id, "--out", str(code_file)),
    )
    assert printed == updated["authorizationCode"] + "\n"
    assert written == f"authorization code written to {code_file}\n"
    assert code_file.read_text() == printed

    # Export keys of the product: none (its reservation holds no export key license).
    (_, keys, _), (_, table, _) = await asyncio.gather(
        clis.admin("export", "list", "Acme", "Voice", "--product", product_id, "--all", "--json"),
        clis.admin("export", "list", "Acme", "Voice", "--product", product_id),
    )
    assert json.loads(keys) == {"totalRecords": 0, "exportKeys": []}
    assert table.split() == ["FEATURE", "PRODUCT", "UDI", "STATUS", "GRANTED", "ENDED", "KEY", "ID"]

    _, listed, _ = await clis.admin("reservation", "list", "Acme", "Voice")
    [header, row] = listed.splitlines()
    assert header.split() == ["PRODUCT", "UDI", "TYPE", "RESERVATION", "RESERVED", "CREATED"]
    assert row.startswith(f"{product_id}  PID:UCM SN:CLI0009  UCM   In Transition")

    _, out, _ = await clis.admin(
        "reservation", "force-remove", "Acme", "Voice", product_id, "--reason", "RMA 42", "--json"
    )
    (_, active, _), (_, every, _) = await asyncio.gather(
        clis.admin("reservation", "list", "Acme", "Voice", "--json"),
        clis.admin("reservation", "list", "Acme", "Voice", "--all", "--json"),
    )
    assert json.loads(active) == {"totalRecords": 0, "reservations": []}
    [ended] = json.loads(every)["reservations"]
    assert (ended["status"], ended["reservation"]["status"]) == ("Removed", "Removed")
    removed = json.loads(out)
    assert removed["device"]["status"] == "Removed"
    assert removed["message"].startswith(f"product instance {product_id} force-removed; released:")
    error = one_error(
        await clis.admin("reservation", "code", "Acme", "Voice", product_id, ok=False)
    )
    assert product_id in error


# --- install-file over SFTP ----------------------------------------------------------------


@dataclass
class SftpServer:
    port: int
    known_hosts: Path
    client_key: Path


@pytest.fixture
async def sftp_server(tmp_path: Path) -> AsyncIterator[SftpServer]:
    """An SFTP server on 127.0.0.1: user 'ops' with password 'pass-w0rd' or a key."""
    root = tmp_path / "sftp-root"
    root.mkdir()
    host_key = asyncssh.generate_private_key("ssh-ed25519")
    client_key = asyncssh.generate_private_key("ssh-ed25519")
    client_key_file = tmp_path / "id_ed25519"
    client_key.write_private_key(str(client_key_file))

    class Server(asyncssh.SSHServer):
        def begin_auth(self, username: str) -> bool:
            return True

        def password_auth_supported(self) -> bool:
            return True

        def validate_password(self, username: str, password: str) -> bool:
            return username == "ops" and password == "pass-w0rd"

    class Root(asyncssh.SFTPServer):
        def __init__(self, chan: asyncssh.SSHServerChannel[bytes]) -> None:
            super().__init__(chan, chroot=str(root).encode())

    server = await asyncssh.listen(
        "127.0.0.1",
        0,
        server_factory=Server,
        server_host_keys=[host_key],
        authorized_client_keys=asyncssh.import_authorized_keys(
            client_key.export_public_key().decode()
        ),
        sftp_factory=Root,
        allow_scp=False,
    )
    port = server.sockets[0].getsockname()[1]
    known_hosts = tmp_path / "known_hosts"
    known_hosts.write_text(f"[127.0.0.1]:{port} {host_key.export_public_key().decode()}")
    try:
        yield SftpServer(port, known_hosts, client_key_file)
    finally:
        server.close()
        await server.wait_closed()


async def test_install_file_over_sftp_with_password_and_key(
    admin: Api, state_dir: Path, tmp_path: Path, sftp_server: SftpServer
) -> None:
    await setup_pool(admin, {"entitlementTag": ENHANCED, "quantity": 5})
    by_password = new_product(tmp_path, state_dir, "SFTP01")
    by_key = new_product(tmp_path, state_dir, "SFTP02")
    for number, product in enumerate((by_password, by_key), start=1):
        product.enable()
        code, _ = await reserved_code(admin, product.request(), enhanced=number)
        (tmp_path / "sftp-root" / f"code{number}.txt").write_text(code)
    base = f"sftp://ops@127.0.0.1:{sftp_server.port}"

    code = await fetch_code_file(
        f"{base}/code1.txt",
        SftpOptions(password="pass-w0rd", known_hosts=sftp_server.known_hosts),
    )
    assert by_password.install(code).startswith("SLRC-")
    assert by_password.authorized() == {ENHANCED: 1}

    impostor = tmp_path / "impostor_known_hosts"
    other = asyncssh.generate_private_key("ssh-ed25519").export_public_key().decode()
    impostor.write_text(f"[127.0.0.1]:{sftp_server.port} {other}")
    for options, reason in (
        (SftpOptions(password="wrong", known_hosts=sftp_server.known_hosts), "refused"),
        (SftpOptions(password="pass-w0rd", known_hosts=impostor), "host key"),
    ):
        with pytest.raises(AgentError, match=reason):
            await fetch_code_file(f"{base}/code2.txt", options)
    with pytest.raises(AgentError, match="cannot read"):
        await fetch_code_file(
            f"{base}/missing.txt",
            SftpOptions(identity=sftp_server.client_key, known_hosts=sftp_server.known_hosts),
        )

    # With a key, through the agent's command line.
    exe = str(Path(sys.executable).parent / "satellite-agent")
    code_, out, err = await run(
        exe,
        "--state-dir",
        str(by_key.dir.path),
        "license",
        "smart",
        "reservation",
        "install-file",
        f"{base}/code2.txt",
        "--identity",
        str(sftp_server.client_key),
        "--known-hosts",
        str(sftp_server.known_hosts),
    )
    assert code_ == 0, err
    assert "Authorization code installed successfully." in out
    assert by_key.authorized() == {ENHANCED: 2}
    assert (await licenses(admin))[ENHANCED]["reserved"] == 3
    assert KeyPaths(state_dir).signing_public.exists()


async def test_register_and_reregister_refused_while_reservation_is_enabled(
    clis: Clis, tmp_path: Path, state_dir: Path
) -> None:
    await clis.agent("init", "--pid", "UCM", "--serial", "CLI0002")
    await clis.agent("license", "smart", "reservation", "enable")
    token = "s3cret." + "A" * 43  # well-formed: refused for the reservation, not its form
    for command in ("register", "reregister"):
        error = one_error(await clis.agent(command, token, ok=False))
        assert "specific license reservation is enabled" in error, command
    # The library refuses it too (what both commands call), before any request is made.
    product = new_product(tmp_path, state_dir, "LIB0001", trust=False)
    product.enable()
    agent = Agent(product.dir.path)
    with pytest.raises(AgentError, match="specific license reservation is enabled"):
        await agent.register(token)
    assert agent.state.registration == "unregistered"


async def test_non_ascii_digits_are_refused_not_a_traceback(clis: Clis, admin: Api) -> None:
    # '²' is a digit to str.isdigit() but not to int(): a count, refused with one line.
    error = one_error(
        await clis.admin(
            "reservation",
            "reserve",
            "Acme",
            "Voice",
            "--code",
            "SLR1-X",
            "--license",
            f"{ENHANCED}=²",
            ok=False,
        )
    )
    assert "is not TAG=COUNT" in error
    await clis.agent("init", "--pid", "UCM", "--serial", "CLI0003")
    error = one_error(await clis.agent("usage", "update", "--usage", f"{ENHANCED}=²", ok=False))
    assert "is not TAG=COUNT" in error
    # A pool line id in a path: a 422 naming it, not a 500.
    status, problem = await admin.post(
        "/api/v1/accounts/Acme/virtual-accounts/Voice/license-pool/%C2%B2/delete", {}
    )
    assert status == 422, problem
    assert problem["field"] == "lineId"
    # In a (validly signed) authorization code: refused as not valid.
    key = ec.generate_private_key(ec.SECP256R1())
    entitlement = Entitlement(ENHANCED, 2, None, None, "PERPETUAL", "E", "E", "")
    issued = issue_authorization_code(key, str(uuid.uuid4()), 1, (entitlement,), "P:UCM,S:X,U:u")
    for old, new in (("<count>2</count>", "<count>²</count>"), ("<timestamp>1<", "<timestamp>¹<")):
        element = issued.text.split("<signature>")[0].removeprefix("<specificPLR>")
        assert old in element
        element = element.replace(old, new)
        signature = base64.b64encode(key.sign(element.encode(), ec.ECDSA(hashes.SHA256())))
        forged = (
            f"<specificPLR>{element}<signature>{signature.decode()}</signature>"
            "<udi>P:UCM,S:X,U:u</udi></specificPLR>"
        )
        with pytest.raises(CodeError, match="not"):
            verify_authorization_code(forged, key.public_key())
