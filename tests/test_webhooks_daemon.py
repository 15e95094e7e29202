"""The real daemon (``satellite serve``) runs the webhook worker: a delivery that failed
while the receiver was down waits in the database across a restart of the daemon and is
made once the receiver is up."""

from __future__ import annotations

import asyncio
import contextlib
import json
import socket
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from tests.helpers.daemon import (
    POLL,
    START_TIMEOUT,
    Daemon,
    base_env,
    daemon_login,
    free_port,
    http,
    kill_daemon,
    named_values,
    start,
)
from tests.helpers.webhooks import start_receiver, verify

WAIT = 30.0


async def _call(method: str, url: str, body: Any = None, token: str | None = None) -> Any:
    status, answer = await asyncio.to_thread(http, method, url, body, token)
    assert status == 200, (url, answer)
    return answer


async def _serving(daemon: Daemon, base: str) -> None:
    deadline = time.monotonic() + START_TIMEOUT
    for _ in range(int(START_TIMEOUT / POLL)):
        assert daemon.proc.poll() is None, daemon.err
        with contextlib.suppress(OSError):
            if (await asyncio.to_thread(http, "GET", f"{base}/readyz"))[0] == 200:
                return
        assert time.monotonic() < deadline, daemon.err
        await asyncio.sleep(POLL)


async def _delivery(
    base: str, token: str, hook: str, done: Callable[[dict[str, Any]], bool]
) -> dict[str, Any]:
    """The webhook's one delivery, once ``done(delivery)`` holds (bounded)."""
    path = f"{base}/api/v1/accounts/Acme/webhooks/{hook}/deliveries"
    deadline = time.monotonic() + WAIT
    while True:
        [delivery] = (await _call("GET", path, token=token))["deliveries"]
        if done(delivery):
            return dict(delivery)
        assert time.monotonic() < deadline, delivery
        await asyncio.sleep(POLL)


async def test_a_failed_delivery_is_made_after_the_daemon_restarts(
    tmp_path: Path, db_dsn: str, state_dir: Path
) -> None:
    port = free_port(socket.AF_INET, "127.0.0.1")
    hook_port = free_port(socket.AF_INET, "127.0.0.1")  # (nothing listens there yet)
    base = f"http://127.0.0.1:{port}"
    config = tmp_path / "satellite.toml"
    config.write_text(
        f'listen = ["127.0.0.1:{port}"]\n[database]\ndsn = {json.dumps(db_dsn)}\n'
        "[webhooks]\nallow_http = true\npoll_interval_seconds = 0.1\n"
        "backoff_first_seconds = 0.2\nbackoff_longest_seconds = 0.5\n",
        encoding="utf-8",
    )
    args = ["--config", str(config), "serve", "--state-dir", str(state_dir), "--plain-http"]
    daemon: Daemon | None = None
    receiver = None
    try:
        daemon = start(args, tmp_path / "logs", base_env(tmp_path))
        await _serving(daemon, base)
        (client_id,), (secret,) = (
            named_values(daemon.out, "client_id"),
            named_values(daemon.out, "client_secret"),
        )
        token = await asyncio.to_thread(daemon_login, base, client_id, secret)
        await _call("POST", f"{base}/api/v1/accounts", {"name": "Acme"}, token)
        created = await _call(
            "POST",
            f"{base}/api/v1/accounts/Acme/webhooks",
            {"url": f"http://127.0.0.1:{hook_port}/hook"},
            token,
        )
        hook, hook_secret = created["webhook"]["id"], created["secret"]
        await _call("POST", f"{base}/api/v1/accounts/Acme/webhooks/{hook}/test", {}, token)
        failed = await _delivery(
            base, token, hook, lambda d: bool(d["attempts"]) and d["state"] == "pending"
        )
        assert "cannot reach the receiver" in failed["attempts"][0]["error"]
        assert daemon.stop() == 0, daemon.err

        receiver = await start_receiver(hook_port)
        daemon = start(args, tmp_path / "logs", base_env(tmp_path))
        await _serving(daemon, base)
        token = await asyncio.to_thread(daemon_login, base, client_id, secret)
        delivered = await _delivery(base, token, hook, lambda d: d["state"] == "delivered")
        assert delivered["attempts"][-1]["statusCode"] == 200
        [got] = receiver.got
        assert verify(hook_secret, got, time.time())["event"] == "webhook.test"
        assert daemon.stop() == 0, daemon.err
        assert hook_secret not in daemon.err + daemon.out
    finally:
        kill_daemon(daemon)
        if receiver is not None:
            await receiver.server.close()
