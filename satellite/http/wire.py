"""Wire messages of the admin API.

Field names follow the SSM On-Prem API toolkit as public automation calls it (camelCase,
plus the snake_case of the OAuth endpoint). The OpenAPI document is generated from these
same types. Each resource's types move to its module in ``satellite.api`` as its
operations do.
"""

from __future__ import annotations

from typing import Literal

import msgspec

# Shared with every operation (re-exported while resources move to satellite.api).
from satellite.api.types import (
    Description as Description,
)
from satellite.api.types import (
    Domain as Domain,
)
from satellite.api.types import (
    Empty as Empty,
)
from satellite.api.types import (
    ExportFlag as ExportFlag,
)
from satellite.api.types import (
    Flag as Flag,
)
from satellite.api.types import (
    Limit as Limit,
)
from satellite.api.types import (
    Name as Name,
)
from satellite.api.types import (
    NoBody as NoBody,
)
from satellite.api.types import (
    Offset as Offset,
)
from satellite.api.types import (
    Request as Request,
)
from satellite.api.types import (
    Response as Response,
)
from satellite.api.types import (
    Secret as Secret,
)
from satellite.api.types import (
    StatusResponse as StatusResponse,
)

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
