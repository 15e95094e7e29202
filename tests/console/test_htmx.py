"""The console's htmx requests (the product instance search): a session that ended while
the page was open sends the browser to the sign-in page, rather than swapping the
sign-in form's lack of results into the page."""

from __future__ import annotations

from collections.abc import Callable

from tests.conftest import Api
from tests.helpers.accounts import create_account
from tests.helpers.console import Visitor, create_user

PAGE = "/accounts/Acme/virtual-accounts/DEFAULT/product-instances"


async def test_an_ended_session_sends_an_htmx_request_to_the_sign_in_page(
    admin: Api, visitors: Callable[..., Visitor]
) -> None:
    await create_account(admin, "Acme")
    password = await create_user(admin, "ann", "account-admin", ["Acme"])
    visitor = visitors()
    await visitor.sign_in("ann", password)
    page = await visitor.get(PAGE)
    await visitor.post("/sign-out", {"csrf": page.csrf})
    for session in ("", "ended"):
        if session:
            visitor.jar.update_cookies({"satellite_session": session})
        async with visitor.session.get(
            visitor.base.join(visitor.base.with_path(PAGE)),
            headers={"HX-Request": "true"},
            allow_redirects=False,
        ) as answer:
            assert answer.status == 200
            assert answer.headers["HX-Redirect"] == "/sign-in"
            assert await answer.text() == ""
    # A plain request (no script) is led there as before.
    assert (await visitor.get(PAGE, follow=False)).headers["Location"] == "/sign-in"
