"""Who may register a UDI whose product instance is live already.

Only the product itself moves its registration (into another virtual account or account):
its request proves the key of the live instance. Anyone else with a token replaces the
live instance only with force and only in that instance's own virtual account; elsewhere
the registration is refused, so a token holder of one account cannot take another's
product. A replaced instance ends; its product is told in words on its next request.
"""

from __future__ import annotations

import msgspec

from satellite.domain.models import ProductInstance
from satellite.errors import AlreadyRegistered, RegisteredElsewhere, RegistrationReplaced
from satellite_protocol import device as wire
from satellite_protocol.crypto import jose


def proves_current_key(
    live: ProductInstance,
    keys: jose.KeyCache,
    proof: wire.KeyProof | None,
    *,
    nonce: str,
    path: str,
    thumbprint: str,
) -> bool:
    """Whether ``proof`` is signed with the live instance's key (parsed through ``keys``)
    for this very request (its nonce and path) and new key (its JWK ``thumbprint``)."""
    if proof is None:
        return False
    try:
        header, payload = jose.verify(msgspec.structs.asdict(proof), keys.key(live.public_jwk))
    except jose.InvalidSignature:
        return False
    return (
        header.get("kid") == live.id
        and header.get("nonce") == nonce
        and header.get("url") == path
        and payload == thumbprint.encode()
    )


def require_replaceable(live: ProductInstance, va_id: int, force: bool) -> None:
    """A registration into virtual account ``va_id`` that did not prove it is the ``live``
    instance of its UDI: it may replace it only with force, in the instance's own virtual
    account; else 409, nothing changed."""
    udi = f"PID:{live.udi_pid} SN:{live.udi_serial}"
    if live.virtual_account_id != va_id:
        # (The other account or virtual account is not named: a token holder of this one
        # has no business knowing it.)
        raise RegisteredElsewhere(
            f"{udi} is registered elsewhere (another virtual account or account): it must be "
            "deregistered or removed there first (the product itself may move by registering "
            "again with its current key)"
        )
    if not force:
        raise AlreadyRegistered(
            f"{udi} is registered in virtual account {live.virtual_account} already, under "
            "another key: register with force to replace that registration (it ends, its "
            "usage and export keys are released)"
        )


def replaced(instance: ProductInstance) -> RegistrationReplaced:
    """What a replaced instance's product is told when it signs a request again."""
    ended = f" on {instance.ended_at:%Y-%m-%d %H:%M} UTC" if instance.ended_at else ""
    return RegistrationReplaced(
        "registration replaced by a forced registration of the same product "
        f"(PID:{instance.udi_pid} SN:{instance.udi_serial}) in virtual account "
        f"{instance.virtual_account}{ended}: product instance {instance.id} ended; register "
        "again with a token (with force to take the registration back)"
    )
