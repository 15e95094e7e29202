"""``satellite webhook ...``: the same operations as the admin API, from the host."""

from __future__ import annotations

from pathlib import Path

from tests.helpers.cli import Cli, query, toml_config


def test_webhook_commands(tmp_path: Path, db_dsn: str, state_dir: Path) -> None:
    cli = Cli(toml_config(tmp_path / "satellite.toml", state_dir, db_dsn), tmp_path)
    cli("account", "create", "Acme").ok()
    created = cli(
        "webhook", "create", "Acme", "https://hooks.example.com/acme",
        "--event", "alert.raised", "--alert-type", "Insufficient Licenses", "--json",
    ).json()  # fmt: skip
    hook, secret = created["webhook"]["id"], created["secret"]
    assert secret.startswith("whsec_")
    assert created["webhook"]["events"] == ["alert.raised"]
    assert created["webhook"]["alertTypes"] == ["Insufficient Licenses"]
    # The secret is stored encrypted, and shown by no later command.
    [row] = query(db_dsn, "SELECT secret FROM webhooks")
    assert secret.encode() not in row["secret"]
    listed, shown = cli.many(["webhook", "list", "Acme"], ["webhook", "show", "Acme", hook])
    assert hook in listed.ok().out
    assert "hooks.example.com" in listed.out
    assert secret not in listed.out + shown.ok().out

    updated = cli(
        "webhook", "update", "Acme", hook, "--every-alert-type", "--event", "alert.cleared",
        "--json",
    ).json()  # fmt: skip
    assert updated["webhook"]["alertTypes"] == []
    assert updated["webhook"]["events"] == ["alert.cleared"]
    rotated = cli("webhook", "rotate-secret", "Acme", hook).ok().out
    assert "secret" in rotated
    assert secret not in rotated

    queued = cli("webhook", "test", "Acme", hook, "--json").json()
    log = cli("webhook", "deliveries", "Acme", hook, "--json").json()
    assert [d["id"] for d in log["deliveries"]] == [queued["deliveryId"]]
    assert log["deliveries"][0]["state"] == "pending"  # (no daemon runs to send it)

    assert "not found" in cli("webhook", "show", "Ghost", hook).one_error_line()
    refused = cli("webhook", "create", "Acme", "http://hooks.example.com/x").one_error_line()
    assert "https://" in refused
    assert "UUID" in cli("webhook", "show", "Acme", "not-an-id").err
    assert f"webhook {hook} deleted" in cli("webhook", "delete", "Acme", hook).ok().out
    assert query(db_dsn, "SELECT count(*) AS n FROM webhook_deliveries")[0]["n"] == 0


def test_a_url_stored_with_control_characters_is_printed_escaped(
    tmp_path: Path, db_dsn: str, state_dir: Path
) -> None:
    """A URL queued before such URLs were refused: `webhook list` and `show` print its escape
    sequence and line break as text, never to the terminal."""
    cli = Cli(toml_config(tmp_path / "satellite.toml", state_dir, db_dsn), tmp_path)
    cli("account", "create", "Acme").ok()
    hook = cli("webhook", "create", "Acme", "https://hooks.example.com/a", "--json").json()
    query(db_dsn, "UPDATE webhooks SET url = $1", "https://hooks.example.com/\x1b[2J\r\nFAKE")
    listed, shown = cli.many(
        ["webhook", "list", "Acme"], ["webhook", "show", "Acme", hook["webhook"]["id"]]
    )
    for out in (listed.ok().out, shown.ok().out):
        assert "\x1b" not in out
        assert "\r" not in out
        assert "hooks.example.com/\\x1b[2J\\r\\nFAKE" in out
