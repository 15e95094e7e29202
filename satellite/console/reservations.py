"""Specific license reservation (SLR) of a virtual account, as the reference product's
manager UI has it: paste a product's request code, choose licenses, reserve; the
authorization code shown (copy, download as a file); enter confirmation and return codes;
update a reservation; force-remove a failed product. Every step is an operation of
``satellite.api.reservations`` called with the session's principal."""

from __future__ import annotations

from typing import Any

from aiohttp import web

from satellite.api import licenses as api_licenses
from satellite.api import product_instances as api_instances
from satellite.api import reservations as api
from satellite.console import files, forms, i18n, words
from satellite.console.guard import (
    Visit,
    error_page,
    form_field,
    render_page,
    secured,
    see_other,
    services,
    signed_in,
)
from satellite.console.paging import page
from satellite.console.paths import item_path, virtual_account_path
from satellite.console.refusals import refusal_status
from satellite.domain.reservation import Precedence
from satellite.errors import Conflict, InvalidInput, NotFound

PAGE_SIZE = 50
PRECEDENCES: dict[str, Precedence] = {
    "LONGEST_TERM_FIRST": "LONGEST_TERM_FIRST",
    "SHORTEST_TERM_FIRST": "SHORTEST_TERM_FIRST",
}


def reservations_path(account: str, va: str) -> str:
    return virtual_account_path(account, va, "reservations")


async def _pool(request: web.Request, visit: Visit, account: str, va: str) -> list[Any]:
    """The virtual account's licenses with what is available, to choose from."""
    answer = await api_licenses.licenses_view(
        services(request),
        visit.principal,
        api_licenses.LicensesQuery(account=account, virtual_accounts=[va]),
    )
    return list(answer.licenses)


async def _list_page(
    request: web.Request,
    visit: Visit,
    status: int = 200,
    *,
    error: str | None = None,
    form: dict[str, Any] | None = None,
) -> web.Response:
    account, va = request.match_info["account"], request.match_info["va"]
    role = visit.principal.role
    shown = request.query.get("status", "active") if request.method == "GET" else "active"
    offset_text = request.query.get("offset", "") if request.method == "GET" else ""
    try:
        offset = forms.offset(visit.language, offset_text)
        answer = await api.list_reservations(
            services(request),
            visit.principal,
            api.ReservationsQuery(
                account=account, va=va, status=shown, limit=PAGE_SIZE, offset=offset
            ),
        )
    except InvalidInput as exc:
        return error_page(request, visit, 400, exc.detail)
    may_reserve = api.reserve_licenses.access.allows(role)
    path = reservations_path(account, va)
    context: dict[str, Any] = {
        "account": account,
        "va": va,
        "path": path,
        "reservations": answer.reservations,
        "total": answer.total_records,
        "every": shown.strip().lower() == "all",
        **page(
            path,
            {"status": shown},
            offset=offset,
            size=PAGE_SIZE,
            shown=len(answer.reservations),
            more=offset + PAGE_SIZE < answer.total_records,
        ),
        "may_reserve": may_reserve,
        "may_confirm": api.confirm_reservation.access.allows(role),
        "may_return": api.return_reservation.access.allows(role),
        "pool": await _pool(request, visit, account, va) if may_reserve else [],
        "error": error,
        "form": form or {},
    }
    return render_page("reservations.html", request, visit.language, visit, status, **context)


@signed_in
async def reservations(request: web.Request, visit: Visit) -> web.StreamResponse:
    return await _list_page(request, visit)


async def _chosen(request: web.Request, language: i18n.Language) -> dict[str, str]:
    """The form's quantities as typed, per entitlement tag (kept when it is shown again)."""
    form = await forms.posted(request)
    tags = [t for t in form.getall("tag", []) if isinstance(t, str)]
    counts = [c for c in form.getall("quantity", []) if isinstance(c, str)]
    if len(tags) != len(counts):
        raise InvalidInput(
            i18n.gettext(language, "Quantities are whole numbers."), field="quantity"
        )
    return dict(zip(tags, counts, strict=True))


async def _wanted(
    request: web.Request, language: i18n.Language, chosen: dict[str, str]
) -> list[api.ReservationLicenseIn]:
    """The licenses a form chose: a quantity of 0 or none is not chosen."""
    precedence = forms.choice(
        PRECEDENCES,
        await form_field(request, "precedence") or "LONGEST_TERM_FIRST",
        "precedence",
        words.not_a_choice(language, i18n.gettext(language, "Take licenses first from")),
    )
    refusal = i18n.gettext(language, "Quantities are whole numbers.")
    wanted = []
    for tag, text in chosen.items():
        quantity = forms.whole_number(text, "quantity", refusal)
        if quantity:  # a quantity of 0 or none is not chosen
            wanted.append(
                api.ReservationLicenseIn(
                    entitlement_tag=tag, quantity=quantity, precedence=precedence
                )
            )
    if not wanted:
        raise InvalidInput(
            i18n.gettext(language, "Choose at least one license and a quantity."),
            field="licenses",
        )
    return wanted


def _code_page(
    request: web.Request, visit: Visit, account: str, va: str, answer: api.ReserveLicensesOut
) -> web.Response:
    [issued] = answer.authorization_codes
    return render_page(
        "authorization_code.html",
        request,
        visit.language,
        visit,
        account=account,
        va=va,
        path=reservations_path(account, va),
        issued=issued,
        may_confirm=api.confirm_reservation.access.allows(visit.principal.role),
    )


@signed_in
async def reserve(request: web.Request, visit: Visit) -> web.StreamResponse:
    account, va = request.match_info["account"], request.match_info["va"]
    code = await form_field(request, "request_code")
    chosen: dict[str, str] = {}
    try:
        chosen = await _chosen(request, visit.language)
        if not code.strip():
            raise InvalidInput(
                i18n.gettext(visit.language, "Paste the product's request code."),
                field="request_code",
            )
        answer = await api.reserve_licenses(
            services(request),
            visit.principal,
            api.ReserveLicenses(
                account=account,
                va=va,
                reservation_requests=[
                    api.ReservationRequestIn(
                        reservation_code=code,
                        licenses=await _wanted(request, visit.language, chosen),
                    )
                ],
            ),
        )
    except (InvalidInput, Conflict, NotFound) as exc:
        # The services' words are English, as the API's problem documents are.
        form = {
            "request_code": code,
            "chosen": chosen,
            "precedence": await form_field(request, "precedence"),
        }
        return await _list_page(request, visit, refusal_status(exc), error=exc.detail, form=form)
    return _code_page(request, visit, account, va, answer)


def _detail_path(account: str, va: str, product: str) -> str:
    return item_path(reservations_path(account, va), product)


@signed_in
async def confirm(request: web.Request, visit: Visit) -> web.StreamResponse:
    account, va = request.match_info["account"], request.match_info["va"]
    code = await form_field(request, "confirmation_code")
    try:
        answer = await api.confirm_reservation(
            services(request),
            visit.principal,
            api.ConfirmationCodeIn(account=account, va=va, confirmation_code=code),
        )
    except (InvalidInput, Conflict, NotFound) as exc:
        form = {"confirmation_code": code}
        return await _list_page(request, visit, refusal_status(exc), error=exc.detail, form=form)
    return see_other(_detail_path(account, va, answer.device.product_instance_id))


@signed_in
async def return_code(request: web.Request, visit: Visit) -> web.StreamResponse:
    account, va = request.match_info["account"], request.match_info["va"]
    code = await form_field(request, "return_code")
    try:
        answer = await api.return_reservation(
            services(request),
            visit.principal,
            api.ReturnCodeIn(account=account, va=va, return_code=code),
        )
    except (InvalidInput, Conflict, NotFound) as exc:
        form = {"return_code": code}
        return await _list_page(request, visit, refusal_status(exc), error=exc.detail, form=form)
    return see_other(_detail_path(account, va, answer.device.product_instance_id))


async def _detail_page(
    request: web.Request,
    visit: Visit,
    status: int = 200,
    *,
    error: str | None = None,
    chosen: dict[str, str] | None = None,
    precedence: str = "",
    reason: str = "",
) -> web.Response:
    account, va = request.match_info["account"], request.match_info["va"]
    product = request.match_info["product"]
    device = await api_instances.show_device(
        services(request),
        visit.principal,
        api_instances.DeviceShow(account=account, va=va, product=product),
    )
    if device.reservation is None:
        raise NotFound(f"product instance {product!r} holds no reservation", field="product")
    role = visit.principal.role
    active = device.reservation.active
    may_update = active and api.update_reservation.access.allows(role)
    held = {u.entitlement_tag: u.quantity for u in device.reservation.reserved_licenses}
    context: dict[str, Any] = {
        "account": account,
        "va": va,
        "path": reservations_path(account, va),
        "here": _detail_path(account, va, device.product_instance_id),
        "device": device,
        "reservation": device.reservation,
        "active": active,
        "may_update": may_update,
        "may_force_remove": active and api.force_remove.access.allows(role),
        "pool": await _pool(request, visit, account, va) if may_update else [],
        "chosen": chosen if chosen is not None else {t: str(n) for t, n in held.items()},
        "held": held,
        "precedence": precedence,
        "reason": reason,
        "error": error,
    }
    return render_page("reservation.html", request, visit.language, visit, status, **context)


@signed_in
async def detail(request: web.Request, visit: Visit) -> web.StreamResponse:
    return await _detail_page(request, visit)


@signed_in
async def update(request: web.Request, visit: Visit) -> web.StreamResponse:
    account, va = request.match_info["account"], request.match_info["va"]
    chosen: dict[str, str] = {}
    try:
        chosen = await _chosen(request, visit.language)
        answer = await api.update_reservation(
            services(request),
            visit.principal,
            api.ReservationUpdate(
                account=account,
                va=va,
                product=request.match_info["product"],
                licenses=await _wanted(request, visit.language, chosen),
            ),
        )
    except (InvalidInput, Conflict, NotFound) as exc:
        return await _detail_page(
            request,
            visit,
            refusal_status(exc),
            error=exc.detail,
            chosen=chosen,
            precedence=await form_field(request, "precedence"),
        )
    return _code_page(request, visit, account, va, answer)


@signed_in
async def force_remove(request: web.Request, visit: Visit) -> web.StreamResponse:
    account, va = request.match_info["account"], request.match_info["va"]
    product = request.match_info["product"]
    reason = await form_field(request, "reason")
    try:
        await api.force_remove(
            services(request),
            visit.principal,
            api.ForceRemoveIn(account=account, va=va, product=product, reason=reason),
        )
    except (InvalidInput, Conflict, NotFound) as exc:
        return await _detail_page(
            request, visit, refusal_status(exc), error=exc.detail, reason=reason
        )
    return see_other(_detail_path(account, va, product))


@signed_in
async def authorization_code(request: web.Request, visit: Visit) -> web.StreamResponse:
    """The latest authorization code as a file to save (and carry to the product)."""
    answer = await api.download_authorization_code(
        services(request),
        visit.principal,
        api.AuthorizationCodeQuery(
            account=request.match_info["account"],
            va=request.match_info["va"],
            product=request.match_info["product"],
        ),
    )
    return files.download(answer)


def routes() -> list[web.RouteDef]:
    base = "/accounts/{account}/virtual-accounts/{va}/reservations"
    return [
        web.get(base, secured(reservations)),
        web.post(base + "/reserve", secured(reserve)),
        web.post(base + "/confirm", secured(confirm)),
        web.post(base + "/return", secured(return_code)),
        web.get(base + "/{product}", secured(detail)),
        web.post(base + "/{product}/update", secured(update)),
        web.post(base + "/{product}/force-remove", secured(force_remove)),
        web.get(base + "/{product}/authorization-code", secured(authorization_code)),
    ]
