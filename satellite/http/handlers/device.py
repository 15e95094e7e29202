"""The device API: signed requests in, signed answers out (see satellite_protocol.device)."""

from __future__ import annotations

from typing import Any

import msgspec
from aiohttp import web

from satellite.http.body import read_json
from satellite.http.keys import SERVICES


def _signed(answer: dict[str, str]) -> web.Response:
    return web.Response(body=msgspec.json.encode(answer), content_type="application/jose+json")


async def nonce(request: web.Request) -> web.Response:
    # The nonce travels in the Replay-Nonce header that every device answer carries.
    return web.Response(status=204)


async def ca_certificate(request: web.Request) -> web.Response:
    pem = request.app[SERVICES].envelope.ca_certificate()
    return web.Response(text=pem, content_type="application/pem-certificate-chain")


async def register(request: web.Request) -> web.Response:
    message = await read_json(request, dict[str, Any])
    device_api = request.app[SERVICES].device_api
    return _signed(await device_api.register(message, request.path, request.remote))


async def report_usage(request: web.Request) -> web.Response:
    message = await read_json(request, dict[str, Any])
    device_api = request.app[SERVICES].device_api
    return _signed(
        await device_api.report_usage(request.match_info["product"], message, request.path)
    )


async def renew_authorization(request: web.Request) -> web.Response:
    message = await read_json(request, dict[str, Any])
    device_api = request.app[SERVICES].device_api
    product = request.match_info["product"]
    return _signed(await device_api.renew_authorization(product, message, request.path))


async def renew_registration(request: web.Request) -> web.Response:
    message = await read_json(request, dict[str, Any])
    device_api = request.app[SERVICES].device_api
    product = request.match_info["product"]
    return _signed(await device_api.renew_registration(product, message, request.path))


async def deregister(request: web.Request) -> web.Response:
    message = await read_json(request, dict[str, Any])
    device_api = request.app[SERVICES].device_api
    return _signed(
        await device_api.deregister(request.match_info["product"], message, request.path)
    )


async def request_export(request: web.Request) -> web.Response:
    message = await read_json(request, dict[str, Any])
    exports = request.app[SERVICES].exports
    return _signed(await exports.request(request.match_info["product"], message, request.path))


async def return_export(request: web.Request) -> web.Response:
    message = await read_json(request, dict[str, Any])
    exports = request.app[SERVICES].exports
    return _signed(await exports.give_back(request.match_info["product"], message, request.path))
