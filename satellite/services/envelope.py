"""The device API's envelope: every request of a product is a JWS, every answer one of ours.

A request is checked before anything of it is read: its signature (against the key a
registration embeds, later against the product's stored key), the server nonce (issued by
this server, fresh, for this path, used once) and the product's registration. The nonce is
recorded as used in the transaction of the change it allows, so a refused request changes
nothing. Device, export-key and reservation services all go through here.
"""

from __future__ import annotations

import dataclasses
import time
from collections import OrderedDict
from typing import Any, TypeVar

import msgspec

from satellite.crypto.keys import ServerKeys
from satellite.crypto.secrets import issue_nonce, nonce_is_fresh
from satellite.domain.clock import utc_now
from satellite.domain.models import ProductInstance
from satellite.errors import BadNonce, BadSignature, ProductEnded, RegistrationExpired
from satellite.services import reregistration
from satellite.storage import nonces, product_instances
from satellite.storage.db import Connection
from satellite_protocol import device as wire
from satellite_protocol import untrusted
from satellite_protocol.crypto import jose
from satellite_protocol.crypto.pki import to_pem

T = TypeVar("T")
NONCE_LIFETIME = 15 * 60.0  # seconds a nonce stays good; longer is "stale"
# Product keys kept, parsed and (by product instance id) as JWKs: at most about 160 MB
# of parsed keys and 50 MB of JWKs a process (measured: cryptography 50, OpenSSL 3.0).
PRODUCT_KEYS_KEPT = 65_536


NO_SUCH_INSTANCE = "no such product instance"


def withholds_host(header: dict[str, Any]) -> bool:
    """Whether the product's request says it no longer shares its host name and address."""
    return header.get(wire.WITHHOLD_HOST) is True


def _replayed() -> BadNonce:
    return BadNonce("the nonce was used already (a replayed request)")


class DeviceEnvelope:
    def __init__(self, keys: ServerKeys) -> None:
        self._keys = keys
        # Parsed product keys, by JWK: parsing one costs more than checking its signature.
        self.product_keys = jose.KeyCache(PRODUCT_KEYS_KEPT)
        # Each product's key (its JWK) as this process last read or stored it, by product
        # instance id, so that a usage report is verified before its one statement, which
        # refuses unless that still is the key (services/usage_report.py). The one used
        # longest ago goes first (an OrderedDict: a dict's oldest entry costs a scan of
        # those deleted before it, 13 µs a report once full).
        self._instance_keys: OrderedDict[str, dict[str, Any]] = OrderedDict()

    def ca_certificate(self) -> str:
        """The CA's certificate (PEM): public, and checked by products against their token."""
        return to_pem(self._keys.ca_cert)

    def new_nonce(self) -> str:
        return issue_nonce(self._keys.token_key, time.time())

    def check_nonce(self, header: dict[str, Any], path: str) -> str:
        """The nonce of a request whose signature verified: one of ours, fresh, for this
        path. (Whether it was used before, the database says.)"""
        nonce = header.get("nonce")
        if not isinstance(nonce, str) or not nonce_is_fresh(
            self._keys.token_key, nonce, time.time(), NONCE_LIFETIME
        ):
            raise BadNonce("the nonce is not one of this server's, or is stale")
        if header.get("url") != path:
            raise BadSignature("the signed url is not this request's path")
        return nonce

    async def use_nonce(self, conn: Connection, header: dict[str, Any], path: str) -> str:
        nonce = self.check_nonce(header, path)
        if not await nonces.use_nonce(conn, nonce):
            raise _replayed()
        return nonce

    def answer(self, nonce: str, path: str, body: msgspec.Struct) -> dict[str, str]:
        """The server-signed answer, bound to the request by its nonce and path."""
        return jose.sign(
            self._keys.signing_key, msgspec.json.encode(body), {"nonce": nonce, "url": path}
        )

    @staticmethod
    def decode(payload: bytes, type_: type[T]) -> T:
        return untrusted.decode(payload or b"{}", type_, what="the signed payload")

    @staticmethod
    def signed_header(product_instance_id: str, message: dict[str, Any]) -> dict[str, Any]:
        """The protected header of a request of the product named in the path (not yet
        verified)."""
        try:
            header = jose.protected_header(message)
        except jose.InvalidSignature as exc:
            raise BadSignature(str(exc)) from exc
        if header.get("kid") != product_instance_id:
            raise BadSignature("the request is not signed as the product in its path")
        return header

    def verify(self, message: dict[str, Any], jwk: dict[str, Any]) -> bytes:
        """The payload of a request signed with the key ``jwk``."""
        try:
            _, payload = jose.verify(message, self.product_keys.key(jwk))
        except jose.InvalidSignature as exc:
            raise BadSignature(str(exc)) from exc
        return payload

    def known_key(self, product_instance_id: str) -> dict[str, Any] | None:
        """The product's key as this process last saw it (maybe replaced since)."""
        return self._instance_keys.get(product_instance_id)

    def remember_key(self, product_instance_id: str, jwk: dict[str, Any]) -> None:
        keys = self._instance_keys
        if product_instance_id in keys:
            keys.move_to_end(product_instance_id)
        elif len(keys) >= PRODUCT_KEYS_KEPT:
            keys.popitem(last=False)
        keys[product_instance_id] = jwk

    def forget_key(self, product_instance_id: str) -> None:
        self._instance_keys.pop(product_instance_id, None)

    async def signed_by_instance(
        self, conn: Connection, product_instance_id: str, message: dict[str, Any], path: str
    ) -> tuple[ProductInstance, bytes, str]:
        """The product named in the path, after its request proved itself; locked."""
        header = self.signed_header(product_instance_id, message)
        nonce = header.get("nonce")
        instance, nonce_was_unused = await product_instances.lock_instance_using_nonce(
            conn, product_instance_id, nonce if isinstance(nonce, str) else ""
        )
        if instance is None:
            raise BadSignature(NO_SUCH_INSTANCE)
        payload = self.verify(message, instance.public_jwk)
        nonce = self.check_nonce(header, path)
        if not nonce_was_unused:
            raise _replayed()
        if instance.status == "replaced":
            raise reregistration.replaced(instance)
        if instance.status == "registration_expired" or (
            instance.status == "registered" and instance.certificate_expires_at <= utc_now()
        ):
            raise RegistrationExpired(
                f"the registration of product instance {product_instance_id} expired on "
                f"{instance.certificate_expires_at:%Y-%m-%d} with its ID certificate: "
                "register it again with a token"
            )
        if instance.status != "registered":
            raise ProductEnded(f"product instance {product_instance_id} is {instance.status}")
        if withholds_host(header) and (instance.hostname or instance.ip_address):
            # Privacy turned on after it registered: forgotten here, and (the row changes)
            # in the next sync request.
            await product_instances.forget_host_identity(conn, product_instance_id)
            instance = dataclasses.replace(instance, hostname=None, ip_address=None)
        return instance, payload, nonce
