"""SIGHUP on the real daemon: the config file and the catalog read again; what can change
takes effect, what cannot is reported as needing a restart, an invalid file is refused."""

from __future__ import annotations

import datetime as dt
import json
import signal
import socket
import time
from pathlib import Path
from typing import Any

from tests.helpers.daemon import (
    POLL,
    Daemon,
    base_env,
    free_port,
    http,
    kill_daemon,
    printed_admin_login,
    start,
    wait_serving,
)

WAIT = 20.0


def _catalog(tags: list[str]) -> str:
    entries = "".join(
        f'[[families.licenses]]\ntag = "{tag}"\ndisplay_name = "{tag}"\ndescription = "{tag}"\n'
        for tag in tags
    )
    return f'[[families]]\nname = "Test"\n{entries}'


def _config(
    dsn: str, listen: str, catalog: Path, level: str, per_name: int, http_hooks: bool = False
) -> str:
    return (
        # (One process: the test counts each reload's log line once; test_workers.py has
        # SIGHUP with several.)
        f"listen = [{json.dumps(listen)}]\ncatalog = {json.dumps(str(catalog))}\nworkers = 1\n"
        f"[database]\ndsn = {json.dumps(dsn)}\n"
        f'[log]\nlevel = "{level}"\n'
        f"[limits.client_secret]\nfailures_per_name = {per_name}\n"
        f"[webhooks]\nallow_http = {json.dumps(http_hooks)}\n"
    )


def _http_webhook(base: str, token: str) -> int:
    hook = {"url": "http://hooks.example.com/in-house"}
    return http("POST", f"{base}/api/v1/accounts/Acme/webhooks", hook, token=token)[0]


def _records(daemon: Daemon) -> list[dict[str, Any]]:
    return [json.loads(line) for line in daemon.err.splitlines() if line.strip()]


def _wait_for_event(daemon: Daemon, event: str, count: int = 1) -> list[dict[str, Any]]:
    deadline = time.monotonic() + WAIT
    for _ in range(int(WAIT / POLL)):
        found = [r for r in _records(daemon) if r.get("event") == event]
        if len(found) >= count or time.monotonic() > deadline:
            break
        time.sleep(POLL)
    assert len(found) >= count, (event, daemon.err)
    return found


def _tags(base: str, token: str) -> list[str]:
    status, body = http("GET", f"{base}/api/v1/license-catalog", token=token)
    assert status == 200, body
    return [entry["entitlementTag"] for entry in body["licenses"]]


def _bad_login(base: str) -> int:
    body = {"grant_type": "client_credentials", "client_id": "nobody", "client_secret": "x"}
    return http("POST", f"{base}/backend/oauth/token", body)[0]


def test_sighup_applies_a_changed_config_and_refuses_an_invalid_one(
    tmp_path: Path, db_dsn: str, state_dir: Path
) -> None:
    port = free_port(socket.AF_INET, "127.0.0.1")
    other_port = free_port(socket.AF_INET, "127.0.0.1")
    base = f"http://127.0.0.1:{port}"
    tag_a, tag_b = "regid.2026-01.com.example.A", "regid.2026-01.com.example.B"
    catalog = tmp_path / "catalog.toml"
    catalog.write_text(_catalog([tag_a]), encoding="utf-8")
    config = tmp_path / "satellite.toml"
    config.write_text(_config(db_dsn, f"127.0.0.1:{port}", catalog, "warning", 10), "utf-8")
    args = ["--config", str(config), "serve", "--state-dir", str(state_dir), "--plain-http"]
    daemon: Daemon | None = None
    try:
        daemon = start(args, tmp_path / "logs", base_env(tmp_path))
        wait_serving(daemon, base)
        token = printed_admin_login(daemon, base)
        assert _tags(base, token) == [tag_a]
        assert http("POST", f"{base}/api/v1/accounts", {"name": "Acme"}, token=token)[0] == 200
        assert _http_webhook(base, token) == 422  # plain http:// needs webhooks.allow_http
        # At level warning the daemon's info lines are not written.
        assert "daemon.listening" not in daemon.err

        # An invalid config: refused in one line naming the key; the old config stays.
        config.write_text(config.read_text("utf-8") + "[timers]\nno_such_timer = 1\n", "utf-8")
        daemon.proc.send_signal(signal.SIGHUP)
        refused = _wait_for_event(daemon, "config.reload_refused")
        assert "timers.no_such_timer" in refused[0]["reason"], refused
        # An invalid catalog (a config that is fine): refused too, nothing applied.
        config.write_text(_config(db_dsn, f"127.0.0.1:{port}", catalog, "info", 1), "utf-8")
        catalog.write_text(_catalog([tag_a, tag_a]), encoding="utf-8")
        daemon.proc.send_signal(signal.SIGHUP)
        refused = _wait_for_event(daemon, "config.reload_refused", 2)
        assert "appears twice" in refused[1]["reason"], refused
        assert len(daemon.err.strip().splitlines()) == 2, daemon.err  # one line each
        assert http("GET", f"{base}/healthz")[0] == 200
        assert _tags(base, token) == [tag_a]
        assert [_bad_login(base) for _ in range(3)] == [401, 401, 401]  # still 10 a window

        # A valid change: the level, the catalog, the limit and the webhook settings take
        # effect at once; the listen address is reported as needing a restart and the old
        # one still serves.
        catalog.write_text(_catalog([tag_a, tag_b]), encoding="utf-8")
        changed = _config(db_dsn, f"127.0.0.1:{other_port}", catalog, "info", 1, http_hooks=True)
        config.write_text(changed, "utf-8")
        daemon.proc.send_signal(signal.SIGHUP)
        reloaded = _wait_for_event(daemon, "config.reloaded")  # an info line: level info now
        assert "log.level" in reloaded[0]["changed"], reloaded
        restart = _wait_for_event(daemon, "config.restart_needed")
        assert restart[0]["settings"] == ["listen"], restart
        assert sorted(_tags(base, token)) == [tag_a, tag_b]
        assert "webhooks.allow_http" in reloaded[0]["changed"], reloaded
        assert _http_webhook(base, token) == 200
        # One failure allowed a window now (the three before still count in this window).
        assert _bad_login(base) == 429
        assert daemon.stop() == 0, daemon.err
    finally:
        kill_daemon(daemon)


def _next_runs(base: str, token: str) -> dict[str, dt.datetime]:
    status, body = http("GET", f"{base}/api/v1/jobs", token=token)
    assert status == 200, body
    return {j["name"]: dt.datetime.fromisoformat(j["nextRun"]) for j in body["jobs"]}


def _token_expires_in(base: str, token: str) -> dt.timedelta:
    tokens = f"{base}/api/v1/accounts/Acme/virtual-accounts/DEFAULT/tokens"
    status, body = http("POST", tokens, {"description": "reload"}, token=token)
    assert status == 200, body
    expires = dt.datetime.fromisoformat(body["tokenInfo"]["expirationDate"])
    return expires - dt.datetime.now(dt.UTC)


def test_sighup_applies_changed_timers_to_new_work_and_to_the_jobs_schedule(
    tmp_path: Path, db_dsn: str, state_dir: Path
) -> None:
    port = free_port(socket.AF_INET, "127.0.0.1")
    base = f"http://127.0.0.1:{port}"
    catalog = tmp_path / "catalog.toml"
    catalog.write_text(_catalog(["regid.2026-01.com.example.A"]), encoding="utf-8")
    config = tmp_path / "satellite.toml"
    plain = _config(db_dsn, f"127.0.0.1:{port}", catalog, "info", 10)

    def timers(jobs_minutes: int, token_days: int) -> str:
        return (
            f"{plain}[timers]\njobs_interval_minutes = {jobs_minutes}\n"
            f"token_expiry_days = {token_days}\n"
        )

    config.write_text(timers(600, 30), "utf-8")
    args = ["--config", str(config), "serve", "--state-dir", str(state_dir), "--plain-http"]
    daemon: Daemon | None = None
    try:
        daemon = start(args, tmp_path / "logs", base_env(tmp_path))
        wait_serving(daemon, base)
        token = printed_admin_login(daemon, base)
        assert http("POST", f"{base}/api/v1/accounts", {"name": "Acme"}, token=token)[0] == 200
        hour = dt.timedelta(hours=1)
        assert abs(_token_expires_in(base, token) - dt.timedelta(days=30)) < hour
        now = dt.datetime.now(dt.UTC)
        before = _next_runs(base, token)
        assert before["forget-nonces"] > now + dt.timedelta(minutes=590), before

        config.write_text(timers(5, 3), "utf-8")
        daemon.proc.send_signal(signal.SIGHUP)
        reloaded = _wait_for_event(daemon, "config.reloaded")
        assert {"timers.jobs_interval_minutes", "timers.token_expiry_days"} <= set(
            reloaded[0]["changed"]
        ), reloaded
        assert not [r for r in _records(daemon) if r.get("event") == "config.restart_needed"]
        # A token made now follows the new expiry; each job runs next within the new
        # interval, not the old one.
        assert abs(_token_expires_in(base, token) - dt.timedelta(days=3)) < hour
        after = _next_runs(base, token)
        latest = dt.datetime.now(dt.UTC) + dt.timedelta(minutes=5, seconds=5)
        own_interval = ("sync", "usage-rollup")  # (timers of their own, unchanged here)
        late = {n: at for n, at in after.items() if n not in own_interval and at > latest}
        assert not late, late
        assert daemon.stop() == 0, daemon.err
    finally:
        kill_daemon(daemon)
