"""Wire messages of the routes written by hand (OAuth, the device API's signed messages)
and the problem document every error answers with. The admin API's types are its
operations' own (``satellite.api``).

Field names are those public clients send: the OAuth endpoint's snake_case (RFC 6749),
the flattened JWS's (RFC 7515).
"""

from __future__ import annotations

from typing import Literal

import msgspec

from satellite.api.types import Empty as Empty  # the revocation's answer (re-exported)
from satellite.api.types import Secret

# --- OAuth ---------------------------------------------------------------------------------


class TokenRequest(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    grant_type: Literal["client_credentials", "password"]
    client_id: Secret | None = None
    client_secret: Secret | None = None
    username: Secret | None = None
    password: Secret | None = None
    scope: str | None = None


class TokenResponse(msgspec.Struct, kw_only=True):
    access_token: str
    token_type: Literal["Bearer"] = "Bearer"  # noqa: S105 - the scheme name, not a secret
    expires_in: int


class RevokeRequest(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    token: Secret
    token_type_hint: str | None = None


# --- device API ---------------------------------------------------------------------------


class SignedMessage(msgspec.Struct, kw_only=True):
    """A flattened JWS (RFC 7515): ES256, ``nonce`` and ``url`` in the protected header."""

    protected: str
    payload: str
    signature: str


# --- problems ------------------------------------------------------------------------------


class Problem(msgspec.Struct, kw_only=True, omit_defaults=True):
    """RFC 9457 problem document."""

    type: str
    title: str
    status: int
    detail: str
    instance: str | None = None
    field: str | None = None
    request_id: str | None = msgspec.field(default=None, name="requestId")
    error: str | None = None  # OAuth error code (RFC 6749) on the token endpoints
