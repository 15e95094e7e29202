"""The registration tokens page: the list, create and revoke through the operations of
satellite.api.tokens with the session's principal; a viewer sees prefixes and no controls."""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

from tests.conftest import Api
from tests.helpers.accounts import create_account
from tests.helpers.console import Visitor, create_user

PAGE = "/accounts/Acme/virtual-accounts/DEFAULT/tokens"


async def api_tokens(admin: Api, account: str = "Acme") -> list[dict[str, Any]]:
    status, body = await admin.get(f"/api/v1/accounts/{account}/virtual-accounts/DEFAULT/tokens")
    assert status == 200, body
    tokens: list[dict[str, Any]] = body["tokens"]
    return tokens


async def test_create_shows_the_new_token_and_revoke_ends_it(
    admin: Api, visitors: Callable[..., Visitor]
) -> None:
    await create_account(admin, "Acme")
    password = await create_user(admin, "ann", "account-admin", ["Acme"])
    visitor = visitors()
    await visitor.sign_in("ann", password)
    account = await visitor.get("/accounts/Acme")
    assert f'href="{PAGE}"' in account.text
    page = await visitor.get(PAGE)
    assert page.status == 200
    assert page.headers["Cache-Control"] == "no-store"
    assert "No registration tokens yet." in page.text
    assert 'id="create-token"' in page.text

    created = await visitor.post(
        PAGE,
        {
            "csrf": page.csrf,
            "description": "lab phones",
            "expires_after_days": "7",
            "number_of_uses": "3",
            "export_controlled": "Not Allowed",
        },
    )
    assert created.status == 200
    assert created.headers["Cache-Control"] == "no-store"
    [token] = await api_tokens(admin)
    assert token["description"] == "lab phones"
    assert token["numberOfUses"] == 3
    assert token["exportControlled"] == "Not Allowed"
    assert f'<code id="new-token-value">{token["token"]}</code>' in created.text
    assert 'data-copy="new-token-value"' in created.text
    row = created.text.split('<table id="tokens">')[1]
    assert "<td>Active</td>" in row
    assert "<td>0 / 3</td>" in row
    assert "<td>Not allowed</td>" in row
    assert "<td>lab phones</td>" in row

    revoked = await visitor.post(
        PAGE + "/revoke", {"csrf": page.csrf, "token": token["token"]}, follow=False
    )
    assert revoked.status == 303
    assert revoked.headers["Location"] == PAGE
    [token] = await api_tokens(admin)
    assert token["status"] == "Revoked"
    listing = await visitor.get(PAGE)
    assert "<td>Revoked</td>" in listing.text
    assert 'class="revoke"' not in listing.text  # only active tokens can be revoked


async def test_bad_input_shows_the_form_again_and_makes_nothing(
    admin: Api, visitors: Callable[..., Visitor]
) -> None:
    await create_account(admin, "Acme")
    password = await create_user(admin, "ann", "account-admin", ["Acme"])
    visitor = visitors()
    await visitor.sign_in("ann", password)
    page = await visitor.get(PAGE)
    for form in (
        {"expires_after_days": "ten"},
        {"expires_after_days": "400"},
        {"number_of_uses": "0"},
        {"export_controlled": "Maybe"},
        {"export_controlled": "Allowed"},  # the account may not use export control
        {"description": "x" * 501},
    ):
        refused = await visitor.post(PAGE, {"csrf": page.csrf} | form)
        assert refused.status == 400, form
        assert 'class="error"' in refused.text, form
        assert 'id="new-token"' not in refused.text
    unknown = await visitor.post(PAGE + "/revoke", {"csrf": page.csrf, "token": "nope"})
    assert unknown.status == 404
    assert await api_tokens(admin) == []


async def test_a_viewer_sees_prefixes_no_controls_and_a_forged_write_is_refused(
    admin: Api, visitors: Callable[..., Visitor]
) -> None:
    await create_account(admin, "Acme")
    status, body = await admin.post(
        "/api/v1/accounts/Acme/virtual-accounts/DEFAULT/tokens", {"description": "kept"}
    )
    assert status == 200, body
    whole = body["tokenInfo"]["token"]
    password = await create_user(admin, "victor", "account-viewer", ["Acme"])
    viewer = visitors()
    await viewer.sign_in("victor", password)
    page = await viewer.get(PAGE)
    assert page.status == 200
    assert page.headers["Cache-Control"] == "no-store"
    assert "<td>kept</td>" in page.text
    assert whole not in page.text
    [shown] = re.findall(r"<td><code>([^<]+)</code></td>", page.text)
    assert shown == whole[:6] + "…"  # a prefix to recognize it by
    assert 'method="post"' not in page.text.replace('id="sign-out" method="post"', "")
    forged = await viewer.post(PAGE, {"csrf": page.csrf, "description": "forged"})
    assert forged.status == 403
    revoke = await viewer.post(PAGE + "/revoke", {"csrf": page.csrf, "token": whole})
    assert revoke.status == 403
    [token] = await api_tokens(admin)
    assert (token["description"], token["status"]) == ("kept", "Active")


async def test_another_account_is_not_found(admin: Api, visitors: Callable[..., Visitor]) -> None:
    for name in ("Acme", "Globex"):
        await create_account(admin, name)
    password = await create_user(admin, "ann", "account-admin", ["Acme"])
    visitor = visitors()
    await visitor.sign_in("ann", password)
    page = await visitor.get(PAGE)
    other = "/accounts/Globex/virtual-accounts/DEFAULT/tokens"
    assert (await visitor.get(other)).status == 404
    created = await visitor.post(other, {"csrf": page.csrf, "description": "x"})
    assert created.status == 404
    assert (await visitor.get("/accounts/Acme/virtual-accounts/Nope/tokens")).status == 404
    assert await api_tokens(admin, "Globex") == []
