"""Property-based fuzzing (hypothesis) of the admin API, the device API and the upstream's
sync endpoints: whatever the body, path segments and query string, the answer is never a
5xx, and a refused request (4xx) leaves the database as it was.

The database is compared through a digest of every row of every table but those of
counters that a refused request writes on purpose: the rate limits' failure counters
(``COUNTERS``). Everything else a request
writes (audit events, used nonces, a token's uses) is written in the transaction of the
change it belongs to, so a refusal leaves it as it was. A request that succeeds (a fuzzed
body that happens to be valid, e.g. a new account) moves the baseline on.

Routes that reach outside (sync now and sync registration contact the upstream named in
their body) are left out; routes that remove or disable things are fuzzed with path
segments that never name a real resource, and the device API's deregistration is left out
(a valid one would end the product), so that the world the other examples need stays.
Examples are derandomized and no example database is written: the run is the same each
time. Hypothesis runs in a worker thread (it cannot drive coroutines itself); each example
hands its requests to the test's event loop, where the real app serves them.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import json
from collections.abc import Coroutine
from pathlib import Path
from typing import Any, TypeVar
from urllib.parse import quote, urlencode

import asyncpg
import msgspec
from aiohttp.test_utils import TestServer
from cryptography.hazmat.primitives.asymmetric import ec
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from satellite.config import DatabaseSettings, Settings, SyncSettings
from satellite.crypto.secrets import token_id, token_proof
from satellite.http import wire
from satellite.http.routes import ROUTES, Route
from satellite.wiring import create_app, load_runtime
from satellite_protocol import device
from satellite_protocol.crypto import jose
from satellite_protocol.crypto.pki import make_csr
from sync import bundle
from sync.transport import BUNDLE_TYPE
from tests.conftest import ENHANCED, AiohttpClient, Api
from tests.test_device import VOICE, new_agent, new_token, setup_voice

FUZZ = settings(
    derandomize=True,
    database=None,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)
COUNTERS = ["rate_limit_counters"]
LEFT_OUT = {"sync_now", "sync_register"}
DESTRUCTIVE = ("/delete", "/disable", "/revoke", "/remove", "/unregister", "/password")
QUERY_NAMES = sorted(
    {
        field.encode_name
        for query in {route.query for route in ROUTES if route.query is not None}
        for field in msgspec.structs.fields(query)
    }
)
TIMEOUT = 60
T = TypeVar("T")
HUGE = st.sampled_from([2**63 - 1, 2**63, 2**64, -(2**63) - 1, 10**40])


# --- strategies ----------------------------------------------------------------------------

# Text that goes wrong in interesting ways: U+0000 (a third of all texts: random text
# rarely holds it), other controls, non-ASCII, slashes.
SPECIAL = ["/", "%", "_", "@", "#", "*", "é", "\u202e", "\n", ".", "..", "😀"]
nasty_text = st.one_of(
    st.text(max_size=20),
    st.tuples(st.text(max_size=8), st.just("\x00"), st.text(max_size=8)).map("".join),
    st.tuples(st.text(max_size=8), st.sampled_from(SPECIAL), st.text(max_size=8)).map("".join),
)
numbers = st.one_of(st.integers(), HUGE, st.floats(allow_nan=False, allow_infinity=False))
# JSON can also spell a lone UTF-16 surrogate ("\udcff"), which no UTF-8 text holds (a URL
# cannot: its bytes are UTF-8 or replaced).
json_text = st.one_of(
    nasty_text, st.tuples(st.text(max_size=8), st.just("\udcff"), st.text(max_size=8)).map("".join)
)
scalars = st.one_of(st.none(), st.booleans(), numbers, json_text)
json_values = st.recursive(
    scalars,
    lambda inner: st.one_of(
        st.lists(inner, max_size=4), st.dictionaries(json_text, inner, max_size=4)
    ),
    max_leaves=12,
)
deep_json = st.sampled_from([65, 1000, 1500]).map(lambda n: ('{"a":' * n + "1" + "}" * n).encode())


def body_fields(type_: type | None) -> list[str]:
    if type_ is None or not issubclass(type_, msgspec.Struct):
        return []
    return [field.encode_name for field in msgspec.structs.fields(type_)]


def struct_like(type_: type | None) -> st.SearchStrategy[dict[str, Any]]:
    """Objects with the type's own field names (so validation goes deep), fuzzed values."""
    names = body_fields(type_)
    if not names:
        return st.dictionaries(json_text, json_values, max_size=3)
    return st.fixed_dictionaries(
        {}, optional={name: st.one_of(json_values, scalars) for name in names}
    )


def bodies(type_: type | None) -> st.SearchStrategy[bytes]:
    return st.one_of(
        struct_like(type_).map(lambda value: json.dumps(value).encode()),
        json_values.map(lambda value: json.dumps(value).encode()),
        deep_json,
        st.binary(max_size=64),
    )


def query_strings() -> st.SearchStrategy[str]:
    values = st.one_of(nasty_text, numbers.map(str), HUGE.map(str))
    pairs = st.lists(st.tuples(st.one_of(st.sampled_from(QUERY_NAMES), nasty_text), values))
    return pairs.map(lambda items: urlencode(items, encoding="utf-8") if items else "")


def path_for(route: Route, real: dict[str, list[str]], data: st.DataObject) -> str:
    """The route's path, each ``{param}`` percent-encoded: mostly a real name (so that the
    request gets past the lookups), else fuzzed text. Routes that remove or disable
    things never get a real name."""
    path = ("/api/v1" if route.api else "") + route.path
    destructive = any(word in route.path for word in DESTRUCTIVE)
    while "{" in path:
        start, end = path.index("{"), path.index("}")
        name = path[start + 1 : end]
        known = [] if destructive else real.get(name, [])
        segment = (
            st.one_of(st.sampled_from(known), st.sampled_from(known), nasty_text.filter(bool))
            if known
            else nasty_text.filter(bool)
        )
        value = data.draw(segment, label=name)
        path = path[:start] + quote(value, safe="") + path[end + 1 :]
    return path


# --- the world the examples run in ------------------------------------------------------------


class World(msgspec.Struct):
    product: str
    key: ec.EllipticCurvePrivateKey
    token: str
    line: str


async def make_world(admin: Api, server: TestServer, tmp_path: Path) -> World:
    await setup_voice(admin, enhanced=5)
    token = await new_token(admin)
    agent = new_agent(tmp_path, server)
    state = await agent.register(token)
    await agent.report_usage({ENHANCED: 2})
    status, body = await admin.get(VOICE + "/license-pool")
    assert status == 200, body
    assert state.product_instance_id is not None
    line = str(body["licenses"][0]["id"])
    return World(state.product_instance_id, agent.dir.load_key(), token, line)


async def digest(db: asyncpg.Connection) -> dict[str, str]:
    """Per table, a digest of all its rows."""
    tables = await db.fetch(
        "SELECT table_name FROM information_schema.tables "
        "WHERE table_schema = 'public' AND table_type = 'BASE TABLE' "
        "AND table_name <> ALL($1::text[]) ORDER BY table_name",
        COUNTERS,
    )
    out = {}
    for (name,) in tables:
        rows = await db.fetchval(
            f"SELECT string_agg(t::text, ',' ORDER BY t::text) FROM \"{name}\" t"  # noqa: S608
        )
        out[name] = hashlib.sha256((rows or "").encode()).hexdigest()
    return out


class Checker:
    """Sends a request; a 5xx fails, a 4xx must have changed nothing. Called from the
    hypothesis thread, it runs the request on the test's event loop."""

    def __init__(self, api: Api, db: asyncpg.Connection) -> None:
        self.api = api
        self.db = db
        self.loop = asyncio.get_running_loop()
        self.baseline: dict[str, str] | None = None
        self.statuses: dict[int, int] = {}

    def on_loop(self, coroutine: Coroutine[Any, Any, T]) -> T:
        return asyncio.run_coroutine_threadsafe(coroutine, self.loop).result(TIMEOUT)

    def send(self, method: str, path: str, data: bytes | None, **headers: str) -> int:
        return self.on_loop(self._send(method, path, data, **headers))

    def nonce(self) -> str:
        return self.on_loop(self._nonce())

    async def _nonce(self) -> str:
        async with self.api.client.get("/device/v1/nonce") as response:
            return response.headers["Replay-Nonce"]

    async def _send(self, method: str, path: str, data: bytes | None, **headers: str) -> int:
        if self.baseline is None:
            self.baseline = await digest(self.db)
        sent = {"Content-Type": "application/json", **headers}
        if self.api.token and "Authorization" not in sent:
            sent["Authorization"] = f"Bearer {self.api.token}"
        async with self.api.client.request(method, path, data=data, headers=sent) as response:
            status = response.status
            text = await response.read()
        self.statuses[status] = self.statuses.get(status, 0) + 1
        assert status < 500, (method, path, data, text)
        after = await digest(self.db)
        if status >= 400:
            changed = sorted(t for t in after if after[t] != self.baseline.get(t))
            assert not changed, (method, path, data, status, text, changed)
            problem = msgspec.json.decode(text) if text else None
            assert isinstance(problem, dict), (path, text)
            assert problem["status"] == status, problem
        self.baseline = after
        return status


# --- the admin API -------------------------------------------------------------------------

ADMIN_ROUTES = [
    r for r in ROUTES if not r.path.startswith(device.PREFIX) and r.handler.__name__ not in LEFT_OUT
]


async def test_the_admin_api_never_answers_5xx_and_a_refusal_changes_nothing(
    admin: Api, server: TestServer, tmp_path: Path, db: asyncpg.Connection
) -> None:
    world = await make_world(admin, server, tmp_path)
    checker = Checker(admin, db)
    real = {
        "account": ["Acme"],
        "va": ["Voice", "DEFAULT"],
        "product": [world.product],
        "line": [world.line],
    }

    @settings(FUZZ, max_examples=200)
    @given(data=st.data())
    def example(data: st.DataObject) -> None:
        route = data.draw(st.sampled_from(ADMIN_ROUTES), label="route")
        path = path_for(route, real, data)
        query = data.draw(query_strings(), label="query")
        body = data.draw(bodies(route.body), label="body") if route.method == "POST" else None
        checker.send(route.method, f"{path}?{query}" if query else path, body)

    await asyncio.to_thread(example)
    assert sum(checker.statuses.values()) >= 200
    # Both kinds were seen: requests that got through, and refusals.
    assert any(status < 300 for status in checker.statuses), checker.statuses
    assert any(400 <= status < 500 for status in checker.statuses), checker.statuses


async def test_the_token_endpoint_never_answers_5xx_and_a_refusal_changes_nothing(
    anon: Api, db: asyncpg.Connection
) -> None:
    checker = Checker(anon, db)
    # Grants that get past the first check, with fuzzed credentials.
    grants = st.fixed_dictionaries(
        {"grant_type": st.sampled_from(["client_credentials", "password"])},
        optional={
            name: nasty_text for name in ("client_id", "client_secret", "username", "password")
        },
    )
    basic = st.tuples(nasty_text, nasty_text).map(
        lambda pair: base64.b64encode(":".join(quote(p) for p in pair).encode()).decode()
    )

    @settings(FUZZ, max_examples=60)
    @given(
        body=st.one_of(grants.map(lambda g: json.dumps(g).encode()), bodies(wire.TokenRequest)),
        form=grants,
        credentials=st.one_of(st.none(), basic, st.binary(max_size=30).map(base64.b64encode)),
    )
    def example(body: bytes, form: dict[str, str], credentials: str | bytes | None) -> None:
        headers = {}
        if credentials is not None:
            encoded = credentials if isinstance(credentials, str) else credentials.decode()
            headers["Authorization"] = f"Basic {encoded}"
        checker.send("POST", "/backend/oauth/token", body, **headers)
        form_type = {"Content-Type": "application/x-www-form-urlencoded"}
        checker.send("POST", "/backend/oauth/token", urlencode(form).encode(), **form_type)

    await asyncio.to_thread(example)


# --- the device API ------------------------------------------------------------------------

DEVICE_ROUTES = [
    r
    for r in ROUTES
    if r.path.startswith(device.PREFIX + "/products") and "deregister" not in r.path
]
DEVICE_BODIES = {
    "report_usage": device.UsageReport,
    "renew_registration": device.RenewRegistrationRequest,
    "request_export": device.ExportRequest,
    "return_export": device.ExportRequest,
}


async def test_the_device_api_never_answers_5xx_and_a_refusal_changes_nothing(
    admin: Api, anon: Api, server: TestServer, tmp_path: Path, db: asyncpg.Connection
) -> None:
    world = await make_world(admin, server, tmp_path)
    checker = Checker(anon, db)
    usage_entries = st.lists(
        st.fixed_dictionaries(
            {}, optional={"tag": st.one_of(st.just(ENHANCED), json_text), "count": numbers}
        ),
        max_size=3,
    )

    @settings(FUZZ, max_examples=120)
    @given(data=st.data())
    def example(data: st.DataObject) -> None:
        route = data.draw(st.sampled_from(DEVICE_ROUTES), label="route")
        path = path_for(route, {"product": [world.product]}, data)
        type_ = DEVICE_BODIES.get(route.handler.__name__)
        payload = data.draw(
            st.one_of(
                bodies(type_),
                usage_entries.map(lambda usage: json.dumps({"usage": usage}).encode()),
            ),
            label="payload",
        )
        header: dict[str, Any] = {"kid": world.product, "nonce": checker.nonce(), "url": path}
        for name in data.draw(st.sets(st.sampled_from(sorted(header))), label="fuzzed header"):
            header[name] = data.draw(json_values, label=name)
        message = jose.sign(world.key, payload, header)
        if data.draw(st.booleans(), label="unsigned body"):
            raw = data.draw(bodies(wire.SignedMessage), label="body")
        else:
            raw = json.dumps(message).encode()
        checker.send("POST", path, raw)

    await asyncio.to_thread(example)


async def test_registration_never_answers_5xx_and_a_refusal_changes_nothing(
    admin: Api, anon: Api, server: TestServer, tmp_path: Path, db: asyncpg.Connection
) -> None:
    world = await make_world(admin, server, tmp_path)
    checker = Checker(anon, db)
    key = ec.generate_private_key(ec.SECP256R1())
    jwk = jose.public_jwk(key.public_key())
    thumbprint = jose.jwk_thumbprint(jwk)
    csr = make_csr(key, "C9300:FOC1")

    @settings(FUZZ, max_examples=60)
    @given(data=st.data())
    def example(data: st.DataObject) -> None:
        nonce = checker.nonce()
        valid: dict[str, Any] = {
            "tokenId": token_id(world.token),
            "tokenProof": token_proof(world.token, nonce, thumbprint),
            "udi": {"pid": "C9300", "serialNumber": "FOC1", "uuid": "u-1"},
            "csr": csr,
            "productType": "UCM",
            "productVersion": "15.0",
        }
        fuzzed = data.draw(struct_like(device.RegisterRequest), label="fuzzed fields")
        udi = data.draw(struct_like(device.Udi), label="fuzzed udi")
        body = valid | fuzzed
        if udi:
            body["udi"] = valid["udi"] | udi
        message = jose.sign(
            key,
            json.dumps(body).encode(),
            {"jwk": jwk, "nonce": nonce, "url": "/device/v1/register"},
        )
        checker.send("POST", "/device/v1/register", json.dumps(message).encode())

    await asyncio.to_thread(example)


# --- the upstream's sync endpoints ---------------------------------------------------------

HEADERS = {
    "registrationRequest": bundle.RegistrationRequest,
    "syncRequest": bundle.SyncRequest,
    "syncAnswer": bundle.SyncAnswer,
}


async def test_the_upstream_sync_endpoints_never_answer_5xx(
    upstream_state_dir: Path, upstream_dsn: str, tmp_path: Path, aiohttp_client: AiohttpClient
) -> None:
    config = Settings(
        role="upstream",
        state_dir=str(upstream_state_dir),
        listen=["127.0.0.1:0"],
        database=DatabaseSettings(dsn=upstream_dsn, pool_min_size=1, pool_max_size=5),
        sync=SyncSettings(spool_dir=str(tmp_path / "spool")),
    )
    api = Api(await aiohttp_client(create_app(load_runtime(config, upstream_dsn))))
    db = await asyncpg.connect(upstream_dsn)
    checker = Checker(api, db)
    headers = st.sampled_from(sorted(HEADERS)).flatmap(
        lambda tag: struct_like(HEADERS[tag]).map(
            lambda fields: {"type": tag, "format": bundle.FORMAT} | fields
        )
    )
    lines = st.one_of(
        st.builds(json.dumps, json_values), st.builds(json.dumps, struct_like(bundle.ProductRecord))
    )

    @settings(FUZZ, max_examples=100)
    @given(
        path=st.sampled_from(["/sync/v1/register", "/sync/v1/exchange"]),
        header=st.one_of(st.builds(json.dumps, headers), deep_json.map(bytes.decode)),
        records=st.lists(lines, max_size=3),
        signature=st.one_of(
            st.builds(json.dumps, struct_like(bundle.SignatureLine)),
            st.builds(json.dumps, json_values),
        ),
    )
    def example(path: str, header: str, records: list[str], signature: str) -> None:
        body = "".join(f"{line}\n" for line in (header, *records, signature)).encode()
        checker.send("POST", path, body, **{"Content-Type": BUNDLE_TYPE})

    try:
        await asyncio.to_thread(example)
    finally:
        await db.close()
