"""Connected mode through an HTTP or HTTPS proxy, with and without credentials."""

from __future__ import annotations

from pathlib import Path

import pytest

from satellite.api.context import Services
from satellite.wiring import Runtime
from sync.transport import UpstreamRefused, UpstreamUnreachable
from tests.conftest import (
    Api,
)
from tests.helpers.sync import (
    OPERATOR,
    SITE,
    Upstream,
    ok,
    pool,
    proxied,
    register_online,
    satellite_token,
    setup_site,
    setup_upstream,
)


async def test_sync_through_a_proxy_without_credentials(
    upstream: Upstream,
    admin: Api,
    services: Services,
    runtime: Runtime,
    tmp_path: Path,
    open_proxy: int,
) -> None:
    await setup_upstream(upstream, enhanced=6)
    await setup_site(admin)
    sync = proxied(services, runtime, tmp_path, proxy_url=f"http://127.0.0.1:{open_proxy}")
    await sync.register_online(
        OPERATOR, "Site", upstream_url=upstream.url, token=await satellite_token(upstream), name="p"
    )
    await sync.sync_now(OPERATOR, "Site")
    assert [x["quantity"] for x in await pool(admin, SITE)] == [6]
    # (The setting is used: with no proxy where it points, there is no way through.)
    nowhere = proxied(services, runtime, tmp_path, proxy_url="http://127.0.0.1:9")
    with pytest.raises(UpstreamUnreachable):
        await nowhere.sync_now(OPERATOR, "Site")


async def test_sync_through_a_proxy_with_basic_credentials(
    upstream: Upstream,
    admin: Api,
    services: Services,
    runtime: Runtime,
    tmp_path: Path,
    auth_proxy: int,
) -> None:
    await setup_upstream(upstream, enhanced=6)
    await setup_site(admin)
    await register_online(upstream, services)  # directly
    proxy_url = f"http://127.0.0.1:{auth_proxy}"

    # Without credentials, and with a wrong password: the proxy says no, the status says why.
    for credentials in ({}, {"proxy_username": "product", "proxy_password_file": "wrong"}):
        if credentials:
            (tmp_path / "wrong").write_text("guess\n")
            credentials["proxy_password_file"] = str(tmp_path / "wrong")
        sync = proxied(services, runtime, tmp_path, proxy_url=proxy_url, **credentials)
        with pytest.raises(UpstreamRefused, match="407"):
            await sync.sync_now(OPERATOR, "Site")
    status = await ok(admin.get(SITE + "/sync"))
    assert "407" in status["lastError"]
    assert status["appliedSequence"] == 0
    assert await pool(admin, SITE) == []

    (tmp_path / "password").write_text("s3cret\n")
    sync = proxied(
        services,
        runtime,
        tmp_path,
        proxy_url=proxy_url,
        proxy_username="product",
        proxy_password_file=str(tmp_path / "password"),
    )
    await sync.sync_now(OPERATOR, "Site")
    assert [x["quantity"] for x in await pool(admin, SITE)] == [6]
    assert (await ok(admin.get(SITE + "/sync")))["lastError"] is None


async def test_sync_through_an_https_proxy(
    upstream: Upstream,
    admin: Api,
    services: Services,
    runtime: Runtime,
    tmp_path: Path,
    tls_proxy: tuple[int, Path],
) -> None:
    """The proxy speaks TLS; its certificate is checked against sync.ca_file."""
    port, ca = tls_proxy
    await setup_upstream(upstream, enhanced=6)
    await setup_site(admin)
    await register_online(upstream, services)
    (tmp_path / "password").write_text("s3cret\n")
    proxy = {
        "proxy_url": f"https://127.0.0.1:{port}",
        "proxy_username": "product",
        "proxy_password_file": str(tmp_path / "password"),
    }
    untrusted = proxied(services, runtime, tmp_path, **proxy)
    with pytest.raises(UpstreamUnreachable, match="certificate"):
        await untrusted.sync_now(OPERATOR, "Site")
    trusted = proxied(services, runtime, tmp_path, ca_file=str(ca), **proxy)
    await trusted.sync_now(OPERATOR, "Site")
    assert [x["quantity"] for x in await pool(admin, SITE)] == [6]
