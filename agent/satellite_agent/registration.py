"""What registering sends and what it accepts: the token, the product's UDI and CSR, the
register request (binding the token and the current key to the request's nonce), and the
certificates of the answer, which must come from the CA the token pins."""

from __future__ import annotations

import datetime as dt
import socket
from collections.abc import Callable

from satellite_agent.errors import AgentError
from satellite_agent.state import AgentState, Identity
from satellite_protocol import device as wire
from satellite_protocol.crypto import jose
from satellite_protocol.crypto.keys import PrivateKey
from satellite_protocol.crypto.pki import (
    CertificateError,
    certificate_fingerprint,
    check_issued_by,
    load_pem_certificate,
    make_csr,
)
from satellite_protocol.crypto.tokens import token_id, token_proof


def split_token(token: str) -> tuple[str, str]:
    """``<secret>.<CA fingerprint>``; refuse anything else before sending it anywhere."""
    secret, dot, fingerprint = token.strip().rpartition(".")
    if not dot or not secret or len(fingerprint) != 43:
        raise AgentError(
            "this is not a registration token of this kind (<secret>.<CA fingerprint>)"
        )
    return secret, fingerprint


def register_request(
    state: AgentState,
    token: str,
    csr: str,
    thumbprint: str,
    current: tuple[str, PrivateKey] | None,
    path: str,
    force: bool,
) -> Callable[[str], wire.RegisterRequest]:
    """The register request for a nonce. ``thumbprint``: of the new key's JWK; ``current``:
    the product instance id and key of the registration it replaces, which proves it."""
    share = state.share_host_identity

    def request_for(nonce: str) -> wire.RegisterRequest:
        proof = None
        if current is not None:
            product_id, current_key = current
            header = {"kid": product_id, "nonce": nonce, "url": path}
            proof = wire.KeyProof(**jose.sign(current_key, thumbprint.encode(), header))
        return wire.RegisterRequest(
            token_id=token_id(token),
            token_proof=token_proof(token, nonce, thumbprint),
            udi=wire.Udi(
                udi_pid=state.identity.pid,
                udi_serial=state.identity.serial_number,
                udi_uuid=state.identity.uuid,
            ),
            csr=csr,
            product_type=state.identity.product_type,
            product_version=state.identity.product_version,
            hostname=socket.gethostname() if share else None,
            ip_address=local_address() if share else None,
            current_key_proof=proof,
            force=force,
        )

    return request_for


def check_registration_answer(
    answer: wire.RegisterAnswer, fingerprint: str, now: dt.datetime
) -> None:
    """The answer's CA is the one the token pins (``fingerprint``) and issued its signing
    and ID certificates."""
    try:
        ca = load_pem_certificate(answer.ca_certificate)
        if certificate_fingerprint(ca) != fingerprint:
            raise AgentError(
                "the server's CA does not match the token: this is not the server that "
                "issued the token (or someone is in between); nothing was changed"
            )
        check_issued_by(load_pem_certificate(answer.signing_certificate), ca, now)
        check_issued_by(load_pem_certificate(answer.registration.certificate), ca, now)
    except CertificateError as exc:
        raise AgentError(f"the server's certificates do not check out: {exc}") from exc


def check_udi(identity: Identity) -> None:
    refusal = wire.udi_refusal(identity.pid, identity.serial_number)
    if refusal is not None:
        raise AgentError(f"this UDI cannot be registered: {refusal}")


def identity_csr(key: PrivateKey, identity: Identity) -> str:
    """The CSR naming the product, refused before anything is sent when its UDI cannot be
    in a certificate (a state written by an agent that did not check it at init)."""
    check_udi(identity)
    return make_csr(key, f"{identity.pid}:{identity.serial_number}")


def local_address() -> str | None:
    """The address the host name resolves to, if it resolves."""
    try:
        return socket.gethostbyname(socket.gethostname())
    except OSError:
        return None
