"""The registration tokens page of a virtual account: the list, the create form and
revoke, each through an operation of ``satellite.api.tokens`` with the session's
principal (the operation decides who sees a whole token and who may write)."""

from __future__ import annotations

from typing import Any

from aiohttp import web

from satellite.api import tokens as api_tokens
from satellite.api.types import ExportFlag
from satellite.console import forms, i18n, words
from satellite.console.guard import (
    Visit,
    form_field,
    render_page,
    secured,
    see_other,
    services,
    signed_in,
)
from satellite.console.paths import virtual_account_path
from satellite.errors import InvalidInput, NotFound

# The form's choice of export flag: the account's own default, or one of the API's words.
EXPORT_CHOICES: dict[str, ExportFlag | None] = {
    "": None,
    "Allowed": "Allowed",
    "Not Allowed": "Not Allowed",
}


def tokens_path(account: str, va: str) -> str:
    return virtual_account_path(account, va, "tokens")


async def _tokens_page(
    request: web.Request,
    visit: Visit,
    status: int = 200,
    *,
    error: str | None = None,
    created: api_tokens.TokenInfo | None = None,
) -> web.Response:
    account, va = request.match_info["account"], request.match_info["va"]
    answer = await api_tokens.list_tokens(
        services(request), visit.principal, api_tokens.TokensQuery(account=account, va=va)
    )
    context: dict[str, Any] = {
        "account": account,
        "va": va,
        "path": tokens_path(account, va),
        "tokens": answer.tokens,
        "may_create": api_tokens.create_token.access.allows(visit.principal.role),
        "may_revoke": api_tokens.revoke_tokens.access.allows(visit.principal.role),
        "error": error,
        "created": created,
    }
    return render_page("tokens.html", request, visit.language, visit, status, **context)


@signed_in
async def tokens(request: web.Request, visit: Visit) -> web.StreamResponse:
    return await _tokens_page(request, visit)


def _whole_number(language: i18n.Language, text: str, field: str) -> int | None:
    refusal = i18n.gettext(language, "Expiry days and uses are whole numbers.")
    return forms.whole_number(text, field, refusal)


@signed_in
async def create_token(request: web.Request, visit: Visit) -> web.StreamResponse:
    account, va = request.match_info["account"], request.match_info["va"]
    export = await form_field(request, "export_controlled")
    try:
        export_controlled = forms.choice(
            EXPORT_CHOICES,
            export,
            "export_controlled",
            words.not_a_choice(visit.language, i18n.gettext(visit.language, "Export controlled")),
        )
        answer = await api_tokens.create_token(
            services(request),
            visit.principal,
            api_tokens.TokenCreate(
                account=account,
                va=va,
                description=await form_field(request, "description"),
                expires_after_days=_whole_number(
                    visit.language,
                    await form_field(request, "expires_after_days"),
                    "expires_after_days",
                ),
                number_of_uses=_whole_number(
                    visit.language, await form_field(request, "number_of_uses"), "number_of_uses"
                ),
                export_controlled=export_controlled,
            ),
        )
    except InvalidInput as exc:
        # The services' words are English, as the API's problem documents are.
        return await _tokens_page(request, visit, 400, error=exc.detail)
    return await _tokens_page(request, visit, created=answer.token_info)


@signed_in
async def revoke_token(request: web.Request, visit: Visit) -> web.StreamResponse:
    account, va = request.match_info["account"], request.match_info["va"]
    token = await form_field(request, "token")
    try:
        await api_tokens.revoke_tokens(
            services(request),
            visit.principal,
            api_tokens.TokenRevoke(account=account, va=va, tokens=[token]),
        )
    except InvalidInput as exc:
        return await _tokens_page(request, visit, 400, error=exc.detail)
    except NotFound as exc:
        # The virtual account exists (else the list below is a 404 too): the token is not its.
        return await _tokens_page(request, visit, 404, error=exc.detail)
    return see_other(tokens_path(account, va))


def routes() -> list[web.RouteDef]:
    base = "/accounts/{account}/virtual-accounts/{va}/tokens"
    return [
        web.get(base, secured(tokens)),
        web.post(base, secured(create_token)),
        web.post(base + "/revoke", secured(revoke_token)),
    ]
