"""The alerts and audit log pages: what the operations of satellite.api.activity answer
for the session's principal, the log's filters as a GET form and its paging links."""

from __future__ import annotations

import html
import re
from collections.abc import Callable

from satellite.api.context import Services
from satellite.storage.alerts import clear_alerts_except, raise_alert
from tests.conftest import Api
from tests.helpers.accounts import create_account, create_va
from tests.helpers.console import Visitor, assert_chinese, create_user


async def _raise(services: Services, account: str, severity: str, message: str) -> None:
    async with services.db.transaction() as conn:
        account_id = await conn.fetchval("SELECT id FROM accounts WHERE name = $1", account)
        va_id = await conn.fetchval(
            "SELECT id FROM virtual_accounts WHERE account_id = $1 AND name = 'DEFAULT'",
            account_id,
        )
        await raise_alert(
            conn,
            account_id=account_id,
            virtual_account_id=va_id,
            dedupe_key=message,
            message_type="TEST",  # type: ignore[arg-type]  # (a type no service raises)
            severity=severity,  # type: ignore[arg-type]
            source="test",
            message=message,
            details={},
        )


def _rows(page: str, table: str) -> list[str]:
    body = page.split(f'<table id="{table}">')[1].split("</table>")[0]
    return [html.unescape(row) for row in re.findall(r"<tr\b.*?</tr>", body, flags=re.S)[1:]]


async def test_alerts_show_severity_in_words_and_only_the_own_account(
    admin: Api, visitors: Callable[..., Visitor], services: Services
) -> None:
    await create_account(admin, "Acme")
    await create_account(admin, "Other")
    await _raise(services, "Acme", "Critical", "Pool short by 3")
    await _raise(services, "Acme", "Info", "Sync done")
    await _raise(services, "Other", "Major", "Other trouble")
    password = await create_user(admin, "ann", "account-admin", ["Acme"])
    visitor = visitors()
    await visitor.sign_in("ann", password)
    account = await visitor.get("/accounts/Acme")
    assert 'href="/accounts/Acme/alerts"' in account.text
    page = await visitor.get("/accounts/Acme/alerts")
    assert page.status == 200
    rows = _rows(page.text, "alerts")
    assert len(rows) == 2
    critical = next(row for row in rows if "Pool short by 3" in row)
    assert 'class="severity-critical"' in critical
    assert "<td>Critical</td>" in critical
    # The virtual account is a link to its page.
    assert '<td><a href="/accounts/Acme/virtual-accounts/DEFAULT">DEFAULT</a></td>' in critical
    assert re.search(r"<td>\w{3} \d{1,2}, \d{4}", critical)  # the raised time, in English
    assert any('class="severity-info"' in row and "<td>Info</td>" in row for row in rows)
    assert "Other trouble" not in page.text
    # Another account's alerts are the operation's answer: not found, not a 500.
    other = await visitor.get("/accounts/Other/alerts")
    assert other.status == 404
    assert "Other trouble" not in other.text


async def test_alerts_are_paged_with_their_total_and_the_cleared_ones_on_asking(
    admin: Api, visitors: Callable[..., Visitor], services: Services
) -> None:
    await create_account(admin, "Acme")
    for number in range(30):
        await _raise(services, "Acme", "Minor", f"Open {number:02}")
    for number in range(3):
        await _raise(services, "Acme", "Info", f"Old {number}")
    async with services.db.transaction() as conn:
        account_id = await conn.fetchval("SELECT id FROM accounts WHERE name = 'Acme'")
        await clear_alerts_except(conn, account_id, "Old", [])
    password = await create_user(admin, "ann", "account-viewer", ["Acme"])
    visitor = visitors()
    await visitor.sign_in("ann", password)

    first = await visitor.get("/accounts/Acme/alerts")
    assert len(_rows(first.text, "alerts")) == 25
    assert "Shown: 1-25 · Total: 30" in first.text
    assert "Open 29" in first.text  # newest first
    assert "Old" not in first.text
    assert 'rel="prev"' not in first.text
    [next_link] = re.findall(r'<a rel="next" href="([^"]+)"', first.text)
    second = await visitor.get(html.unescape(next_link))
    assert len(_rows(second.text, "alerts")) == 5
    assert "Shown: 26-30 · Total: 30" in second.text
    assert "Open 00" in second.text
    assert 'rel="next"' not in second.text
    assert 'rel="prev"' in second.text

    # The cleared ones too: 33, the filter kept on the paging links.
    every = await visitor.get("/accounts/Acme/alerts?cleared=yes")
    assert "Shown: 1-25 · Total: 33" in every.text
    assert 'id="show-open"' in every.text
    [next_link] = re.findall(r'<a rel="next" href="([^"]+)"', every.text)
    assert "cleared=yes" in html.unescape(next_link)
    rest = await visitor.get(html.unescape(next_link))
    assert "Shown: 26-33 · Total: 33" in rest.text
    assert "Old 0" in every.text  # the newest
    assert "Open 00" in rest.text
    chinese = await visitor.get("/accounts/Acme/alerts?cleared=yes&offset=25&lang=zh-CN")
    assert "清除时间" in chinese.text
    # (A type no service raises, and its alerts' messages, are shown as they are stored.)
    data = ["Acme", "DEFAULT", "TEST", *(f"Open {n:02}" for n in range(30))]
    data += ["Old 0", "Old 1", "Old 2"]
    assert_chinese(chinese, data)

    # An offset that is not one: the page with its error, not a 500.
    for offset in ("x", "-1", "9" * 30):
        bad = await visitor.get(f"/accounts/Acme/alerts?offset={offset}")
        assert bad.status == 400, offset
        assert 'role="alert"' in bad.text
    # The API answers the total too.
    status, body = await admin.post("/api/v1/accounts/Acme/alerts", {"limit": 5})
    assert status == 200
    assert body["totalRecords"] == 30
    assert len(body["alerts"]) == 5


async def test_audit_log_filters_and_pages_and_an_account_admin_sees_only_its_own(
    admin: Api, visitors: Callable[..., Visitor]
) -> None:
    await create_account(admin, "Acme")
    await create_account(admin, "Other")
    for number in range(30):
        await create_va(admin, "Acme", f"VA{number:02}")
    await create_va(admin, "Other", "Secret")
    password = await create_user(admin, "ann", "account-admin", ["Acme"])
    visitor = visitors()
    await visitor.sign_in("ann", password)
    start = await visitor.get("/accounts")
    assert 'href="/events"' in start.text

    first = await visitor.get("/events?action=virtual_account")
    assert first.status == 200
    rows = _rows(first.text, "events")
    assert len(rows) == 25
    assert all("virtual_account.created" in row and "Acme" in row for row in rows)
    assert all('<a href="/accounts/Acme">Acme</a>' in row for row in rows)  # linked
    assert "Other/Secret" not in first.text  # not ann's account
    assert "Shown: 1-25 · Total: 30" in first.text
    assert 'rel="prev"' not in first.text
    [next_link] = re.findall(r'<a rel="next" href="([^"]+)"', first.text)
    second = await visitor.get(html.unescape(next_link))
    assert len(_rows(second.text, "events")) == 5
    assert "Shown: 26-30 · Total: 30" in second.text
    assert 'rel="next"' not in second.text
    assert 'value="virtual_account"' in second.text  # the filter is kept
    both = "".join(rows + _rows(second.text, "events"))
    assert len(set(re.findall(r"Acme/VA\d\d", both))) == 30  # each once, none twice
    [prev_link] = re.findall(r'<a rel="prev" href="([^"]+)"', second.text)
    assert "Shown: 1-25 · Total: 30" in (await visitor.get(html.unescape(prev_link))).text

    # A system admin sees every account; the actor and account filters narrow it.
    operator = visitors()
    await operator.sign_in("op", await create_user(admin, "op", "system-admin", []))
    other = await operator.get("/events?account=Other&action=virtual_account")
    assert [row for row in _rows(other.text, "events") if "Other/Secret" in row]
    assert len(_rows(other.text, "events")) == 1
    by_ann = await operator.get("/events?actor=ann")
    assert "No events." in by_ann.text
    future = await operator.get("/events?since=2999-01-01")
    assert "No events." in future.text
    past = await operator.get("/events?until=2000-01-01&action=virtual_account")
    assert "No events." in past.text


async def test_a_date_that_is_not_one_shows_the_form_again_with_an_error(
    admin: Api, visitors: Callable[..., Visitor]
) -> None:
    password = await create_user(admin, "op", "system-admin", [])
    visitor = visitors()
    await visitor.sign_in("op", password)
    for query in ("since=yesterday", "until=2026-13-45", "offset=-1", "action=" + "a" * 101):
        page = await visitor.get("/events?" + query)
        assert page.status == 400, query
        assert 'id="event-filters"' in page.text
        assert 'role="alert"' in page.text
    bad = await visitor.get("/events?since=yesterday&actor=ann")
    assert "Since and until are dates (YYYY-MM-DD)." in bad.text
    assert 'value="yesterday"' in bad.text
    assert 'value="ann"' in bad.text
