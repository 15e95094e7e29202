# ruff: noqa: RUF001  (the Chinese texts expected have Chinese punctuation: full-width)
"""An alert on the alerts page in the visitor's language: said from its type and details
through the catalogs (a tag by its display name, numbers and dates as the language writes
them); an alert of a type the console does not say, or without details (raised before
alerts kept them), shows its stored English message."""

from __future__ import annotations

import ast
import datetime as dt
import html
import re
from collections.abc import Callable
from pathlib import Path
from typing import get_args

import pytest

import satellite
import sync
from satellite.api.activity import AlertOut
from satellite.api.context import Services
from satellite.console import alert_text, i18n
from satellite.domain.alerts import ALERT_DETAILS, AlertDetails, AlertType, check_details
from satellite.storage.alerts import raise_alert
from tests.conftest import ENHANCED, Api
from tests.helpers.accounts import create_account
from tests.helpers.console import Visitor, assert_chinese, create_user

ENHANCED_NAME = "UC Manager Enhanced License (12.x)"  # its display name in config/catalog.toml
HOST = "PID:CP-8845 SN:FCH0001"  # how an alert names a product without a host name

# Each type: the details a service gives, what the page says in English, and in Chinese.
SAID: list[tuple[AlertType, AlertDetails, str, str]] = [
    (
        "Insufficient Licenses",
        {"tag": ENHANCED, "short": 1234},
        f"{ENHANCED_NAME}: 1,234 more in use or reserved than available",
        f"{ENHANCED_NAME}：使用中和已预留的比可用的多 1,234 个",
    ),
    (
        "Licenses Expired",
        {"tag": ENHANCED, "quantity": 5, "end_date": "2027-03-31"},
        f"5 {ENHANCED_NAME} expired on Mar 31, 2027",
        f"5 个 {ENHANCED_NAME} 已于 2027年3月31日 到期",
    ),
    (
        "Licenses Expiring",
        {"tag": ENHANCED, "quantity": 2000, "end_date": "2027-04-02"},
        f"2,000 {ENHANCED_NAME} expire on Apr 2, 2027",
        f"2,000 个 {ENHANCED_NAME} 将于 2027年4月2日 到期",
    ),
    (
        "Authorization Expired",
        {"product": HOST, "expired_on": "2027-01-15"},
        f"{HOST} has not renewed its authorization, which expired on Jan 15, 2027: its "
        "license usage no longer counts until it renews",
        f"{HOST} 未续订其授权（已于 2027年1月15日 过期）：在它续订之前，其许可证使用量不再计入",
    ),
    (
        "Certificate Expiring",
        {"product": "phone-7.example", "expires_on": "2027-02-01"},
        "The ID certificate of phone-7.example expires on Feb 1, 2027: unless the product "
        "renews its registration by then, it must register again with a token",
        "phone-7.example 的 ID 证书将于 2027年2月1日 到期：产品若未在此之前续订注册，"
        "就必须使用令牌重新注册",
    ),
    (
        "Export Control Not Allowed",
        {"product": HOST, "features": "CRYPTO", "cause": "deregistered", "alarm": "ALARM_X"},
        f"{HOST} held export-controlled feature(s) CRYPTO (the product deregistered): their "
        "export keys went back to the pool; the product keeps the feature(s) enabled and "
        "raises ALARM_X to its administrator",
        f"{HOST} 持有受出口管制的功能 CRYPTO（产品已注销）：其出口密钥已退回池中；"
        "产品仍启用这些功能，并向其管理员发出 ALARM_X",
    ),
    (
        "ExportControlWithdrawn",
        {"export_keys": 1, "tokens": 2, "lines": 1500},
        "The upstream no longer allows this account export-controlled functionality; it "
        "still has 1 export key(s) granted, 2 export-controlled token(s) and 1,500 "
        "export-restricted line(s): have the products return their keys, and revoke the "
        "tokens",
        "上级服务器不再允许此账户使用受出口管制的功能；它仍有 1 个已授予的出口密钥、"
        "2 个受出口管制的令牌和 1,500 个受出口限制的许可证行：请让产品归还其密钥，并撤销这些令牌",
    ),
    (
        "SyncFailed",
        {"operation": "sync-now", "error": "ERR_UPSTREAM_42"},
        "Sync with the upstream failed (Sync now): ERR_UPSTREAM_42",
        "与上级服务器同步失败（立即同步）：ERR_UPSTREAM_42",
    ),
    (
        "SyncOverdue",
        {"since": "2026-10-01", "until": "2026-12-30"},
        "No sync with the upstream since Oct 1, 2026: from Dec 30, 2026 this satellite "
        "grants no new authorizations unless it syncs",
        "自 2026年10月1日 起未与上级服务器同步：除非同步，本卫星服务器自 2026年12月30日 "
        "起不再授予新的授权",
    ),
    (
        "SyncHorizonPassed",
        {"since": "2026-08-01", "days": 90},
        "No sync with the upstream since Aug 1, 2026: more than 90 days, so this satellite "
        "grants no new authorizations; sync now (or import an answer) to resume",
        "自 2026年8月1日 起未与上级服务器同步：已超过 90 天，因此本卫星服务器不再授予新的授权；"
        "请立即同步（或导入应答）以恢复",
    ),
    (
        "Webhook Delivery Failed",
        {"event": "alert.raised", "host": "hooks.example", "attempts": 12, "error": "HTTP 503"},
        "A delivery of alert.raised to hooks.example was given up after 12 attempt(s); the "
        "last: HTTP 503",
        "发往 hooks.example 的 alert.raised 投递在尝试 12 次后已放弃；最后一次：HTTP 503",
    ),
]
TYPE_WORDS = {"Insufficient Licenses": ("Insufficient licenses", "许可证不足")}
# What the alerts' values are, on a Chinese page: names, identities, codes (data, not words).
DATA = [
    *("Acme", "DEFAULT", ENHANCED_NAME, HOST, "phone-7.example", "CRYPTO", "ALARM_X"),
    *("ERR_UPSTREAM_42", "alert.raised", "hooks.example", "HTTP 503", "stored words (old)"),
]


def _rows(page: str) -> list[str]:
    body = page.split('<table id="alerts">')[1].split("</table>")[0]
    cells = re.findall(r"<tr\b.*?</tr>", body, flags=re.S)[1:]
    return [re.sub(r"\s+", " ", html.unescape(re.sub(r"<[^>]+>", " ", row))) for row in cells]


async def _raise_each(services: Services) -> None:
    async with services.db.transaction() as conn:
        account_id = await conn.fetchval("SELECT id FROM accounts WHERE name = 'Acme'")
        for number, (kind, details, _, _) in enumerate(SAID):
            await raise_alert(
                conn,
                account_id=account_id,
                virtual_account_id=None,
                dedupe_key=f"test:{number}",
                message_type=kind,
                severity="Major",
                source="test",
                message=f"stored words ({kind})",
                details=details,
            )
        # Raised before alerts kept their details (sql/018): the stored message, as it is.
        await conn.execute(
            "INSERT INTO alerts (account_id, dedupe_key, message_type, severity, source, "
            "message) VALUES ($1, 'old', 'Insufficient Licenses', 'Major', 'test', "
            "'stored words (old)')",
            account_id,
        )


async def test_each_type_of_alert_is_said_in_the_visitors_language(
    admin: Api, visitors: Callable[..., Visitor], services: Services
) -> None:
    await create_account(admin, "Acme")
    await _raise_each(services)
    password = await create_user(admin, "ann", "account-viewer", ["Acme"])
    english, chinese = visitors("en"), visitors("zh-CN")
    await english.sign_in("ann", password)
    await chinese.sign_in("ann", password)
    en_page = await english.get("/accounts/Acme/alerts")
    zh_page = await chinese.get("/accounts/Acme/alerts")
    assert en_page.status == zh_page.status == 200
    en_rows, zh_rows = _rows(en_page.text), _rows(zh_page.text)
    assert len(en_rows) == len(zh_rows) == len(SAID) + 1
    for kind, _, in_english, in_chinese in SAID:
        assert any(in_english in row for row in en_rows), (kind, en_rows)
        assert any(in_chinese in row for row in zh_rows), (kind, zh_rows)
    # The type is a column, in words.
    for shown, (word, chinese_word) in TYPE_WORDS.items():
        assert any(f" {word} " in row for row in en_rows), shown
        assert any(f" {chinese_word} " in row for row in zh_rows), shown
    # The old alert has no details: its stored message, in both.
    assert "stored words (old)" in en_page.text
    assert "stored words (old)" in zh_page.text
    # Nothing else is English on the Chinese page, and no alert said its stored message.
    assert_chinese(zh_page, DATA)
    assert sum("stored words" in row for row in zh_rows) == 1
    # The API answers each alert's details beside its English message.
    status, body = await admin.post("/api/v1/accounts/Acme/alerts", {})
    assert status == 200, body
    by_type = {a["messageType"]: a for a in body["alerts"] if a["details"] is not None}
    assert {kind: by_type[kind]["details"] for kind, *_ in SAID} == {
        kind: details for kind, details, *_ in SAID
    }
    [old] = [a for a in body["alerts"] if a["details"] is None]
    assert old["message"] == "stored words (old)"


def _answer(kind: str, details: AlertDetails | None) -> AlertOut:
    return AlertOut(
        message_type=kind,
        severity="Major",
        source="test",
        message="the stored message",
        details=details,
        virtual_account=None,
        created_at=dt.datetime(2026, 12, 1, tzinfo=dt.UTC),
        cleared_at=None,
    )


@pytest.mark.unit
def test_the_table_says_every_type_a_service_raises() -> None:
    assert [kind for kind, *_ in SAID] == list(get_args(AlertType))
    assert set(alert_text.SENTENCES) == set(ALERT_DETAILS) == set(get_args(AlertType))
    for kind, details, *_ in SAID:
        assert check_details(kind, details) == details
    assert alert_text.alert_type(i18n.CHINESE, "Licenses Expired") == "许可证已到期"
    assert alert_text.alert_type(i18n.CHINESE, "TEST") == "TEST"  # as it is stored


@pytest.mark.unit
@pytest.mark.parametrize(
    ("kind", "details"),
    [
        ("TEST", {"count": 1}),  # a type the console does not say
        ("Insufficient Licenses", None),  # raised before alerts kept their details
        ("Insufficient Licenses", {"tag": ENHANCED}),  # not its type's keys
        ("Insufficient Licenses", {"tag": ENHANCED, "short": "many"}),  # not a number
        ("Licenses Expired", {"tag": ENHANCED, "quantity": 1, "end_date": "soon"}),
    ],
)
def test_an_alert_the_console_cannot_say_shows_its_stored_message(
    kind: str, details: AlertDetails | None
) -> None:
    for language in i18n.LANGUAGES.values():
        said = alert_text.alert_text(language, _answer(kind, details), {})
        assert said == "the stored message"


@pytest.mark.unit
@pytest.mark.parametrize(
    "details",
    [
        {"tag": ENHANCED},  # a key missing
        {"tag": ENHANCED, "short": 1, "extra": 2},  # a key too many
        {"tag": ENHANCED, "short": True},  # not an integer
        {"tag": ENHANCED, "short": 1.5},  # nor text
        {"tag": ENHANCED, "short": 2**60},  # beyond what JSON readers keep exactly
        {"tag": "x" * 501, "short": 1},  # too long
        {"Tag": ENHANCED, "short": 1},  # not a snake_case name
    ],
)
def test_details_that_are_not_their_types_are_refused(details: AlertDetails) -> None:
    with pytest.raises(ValueError, match="Insufficient Licenses"):
        check_details("Insufficient Licenses", details)


@pytest.mark.unit
def test_every_site_that_raises_an_alert_gives_its_details() -> None:
    """Each call of ``raise_alert`` in the daemon and the sync services names its details
    (mypy requires them too; ``check_details`` checks their keys when it runs)."""
    sites = []
    for root in (Path(satellite.__file__).parent, Path(sync.__file__).parent):
        for module in sorted(root.rglob("*.py")):
            for node in ast.walk(ast.parse(module.read_text(encoding="utf-8"))):
                if isinstance(node, ast.Call) and getattr(node.func, "attr", "") == "raise_alert":
                    keywords = {k.arg for k in node.keywords}
                    assert {"message_type", "details"} <= keywords, (module, node.lineno)
                    sites.append(module.name)
    # Pools (shortage; expiry), products (authorization; certificate), export keys,
    # webhooks, sync (failure; export control withdrawn; the horizon).
    assert sorted(sites) == sorted(
        ["licenses.py"] * 2
        + ["maintenance.py"] * 2
        + ["exports.py", "webhook_deliveries.py", "base.py", "answers.py", "status.py"]
    )
