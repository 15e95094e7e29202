"""Clock-rollback defence: the agent judges every expiry by the latest time it has seen (its
own clock at each state write, the times the server signed), so a clock set back revives
neither an evaluation, an authorization nor a TERM reservation; 'status' shows the rollback."""

from __future__ import annotations

import datetime as dt
import json
import os
import subprocess
import sys
import tempfile
import uuid
from pathlib import Path

from aiohttp.test_utils import TestServer
from hypothesis import given, settings
from hypothesis import strategies as st

from satellite.crypto.keys import KeyPaths
from satellite_agent.client import Agent
from satellite_agent.reservation import Reservations
from satellite_agent.state import Identity
from tests.conftest import CUWL, Api
from tests.test_device import new_agent, new_token, setup_voice
from tests.test_reservation import new_product, setup_pool

TIMEOUT = 60


def agent_cli(state_dir: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [
            str(Path(sys.executable).parent / "satellite-agent"),
            "--state-dir",
            str(state_dir),
            *args,
        ],
        capture_output=True,
        text=True,
        timeout=TIMEOUT,
        env={k: v for k, v in os.environ.items() if not k.startswith("SATELLITE")},
        check=False,
    )


def status(state_dir: Path) -> dict[str, object]:
    done = agent_cli(state_dir, "status", "--json")
    assert done.returncode == 0, done.stderr
    result: dict[str, object] = json.loads(done.stdout)
    return result


def identity(serial: str) -> Identity:
    return Identity(
        pid="UCM",
        serial_number=serial,
        uuid=str(uuid.uuid5(uuid.NAMESPACE_OID, serial)),
        product_type="UCM",
        product_version="15",
    )


def test_expired_evaluation_stays_expired_when_the_clock_is_set_back(tmp_path: Path) -> None:
    real = dt.datetime.now(dt.UTC)
    now = [real - dt.timedelta(days=80)]  # first start: the evaluation ends in 10 days
    agent = Agent(tmp_path / "product", clock=lambda: now[0])
    agent.init(identity("R1"))
    assert agent.may_add_users() is True
    now[0] = real + dt.timedelta(days=20)  # the evaluation is over ...
    assert agent.may_add_users() is False
    now[0] = real  # ... and the clock is set back to within it
    assert agent.may_add_users() is False
    assert agent.judged_now() == real + dt.timedelta(days=20)

    # 'status' runs on this host's real clock, 20 days behind what the product has seen.
    shown = status(tmp_path / "product")
    assert shown["registration"] == "evaluation expired"
    assert shown["mayAddUsers"] is False
    clock = shown["clock"]
    assert isinstance(clock, dict)
    assert clock["rollback"] is True
    assert clock["behindSeconds"] >= 19 * 86400
    text = agent_cli(tmp_path / "product", "status")
    assert text.returncode == 0, text.stderr
    assert "registration: evaluation expired" in text.stdout
    assert "clock rolled back" in text.stdout
    assert "may add users: no" in text.stdout


def test_a_small_step_back_is_within_the_tolerance_and_revives_nothing(tmp_path: Path) -> None:
    real = dt.datetime.now(dt.UTC)
    now = [real - dt.timedelta(days=90) + dt.timedelta(seconds=30)]
    agent = Agent(tmp_path / "product", clock=lambda: now[0])
    agent.init(identity("R2"))
    now[0] = real + dt.timedelta(minutes=4)  # past the end by three minutes and a half
    assert agent.may_add_users() is False
    now[0] = real  # four minutes back (e.g. NTP stepping the clock): not a rollback
    assert agent.may_add_users() is False
    shown = status(tmp_path / "product")
    assert shown["registration"] == "evaluation expired"
    clock = shown["clock"]
    assert isinstance(clock, dict)
    assert (clock["rollback"], clock["toleranceSeconds"]) == (False, 300)

    # The tolerance is the product's setting, bounded.
    done = agent_cli(tmp_path / "product", "clock-tolerance", "60")
    assert done.returncode == 0, done.stderr
    clock = status(tmp_path / "product")["clock"]
    assert isinstance(clock, dict)
    assert (clock["rollback"], clock["toleranceSeconds"]) == (True, 60)
    refused = agent_cli(tmp_path / "product", "clock-tolerance", "1000000")
    assert refused.returncode != 0
    assert "Traceback" not in refused.stderr
    assert "1000000" in refused.stderr


async def test_expired_authorization_stays_expired_when_the_clock_is_set_back(
    admin: Api, server: TestServer, tmp_path: Path
) -> None:
    await setup_voice(admin, enhanced=10)
    token = await new_token(admin)
    real = dt.datetime.now(dt.UTC)
    now = [real]
    new_agent(tmp_path, server, "FCH0R3")
    agent = Agent(tmp_path / "agent-FCH0R3", clock=lambda: now[0])
    state = await agent.register(token)
    expires = dt.datetime.fromisoformat(str((state.authorization or {})["expiresAt"]))
    assert agent.may_add_users() is True
    now[0] = expires + dt.timedelta(days=1)
    assert agent.may_add_users() is False
    now[0] = real + dt.timedelta(days=1)  # set back to well within the authorization
    assert agent.may_add_users() is False
    assert agent.authorization_expired(agent.state) is True
    signed = dt.datetime.fromisoformat(str((state.authorization or {})["issuedAt"]))
    assert state.time_seen.latest is not None
    assert state.time_seen.latest >= signed  # the server's signed time counts


async def test_a_clock_once_set_far_ahead_is_corrected_by_the_servers_answer(
    admin: Api, server: TestServer, tmp_path: Path
) -> None:
    """A clock that jumped years ahead (a dead RTC battery, a bad NTP answer) and was put
    right: the next answer the server signed for this very request says what time it is,
    so the product is not judged expired for years by the mark the wrong clock left."""
    await setup_voice(admin, enhanced=10)
    token = await new_token(admin)
    real = dt.datetime.now(dt.UTC)
    now = [real]
    new_agent(tmp_path, server, "FCH0R9")
    agent = Agent(tmp_path / "agent-FCH0R9", clock=lambda: now[0])
    await agent.register(token)
    now[0] = real + dt.timedelta(days=3650)
    assert agent.may_add_users() is False  # by the wrong clock it expired: it is recorded
    now[0] = real + dt.timedelta(minutes=1)  # put right
    assert agent.may_add_users() is False  # (no signed time has said otherwise yet)
    state = await agent.renew_authorization()
    assert state.time_seen.latest is not None
    assert state.time_seen.latest < real + dt.timedelta(days=1)
    assert agent.may_add_users() is True
    clock = status(tmp_path / "agent-FCH0R9")["clock"]
    assert isinstance(clock, dict)
    assert clock["rollback"] is False


async def test_a_clock_behind_the_servers_signed_time_is_judged_by_that_time(
    admin: Api, state_dir: Path, tmp_path: Path
) -> None:
    """The product's clock is 40 days behind the server's (set back before it ever ran):
    the authorization code's signed time is what 'today' is."""
    today = dt.datetime.now(dt.UTC).date()
    await setup_pool(
        admin,
        {
            "entitlementTag": CUWL,
            "quantity": 2,
            "licenseType": "TERM",
            "startDate": (today - dt.timedelta(days=10)).isoformat(),
            "endDate": (today + dt.timedelta(days=30)).isoformat(),
        },
    )
    behind = dt.datetime.now(dt.UTC) - dt.timedelta(days=40)
    Agent(tmp_path / "product", clock=lambda: behind).init(identity("SLRCLK1"))
    product = Reservations(tmp_path / "product", clock=lambda: behind)
    product.trust(KeyPaths(state_dir).signing_public.read_bytes())
    product.enable()
    status_, body = await admin.post(
        "/api/v1/accounts/Acme/virtual-accounts/Voice/reserve-licenses",
        {
            "reservationRequests": [
                {
                    "reservationCode": product.request(),
                    "licenses": [
                        {"entitlementTag": CUWL, "quantity": 2, "precedence": "LONGEST_TERM_FIRST"}
                    ],
                }
            ]
        },
    )
    assert status_ == 200, body
    product.install(body["authorizationCodes"][0]["authorizationCode"])
    # By its own clock the TERM line has not started; by the signed time it has.
    assert product.authorized() == {CUWL: 2}
    assert product.state.time_seen.latest is not None
    assert product.state.time_seen.latest > behind + dt.timedelta(days=39)
    clock = status(product.dir.path)["clock"]
    assert isinstance(clock, dict)
    assert clock["rollback"] is False  # 'status' runs on the real clock, which is right


async def test_expired_term_reservation_stays_expired_when_the_clock_is_set_back(
    admin: Api, state_dir: Path, tmp_path: Path
) -> None:
    today = dt.datetime.now(dt.UTC).date()
    end = today + dt.timedelta(days=30)
    await setup_pool(
        admin,
        {
            "entitlementTag": CUWL,
            "quantity": 3,
            "licenseType": "TERM",
            "startDate": (today - dt.timedelta(days=30)).isoformat(),
            "endDate": end.isoformat(),
        },
    )
    real = dt.datetime.now(dt.UTC)
    now = [real]
    product = new_product(tmp_path, state_dir, "SLRCLK2", clock=lambda: now[0])
    product.enable()
    status_, body = await admin.post(
        "/api/v1/accounts/Acme/virtual-accounts/Voice/reserve-licenses",
        {
            "reservationRequests": [
                {
                    "reservationCode": product.request(),
                    "licenses": [
                        {"entitlementTag": CUWL, "quantity": 3, "precedence": "LONGEST_TERM_FIRST"}
                    ],
                }
            ]
        },
    )
    assert status_ == 200, body
    product.install(body["authorizationCodes"][0]["authorizationCode"])
    assert product.check_usage({CUWL: 3}) == {CUWL: "AUTHORIZED"}
    now[0] = dt.datetime.combine(end + dt.timedelta(days=1), dt.time(), dt.UTC)
    assert product.check_usage({CUWL: 3}) == {CUWL: "NOT_AUTHORIZED"}
    now[0] = real  # set back to within the TERM
    assert product.check_usage({CUWL: 3}) == {CUWL: "NOT_AUTHORIZED"}
    assert product.authorized() == {}

    shown = status(product.dir.path)  # the real clock: 31 days behind
    assert shown["registration"] == "registered - specific license reservation"
    reservation = shown["reservation"]
    assert isinstance(reservation, dict)
    assert reservation["authorized"] == {}
    clock = shown["clock"]
    assert isinstance(clock, dict)
    assert clock["rollback"] is True
    text = agent_cli(product.dir.path, "status")
    assert "(not in force today)" in text.stdout
    assert "clock rolled back" in text.stdout


@settings(max_examples=40, deadline=None)
@given(steps=st.lists(st.integers(min_value=-10_000, max_value=10_000), min_size=1, max_size=8))
def test_time_seen_never_goes_back_and_is_kept_with_the_state(steps: list[int]) -> None:
    """Whatever the clock does between writes, the mark is the latest time written."""
    with tempfile.TemporaryDirectory() as directory:
        start = dt.datetime(2026, 6, 1, tzinfo=dt.UTC)
        now = [start]
        agent = Agent(Path(directory) / "product", clock=lambda: now[0])
        agent.init(identity("R9"))
        latest = start
        for step in steps:
            now[0] = start + dt.timedelta(minutes=step)
            agent.update(lambda state: None)
            latest = max(latest, now[0])
            # A fresh reader of the directory sees it: it is in the state file itself.
            assert Agent(Path(directory) / "product").state.time_seen.latest == latest
