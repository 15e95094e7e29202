"""The product instances of a virtual account: the list (searched, filtered and paged by
the operation, so by the database), one product's detail with a chart of its usage per
license against what the virtual account owns, and transfer and remove, each through an
operation of ``satellite.api`` with the session's principal."""

from __future__ import annotations

from typing import Any
from urllib.parse import urlencode

from aiohttp import web
from markupsafe import Markup

from satellite.api import accounts as api_accounts
from satellite.api import exports as api_exports
from satellite.api import licenses as api_licenses
from satellite.api import product_instances as api_instances
from satellite.console import forms, i18n
from satellite.console.chart import ChartText, Point, usage_chart
from satellite.console.guard import (
    Visit,
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
from satellite.errors import Conflict, InvalidInput, NotFound

# One page of the list; the form's filters are kept on the next/previous links.
PAGE_SIZE = 25
FILTERS = ("host_name", "udi_pid", "udi_serial", "product", "state")
DEFAULT_STATE = "Registered"


def instances_path(account: str, va: str) -> str:
    return virtual_account_path(account, va, "product-instances")


async def _list_page(
    request: web.Request, visit: Visit, status: int = 200, *, error: str | None = None
) -> web.Response:
    """The list as the query's filters and offset choose (a POST keeps them in its query);
    ``error`` of a refused change above it."""
    account, va = request.match_info["account"], request.match_info["va"]
    path = instances_path(account, va)
    form = {name: request.query.get(name, "") for name in FILTERS}
    form["state"] = form["state"] or DEFAULT_STATE
    context: dict[str, Any] = {
        "account": account,
        "va": va,
        "path": path,
        "form": form,
        "query": _kept_query(request),
        "error": error,
        "refused_filter": False,
    }
    try:
        offset = forms.offset(visit.language, request.query.get("offset", ""))
        answer = await api_instances.list_devices(
            services(request),
            visit.principal,
            api_instances.DevicesQuery(
                account=account,
                va=va,
                status=form["state"],
                udi_pid=form["udi_pid"].strip() or None,
                udi_serial=form["udi_serial"].strip() or None,
                host_name=form["host_name"].strip() or None,
                product_tag_name=form["product"].strip() or None,
                limit=PAGE_SIZE,
                offset=offset,
            ),
        )
    except InvalidInput as exc:
        # The services' words are English, as the API's problem documents are.
        context.update(error=exc.detail, refused_filter=True, devices=[])
        return render_page("product_instances.html", request, visit.language, visit, 400, **context)
    may_transfer = api_instances.transfer_devices.access.allows(visit.principal.role)
    kept = {name: value for name, value in form.items() if value}
    context.update(
        devices=answer.devices,
        total=answer.total_records,
        **page(
            path,
            kept,
            offset=offset,
            size=PAGE_SIZE,
            shown=len(answer.devices),
            more=offset + PAGE_SIZE < answer.total_records,
        ),
        may_transfer=may_transfer,
        may_remove=api_instances.remove_devices.access.allows(visit.principal.role),
        targets=await _targets(request, visit, account, va) if may_transfer else [],
    )
    return render_page("product_instances.html", request, visit.language, visit, status, **context)


async def _targets(request: web.Request, visit: Visit, account: str, va: str) -> list[str]:
    """The account's other virtual accounts: where a product of ``va`` may move."""
    listed = await api_accounts.list_virtual_accounts(
        services(request), visit.principal, api_accounts.VirtualAccountsQuery(account=account)
    )
    return [v.name for v in listed.virtual_accounts if v.name != va]


@signed_in
async def product_instances(request: web.Request, visit: Visit) -> web.StreamResponse:
    return await _list_page(request, visit)


async def _chosen(request: web.Request, visit: Visit) -> list[str]:
    """The product instance ids the list's checkboxes chose; none is refused."""
    chosen = [v for v in (await forms.posted(request)).getall("product", []) if isinstance(v, str)]
    if not chosen:
        raise InvalidInput(
            i18n.gettext(visit.language, "Choose the product instances first."), field="product"
        )
    return chosen


def _kept_query(request: web.Request) -> str:
    """The list's query (its filters and offset), to come back to after a POST: encoded
    again, as ``query_string`` is decoded (a CR or LF in a filter would break the Location
    header, aiohttp then dropping the connection; a "&" or "#" would break the URL)."""
    return urlencode(list(request.query.items()))


def _back_to_list(request: web.Request, account: str, va: str) -> web.Response:
    query = _kept_query(request)
    return see_other(instances_path(account, va) + (f"?{query}" if query else ""))


async def _transfer(request: web.Request, visit: Visit, products: list[str], target: str) -> None:
    """The ``transfer_devices`` operation of the page's virtual account, for ``products``."""
    await api_instances.transfer_devices(
        services(request),
        visit.principal,
        api_instances.DeviceTransfer(
            account=request.match_info["account"],
            va=request.match_info["va"],
            product_instances=[
                api_instances.DeviceTransferItem(
                    target_virtual_account=target, product_instance_id=product
                )
                for product in products
            ],
        ),
    )


async def _remove(
    request: web.Request, visit: Visit, items: list[api_instances.DeviceRemoveItem]
) -> None:
    """The ``remove_devices`` operation of the page's virtual account, for ``items``."""
    await api_instances.remove_devices(
        services(request),
        visit.principal,
        api_instances.DeviceRemove(
            account=request.match_info["account"],
            va=request.match_info["va"],
            product_instances_remove_requests=items,
        ),
    )


@signed_in
async def transfer_chosen(request: web.Request, visit: Visit) -> web.StreamResponse:
    account, va = request.match_info["account"], request.match_info["va"]
    target = await form_field(request, "target")
    try:
        await _transfer(request, visit, await _chosen(request, visit), target)
    except (InvalidInput, Conflict, NotFound) as exc:
        return await _list_page(request, visit, refusal_status(exc), error=exc.detail)
    return _back_to_list(request, account, va)


@signed_in
async def remove_chosen(request: web.Request, visit: Visit) -> web.StreamResponse:
    account, va = request.match_info["account"], request.match_info["va"]
    try:
        chosen = await _chosen(request, visit)
        await _remove(
            request, visit, [api_instances.DeviceRemoveItem(product_instance_id=p) for p in chosen]
        )
    except (InvalidInput, Conflict, NotFound) as exc:
        return await _list_page(request, visit, refusal_status(exc), error=exc.detail)
    return _back_to_list(request, account, va)


# --- one product ---------------------------------------------------------------------------


def _chart(
    language: i18n.Language,
    index: int,
    license_name: str,
    points: list[Point],
    owned: int,
) -> Markup:
    """The usage chart of one license, in the page's language."""
    words = {"license": license_name, "owned": i18n.number_text(language, owned)}
    if points:
        latest = max(points, key=lambda p: p.at)
        description = i18n.gettext(
            language,
            "%(license)s: %(count)s in use by this product at %(latest)s "
            "(%(reports)s reports shown); the virtual account owns %(owned)s.",
        ) % (
            words
            | {
                "count": i18n.number_text(language, latest.count),
                "latest": i18n.moment_text(language, latest.at),
                "reports": i18n.number_text(language, len(points)),
            }
        )
    else:
        description = (
            i18n.gettext(
                language,
                "%(license)s: no usage reported yet; the virtual account owns %(owned)s.",
            )
            % words
        )
    text = ChartText(
        title=i18n.gettext(language, "Usage of %(license)s over time") % words,
        description=description,
        used=i18n.gettext(language, "In use by this product"),
        owned=i18n.gettext(language, "Owned by the virtual account"),
        empty=i18n.gettext(language, "No usage reported yet."),
    )
    return usage_chart(
        points,
        owned,
        text,
        chart_id=f"usage-chart-{index}",
        date=lambda at: i18n.moment_text(language, at),
        number=lambda n: i18n.number_text(language, n),
    )


def _licenses(
    language: i18n.Language,
    device: api_instances.DeviceDetail,
    positions: list[api_licenses.LicenseOut],
) -> list[dict[str, Any]]:
    """Per license the product uses now or used in its history: its count now, what the
    virtual account owns and uses of it, its compliance, and the chart."""
    names = {u.entitlement_tag: u.license for u in device.license_usage}
    series: dict[str, list[Point]] = {}
    for report in device.usage_history:
        for usage in report.license_usage:
            names.setdefault(usage.entitlement_tag, usage.license)
    for report in device.usage_history:
        counts = {u.entitlement_tag: u.quantity for u in report.license_usage}
        for tag in names:
            # A report that does not name a license says the product used none of it.
            series.setdefault(tag, []).append(Point(report.reported_at, counts.get(tag, 0)))
    now = {u.entitlement_tag: u.quantity for u in device.license_usage}
    held = {p.entitlement_tag: p for p in positions}
    rows = []
    for index, tag in enumerate(sorted(names)):
        position = held.get(tag)
        owned = position.quantity if position else 0
        rows.append(
            {
                "tag": tag,
                "license": names[tag],
                "count": now.get(tag, 0),
                "owned": owned,
                "in_use": position.in_use if position else 0,
                "status": position.status if position else None,
                "chart": _chart(language, index, names[tag], series.get(tag, []), owned),
            }
        )
    return rows


async def _detail_page(
    request: web.Request, visit: Visit, status: int = 200, *, error: str | None = None
) -> web.Response:
    account, va = request.match_info["account"], request.match_info["va"]
    product = request.match_info["product"]
    the = services(request)
    device = await api_instances.show_device(
        the,
        visit.principal,
        api_instances.DeviceShow(account=account, va=va, product=product),
    )
    keys = await api_exports.product_export_keys(
        the,
        visit.principal,
        api_exports.ProductExportKeysQuery(account=account, va=va, product=product),
    )
    positions = await api_licenses.licenses_view(
        the,
        visit.principal,
        api_licenses.LicensesQuery(account=account, virtual_accounts=[va]),
    )
    may_transfer = api_instances.transfer_devices.access.allows(visit.principal.role)
    may_remove = api_instances.remove_devices.access.allows(visit.principal.role)
    path = instances_path(account, va)
    context: dict[str, Any] = {
        "account": account,
        "va": va,
        "list_path": path,
        "path": item_path(path, product),
        "device": device,
        "licenses": _licenses(visit.language, device, positions.licenses),
        "export_keys": keys.export_keys,
        "registered": device.status == "Registered",
        "may_transfer": may_transfer,
        "may_remove": may_remove,
        "targets": await _targets(request, visit, account, va) if may_transfer else [],
        "error": error,
    }
    return render_page("product_instance.html", request, visit.language, visit, status, **context)


@signed_in
async def product_instance(request: web.Request, visit: Visit) -> web.StreamResponse:
    return await _detail_page(request, visit)


@signed_in
async def transfer(request: web.Request, visit: Visit) -> web.StreamResponse:
    account = request.match_info["account"]
    product = request.match_info["product"]
    target = await form_field(request, "target")
    try:
        await _transfer(request, visit, [product], target)
    except (InvalidInput, Conflict, NotFound) as exc:
        # An unknown target virtual account or product: the page again says which (an
        # account the user does not see is a 404 page when the page is drawn again).
        return await _detail_page(request, visit, refusal_status(exc), error=exc.detail)
    return see_other(item_path(instances_path(account, target), product))


@signed_in
async def remove(request: web.Request, visit: Visit) -> web.StreamResponse:
    account, va = request.match_info["account"], request.match_info["va"]
    product = request.match_info["product"]
    return_code = (await form_field(request, "return_code")).strip()
    item = api_instances.DeviceRemoveItem(
        product_instance_id=product, return_code=return_code or None
    )
    try:
        await _remove(request, visit, [item])
    except (InvalidInput, Conflict, NotFound) as exc:
        return await _detail_page(request, visit, refusal_status(exc), error=exc.detail)
    return see_other(instances_path(account, va))


def routes() -> list[web.RouteDef]:
    base = "/accounts/{account}/virtual-accounts/{va}/product-instances"
    return [
        web.get(base, secured(product_instances)),
        web.post(base + "/transfer", secured(transfer_chosen)),
        web.post(base + "/remove", secured(remove_chosen)),
        web.get(base + "/{product}", secured(product_instance)),
        web.post(base + "/{product}/transfer", secured(transfer)),
        web.post(base + "/{product}/remove", secured(remove)),
    ]
