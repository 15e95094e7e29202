"""The operator console: server-rendered pages (Jinja2 through aiohttp-jinja2) over the
operations of ``satellite.api``, in English and Simplified Chinese, with its static assets
shipped in the package."""

from __future__ import annotations

import aiohttp_jinja2
import jinja2
from aiohttp import web

from satellite.api.context import Services
from satellite.console import i18n, static, words
from satellite.console.guard import PAGES, SERVICES, refusals_as_pages, secured
from satellite.console.pages import routes
from satellite.console.principals import lists_allowed

__all__ = ["attach_services", "refusals_as_pages", "setup_console"]


def setup_console(app: web.Application) -> None:
    """Add the console's pages and assets to ``app`` (its services come with
    ``attach_services`` when the app's startup has opened them)."""
    env = aiohttp_jinja2.setup(
        app,
        loader=jinja2.PackageLoader("satellite.console", "templates"),
        autoescape=True,
        undefined=jinja2.StrictUndefined,
    )
    i18n.install(env)
    env.globals["static"] = static.url
    env.globals["languages"] = list(i18n.LANGUAGES.values())
    env.globals["principal_lists"] = lists_allowed
    env.globals["words"] = words.WORDS
    added = app.router.add_routes(routes())
    added.append(app.router.add_get("/static/{name}", secured(static.serve)))
    app[PAGES] = frozenset(route.resource for route in added if route.resource is not None)


def attach_services(app: web.Application, services: Services) -> None:
    app[SERVICES] = services
