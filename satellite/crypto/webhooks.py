"""Webhook signatures: HMAC-SHA256 over the timestamp and the exact body (Stripe's scheme),
so that a receiver can tell a delivery came from this server and is not a replay."""

from __future__ import annotations

import hashlib
import hmac
import secrets

SIGNATURE_VERSION = "v1"


def new_webhook_secret() -> str:
    """A signing secret, recognizable as one (as Stripe's ``whsec_`` are)."""
    return f"whsec_{secrets.token_urlsafe(32)}"


def signature(secret: str, timestamp: int, body: bytes) -> str:
    """The hex HMAC-SHA256 of ``"<timestamp>.<body>"`` with ``secret``."""
    message = str(timestamp).encode("ascii") + b"." + body
    return hmac.new(secret.encode("utf-8"), message, hashlib.sha256).hexdigest()


def signature_header(secret: str, timestamp: int, body: bytes) -> str:
    """The ``Satellite-Signature`` header's value: ``t=<timestamp>,v1=<signature>``."""
    return f"t={timestamp},{SIGNATURE_VERSION}={signature(secret, timestamp, body)}"
