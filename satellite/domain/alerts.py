"""What an alert is made of beside its English message: the details (a small flat object of
the values the message says), so that a reader in another language (the console) can say
the same thing in its own words. Each alert type's details have these keys, no other."""

from __future__ import annotations

import re
from typing import Literal

# The types of alert the services raise (an alert's ``message_type``).
AlertType = Literal[
    "Insufficient Licenses",
    "Licenses Expired",
    "Licenses Expiring",
    "Authorization Expired",
    "Certificate Expiring",
    "Export Control Not Allowed",
    "ExportControlWithdrawn",
    "SyncFailed",
    "SyncOverdue",
    "SyncHorizonPassed",
    "Webhook Delivery Failed",
]
AlertDetails = dict[str, str | int]

# Each type's details' keys. Dates are ISO 8601 days ("2026-12-01"); a "tag" is an
# entitlement tag (a reader says it by the catalog's display name).
ALERT_DETAILS: dict[AlertType, frozenset[str]] = {
    "Insufficient Licenses": frozenset({"tag", "short"}),
    "Licenses Expired": frozenset({"tag", "quantity", "end_date"}),
    "Licenses Expiring": frozenset({"tag", "quantity", "end_date"}),
    "Authorization Expired": frozenset({"product", "expired_on"}),
    "Certificate Expiring": frozenset({"product", "expires_on"}),
    "Export Control Not Allowed": frozenset({"product", "features", "cause", "alarm"}),
    "ExportControlWithdrawn": frozenset({"export_keys", "tokens", "lines"}),
    "SyncFailed": frozenset({"operation", "error"}),
    "SyncOverdue": frozenset({"since", "until"}),
    "SyncHorizonPassed": frozenset({"since", "days"}),
    "Webhook Delivery Failed": frozenset({"event", "host", "attempts", "error"}),
}

_EXPECTED: dict[str, frozenset[str]] = {kind: keys for kind, keys in ALERT_DETAILS.items()}

MAX_DETAILS = 12  # keys
MAX_DETAIL_TEXT = 500  # characters of one value: longer text (an error's) is cut
_KEY = re.compile(r"[a-z][a-z_]{0,39}")


def detail_text(value: str) -> str:
    """A free text (an error's detail) cut to what a detail may hold."""
    return value if len(value) <= MAX_DETAIL_TEXT else value[: MAX_DETAIL_TEXT - 1] + "…"


def check_details(message_type: str, details: AlertDetails) -> AlertDetails:
    """``details`` as an alert of ``message_type`` keeps them: a flat object of at most
    ``MAX_DETAILS`` short snake_case keys whose values are text (at most
    ``MAX_DETAIL_TEXT`` characters) or integers, with exactly its type's keys when the
    type is one of ``ALERT_DETAILS``. Anything else is the raising code's mistake
    (ValueError): a service's alert would otherwise say less than its message."""
    if len(details) > MAX_DETAILS:
        raise ValueError(f"{message_type}: more than {MAX_DETAILS} details")
    for key, value in details.items():
        if not _KEY.fullmatch(key):
            raise ValueError(f"{message_type}: detail key {key!r} is not a short snake_case name")
        if isinstance(value, bool) or not isinstance(value, str | int):
            raise ValueError(f"{message_type}: detail {key} is neither text nor an integer")
        if isinstance(value, str) and len(value) > MAX_DETAIL_TEXT:
            raise ValueError(f"{message_type}: detail {key} is longer than {MAX_DETAIL_TEXT}")
        if isinstance(value, int) and abs(value) >= 2**53:
            raise ValueError(f"{message_type}: detail {key} is out of JSON's safe range")
    expected = _EXPECTED.get(message_type)
    if expected is not None and set(details) != expected:
        raise ValueError(f"{message_type}: details {sorted(details)}, expected {sorted(expected)}")
    return details
