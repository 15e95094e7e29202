"""Security headers on every console answer; static assets shipped in the package, with a
long cache, and no address outside the daemon anywhere in the templates."""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path

import satellite.console
from tests.conftest import Api
from tests.helpers.console import Visitor, create_user

CONSOLE = Path(satellite.console.__file__).parent
CSP = (
    "default-src 'self'; script-src 'self'; style-src 'self'; "
    "frame-ancestors 'none'; form-action 'self'"
)


async def test_every_console_answer_has_the_security_headers(
    admin: Api, visitors: Callable[..., Visitor]
) -> None:
    password = await create_user(admin, "alice", "system-admin", [])
    visitor = visitors()
    answers = {
        "redirect": await visitor.get("/", follow=False),
        "sign-in": await visitor.get("/sign-in"),
        "wrong password": await visitor.sign_in("alice", "wrong password"),
    }
    await visitor.sign_in("alice", password)
    answers["accounts"] = await visitor.get("/accounts")
    answers["not found"] = await visitor.get("/accounts/Missing")
    answers["forged"] = await visitor.post("/sign-out", {"csrf": "forged"})
    answers["static"] = await visitor.get(
        re.findall(r'href="(/static/[^"]+)"', answers["accounts"].text)[0]
    )
    for name, answer in answers.items():
        assert answer.headers["Content-Security-Policy"] == CSP, name
        assert answer.headers["X-Frame-Options"] == "DENY", name
        assert answer.headers["Referrer-Policy"] == "same-origin", name
    for name in ("sign-in", "wrong password", "accounts", "not found", "forged"):
        assert answers[name].headers["Cache-Control"] == "no-store", name
    assert answers["not found"].status == 404
    assert answers["forged"].status == 403


async def test_static_assets_are_served_with_a_long_cache(
    visitors: Callable[..., Visitor],
) -> None:
    visitor = visitors()
    page = await visitor.get("/sign-in")
    linked = re.findall(r'(?:href|src)="(/static/[^"]+)"', page.text)
    assert {re.sub(r"\?v=[0-9a-f]{16}$", "", path) for path in linked} == {
        "/static/console.css",
        "/static/htmx-2.0.4.min.js",
        "/static/console.js",
        "/static/copy.js",
    }
    for path in linked:
        asset = await visitor.get(path)
        assert asset.status == 200, path
        assert asset.headers["Cache-Control"] == "public, max-age=31536000, immutable"
        shipped = (CONSOLE / "static" / path.split("?")[0].removeprefix("/static/")).read_text()
        assert asset.text == shipped
        kind = "text/css" if ".css?" in path else "text/javascript"
        assert asset.headers["Content-Type"] == f"{kind}; charset=utf-8", path
    for missing in (
        "/static/nothing.js",
        "/static/README.md",
        "/static/htmx.LICENSE",
        "/static/..%2Fi18n.py",
    ):
        assert (await visitor.get(missing)).status == 404, missing


def test_no_template_names_an_address_outside_the_daemon_and_none_has_inline_code() -> None:
    for template in (CONSOLE / "templates").glob("*.html"):
        text = re.sub(r"\{#.*?#\}", "", template.read_text(encoding="utf-8"), flags=re.S)
        assert not re.search(r"(?:https?:)?//", text), template.name
        assert not re.search(r"<script(?![^>]*\bsrc=)[^>]*>", text), template.name
        assert "<style" not in text, template.name
        assert " style=" not in text, template.name
        assert not re.search(r"\bon[a-z]+=", text), template.name
    assert (CONSOLE / "static" / "htmx.LICENSE").is_file()
