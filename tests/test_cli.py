"""The ``satellite`` command against a real PostgreSQL: in process, and as the console script
in subprocesses where the process is the point (init, exit codes, the terminal, the
embedded server)."""

from __future__ import annotations

import getpass
import ipaddress
import os
import socket
import stat
import subprocess
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from satellite.resources import migrations_dir
from tests.conftest import ENHANCED, satellite_exe
from tests.helpers.cli import Cli, query, toml_config
from tests.helpers.daemon import named_values

VERSIONS = sorted(int(p.name.split("_")[0]) for p in migrations_dir().glob("*.sql"))
SCHEMA_VERSION = VERSIONS[-1]
TIMEOUT = 60


def _snapshot(root: Path) -> dict[str, bytes]:
    return {
        str(p.relative_to(root)): p.read_bytes()
        for sub in ("keys", "tls")
        for p in sorted((root / sub).rglob("*"))
        if p.is_file()
    }


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


# --- init and migrate ----------------------------------------------------------------------


def test_init_creates_keys_once_and_prints_credentials_once(tmp_path: Path, fresh_db: str) -> None:
    state = tmp_path / "state"
    cli = Cli(toml_config(tmp_path / "satellite.toml", state, fresh_db), tmp_path)

    first = cli.spawn("init", "--tls-hostname", "localhost", "--tls-hostname", "127.0.0.1").ok()
    client_ids = named_values(first.out, "client_id")
    secrets = named_values(first.out, "client_secret")
    assert len(client_ids) == 1, first.out
    assert client_ids[0]
    assert len(secrets) == 1, first.out
    assert len(secrets[0]) >= 20
    assert "migration applied: 001_init" in first.out

    keys = state / "keys"
    for name in ("ca.key", "signing.key", "token.key"):
        assert _mode(keys / name) == 0o600, name
    assert (keys / "ca.crt").is_file()
    for name in ("ca.key", "signing.key"):
        key = serialization.load_pem_private_key((keys / name).read_bytes(), password=None)
        assert isinstance(key, ec.EllipticCurvePrivateKey)
        assert key.curve.name == "secp256r1"
    ca = x509.load_pem_x509_certificate((keys / "ca.crt").read_bytes())
    ca_key = serialization.load_pem_private_key((keys / "ca.key").read_bytes(), password=None)
    assert ca.public_key() == ca_key.public_key()
    assert ca.extensions.get_extension_for_class(x509.BasicConstraints).value.ca

    # HTTPS: a certificate from the server's CA, for the names asked and the host's own.
    assert _mode(state / "tls" / "server.key") == 0o600
    tls = x509.load_pem_x509_certificate((state / "tls" / "server.crt").read_bytes())
    assert tls.issuer == ca.subject
    sans = tls.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert {"localhost", socket.gethostname().lower()} <= set(
        sans.get_values_for_type(x509.DNSName)
    )
    assert {ipaddress.ip_address("127.0.0.1"), ipaddress.ip_address("::1")} <= set(
        sans.get_values_for_type(x509.IPAddress)
    )
    assert f"--cacert {keys / 'ca.crt'}" in first.out
    assert "https" in first.out

    rows = query(fresh_db, "SELECT kind, login, role, secret_digest FROM principals ORDER BY id")
    assert [(r["kind"], r["login"], r["role"]) for r in rows] == [
        ("client", client_ids[0], "system-admin"),
        ("user", "admin", "system-admin"),  # the console's first user
    ]
    assert secrets[0].encode() not in bytes(rows[0]["secret_digest"])
    assert named_values(first.out, "username") == ["admin"]
    [password] = named_values(first.out, "password")
    assert len(password) >= 12

    before = _snapshot(state)
    # Again, this time naming the state directory on the command line instead of the config,
    # and a name the certificate lacks: it is issued again (same key), no key is touched.
    cli.config = toml_config(tmp_path / "no-state-dir.toml", None, fresh_db)
    second, migrated = cli.spawn_many(
        ["init", "--state-dir", str(state), "--tls-hostname", "other.example.net"],
        ["--state-dir", str(state), "migrate"],
    )
    second.ok()
    assert f"state directory: {state}" in second.out
    assert "client_secret" not in second.out
    assert "client_id" not in second.out
    assert "password" not in second.out
    assert "migration applied" not in second.out
    after = _snapshot(state)
    renewed = x509.load_pem_x509_certificate(after.pop("tls/server.crt"))
    assert "other.example.net" in renewed.extensions.get_extension_for_class(
        x509.SubjectAlternativeName
    ).value.get_values_for_type(x509.DNSName)
    del before["tls/server.crt"]
    assert after == before
    assert len(query(fresh_db, "SELECT 1 FROM principals")) == 2

    migrated.ok()
    assert f"schema is at version {SCHEMA_VERSION}" in migrated.out
    assert "migration applied" not in migrated.out


def test_first_credentials_never_go_to_the_journal(tmp_path: Path, fresh_db: str) -> None:
    """Under systemd stdout is the journal: the secret goes to a private file instead."""
    state = tmp_path / "state"
    config = toml_config(tmp_path / "satellite.toml", state, fresh_db)
    journal = tmp_path / "journal"
    with journal.open("w") as out:
        info = os.fstat(out.fileno())
        env = Cli(config, tmp_path).env({"JOURNAL_STREAM": f"{info.st_dev}:{info.st_ino}"})
        result = subprocess.run(
            [satellite_exe(), "--config", str(config), "init"],
            stdout=out,
            stderr=subprocess.PIPE,
            stdin=subprocess.DEVNULL,
            text=True,
            env=env,
            timeout=TIMEOUT,
            check=False,
        )
    assert result.returncode == 0, result.stderr
    logged = journal.read_text()
    assert "client_secret" not in logged
    assert "password" not in logged
    saved = state / "first-client.txt"
    assert str(saved) in logged
    assert _mode(saved) == 0o600
    assert len(named_values(saved.read_text(), "client_secret")) == 1
    assert len(named_values(saved.read_text(), "client_id")) == 1
    assert len(named_values(saved.read_text(), "password")) == 1


def test_migrate_applies_the_schema_and_reports_its_version(tmp_path: Path, fresh_db: str) -> None:
    cli = Cli(toml_config(tmp_path / "satellite.toml", tmp_path / "state", fresh_db), tmp_path)
    result = cli("migrate").ok()
    assert "migration applied: 001_init" in result.out
    assert f"schema is at version {SCHEMA_VERSION}" in result.out
    rows = query(fresh_db, "SELECT version FROM schema_migrations ORDER BY version")
    assert [r["version"] for r in rows] == VERSIONS


# --- administration ------------------------------------------------------------------------


def test_administration_commands(tmp_path: Path, db_dsn: str, state_dir: Path) -> None:
    cli = Cli(toml_config(tmp_path / "satellite.toml", state_dir, db_dsn), tmp_path)
    operator = f"host:{getpass.getuser()}"

    created = cli("account", "create", "Acme", "--export-controlled", "--json").json()
    assert created["account"]["name"] == "Acme"
    assert created["account"]["exportControlledAllowed"] is True

    accounts, va_created, client, user, duplicate = cli.many(
        ["account", "list", "--json"],
        ["va", "create", "Acme", "Lab", "--description", "the lab", "--json"],
        ["client", "create", "--role", "account-viewer", "--account", "Acme", "--json"],
        ["user", "create", "alice", "--role", "account-admin", "--account", "Acme", "--json"],
        ["account", "create", "Acme"],
        env={"SATELLITE_PASSWORD": "correct horse battery"},
    )
    listed = accounts.json()
    assert set(listed) == {"accounts"}
    assert [a["name"] for a in listed["accounts"]] == ["Acme"]
    assert va_created.json()["virtualAccounts"][0]["name"] == "Lab"
    assert "Acme" in duplicate.one_error_line()

    new_client = client.json()
    assert new_client["client"]["role"] == "account-viewer"
    assert new_client["client"]["accounts"] == ["Acme"]
    assert new_client["clientId"]
    assert new_client["clientSecret"]
    new_user = user.json()["item"]
    assert (new_user["name"], new_user["role"], new_user["accounts"]) == (
        "alice",
        "account-admin",
        ["Acme"],
    )
    stored = query(db_dsn, "SELECT password_hash FROM principals WHERE login = 'alice'")
    assert stored[0]["password_hash"].startswith("$argon2")
    assert "correct horse" not in stored[0]["password_hash"]

    added, token_created, vas = cli.many(
        ["license", "add", "Acme", "Lab", "--tag", ENHANCED, "--quantity", "10", "--json"],
        ["token", "create", "Acme", "Lab", "--description", "ci", "--expires-after-days", "7",
         "--json"],
        ["va", "list", "Acme", "--json"],
    )  # fmt: skip
    line = added.json()["license"]
    assert (line["entitlementTag"], line["quantity"], line["licenseType"]) == (
        ENHANCED,
        10,
        "PERPETUAL",
    )
    info = token_created.json()["tokenInfo"]
    token = info["token"]
    assert info["description"] == "ci"
    assert info["exportControlled"] == "Allowed"  # the account may use it: on by default
    assert {v["name"] for v in vas.json()["virtualAccounts"]} == {"DEFAULT", "Lab"}
    ciphertexts = query(db_dsn, "SELECT token_ciphertext FROM registration_tokens")
    assert len(ciphertexts) == 1
    assert token.encode() not in bytes(ciphertexts[0]["token_ciphertext"])

    pool, positions, revoked, refused = cli.many(
        ["license", "pool", "Acme", "Lab", "--json"],
        ["license", "list", "Acme"],
        ["token", "revoke", "Acme", "Lab", token],
        ["va", "delete", "Acme", "Lab"],
    )
    assert [(p["id"], p["quantity"]) for p in pool.json()["licenses"]] == [(line["id"], 10)]
    table = positions.ok().out.splitlines()
    assert table[0].split()[:2] == ["VIRTUAL", "ACCOUNT"]
    assert len(table) == 2
    assert "UC Manager Enhanced License (12.x)" in table[1]
    assert "In Compliance" in table[1]
    assert table[1].split()[:2] == ["Lab", "UC"]
    assert "  10  " in table[1]  # quantity
    assert "1 token(s) revoked" in revoked.ok().out
    assert "Lab" in refused.one_error_line()  # still holds licenses

    tokens, removed = cli.many(
        ["token", "list", "Acme", "Lab", "--json"],
        ["license", "remove", "Acme", "Lab", str(line["id"])],
    )
    assert [(t["token"], t["status"]) for t in tokens.json()["tokens"]] == [(token, "Revoked")]
    removed.ok()
    assert query(db_dsn, "SELECT 1 FROM license_lines") == []

    cli("va", "delete", "Acme", "Lab").ok()
    remaining = query(
        db_dsn,
        "SELECT v.name FROM virtual_accounts v JOIN accounts a ON a.id = v.account_id "
        "WHERE a.name = 'Acme'",
    )
    assert [r["name"] for r in remaining] == ["DEFAULT"]

    # Alerts are paged as the API pages them, with how many there are.
    first, beyond = cli.many(
        ["alert", "list", "Acme", "--all", "--limit", "1", "--json"],
        ["alert", "list", "Acme", "--all", "--offset", "1000", "--json"],
    )
    total = first.json()["totalRecords"]
    assert len(first.json()["alerts"]) == min(total, 1)
    assert beyond.json() == {"totalRecords": total, "alerts": []}

    log = cli("events", "--json").json()
    actions = {e["action"] for e in log["events"]}
    assert {
        "account.created",
        "virtual_account.created",
        "virtual_account.deleted",
        "license.added",
        "license.removed",
        "token.created",
        "token.revoked",
        "client.created",
        "user.created",
    } <= actions
    assert log["totalRecords"] == len(log["events"])
    assert {e["actor"] for e in log["events"]} == {operator}


# --- errors --------------------------------------------------------------------------------


def test_errors_are_one_line_with_a_non_zero_exit(
    tmp_path: Path, db_dsn: str, state_dir: Path
) -> None:
    good = Cli(toml_config(tmp_path / "good.toml", state_dir, db_dsn), tmp_path)
    bad_config = toml_config(tmp_path / "bad.toml", state_dir, db_dsn, "foo = 1\n")
    empty = tmp_path / "never-initialized"
    uninitialized = toml_config(tmp_path / "uninit.toml", empty, None)
    no_keys = toml_config(tmp_path / "nokeys.toml", tmp_path / "no-keys", db_dsn)

    unknown, usage, config_error, uninit_error, no_keys_error = good.spawn_many(
        ["va", "list", "NoSuchAccount"],
        ["account", "frobnicate"],
        ["--config", str(bad_config), "account", "list"],
        ["--config", str(uninitialized), "account", "list"],
        ["--config", str(no_keys), "account", "list"],
    )
    assert "NoSuchAccount" in unknown.one_error_line()
    assert unknown.out == ""
    assert "frobnicate" in usage.one_error_line()
    assert "database.foo" in config_error.one_error_line()
    assert "satellite init" in uninit_error.one_error_line()
    assert not (empty / "pgdata").exists()  # no embedded server started for nothing
    assert "satellite init" in no_keys_error.one_error_line()


def test_a_tls_hostname_that_cannot_be_one_is_refused_before_anything_is_made(
    tmp_path: Path, db_dsn: str
) -> None:
    state = tmp_path / "state"
    cli = Cli(toml_config(tmp_path / "satellite.toml", state, db_dsn), tmp_path)
    plain = toml_config(tmp_path / "plain.toml", state, db_dsn, "[tls]\nplain_http = true\n")
    bad, link_local, not_managed = cli.spawn_many(
        ["init", "--tls-hostname", "under_score.example.net"],
        ["init", "--tls-hostname", "fe80::1"],
        ["--config", str(plain), "init", "--tls-hostname", "satellite.example.net"],
    )
    assert "under_score.example.net" in bad.one_error_line()
    assert "fe80::1" in link_local.one_error_line()
    assert "tls.plain_http" in not_managed.one_error_line()
    assert not state.exists()


def test_user_create_without_password_or_terminal_is_one_line(
    tmp_path: Path, db_dsn: str, state_dir: Path
) -> None:
    cli = Cli(toml_config(tmp_path / "satellite.toml", state_dir, db_dsn), tmp_path)
    result = cli.spawn("user", "create", "bob", "--role", "system-admin")
    # No --password, no $SATELLITE_PASSWORD and no terminal to ask on: refused, readably.
    assert query(db_dsn, "SELECT 1 FROM principals WHERE login = 'bob'") == []
    assert "password" in result.one_error_line().lower()


def test_an_embedded_database_that_cannot_start_is_one_line(tmp_path: Path) -> None:
    state = tmp_path / "state"
    cli = Cli(toml_config(tmp_path / "embedded.toml", state, None), tmp_path)
    cli.spawn("init").ok()
    conf = state / "pgdata" / "postgresql.conf"
    conf.write_text(conf.read_text() + "this is not = a setting\n")
    line = cli.spawn("account", "list").one_error_line()
    # PostgreSQL's own reason, from its log, rather than the command that failed.
    assert "configuration file" in line, line
    assert "pg_ctl" not in line, line


def test_a_name_or_description_that_cannot_be_one_is_refused_in_words(
    tmp_path: Path, db_dsn: str, state_dir: Path
) -> None:
    """A name with a slash, a control character or over 100 characters, or a description
    over 500, is refused with the rule it breaks (as the services word it), not a pattern
    or a length; nothing is made."""
    cli = Cli(toml_config(tmp_path / "satellite.toml", state_dir, db_dsn), tmp_path)
    cli("account", "create", "Acme").ok()
    rule = "must be 1 to 100 characters without '/', control characters or blanks at either end"
    for args, field in (
        (["account", "create", "a/b"], "name"),
        (["account", "create", "x" * 101], "name"),
        (["va", "create", "Acme", "a\x01b"], "name"),
        (["user", "create", "bob/x", "--role", "system-admin"], "username"),
    ):
        line = cli(*args, env={"SATELLITE_PASSWORD": "correct horse battery"}).one_error_line()
        assert line == f"error: {field} {rule}", (args, line)
    long = "d" * 501
    described = "error: description must be at most 500 characters of printable text"
    for args in (
        ["account", "create", "Long", "--description", long],
        ["account", "update", "Acme", "--description", long],
        ["va", "create", "Acme", "Lab", "--description", long],
        ["client", "create", "--role", "system-admin", "--description", long],
        ["token", "create", "Acme", "DEFAULT", "--description", long],
    ):
        assert cli(*args).one_error_line() == described, args
    assert [row["name"] for row in query(db_dsn, "SELECT name FROM accounts")] == ["Acme"]
    assert query(db_dsn, "SELECT 1 FROM principals WHERE login LIKE 'bob%'") == []
    assert query(db_dsn, "SELECT 1 FROM virtual_accounts WHERE name = 'Lab'") == []
    assert query(db_dsn, "SELECT 1 FROM registration_tokens") == []
