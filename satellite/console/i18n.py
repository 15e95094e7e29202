"""The console's two languages: gettext catalogs read from the ``.po`` files at start
(no compiled ``.mo`` to keep in step with them), the request's language, dates per locale."""

from __future__ import annotations

import datetime as dt
import io
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import babel.dates
import babel.numbers
from aiohttp import web
from babel.messages.mofile import write_mo
from babel.messages.pofile import read_po
from babel.support import Translations
from jinja2 import Environment, pass_context
from jinja2.runtime import Context

TRANSLATIONS_DIR = Path(__file__).parent / "translations"
DOMAIN = "console"
LANG_COOKIE = "satellite_lang"


@dataclass(frozen=True)
class Language:
    tag: str  # as html[lang] and ?lang= spell it
    locale: str  # as Babel and the catalog's directory spell it


ENGLISH = Language("en", "en")
CHINESE = Language("zh-CN", "zh_CN")
LANGUAGES = {language.tag: language for language in (ENGLISH, CHINESE)}


def po_path(language: Language) -> Path:
    return TRANSLATIONS_DIR / language.locale / "LC_MESSAGES" / f"{DOMAIN}.po"


def _load(language: Language) -> Translations:
    with po_path(language).open("rb") as po:
        catalog = read_po(po, locale=language.locale, domain=DOMAIN)
    mo = io.BytesIO()
    write_mo(mo, catalog)
    mo.seek(0)
    return Translations(mo, domain=DOMAIN)


_TRANSLATIONS = {language.tag: _load(language) for language in LANGUAGES.values()}


def from_accept_language(header: str) -> Language:
    """Chinese when the browser's first language it names that we have is Chinese."""
    ranked: list[tuple[float, int, str]] = []
    for index, part in enumerate(header.split(",")[:32]):
        tag, _, params = part.strip().partition(";")
        quality = 1.0
        if params.strip().startswith("q="):
            try:
                quality = float(params.strip()[2:])
            except ValueError:
                continue
        ranked.append((-quality, index, tag.strip().lower()))
    for _, _, tag in sorted(ranked):
        if tag == "zh" or tag.startswith("zh-"):
            return CHINESE
        if tag == "en" or tag.startswith("en-"):
            return ENGLISH
    return ENGLISH


def choose(request: web.Request) -> tuple[Language, bool]:
    """The request's language, and whether it was chosen now (by ``?lang=``: the cookie
    is to be set)."""
    asked = LANGUAGES.get(request.query.get("lang", ""))
    if asked is not None:
        return asked, True
    kept = LANGUAGES.get(request.cookies.get(LANG_COOKIE, ""))
    if kept is not None:
        return kept, False
    return from_accept_language(request.headers.get("Accept-Language", "")), False


def gettext(language: Language, message: str) -> str:
    return _TRANSLATIONS[language.tag].gettext(message)


@pass_context
def _template_gettext(context: Context, message: str, **variables: Any) -> str:
    text = gettext(context["language"], message)
    return text % variables if variables else text


@pass_context
def _template_ngettext(
    context: Context, singular: str, plural: str, n: int, **variables: Any
) -> str:
    text = _TRANSLATIONS[context["language"].tag].ngettext(singular, plural, n)
    return text % ({"num": n} | variables)


def moment_text(language: Language, value: dt.datetime) -> str:
    """A moment in UTC, and saying so: the server does not know the reader's zone, and
    operators of one satellite may sit in several."""
    moment = babel.dates.format_datetime(
        value, format="medium", tzinfo=dt.UTC, locale=language.locale
    )
    return f"{moment} UTC"


def date_text(language: Language, value: dt.date) -> str:
    return babel.dates.format_date(value, format="medium", locale=language.locale)


def number_text(language: Language, value: int | float) -> str:
    return babel.numbers.format_decimal(value, locale=language.locale)


# The template filters of the three, in the page's language.
@pass_context
def format_datetime(context: Context, value: dt.datetime) -> str:
    return moment_text(context["language"], value)


@pass_context
def format_date(context: Context, value: dt.date) -> str:
    return date_text(context["language"], value)


@pass_context
def format_number(context: Context, value: int | float) -> str:
    return number_text(context["language"], value)


def install(env: Environment) -> None:
    env.add_extension("jinja2.ext.i18n")
    env.globals["_"] = _template_gettext
    env.globals["gettext"] = _template_gettext
    env.globals["ngettext"] = _template_ngettext
    env.filters["datetime"] = format_datetime
    env.filters["date"] = format_date
    env.filters["number"] = format_number
