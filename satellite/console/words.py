"""The console's words for the values the operations answer with (states, types, flags):
one table per kind, keyed by the Literal type the API declares for it, so every page says
a state the same way and ``tests/console/test_words.py`` can check that each value has its
words in both languages. Templates call them through the global ``words``:
``{{ words.product_state(device.status) }}``."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, get_args

from jinja2 import pass_context
from jinja2.runtime import Context

from satellite.api.exports import ExportKeyState
from satellite.api.products import DeviceState
from satellite.api.types import ExportFlag
from satellite.console import i18n
from satellite.console.i18n import Language
from satellite.domain.access import Role
from satellite.domain.alerts import AlertType
from satellite.domain.compliance import ComplianceStatus, LineSource, LineStatus
from satellite.domain.models import (
    AuthorizationStatus,
    ExportKeyEndReason,
    ProductInstanceStatus,
    Severity,
    TokenStatus,
)
from satellite.domain.reservation import ReservationState, ReservationStatus
from satellite.domain.sync import Outcome, SyncCount, SyncMode, SyncOperation
from satellite_protocol.catalog import LicenseType


def _product_states(language: Language) -> dict[DeviceState, str]:
    return {
        "Registered": i18n.gettext(language, "Registered"),
        "Registration Expired": i18n.gettext(language, "Registration expired"),
        "Deregistered": i18n.gettext(language, "Deregistered"),
        "Removed": i18n.gettext(language, "Removed"),
        "Replaced": i18n.gettext(language, "Replaced"),
    }


def _reported_product_states(language: Language) -> dict[ProductInstanceStatus, str]:
    """A product's state as a satellite reports it (its stored form, not the API's)."""
    return {
        "registered": i18n.gettext(language, "Registered"),
        "registration_expired": i18n.gettext(language, "Registration expired"),
        "deregistered": i18n.gettext(language, "Deregistered"),
        "removed": i18n.gettext(language, "Removed"),
        "replaced": i18n.gettext(language, "Replaced"),
    }


def _authorizations(language: Language) -> dict[AuthorizationStatus, str]:
    return {
        "Authorized": i18n.gettext(language, "Authorized"),
        "Expired": i18n.gettext(language, "Expired"),
    }


def _reservation_states(language: Language) -> dict[ReservationState, str]:
    return {
        "Pending Confirmation": i18n.gettext(language, "Awaiting confirmation"),
        "Reserved": i18n.gettext(language, "Reserved"),
        "In Transition": i18n.gettext(language, "In transition"),
        "Returned": i18n.gettext(language, "Returned"),
        "Removed": i18n.gettext(language, "Removed"),
    }


def _reported_reservation_states(language: Language) -> dict[ReservationStatus, str]:
    """A reservation's state as a satellite reports it (its stored form)."""
    return {
        "active": i18n.gettext(language, "Active"),
        "returned": i18n.gettext(language, "Returned"),
        "removed": i18n.gettext(language, "Removed"),
    }


def _compliance(language: Language) -> dict[ComplianceStatus, str]:
    return {
        "In Compliance": i18n.gettext(language, "In compliance"),
        "Out Of Compliance": i18n.gettext(language, "Out of compliance"),
    }


def _export_key_states(language: Language) -> dict[ExportKeyState, str]:
    return {
        "Granted": i18n.gettext(language, "Granted"),
        "Returned": i18n.gettext(language, "Returned"),
        "Released": i18n.gettext(language, "Released"),
    }


def _export_key_end_reasons(language: Language) -> dict[ExportKeyEndReason, str]:
    return {
        "returned": i18n.gettext(language, "returned by the product"),
        "deregistered": i18n.gettext(language, "the product deregistered"),
        "removed": i18n.gettext(language, "the product was removed"),
        "re-registered": i18n.gettext(language, "the product registered again"),
        "replaced": i18n.gettext(language, "another product took its identity"),
        "registration expired": i18n.gettext(language, "its registration expired"),
    }


def _license_types(language: Language) -> dict[LicenseType, str]:
    return {
        "PERPETUAL": i18n.gettext(language, "Perpetual"),
        "TERM": i18n.gettext(language, "Term"),
        "SUBSCRIPTION": i18n.gettext(language, "Subscription"),
    }


def _line_statuses(language: Language) -> dict[LineStatus, str]:
    return {
        "Active": i18n.gettext(language, "Active"),
        "Pending": i18n.gettext(language, "Pending"),
        "Expired": i18n.gettext(language, "Expired"),
    }


def _line_sources(language: Language) -> dict[LineSource, str]:
    return {
        "local": i18n.gettext(language, "Local"),
        "upstream": i18n.gettext(language, "From the upstream"),
    }


def _token_states(language: Language) -> dict[TokenStatus, str]:
    return {
        "Active": i18n.gettext(language, "Active"),
        "Expired": i18n.gettext(language, "Expired"),
        "Revoked": i18n.gettext(language, "Revoked"),
        "Used": i18n.gettext(language, "Used up"),
    }


def _export_flags(language: Language) -> dict[ExportFlag, str]:
    return {
        "Allowed": i18n.gettext(language, "Allowed"),
        "Not Allowed": i18n.gettext(language, "Not allowed"),
    }


def _severities(language: Language) -> dict[Severity, str]:
    return {
        "Info": i18n.gettext(language, "Info"),
        "Minor": i18n.gettext(language, "Minor"),
        "Major": i18n.gettext(language, "Major"),
        "Critical": i18n.gettext(language, "Critical"),
    }


def _alert_types(language: Language) -> dict[AlertType, str]:
    return {
        "Insufficient Licenses": i18n.gettext(language, "Insufficient licenses"),
        "Licenses Expired": i18n.gettext(language, "Licenses expired"),
        "Licenses Expiring": i18n.gettext(language, "Licenses expiring"),
        "Authorization Expired": i18n.gettext(language, "Authorization expired"),
        "Certificate Expiring": i18n.gettext(language, "Certificate expiring"),
        "Export Control Not Allowed": i18n.gettext(language, "Export control not allowed"),
        "ExportControlWithdrawn": i18n.gettext(language, "Export control withdrawn"),
        "SyncFailed": i18n.gettext(language, "Sync failed"),
        "SyncOverdue": i18n.gettext(language, "Sync overdue"),
        "SyncHorizonPassed": i18n.gettext(language, "Sync horizon passed"),
        "Webhook Delivery Failed": i18n.gettext(language, "Webhook delivery failed"),
    }


def _roles(language: Language) -> dict[Role, str]:
    return {
        "system-admin": i18n.gettext(language, "System admin"),
        "account-admin": i18n.gettext(language, "Account admin"),
        "account-viewer": i18n.gettext(language, "Account viewer"),
    }


def _sync_modes(language: Language) -> dict[SyncMode, str]:
    return {
        "connected": i18n.gettext(language, "Connected"),
        "disconnected": i18n.gettext(language, "Disconnected"),
    }


def _sync_operations(language: Language) -> dict[SyncOperation, str]:
    return {
        "export": i18n.gettext(language, "Request downloaded"),
        "import": i18n.gettext(language, "Answer uploaded"),
        "sync-now": i18n.gettext(language, "Sync now"),
        "scheduled": i18n.gettext(language, "Scheduled sync"),
    }


def _sync_outcomes(language: Language) -> dict[Outcome, str]:
    return {
        "success": i18n.gettext(language, "Success"),
        "failure": i18n.gettext(language, "Failure"),
    }


def _sync_counts(language: Language) -> dict[SyncCount, str]:
    return {
        "added": i18n.gettext(language, "added"),
        "changed": i18n.gettext(language, "changed"),
        "removed": i18n.gettext(language, "removed"),
        "virtualAccountsCreated": i18n.gettext(language, "virtual accounts created"),
        "flagsChanged": i18n.gettext(language, "account flags changed"),
    }


Table = Callable[[Language], dict[Any, str]]

# Each kind: its table and the Literal whose every value it must say.
KINDS: dict[str, tuple[Table, Any]] = {
    "product_state": (_product_states, DeviceState),
    "reported_product_state": (_reported_product_states, ProductInstanceStatus),
    "authorization": (_authorizations, AuthorizationStatus),
    "reservation_state": (_reservation_states, ReservationState),
    "reported_reservation_state": (_reported_reservation_states, ReservationStatus),
    "compliance": (_compliance, ComplianceStatus),
    "export_key_state": (_export_key_states, ExportKeyState),
    "export_key_end_reason": (_export_key_end_reasons, ExportKeyEndReason),
    "license_type": (_license_types, LicenseType),
    "line_status": (_line_statuses, LineStatus),
    "line_source": (_line_sources, LineSource),
    "token_state": (_token_states, TokenStatus),
    "export_flag": (_export_flags, ExportFlag),
    "severity": (_severities, Severity),
    "alert_type": (_alert_types, AlertType),
    "role": (_roles, Role),
    "sync_mode": (_sync_modes, SyncMode),
    "sync_operation": (_sync_operations, SyncOperation),
    "sync_outcome": (_sync_outcomes, Outcome),
    "sync_count": (_sync_counts, SyncCount),
}


def values(kind: str) -> tuple[str, ...]:
    """Every value of the kind's Literal, in its declared order (for a form's choices)."""
    return tuple(get_args(KINDS[kind][1]))


def say(language: Language, kind: str, value: str) -> str:
    """The words for ``value``; a value outside its Literal is a bug (KeyError), except
    what another satellite reported, which may be of a version with other states."""
    table = KINDS[kind][0](language)
    if kind.startswith("reported_") and value not in table:
        return i18n.gettext(language, "another state (%(value)s)") % {"value": value}
    return str(table[value])


def not_a_choice(language: Language, label: str) -> str:
    """A form's choice that is none of its list's (a forged form): the field's ``label``,
    in the page's language, named."""
    return i18n.gettext(language, "%(field)s: choose one of the list's entries.") % {"field": label}


class Words:
    """The template global ``words``: ``words.<kind>(value)`` in the page's language, and
    ``words.choices(kind)``: (value, words) pairs for a ``<select>``."""

    def __getattr__(self, kind: str) -> Callable[..., str]:
        if kind not in KINDS:
            raise AttributeError(kind)

        @pass_context
        def word(context: Context, value: str) -> str:
            return say(context["language"], kind, value)

        return word

    @staticmethod
    @pass_context
    def choices(context: Context, kind: str) -> list[tuple[str, str]]:
        return [(value, say(context["language"], kind, value)) for value in values(kind)]


WORDS = Words()
