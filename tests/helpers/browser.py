"""What the browser tests share: Debian's Chromium as one process for the session,
the console's users made through the services, signing in through the form, the record
of JavaScript errors a page made, and screenshots for docs/.

Playwright drives that browser over the DevTools protocol from each test's own event loop
(its async API), so a browser test uses the same async fixtures (``server``, ``services``,
``admin``) as every other test; Playwright's synchronous API would hold the thread's
asyncio slot for the whole session and break every ``asyncio.run`` the database fixtures make.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit

from playwright.async_api import ConsoleMessage, Error, Page, Response

from satellite.api.context import Services
from satellite.domain.access import Role, host_operator

CHROMIUM = "/usr/bin/chromium"  # Debian's package (.ci/run installs it); nothing is downloaded
# What headless Chromium needs on a CI machine or in a container: no sandbox (no user
# namespaces there), no GPU; and nothing of its own on the network.
CHROMIUM_FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
START_TIMEOUT = 30.0
POLL = 0.05
SCREENSHOT_SIZE = {"width": 1280, "height": 800}
SCREENSHOTS_DIR = Path(__file__).resolve().parents[2] / "docs" / "screenshots"
# Long enough for the password rules (12 characters at least).
PASSWORD = "a browser test password"


def run_chromium() -> Iterator[str]:
    """Headless Chromium with a fresh profile, its DevTools on a free port of 127.0.0.1,
    until the generator closes; the endpoint Playwright connects to."""
    if not os.access(CHROMIUM, os.X_OK):
        raise RuntimeError(f"{CHROMIUM} is missing: apt-get install chromium (.ci/run does)")
    profile = Path(tempfile.mkdtemp(prefix="satellite-chromium-"))
    process = subprocess.Popen(
        [
            CHROMIUM,
            *CHROMIUM_FLAGS,
            f"--user-data-dir={profile}",
            "--remote-debugging-address=127.0.0.1",
            "--remote-debugging-port=0",
            "about:blank",
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        # Chromium writes the port it chose to this file once DevTools listens.
        active = profile / "DevToolsActivePort"
        deadline = time.monotonic() + START_TIMEOUT
        while not (active.exists() and active.read_text().strip()):
            if process.poll() is not None:
                raise RuntimeError(f"chromium exited with status {process.returncode}")
            if time.monotonic() > deadline:
                raise RuntimeError("chromium did not open its DevTools port")
            time.sleep(POLL)
        port = active.read_text().split()[0]
        yield f"http://127.0.0.1:{port}"
    finally:
        process.terminate()
        try:
            process.wait(timeout=START_TIMEOUT)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        shutil.rmtree(profile, ignore_errors=True)


async def make_user(
    services: Services, username: str, role: Role, accounts: list[str] | None = None
) -> str:
    """A user with ``role`` on ``accounts`` (each made if it does not exist yet); its
    password. As the host operator sets them up."""
    operator = host_operator("pytest")
    names = accounts or []
    existing = {a.name for a in await services.accounts.visible_accounts(operator)}
    for name in names:
        if name not in existing:
            await services.accounts.create_account(operator, name, "", False)
    await services.principals.create_user(operator, username, PASSWORD, role, names)
    return PASSWORD


async def sign_in(page: Page, base_url: str, username: str, password: str) -> None:
    """Through the sign-in form, as a person would; ends on the page it leads to."""
    await page.goto(base_url + "/sign-in")
    form = page.locator("form#sign-in")
    await form.locator("input[name=username]").fill(username)
    await form.locator("input[name=password]").fill(password)
    async with page.expect_navigation():
        await form.locator("button[type=submit]").click()


@dataclass
class PageErrors:
    """Every JavaScript error a page reported: console errors and uncaught exceptions.

    Chromium also logs "Failed to load resource" for a page's own 4xx answer (a sign-in
    form re-shown with 401) and for the /favicon.ico it asks every origin for on its own;
    neither is the page's error (a test asserts the status it expects), so neither counts.
    A page answered with 5xx, and every other resource that fails to load (a stylesheet,
    a script), does.
    """

    console_errors: list[tuple[str, str]] = field(default_factory=list)  # (url, text)
    uncaught: list[str] = field(default_factory=list)
    refused_documents: set[str] = field(default_factory=set)  # pages answered 4xx

    def watch(self, page: Page) -> None:
        page.on("console", self._console)
        page.on("pageerror", self._page_error)
        page.on("response", self._response)

    def _console(self, message: ConsoleMessage) -> None:
        if message.type == "error":
            self.console_errors.append((message.location.get("url", ""), message.text))

    def _page_error(self, error: Error) -> None:
        self.uncaught.append(f"uncaught {error.name}: {error.message}")

    def _response(self, response: Response) -> None:
        if response.request.is_navigation_request() and 400 <= response.status < 500:
            self.refused_documents.add(response.url)

    @property
    def messages(self) -> list[str]:
        counted = [
            f"console error at {url}: {text}"
            for url, text in self.console_errors
            if not (
                text.startswith("Failed to load resource")
                and (url in self.refused_documents or urlsplit(url).path == "/favicon.ico")
            )
        ]
        return counted + self.uncaught

    def clear(self) -> None:
        self.console_errors.clear()
        self.uncaught.clear()

    async def assert_none(self, page: Page) -> None:
        """Fails with every error recorded. One round trip to the page first, so that what
        the browser reported before it has arrived (events come in order)."""
        if not page.is_closed():
            await page.evaluate("0")
        messages = self.messages
        assert not messages, "JavaScript errors:\n" + "\n".join(messages)


async def screenshot(page: Page, name: str) -> None:
    """docs/screenshots/<name>.png at 1280x800, only when SATELLITE_SCREENSHOTS=1 (normal
    runs leave docs/ alone)."""
    if os.environ.get("SATELLITE_SCREENSHOTS") != "1":
        return
    SCREENSHOTS_DIR.mkdir(parents=True, exist_ok=True)
    await page.set_viewport_size(SCREENSHOT_SIZE)  # type: ignore[arg-type]
    await page.screenshot(path=SCREENSHOTS_DIR / f"{name}.png", animations="disabled")
