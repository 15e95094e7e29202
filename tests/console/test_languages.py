"""Two languages: every string of the console in both catalogs, chosen from
Accept-Language, switched by ?lang= (kept in a cookie), dates per locale."""

from __future__ import annotations

import ast
import re
from collections.abc import Callable
from pathlib import Path

from jinja2.ext import GETTEXT_FUNCTIONS, babel_extract

import satellite.console
from satellite.console import i18n
from tests.conftest import Api
from tests.helpers.accounts import create_account
from tests.helpers.console import Visitor, assert_chinese, catalog, create_user

CONSOLE = Path(satellite.console.__file__).parent


def _console_messages() -> set[str]:
    """Every message the templates pass to _() and the Python passes to i18n.gettext()."""
    found: set[str] = set()
    for template in (CONSOLE / "templates").glob("*.html"):
        with template.open("rb") as source:
            for _, _, message, _ in babel_extract(source, GETTEXT_FUNCTIONS, [], {}):
                assert isinstance(message, str), template
                found.add(message)
    for module in CONSOLE.glob("*.py"):
        for node in ast.walk(ast.parse(module.read_text(encoding="utf-8"))):
            if (
                isinstance(node, ast.Call)
                and isinstance(node.func, ast.Attribute)
                and node.func.attr == "gettext"
                and isinstance(node.func.value, ast.Name)
                and node.func.value.id == "i18n"
            ):
                literal = node.args[1]
                assert isinstance(literal, ast.Constant), f"{module.name}: a non-literal message"
                assert isinstance(literal.value, str)
                found.add(literal.value)
    return found


def test_no_catalog_defines_a_message_twice() -> None:
    # Babel keeps the last of two definitions without a word; GNU msgfmt refuses the file.
    for language in i18n.LANGUAGES.values():
        text = i18n.po_path(language).read_text(encoding="utf-8")
        ids = [
            "".join(re.findall(r'"((?:[^"\\]|\\.)*)"', block))
            for block in re.findall(r'^msgid ((?:"(?:[^"\\]|\\.)*"\n)+)', text, re.M)
        ]
        repeated = sorted({message for message in ids if ids.count(message) > 1})
        assert not repeated, (language.locale, repeated)


def test_every_string_of_the_console_is_in_both_catalogs() -> None:
    messages = _console_messages()
    assert len(messages) > 15
    english, chinese = catalog(i18n.ENGLISH), catalog(i18n.CHINESE)
    assert messages == set(english) == set(chinese)  # nothing missing, nothing stale
    for message in messages:
        assert english[message] == message
        assert chinese[message], message
        assert chinese[message] != message
        assert not re.search(r"[A-Za-z]{3,}", re.sub(r"%\(\w+\)s", "", chinese[message])), message


async def test_chinese_pages_have_no_english_string_left(
    admin: Api, visitors: Callable[..., Visitor]
) -> None:
    await create_account(admin, "Acme")
    password = await create_user(admin, "ann", "account-admin", ["Acme"])
    visitor = visitors("zh-CN,zh;q=0.9,en;q=0.8")
    pages = [await visitor.get("/sign-in"), await visitor.sign_in("ann", "wrong password")]
    await visitor.sign_in("ann", password)
    pages += [await visitor.get("/accounts"), await visitor.get("/accounts/Acme")]
    pages.append(await visitor.get("/accounts/Missing"))  # the error page
    tokens = "/accounts/Acme/virtual-accounts/DEFAULT/tokens"
    empty = await visitor.get(tokens)
    pages += [empty, await visitor.post(tokens, {"csrf": empty.csrf, "number_of_uses": "x"})]
    pages.append(await visitor.post(tokens, {"csrf": empty.csrf, "description": "lab"}))
    pages += [await visitor.get("/accounts/Acme/alerts"), await visitor.get("/events")]
    pages.append(await visitor.get("/events?since=x"))  # the form again, with its error
    # What the user's data says stays as it is (names, the default virtual account's
    # description the server wrote).
    data = ("Acme", "ann", "DEFAULT", "Default virtual account", "Missing", "lab")
    for page in pages:
        assert_chinese(page, data)
    # Dates in the Chinese way (2026年12月1日 ...).
    assert re.search(r"\d{4}年\d{1,2}月\d{1,2}日 \d{2}:\d{2}:\d{2} UTC", pages[2].text)


async def test_the_language_comes_from_the_browser_and_the_switch_is_kept(
    visitors: Callable[..., Visitor],
) -> None:
    assert '<html lang="en">' in (await visitors("fr-FR,fr;q=0.9").get("/sign-in")).text
    assert '<html lang="zh-CN">' in (await visitors("zh-TW").get("/sign-in")).text
    assert '<html lang="en">' in (await visitors("en-US,zh;q=0.5").get("/sign-in")).text

    visitor = visitors("zh-CN")
    page = await visitor.get("/sign-in")
    assert 'href="/sign-in?lang=en"' in page.text
    assert 'href="/sign-in?lang=zh-CN"' in page.text
    # The answer to a POST links to a page one can GET.
    wrong = await visitor.sign_in("nobody", "a long password!")
    assert 'href="/sign-in?lang=en"' in wrong.text
    switched = await visitor.get("/sign-in?lang=en")
    assert '<html lang="en">' in switched.text
    assert visitor.cookie("satellite_lang") == "en"
    assert '<html lang="en">' in (await visitor.get("/sign-in")).text
    assert '<html lang="zh-CN">' in (await visitor.get("/sign-in?lang=zh-CN")).text
    assert '<html lang="zh-CN">' in (await visitor.get("/sign-in")).text


async def test_the_language_links_keep_the_page_and_its_query(
    admin: Api, visitors: Callable[..., Visitor]
) -> None:
    password = await create_user(admin, "ann", "system-admin", [])
    visitor = visitors("en")
    await visitor.sign_in("ann", password)
    # A page's filters and paging stay; only the language changes.
    events = await visitor.get("/events?actor=ann&offset=25&lang=zh-CN")
    assert '<html lang="zh-CN">' in events.text
    assert 'href="/events?actor=ann&amp;offset=25&amp;lang=en"' in events.text
    assert 'href="/events?actor=ann&amp;offset=25&amp;lang=zh-CN"' in events.text
