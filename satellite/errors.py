"""Domain errors.

Each class is a name and a sentence: the docstring is the default message. The HTTP
layer maps them to problem documents, the CLI to one line and a non-zero exit code.
Nothing here knows about HTTP or the database driver.
"""

from __future__ import annotations

# The errors the agent distribution raises too (wire-format checks, the catalog) are defined
# there; they are the same classes here.
from satellite_protocol.errors import ConfigError as ConfigError
from satellite_protocol.errors import InvalidInput as InvalidInput
from satellite_protocol.errors import MalformedJson as MalformedJson
from satellite_protocol.errors import SatelliteError as SatelliteError


class MigrationError(SatelliteError):
    """The database schema cannot be brought up to date."""


class SchemaMismatch(SatelliteError):
    """The database schema does not match this version of satellite."""


# Seconds a client is told to wait when the database cannot be reached or is busy (503):
# about as long as the daemon takes to restart its embedded PostgreSQL.
UNAVAILABLE_RETRY_AFTER = 5


class DatabaseUnavailable(SatelliteError):
    """The database cannot be reached."""


class DatabaseBusy(SatelliteError):
    """PostgreSQL aborted the transaction for another one (a deadlock, a serialization
    failure): nothing of it was written, and the same request may simply be sent again."""


class StateDirError(SatelliteError):
    """The state directory cannot be used."""


class NotAuthenticated(SatelliteError):
    """Authentication is required."""


class InvalidToken(NotAuthenticated):
    """The access token is unknown, expired or revoked."""


class OAuthRequestError(SatelliteError):
    """The token request is not valid (RFC 6749 ``invalid_request``)."""

    oauth_error = "invalid_request"


class UnsupportedGrantType(OAuthRequestError):
    """Only the client_credentials and password grants are supported."""

    oauth_error = "unsupported_grant_type"


class InvalidClient(OAuthRequestError):
    """The client id or secret is wrong, or the client is disabled."""

    oauth_error = "invalid_client"


class InvalidGrant(OAuthRequestError):
    """The credentials are not valid."""

    oauth_error = "invalid_grant"


class TooManyAttempts(SatelliteError):
    """Too many attempts: wait before trying again."""

    def __init__(self, detail: str | None = None, *, retry_after: int, limit: int) -> None:
        super().__init__(detail)
        self.retry_after = retry_after  # seconds until the limit's window ends
        self.limit = limit  # attempts the limit allows per window


class BadNonce(SatelliteError):
    """The request's nonce is unknown, stale or used already: fetch a new one and retry."""


class BadSignature(SatelliteError):
    """The request is not a valid JWS from the product it names."""


class ProductEnded(SatelliteError):
    """The product instance is deregistered or was removed: register it again."""


class RegistrationExpired(ProductEnded):
    """The product instance's registration (its ID certificate) expired: register it again."""


class RegistrationReplaced(ProductEnded):
    """The product instance's registration was replaced by a forced registration of the
    same product: register it again."""


class Forbidden(SatelliteError):
    """The caller may not do this."""


class NotFound(SatelliteError):
    """The resource does not exist."""


class Conflict(SatelliteError):
    """The request conflicts with the current state."""


class RegisteredElsewhere(Conflict):
    """The product is registered in another virtual account or account: deregister or
    remove it there first."""


class AlreadyRegistered(Conflict):
    """The product is registered in this virtual account already, under another key:
    register with force to replace that registration."""


class PayloadTooLarge(InvalidInput):
    """The request body is larger than this server takes."""


class UpstreamError(SatelliteError):
    """The upstream could not be reached, or refused what this satellite sent."""


class SyncHorizonPassed(Forbidden):
    """This satellite has not synced with its upstream for too long to grant authorizations."""


# Export-controlled features: why a product's export request was refused (each has a
# problem type of its own, so that a product can tell them apart).


class UnknownExportFeature(InvalidInput):
    """No export authorization-key license of the catalog enables this feature."""


class ExportAccountNotAllowed(Forbidden):
    """The account is not allowed export-controlled functionality."""


class ExportRegistrationNotAllowed(Forbidden):
    """The product registered with a token that does not allow export-controlled features."""


class ExportKeyUnavailable(Conflict):
    """No export authorization-key license is free in the virtual account."""


class BackupError(SatelliteError):
    """The backup cannot be written or restored."""
