"""Usage reports: products register and report, the usage-rollup job samples "at" two UTC
days, and the account's daily rows come back through the API (JSON and CSV, the same
rows) and the CLI; a formula-looking name stays text in the CSV, another account's reader
is told the account does not exist, bad ranges are refused naming the field, and the
forget-usage-history job drops the days older than the history."""

from __future__ import annotations

import csv
import datetime as dt
import io
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlencode

import asyncpg
from aiohttp.test_utils import TestServer
from yarl import URL

from satellite.api.context import Services
from satellite.scheduler import jobs
from tests.conftest import ENHANCED, Api, new_client
from tests.helpers.api import ACCOUNT, assert_refused
from tests.helpers.cli import Cli, toml_config
from tests.helpers.jobs import DAY, at, registered_agent, setup_voice

USAGE = ACCOUNT + "/usage"
# A virtual account whose name a spreadsheet would run as a formula, with a comma and
# quotes that CSV must quote.
FORMULA = '=HYPERLINK("evil.example","x"),1'
TODAY = dt.datetime.now(dt.UTC).date()
TOMORROW = TODAY + dt.timedelta(days=1)
NOON = dt.datetime.combine(TODAY, dt.time(12), tzinfo=dt.UTC)  # samples stay in their day
MINUTE = dt.timedelta(minutes=1)


def query(**params: str) -> str:
    return USAGE + "?" + urlencode(params)


async def as_csv(api: Api, path: str) -> tuple[int, str, str]:
    headers = {"Authorization": f"Bearer {api.token}", "Accept": "text/csv"}
    async with api.client.get(path, headers=headers) as response:
        return response.status, response.headers.get("Content-Type", ""), await response.text()


async def two_days_of_usage(
    admin: Api, server: TestServer, tmp_path: Path, services: Services
) -> None:
    """Voice: 10 perpetual and 5 on a TERM line that ends today (so 15 purchased today, 10
    tomorrow); two products whose usage goes 3, 7, 4 in today's samples, then 7 tomorrow."""
    await setup_voice(
        admin,
        [
            {"entitlementTag": ENHANCED, "quantity": 10},
            {
                "entitlementTag": ENHANCED,
                "quantity": 5,
                "licenseType": "TERM",
                "endDate": TODAY.isoformat(),
            },
        ],
    )
    status, body = await admin.post(ACCOUNT + "/virtual-accounts", {"name": FORMULA})
    assert status == 200, body
    formula_pool = f"{ACCOUNT}/virtual-accounts/{quote(FORMULA, safe='')}/license-pool"
    status, body = await admin.post(formula_pool, {"entitlementTag": ENHANCED, "quantity": 2})
    assert status == 200, body
    first = await registered_agent(admin, server, tmp_path, "FCH0001")
    second = await registered_agent(admin, server, tmp_path, "FCH0002")
    await first.report_usage({ENHANCED: 3})
    assert await jobs.usage_rollup(services, at(NOON)) is not None
    await second.report_usage({ENHANCED: 4})
    assert await jobs.usage_rollup(services, at(NOON + MINUTE)) is not None
    await second.report_usage({ENHANCED: 1})
    report = await jobs.usage_rollup(services, at(NOON + 2 * MINUTE))
    assert report is not None
    assert report.counts == {"virtual_accounts": 3, "rows": 2}  # DEFAULT holds nothing
    await first.report_usage({ENHANCED: 6})
    assert await jobs.usage_rollup(services, at(NOON + DAY)) is not None


def voice_days(body: Any) -> list[tuple[str, int, int, int, int, int, int]]:
    return [
        (
            row["day"],
            row["peakInUse"],
            row["lastInUse"],
            row["purchased"],
            row["reserved"],
            row["available"],
            row["samples"],
        )
        for row in body["usage"]
        if row["virtualAccount"] == "Voice"
    ]


async def test_the_report_shows_each_day_s_peak_last_and_purchased(
    admin: Api, server: TestServer, tmp_path: Path, services: Services
) -> None:
    await two_days_of_usage(admin, server, tmp_path, services)
    status, body = await admin.get(query(**{"from": TODAY.isoformat(), "to": TOMORROW.isoformat()}))
    assert status == 200, body
    assert voice_days(body) == [
        (TODAY.isoformat(), 7, 4, 15, 0, 11, 3),
        (TOMORROW.isoformat(), 7, 7, 10, 0, 3, 1),
    ]
    # Oldest day first, then by virtual account: the formula-named one sorts before Voice.
    assert [(r["day"], r["virtualAccount"]) for r in body["usage"]] == [
        (TODAY.isoformat(), FORMULA),
        (TODAY.isoformat(), "Voice"),
        (TOMORROW.isoformat(), FORMULA),
        (TOMORROW.isoformat(), "Voice"),
    ]
    assert body["totalRecords"] == 4
    assert body["usage"][1]["entitlementTag"] == ENHANCED
    assert body["usage"][1]["license"] != ENHANCED  # the catalog's display name
    # One day, one virtual account (named in any case, as everywhere), a page of one.
    status, body = await admin.get(
        query(
            **{"from": TOMORROW.isoformat(), "to": TOMORROW.isoformat()},
            virtualAccount="voice",
            tag=ENHANCED,
        )
    )
    assert status == 200, body
    assert voice_days(body) == [(TOMORROW.isoformat(), 7, 7, 10, 0, 3, 1)]
    status, body = await admin.get(
        query(**{"from": TODAY.isoformat(), "to": TOMORROW.isoformat()}, limit="1", offset="3")
    )
    assert status == 200, body
    assert body["totalRecords"] == 4
    assert voice_days(body) == [(TOMORROW.isoformat(), 7, 7, 10, 0, 3, 1)]
    # A sample at a moment already sampled is the same sample: it is not counted again.
    await jobs.usage_rollup(services, at(NOON + DAY))
    status, body = await admin.get(
        query(**{"from": TOMORROW.isoformat(), "to": TOMORROW.isoformat()}, virtualAccount="Voice")
    )
    assert status == 200, body
    assert voice_days(body) == [(TOMORROW.isoformat(), 7, 7, 10, 0, 3, 1)]


async def test_a_tag_with_nothing_left_is_sampled_as_zero(
    admin: Api, server: TestServer, tmp_path: Path, services: Services
) -> None:
    await setup_voice(admin, [])
    agent = await registered_agent(admin, server, tmp_path, "FCH0001")
    await agent.report_usage({ENHANCED: 2})
    await jobs.usage_rollup(services, at(NOON))
    await agent.report_usage({})
    await jobs.usage_rollup(services, at(NOON + MINUTE))
    status, body = await admin.get(query(**{"from": TODAY.isoformat(), "to": TODAY.isoformat()}))
    assert status == 200, body
    assert voice_days(body) == [(TODAY.isoformat(), 2, 0, 0, 0, 0, 2)]


async def test_the_csv_holds_the_json_s_rows_and_runs_no_formula(
    admin: Api, server: TestServer, tmp_path: Path, services: Services
) -> None:
    await two_days_of_usage(admin, server, tmp_path, services)
    path = query(**{"from": TODAY.isoformat(), "to": TOMORROW.isoformat()})
    status, body = await admin.get(path)
    assert status == 200, body
    status, media_type, text = await as_csv(admin, path)
    assert status == 200, text
    assert media_type == "text/csv; charset=utf-8"
    assert text.endswith("\r\n")
    rows = list(csv.DictReader(io.StringIO(text, newline="")))
    assert list(rows[0]) == list(body["usage"][0])  # the header: the JSON's field names
    expected = [{name: str(value) for name, value in row.items()} for row in body["usage"]]
    for row in expected:
        if row["virtualAccount"] == FORMULA:
            row["virtualAccount"] = "'" + FORMULA  # text, not a formula
    assert rows == expected
    # Quoted as RFC 4180 says: the comma and the doubled quotes stay inside one cell.
    assert '"\'=HYPERLINK(""evil.example"",""x""),1"' in text
    # The OpenAPI document offers both, and says what a row means.
    status, document = await admin.get("/api/v1/openapi.json")
    assert status == 200
    described = document["paths"]["/api/v1/accounts/{account}/usage"]["get"]
    assert set(described["responses"]["200"]["content"]) == {"application/json", "text/csv"}
    assert "peakInUse" in described["description"]
    # JSON unless CSV is preferred; caches keep the two apart.
    for accept in ("application/json", "*/*", "application/json, text/csv;q=0.5"):
        headers = {"Authorization": f"Bearer {admin.token}", "Accept": accept}
        async with admin.client.get(path, headers=headers) as response:
            assert response.content_type == "application/json", accept
            assert response.headers["Vary"] == "Accept"


async def test_readers_of_the_account_read_it_and_no_one_else(
    admin: Api, server: TestServer, tmp_path: Path, services: Services
) -> None:
    await two_days_of_usage(admin, server, tmp_path, services)
    status, body = await admin.post("/api/v1/accounts", {"name": "Bravo"})
    assert status == 200, body
    reader = await new_client(admin, "account-viewer", ["Acme"])
    stranger = await new_client(admin, "account-viewer", ["Bravo"])
    path = query(**{"from": TODAY.isoformat(), "to": TOMORROW.isoformat()})
    status, body = await reader.get(path)
    assert status == 200, body
    assert body["totalRecords"] == 4
    status, body = await stranger.get(path)
    assert_refused(status, body)
    assert status == 404, body
    status, text = (await as_csv(stranger, path))[::2]
    assert status == 404
    assert "Voice" not in text
    # Bravo's report holds nothing of Acme's.
    status, body = await stranger.get(
        f"/api/v1/accounts/Bravo/usage?from={TODAY.isoformat()}&to={TOMORROW.isoformat()}"
    )
    assert status == 200, body
    assert body == {"totalRecords": 0, "usage": []}


async def test_bad_ranges_are_refused_naming_the_field(admin: Api) -> None:
    await setup_voice(admin, [])
    today = TODAY.isoformat()
    for params, field in (
        ({"from": "2026-13-01", "to": today}, "from"),
        ({"from": today, "to": "tomorrow"}, "to"),
        ({"to": today}, "from"),
        ({"from": today}, "to"),
        ({"from": TOMORROW.isoformat(), "to": today}, "to"),  # reversed
        ({"from": today, "to": (TODAY + dt.timedelta(days=400)).isoformat()}, "to"),
        ({"from": today, "to": today, "limit": "0"}, "limit"),
        ({"from": today, "to": today, "limit": "10001"}, "limit"),
        ({"from": today, "to": today, "virtualAccount": "Nowhere"}, "virtualAccount"),
    ):
        status, body = await admin.get(query(**params))
        assert_refused(status, body, field)
    # 400 days, from and to included, is as long as a report goes.
    last = (TODAY + dt.timedelta(days=399)).isoformat()
    status, body = await admin.get(query(**{"from": today, "to": last}))
    assert status == 200, body


async def test_the_forget_job_drops_days_older_than_the_history(
    admin: Api, server: TestServer, tmp_path: Path, services: Services, db: asyncpg.Connection
) -> None:
    await two_days_of_usage(admin, server, tmp_path, services)
    assert await db.fetchval("SELECT count(*) FROM usage_daily") == 4
    report = await jobs.forget_usage_history(services, at(NOON + DAY))
    assert report is not None
    assert report.counts["usage_days_forgotten"] == 0
    # 400 days after tomorrow, today is older than the history: its rows go, tomorrow's stay.
    report = await jobs.forget_usage_history(services, at(NOON + 401 * DAY))
    assert report is not None
    assert report.counts["usage_days_forgotten"] == 2
    rows = await db.fetch("SELECT DISTINCT day FROM usage_daily")
    assert [row["day"] for row in rows] == [TOMORROW]


async def test_the_cli_prints_the_report_as_csv(
    admin: Api,
    server: TestServer,
    tmp_path: Path,
    services: Services,
    state_dir: Path,
    db_dsn: str,
) -> None:
    await two_days_of_usage(admin, server, tmp_path, services)
    cli = Cli(toml_config(tmp_path / "satellite.toml", state_dir, db_dsn), tmp_path)
    span = ["--from", TODAY.isoformat(), "--to", TOMORROW.isoformat()]
    printed = cli("usage", "Acme", *span, "--csv").ok().out
    _, _, served = await as_csv(admin, query(**{"from": span[1], "to": span[3]}))
    assert printed == served
    assert list(csv.reader(io.StringIO(printed, newline="")))[2][:2] == [TODAY.isoformat(), "Voice"]
    # The table, and one virtual account.
    table = cli("usage", "Acme", *span, "--virtual-account", "Voice").ok().out.splitlines()
    assert table[0].split()[:3] == ["DAY", "VIRTUAL", "ACCOUNT"]
    assert len(table) == 3
    assert table[1].split()[0] == TODAY.isoformat()
    answer = cli("usage", "Acme", *span, "--json").json()
    assert answer["totalRecords"] == 4
    reversed_span = ["--from", TOMORROW.isoformat(), "--to", TODAY.isoformat()]
    line = cli("usage", "Acme", *reversed_span).one_error_line()
    assert "before from" in line
    assert "not found" in cli("usage", "Nowhere", *span).one_error_line()


async def test_a_csv_page_says_the_total_and_links_the_next_page(
    admin: Api, server: TestServer, tmp_path: Path, services: Services
) -> None:
    """A CSV answer has no totalRecords field: its headers say how many rows the range
    holds (X-Total-Count) and where the next page is (Link rel="next"), until the last."""
    await two_days_of_usage(admin, server, tmp_path, services)
    path = query(**{"from": TODAY.isoformat(), "to": TOMORROW.isoformat(), "limit": "3"})
    total = (await admin.get(path))[1]["totalRecords"]
    assert total == 4
    rows: list[dict[str, str]] = []
    pages = 0
    headers = {"Authorization": f"Bearer {admin.token}", "Accept": "text/csv"}
    next_page: str | None = path
    while next_page is not None and pages < 5:
        async with admin.client.get(next_page, headers=headers) as response:
            assert response.status == 200
            assert response.headers["X-Total-Count"] == str(total)
            rows += csv.DictReader(io.StringIO(await response.text(), newline=""))
            link = response.links.get("next")
            next_page = None if link is None else str(URL(link["url"]).relative())
        pages += 1
    assert (pages, len(rows)) == (2, total)
    assert [r["day"] for r in rows] == [TODAY.isoformat()] * 2 + [TOMORROW.isoformat()] * 2
