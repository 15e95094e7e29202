"""The metrics' bearer token as bytes off the wire: a header that is not ASCII (or not
UTF-8) is a wrong token, answered 401 like any other, never a 500."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from satellite.config import Settings
from satellite.wiring import create_app, load_runtime
from tests.conftest import AiohttpClient
from tests.helpers.metrics import TOKEN, with_metrics


async def _status(host: str, port: int, authorization: bytes) -> bytes:
    """The status line of ``GET /metrics`` with this Authorization header, sent as bytes."""
    reader, writer = await asyncio.open_connection(host, port)
    writer.write(
        b"GET /metrics HTTP/1.1\r\nHost: x\r\nAuthorization: "
        + authorization
        + b"\r\nConnection: close\r\n\r\n"
    )
    await writer.drain()
    answer = await asyncio.wait_for(reader.read(), 20)
    writer.close()
    return answer.split(b"\r\n", 1)[0]


@pytest.mark.parametrize(
    "authorization",
    [b"Bearer \xff\xfe", b"Bearer \xc3\xa9t\xc3\xa9", b"Bearer " + b"\xff" * 64],
)
async def test_a_token_that_is_not_ascii_is_a_wrong_token(
    settings: Settings,
    db_dsn: str,
    tmp_path: Path,
    aiohttp_client: AiohttpClient,
    authorization: bytes,
) -> None:
    runtime = load_runtime(with_metrics(settings, tmp_path), db_dsn)
    server = (await aiohttp_client(create_app(runtime))).server
    assert server.host is not None
    assert server.port is not None
    assert await _status(server.host, server.port, authorization) == b"HTTP/1.1 401 Unauthorized"
    right = b"Bearer " + TOKEN.encode()
    assert await _status(server.host, server.port, right) == b"HTTP/1.1 200 OK"
