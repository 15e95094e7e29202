"""A webhook receiver on 127.0.0.1 (an aiohttp server: plain HTTP or HTTPS), the app with
its webhook worker, and what a receiver does with a delivery (docs/webhooks.md)."""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import re
import ssl
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import msgspec
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer

from satellite.api.context import Services
from satellite.config import Settings, SyncSettings, WebhookSettings
from satellite.domain.access import Principal
from satellite.services.webhooks import NewSecret
from satellite.wiring import Runtime, create_app, load_runtime
from tests.conftest import AiohttpClient, Api, Credentials, login

DOCS = Path(__file__).resolve().parents[2] / "docs" / "webhooks.md"
ACCOUNT = "/api/v1/accounts/Acme"
HOOKS = ACCOUNT + "/webhooks"
FAST = WebhookSettings(
    allow_http=True,  # (the receiver in the test speaks plain HTTP)
    poll_interval_seconds=0.05,
    backoff_first_seconds=0.1,
    backoff_longest_seconds=0.2,
)
WAIT_SECONDS = 20.0


@dataclass
class Received:
    headers: dict[str, str]
    body: bytes


@dataclass
class Receiver:
    """What the receiver got at /hook; it answers ``answers`` in turn, then 200."""

    server: TestServer
    answers: list[int] = field(default_factory=list)
    got: list[Received] = field(default_factory=list)
    # While set, /hook holds each request (after recording it) until the event is set.
    hold: asyncio.Event | None = None

    def url(self, path: str = "/hook") -> str:
        return str(self.server.make_url(path))


def receiver_app(receiver_of: Callable[[], Receiver]) -> web.Application:
    async def hook(request: web.Request) -> web.Response:
        receiver = receiver_of()
        receiver.got.append(Received(dict(request.headers), await request.read()))
        if receiver.hold is not None:
            await receiver.hold.wait()
        status = receiver.answers.pop(0) if receiver.answers else 200
        return web.Response(status=status, text=f"answered {status}")

    async def hostile(request: web.Request) -> web.Response:
        """Answers 500 with what no text column holds (NUL, invalid UTF-8, escapes)."""
        receiver_of().got.append(Received(dict(request.headers), await request.read()))
        return web.Response(status=500, body=b"\x00\xff\xfe\x1b[31mred\x00" + b"x" * 4096)

    async def redirect(request: web.Request) -> web.Response:
        raise web.HTTPFound(location="/hook")

    app = web.Application()
    app.router.add_post("/hook", hook)
    app.router.add_post("/redirect", redirect)
    app.router.add_post("/hostile", hostile)
    return app


async def start_receiver(port: int = 0, tls: ssl.SSLContext | None = None) -> Receiver:
    holder: list[Receiver] = []
    server = TestServer(receiver_app(lambda: holder[0]), host="127.0.0.1", port=port)
    holder.append(Receiver(server))
    await server.start_server(ssl=tls)
    return holder[0]


def runtime_with(settings: Settings, db_dsn: str, hooks: WebhookSettings) -> Runtime:
    return load_runtime(msgspec.structs.replace(settings, webhooks=hooks), db_dsn)


def through_proxy(settings: Settings, port: int, password_file: Path, password: str) -> Settings:
    """``settings`` with outbound requests through the proxy on 127.0.0.1:``port`` as user
    "product" with ``password`` (written to ``password_file``)."""
    password_file.write_text(password + "\n")
    return msgspec.structs.replace(
        settings,
        sync=SyncSettings(
            proxy_url=f"http://127.0.0.1:{port}",
            proxy_username="product",
            proxy_password_file=str(password_file),
        ),
    )


async def served(
    aiohttp_client: AiohttpClient, runtime: Runtime, creds: Credentials
) -> tuple[Api, TestClient[Any, Any]]:
    """The app with its webhook worker (no scheduled jobs), and a system admin's client."""
    client = await aiohttp_client(create_app(runtime, deliveries=True))
    return await login(Api(client), creds), client


async def admin_with(
    settings: Settings,
    db_dsn: str,
    creds: Credentials,
    aiohttp_client: AiohttpClient,
    hooks: WebhookSettings,
) -> Api:
    """A system admin's client of the app served with ``hooks``, and the account Acme."""
    admin, _ = await served(aiohttp_client, runtime_with(settings, db_dsn, hooks), creds)
    await ok(admin, "/api/v1/accounts", {"name": "Acme"})
    return admin


async def ok(api: Api, path: str, body: Any = None) -> Any:
    status, answer = await api.post(path, body)
    assert status == 200, (path, answer)
    return answer


async def get(api: Api, path: str) -> Any:
    status, answer = await api.get(path)
    assert status == 200, (path, answer)
    return answer


async def create_hook(api: Api, url: str, **fields: Any) -> tuple[str, str]:
    """A new webhook's id and secret."""
    answer = await ok(api, HOOKS, {"url": url, **fields})
    return answer["webhook"]["id"], answer["secret"]


async def alert_webhook(
    services: Services, operator: Principal, url: str, account: str = "Acme"
) -> NewSecret:
    """A new enabled webhook of ``account`` at ``url`` for raised alerts (of every type),
    made through the services."""
    new: NewSecret = await services.webhooks.create(
        operator,
        account,
        url=url,
        events=["alert.raised"],
        alert_types=[],
        enabled=True,
        description="",
    )
    return new


async def until(what: str, check: Callable[[], Awaitable[Any]]) -> Any:
    """Poll ``check`` until it returns something true (bounded in count and time)."""
    deadline = time.monotonic() + WAIT_SECONDS
    for _ in range(1000):
        found = await check()
        if found:
            return found
        if time.monotonic() > deadline:
            break
        await asyncio.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what}")


def deliveries_in(api: Api, hook: str, state: str, count: int = 1) -> Callable[[], Awaitable[Any]]:
    async def check() -> Any:
        log = await get(api, f"{HOOKS}/{hook}/deliveries?limit=200")
        matching = [d for d in log["deliveries"] if d["state"] == state]
        return log if len(matching) >= count else None

    return check


def verify(secret: str, received: Received, now: float, tolerance: int = 300) -> dict[str, Any]:
    """What a receiver does (docs/webhooks.md): check the signature, the timestamp's age."""
    parts = dict(item.split("=", 1) for item in received.headers["Satellite-Signature"].split(","))
    timestamp = int(parts["t"])
    expected = hmac.new(
        secret.encode(), f"{timestamp}.".encode() + received.body, hashlib.sha256
    ).hexdigest()
    assert hmac.compare_digest(expected, parts["v1"]), "the signature does not verify"
    assert abs(now - timestamp) <= tolerance, "the timestamp is outside the replay window"
    document: dict[str, Any] = json.loads(received.body)
    return document


def documented_verifier() -> Callable[[str, str, bytes], bool]:
    """The verifying snippet of docs/webhooks.md, as a receiver would paste it."""
    [snippet] = re.findall(r"```python\n(.*?)```", DOCS.read_text(encoding="utf-8"), re.S)
    namespace: dict[str, Any] = {}
    exec(snippet, namespace)  # noqa: S102 - our own documentation
    verified: Callable[[str, str, bytes], bool] = namespace["verified"]
    return verified
