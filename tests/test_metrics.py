"""/metrics: scraped over real HTTP and parsed with prometheus-client's parser. What products
do shows in the counters and the license gauges; requests count by route template; the
token guards the scrape; two apps count apart; a database that is down is
``satellite_database_up 0`` in a scrape that still answers 200; every metric the example
alert rules use is in a real scrape."""

from __future__ import annotations

import asyncio
import re
import time
from pathlib import Path

import asyncpg
import msgspec
import pytest
from aiohttp.test_utils import TestClient, TestServer

from satellite.config import DatabaseSettings, MetricsSettings, Settings, parse_settings
from satellite.domain.access import host_operator
from satellite.errors import ConfigError, StateDirError
from satellite.http.keys import DATABASE_SUPERVISOR
from satellite.http.metrics import own_listener_app
from satellite.resources import config_dir
from satellite.storage.embedded import EmbeddedPostgres
from satellite.storage.supervisor import PostgresSupervisor
from satellite.wiring import Runtime, create_app, load_runtime, open_services
from satellite_agent.errors import RequestRefused
from tests.conftest import ENHANCED, AiohttpClient, Api, Credentials, login
from tests.helpers.api import ACCOUNT, VOICE
from tests.helpers.devices import product_id
from tests.helpers.jobs import registered_agent, setup_voice
from tests.helpers.metrics import TOKEN, scrape, with_metrics
from tests.helpers.sync import open_upstream, register_online, setup_site, setup_upstream
from tests.test_database_down import kill_postmaster

RULES = config_dir() / "alerts.yml"
WAIT = 30.0  # bound on waiting for a database to die or to come back


@pytest.fixture
def runtime(settings: Settings, db_dsn: str, tmp_path: Path) -> Runtime:
    """The test's runtime with /metrics on the main listener behind a token."""
    return load_runtime(with_metrics(settings, tmp_path), db_dsn)


async def test_a_registration_and_usage_over_the_purchased_count_show_in_the_metrics(
    admin: Api, server: TestServer, tmp_path: Path, aiohttp_client: AiohttpClient
) -> None:
    await setup_voice(admin, [{"entitlementTag": ENHANCED, "quantity": 2}])
    agent = await registered_agent(admin, server, tmp_path, "FCH0001")
    await agent.report_usage({ENHANCED: 3})
    gone = await registered_agent(admin, server, tmp_path, "FCH0002")
    await gone.deregister()
    removed = await registered_agent(admin, server, tmp_path, "FCH0003")
    status, body = await admin.post(
        VOICE + "/devices/remove",
        {"productInstancesRemoveRequests": [{"productInstanceId": product_id(removed)}]},
    )
    assert status == 200, body
    with pytest.raises(RequestRefused):
        await removed.report_usage({ENHANCED: 1})

    seen = await scrape(Api(await aiohttp_client(server)))
    where = {"account": "Acme", "virtual_account": "Voice", "tag": ENHANCED}
    status, listed = await admin.post(ACCOUNT + "/licenses", {})
    assert status == 200, listed
    (shown,) = [line for line in listed["licenses"] if line["entitlementTag"] == ENHANCED]
    # The numbers the licenses operation shows: 2 bought, 3 in use, 1 short.
    assert seen.value("satellite_licenses_purchased", **where) == shown["quantity"] == 2
    assert seen.value("satellite_licenses_in_use", **where) == shown["inUse"] == 3
    assert seen.value("satellite_licenses_reserved", **where) == shown["reserved"] == 0
    assert seen.value("satellite_licenses_available", **where) == shown["available"] == -1
    assert seen.value("satellite_product_instances", state="registered") == 1
    assert seen.value("satellite_product_instances", state="deregistered") == 1
    assert seen.value("satellite_product_instances", state="removed") == 1
    ops = "satellite_device_operations_total"
    assert seen.value(ops, operation="register", outcome="ok") == 3
    assert seen.value(ops, operation="usage-report", outcome="ok") == 1
    assert seen.value(ops, operation="deregister", outcome="ok") == 1
    assert seen.value(ops, operation="usage-report", outcome="product-ended") == 1
    # By route template: the product's id is in no label.
    usage = "/device/v1/products/{product}/usage"
    requests = "satellite_http_requests_total"
    assert seen.value(requests, route=usage, method="POST", status="200") == 1
    assert seen.value(requests, route=usage, method="POST", status="403") == 1
    assert product_id(agent) not in seen.text
    assert "FCH0001" not in seen.text


async def test_requests_count_by_route_template_and_unmatched_paths_share_one_label(
    admin: Api,
) -> None:
    await setup_voice(admin, [])
    for path in ("/api/v1/accounts/Acme/virtual-accounts", "/no/such/path-x1y2"):
        await admin.get(path)
    await admin.get("/api/v1/accounts/Nobody-z9/virtual-accounts")
    seen = await scrape(admin)
    requests = "satellite_http_requests_total"
    template = "/api/v1/accounts/{account}/virtual-accounts"
    assert seen.value(requests, route=template, method="GET", status="200") == 1
    assert seen.value(requests, route=template, method="GET", status="404") == 1
    assert seen.value(requests, route="unmatched", method="GET", status="404") == 1
    assert "path-x1y2" not in seen.text
    assert "Nobody-z9" not in seen.text
    count = "satellite_http_request_duration_seconds_count"
    assert seen.value(count, route=template, method="GET") == 2


async def test_the_scrape_needs_the_bearer_token_of_the_token_file(
    anon: Api, runtime: Runtime
) -> None:
    for headers in ({}, {"Authorization": "Bearer wrong"}, {"Authorization": TOKEN}):
        async with anon.client.get("/metrics", headers=headers) as response:
            assert response.status == 401, headers
            problem = await response.json(content_type="application/problem+json")
            assert problem["type"] == "urn:satellite:problem:not-authenticated", problem
            assert response.headers["WWW-Authenticate"] == "Bearer"
            assert "satellite_" not in await response.text()
    assert (await scrape(anon)).value("satellite_database_up") == 1
    # The file is read at each scrape: a new token takes over at once.
    token_file = runtime.settings.metrics.bearer_token_file
    assert token_file is not None
    await asyncio.to_thread(Path(token_file).write_text, "a-new-token\n", encoding="utf-8")
    async with anon.client.get("/metrics", headers={"Authorization": f"Bearer {TOKEN}"}) as old:
        assert old.status == 401
    assert (await scrape(anon, "a-new-token")).value("satellite_database_up") == 1
    # A file gone while the daemon runs: 503, and the log says why (no metrics shown).
    await asyncio.to_thread(Path(token_file).unlink)
    async with anon.client.get("/metrics", headers={"Authorization": "Bearer x"}) as gone:
        assert gone.status == 503
        problem = await gone.json(content_type="application/problem+json")
        assert problem["type"] == "urn:satellite:problem:metrics-token-unreadable", problem
        assert "Retry-After" in gone.headers


async def test_a_token_file_that_cannot_be_read_stops_the_app_at_start(
    settings: Settings, db_dsn: str, tmp_path: Path
) -> None:
    runtime = load_runtime(with_metrics(settings, tmp_path), db_dsn)
    token_file = runtime.settings.metrics.bearer_token_file
    assert token_file is not None
    await asyncio.to_thread(Path(token_file).unlink)
    server = TestServer(create_app(runtime), host="127.0.0.1")
    with pytest.raises(ConfigError, match=r"metrics\.bearer_token_file"):
        await server.start_server()
    await server.close()


async def test_metrics_are_off_by_default_and_the_own_listener_serves_them_alone(
    settings: Settings, db_dsn: str
) -> None:
    default = TestClient(TestServer(create_app(load_runtime(settings, db_dsn)), host="127.0.0.1"))
    own = msgspec.structs.replace(settings, metrics=MetricsSettings(serve="own-listener"))
    app = create_app(load_runtime(own, db_dsn))
    main = TestClient(TestServer(app, host="127.0.0.1"))
    await default.start_server()
    await main.start_server()
    listener = TestClient(TestServer(own_listener_app(app), host="127.0.0.1"))
    await listener.start_server()
    try:
        for client in (default, main):
            async with client.get("/metrics") as response:
                assert response.status == 404
        async with main.get("/healthz") as response:
            assert response.status == 200
        # Loopback, plain HTTP, no token asked for; it counts the main listener's requests.
        seen = await scrape(Api(listener), token=None)
        requests = "satellite_http_requests_total"
        assert seen.value(requests, route="/healthz", method="GET", status="200") == 1
        assert seen.value(requests, route="unmatched", method="GET", status="404") == 1
        async with listener.get("/healthz") as response:
            assert response.status == 404
    finally:
        await listener.close()
        await main.close()
        await default.close()


async def test_two_apps_in_one_process_count_apart(runtime: Runtime) -> None:
    first = TestClient(TestServer(create_app(runtime), host="127.0.0.1"))
    second = TestClient(TestServer(create_app(runtime), host="127.0.0.1"))
    await first.start_server()
    await second.start_server()
    try:
        for _ in range(3):
            async with first.get("/healthz") as response:
                assert response.status == 200
        healthz = {"route": "/healthz", "method": "GET", "status": "200"}
        requests = "satellite_http_requests_total"
        assert (await scrape(Api(first))).value(requests, **healthz) == 3
        assert (await scrape(Api(second))).value(requests, **healthz) is None
    finally:
        await first.close()
        await second.close()


@pytest.mark.unit
@pytest.mark.parametrize(
    ("text", "reason"),
    [
        ('[metrics]\nserve = "main-listener"\n', "needs metrics.bearer_token_file"),
        (
            '[metrics]\nserve = "own-listener"\nlisten = "0.0.0.0:9464"\n',
            "other than loopback needs metrics.bearer_token_file",
        ),
        ('[metrics]\nlisten = "nowhere"\n', "metrics.listen"),
    ],
)
def test_settings_that_would_show_the_metrics_to_anyone_are_refused(text: str, reason: str) -> None:
    with pytest.raises(ConfigError, match=re.escape(reason)):
        parse_settings(text.encode(), "satellite.toml")


@pytest.mark.unit
def test_the_own_listener_may_leave_loopback_with_a_token() -> None:
    settings = parse_settings(
        b'[metrics]\nserve = "own-listener"\nlisten = "[::]:9464"\n'
        b'bearer_token_file = "/etc/satellite/metrics-token"\n'
    )
    assert settings.metrics.listen == "[::]:9464"


async def test_reads_over_the_statement_timeout_leave_the_database_counts_out_of_a_200(
    settings: Settings, db_dsn: str, tmp_path: Path, db: asyncpg.Connection
) -> None:
    slow = with_metrics(settings, tmp_path, database_timeout_seconds=0.2)
    client = TestClient(TestServer(create_app(load_runtime(slow, db_dsn)), host="127.0.0.1"))
    await client.start_server()
    try:
        api = Api(client)
        assert (await scrape(api)).value("satellite_metrics_database_read_ok") == 1
        # Another transaction holds a table the scrape reads: its read waits, then is
        # cancelled at the timeout; the scrape answers without the database's counts.
        async with db.transaction():
            await db.execute("LOCK TABLE alerts IN ACCESS EXCLUSIVE MODE")
            seen = await scrape(api)
        assert seen.value("satellite_database_up") == 1
        assert seen.value("satellite_metrics_database_read_ok") == 0
        assert seen.value("satellite_product_instances", state="registered") is None
        assert seen.value("satellite_database_pool_max_connections") == 5
        assert (await scrape(api)).value("satellite_metrics_database_read_ok") == 1
    finally:
        await client.close()


# --- the database goes away --------------------------------------------------------------


def _restart(embedded: EmbeddedPostgres) -> bool:
    try:
        embedded.restart_if_dead()
    except StateDirError:
        return False
    return embedded.running()


async def test_a_database_that_is_down_is_database_up_0_in_a_scrape_that_answers_200(
    own_pg: tuple[EmbeddedPostgres, str],
    state_dir: Path,
    tmp_path: Path,
    aiohttp_client: AiohttpClient,
) -> None:
    embedded, dsn = own_pg
    settings = Settings(
        state_dir=str(state_dir),
        listen=["127.0.0.1:0"],
        database=DatabaseSettings(dsn=dsn, pool_min_size=1, pool_max_size=4),
    )
    runtime = load_runtime(with_metrics(settings, tmp_path), dsn)
    async with open_services(runtime) as services:
        first = await services.principals.bootstrap_client(host_operator("pytest"))
    assert first is not None
    app = create_app(runtime)
    # What the daemon watches its embedded PostgreSQL with (started by hand below).
    supervisor = PostgresSupervisor(embedded, check_seconds=0.1)
    app[DATABASE_SUPERVISOR] = supervisor
    api = Api(await aiohttp_client(app))
    admin = await login(api, Credentials(first.client_id, first.client_secret))
    await setup_voice(admin, [{"entitlementTag": ENHANCED, "quantity": 2}])
    before = await scrape(api)
    assert before.value("satellite_database_up") == 1
    assert before.value("satellite_metrics_database_read_ok") == 1
    assert before.value("satellite_licenses_purchased", tag=ENHANCED) == 2
    assert before.value("satellite_embedded_postgres_restarts_total") == 0

    await asyncio.to_thread(kill_postmaster, embedded.pgdata)
    down = await scrape(api)
    assert down.value("satellite_database_up") == 0
    assert down.value("satellite_metrics_database_read_ok") == 0
    assert down.value("satellite_licenses_purchased", tag=ENHANCED) is None  # not read
    # What the process knows it still shows: the pool, the requests it answered.
    assert down.value("satellite_database_pool_max_connections") == 4
    # (the scrape before this one: a scrape counts once it is answered)
    assert down.value("satellite_http_requests_total", route="/metrics", status="200") == 1

    # The supervisor starts it again: the restart counts, the database is up once more.
    supervisor.start()
    try:
        deadline = time.monotonic() + WAIT
        while True:
            seen = await scrape(api)
            # (Both: the server answers a moment before the supervisor's start returns.)
            restarted = seen.value("satellite_embedded_postgres_restarts_total") == 1
            if restarted and seen.value("satellite_database_up") == 1:
                break
            assert time.monotonic() < deadline, "the database did not come back"
            await asyncio.sleep(0.2)
    finally:
        await supervisor.stop()
    assert seen.value("satellite_licenses_purchased", tag=ENHANCED) == 2


# --- the example alert rules ---------------------------------------------------------------


def rule_metric_names() -> set[str]:
    """The satellite_* series the rules' expressions read."""
    names: set[str] = set()
    for line in RULES.read_text("utf-8").splitlines():
        if line.strip().startswith("expr:"):
            names.update(re.findall(r"\bsatellite_[a-z0-9_]+", line))
    return names


async def test_every_metric_the_example_alert_rules_use_is_in_a_real_scrape(
    admin: Api,
    server: TestServer,
    runtime: Runtime,
    upstream_state_dir: Path,
    upstream_dsn: str,
    tmp_path: Path,
    aiohttp_client: AiohttpClient,
) -> None:
    rules = rule_metric_names()
    assert len(rules) >= 6, rules
    await setup_voice(admin, [{"entitlementTag": ENHANCED, "quantity": 1}])
    agent = await registered_agent(admin, server, tmp_path, "FCH0001")
    await agent.report_usage({ENHANCED: 2})
    status, body = await admin.post("/api/v1/jobs/pool-alerts/run", {})
    assert status == 200, body
    # A webhook delivery that waits (this app runs no webhook worker).
    hook = (await admin.post(ACCOUNT + "/webhooks", {"url": "https://hooks.example.com/x"}))[1]
    status, body = await admin.post(f"{ACCOUNT}/webhooks/{hook['webhook']['id']}/test", {})
    assert status == 200, body
    # A linked account (its sync age and last result), synced with a real upstream.
    async with (
        open_upstream(upstream_state_dir, upstream_dsn, tmp_path, aiohttp_client) as up,
        open_services(runtime) as site,
    ):
        await setup_upstream(up)
        await setup_site(admin)
        await register_online(up, site)
    seen = await scrape(admin)
    assert seen.value("satellite_alerts_open", type="Insufficient Licenses") == 1
    assert seen.value("satellite_sync_last_succeeded", account="Site") is not None
    assert seen.value("satellite_job_runs_total", job="pool-alerts", outcome="done") == 1
    assert seen.value("satellite_webhook_deliveries_pending", account="Acme") == 1
    missing = rules - seen.names
    assert not missing, f"the rules use metrics no scrape shows: {sorted(missing)}"
