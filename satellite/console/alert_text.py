"""An alert's text in the page's language, said from its type and details (the values its
English message is made of): a tag by the catalog's display name, numbers and dates as the
language writes them. An alert without details (raised before alerts kept them), of a type
this console does not say, or whose details are not what its type has, shows its stored
message."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Mapping
from typing import get_args

from satellite.api.activity import AlertOut
from satellite.console import i18n, words
from satellite.console.i18n import Language
from satellite.domain.alerts import ALERT_DETAILS, AlertDetails, AlertType

Names = Mapping[str, str]  # entitlement tag -> the catalog's display name


class _Values:
    """An alert's details as the sentence of its type reads them, in the page's language."""

    def __init__(self, language: Language, details: AlertDetails, names: Names) -> None:
        self._language, self._details, self._names = language, details, names

    def text(self, key: str) -> str:
        value = self._details[key]
        if not isinstance(value, str):
            raise TypeError(key)
        return value

    def number(self, key: str) -> str:
        value = self._details[key]
        if not isinstance(value, int):
            raise TypeError(key)
        return i18n.number_text(self._language, value)

    def date(self, key: str) -> str:
        return i18n.date_text(self._language, dt.date.fromisoformat(self.text(key)))

    def license(self) -> str:
        tag = self.text("tag")
        return self._names.get(tag, tag)

    def word(self, kind: str, key: str) -> str:
        """The value in the words of ``kind`` (``console.words``), as it is when it has none."""
        value = self.text(key)
        return words.say(self._language, kind, value) if value in words.values(kind) else value


Say = Callable[[Language, _Values], str]


def _shortage(language: Language, v: _Values) -> str:
    return i18n.gettext(
        language, "%(license)s: %(count)s more in use or reserved than available"
    ) % {"license": v.license(), "count": v.number("short")}


def _expired(language: Language, v: _Values) -> str:
    return i18n.gettext(language, "%(quantity)s %(license)s expired on %(date)s") % {
        "quantity": v.number("quantity"),
        "license": v.license(),
        "date": v.date("end_date"),
    }


def _expiring(language: Language, v: _Values) -> str:
    return i18n.gettext(language, "%(quantity)s %(license)s expire on %(date)s") % {
        "quantity": v.number("quantity"),
        "license": v.license(),
        "date": v.date("end_date"),
    }


def _authorization_expired(language: Language, v: _Values) -> str:
    return i18n.gettext(
        language,
        "%(product)s has not renewed its authorization, which expired on %(date)s: its "
        "license usage no longer counts until it renews",
    ) % {"product": v.text("product"), "date": v.date("expired_on")}


def _certificate_expiring(language: Language, v: _Values) -> str:
    return i18n.gettext(
        language,
        "The ID certificate of %(product)s expires on %(date)s: unless the product renews "
        "its registration by then, it must register again with a token",
    ) % {"product": v.text("product"), "date": v.date("expires_on")}


def _export_released(language: Language, v: _Values) -> str:
    return i18n.gettext(
        language,
        "%(product)s held export-controlled feature(s) %(features)s (%(cause)s): their "
        "export keys went back to the pool; the product keeps the feature(s) enabled and "
        "raises %(alarm)s to its administrator",
    ) % {
        "product": v.text("product"),
        "features": v.text("features"),
        "cause": v.word("export_key_end_reason", "cause"),
        "alarm": v.text("alarm"),
    }


def _export_withdrawn(language: Language, v: _Values) -> str:
    return i18n.gettext(
        language,
        "The upstream no longer allows this account export-controlled functionality; it "
        "still has %(keys)s export key(s) granted, %(tokens)s export-controlled token(s) "
        "and %(lines)s export-restricted line(s): have the products return their keys, and "
        "revoke the tokens",
    ) % {
        "keys": v.number("export_keys"),
        "tokens": v.number("tokens"),
        "lines": v.number("lines"),
    }


def _sync_failed(language: Language, v: _Values) -> str:
    # (The error is the server's or the upstream's own words: English, as the API's.)
    return i18n.gettext(language, "Sync with the upstream failed (%(operation)s): %(error)s") % {
        "operation": v.word("sync_operation", "operation"),
        "error": v.text("error"),
    }


def _sync_overdue(language: Language, v: _Values) -> str:
    return i18n.gettext(
        language,
        "No sync with the upstream since %(since)s: from %(until)s this satellite grants no "
        "new authorizations unless it syncs",
    ) % {"since": v.date("since"), "until": v.date("until")}


def _sync_horizon_passed(language: Language, v: _Values) -> str:
    return i18n.gettext(
        language,
        "No sync with the upstream since %(since)s: more than %(days)s days, so this "
        "satellite grants no new authorizations; sync now (or import an answer) to resume",
    ) % {"since": v.date("since"), "days": v.number("days")}


def _delivery_failed(language: Language, v: _Values) -> str:
    return i18n.gettext(
        language,
        "A delivery of %(event)s to %(host)s was given up after %(attempts)s attempt(s); "
        "the last: %(error)s",
    ) % {
        "event": v.text("event"),
        "host": v.text("host"),
        "attempts": v.number("attempts"),
        "error": v.text("error"),
    }


SENTENCES: dict[AlertType, Say] = {
    "Insufficient Licenses": _shortage,
    "Licenses Expired": _expired,
    "Licenses Expiring": _expiring,
    "Authorization Expired": _authorization_expired,
    "Certificate Expiring": _certificate_expiring,
    "Export Control Not Allowed": _export_released,
    "ExportControlWithdrawn": _export_withdrawn,
    "SyncFailed": _sync_failed,
    "SyncOverdue": _sync_overdue,
    "SyncHorizonPassed": _sync_horizon_passed,
    "Webhook Delivery Failed": _delivery_failed,
}
# By the stored type (any text): its sentence and its details' keys.
_KNOWN: dict[str, tuple[Say, frozenset[str]]] = {
    kind: (say, ALERT_DETAILS[kind]) for kind, say in SENTENCES.items()
}


def alert_text(language: Language, alert: AlertOut, names: Names) -> str:
    """What the alert says, in ``language``."""
    known = _KNOWN.get(alert.message_type)
    if known is None or alert.details is None or set(alert.details) != known[1]:
        return alert.message
    say = known[0]
    try:
        return say(language, _Values(language, alert.details, names))
    except (TypeError, ValueError):  # a value of the wrong kind, a date that is none
        return alert.message


def alert_type(language: Language, message_type: str) -> str:
    """The alert's type in words; a type this console does not say, as it is."""
    if message_type in get_args(AlertType):
        return words.say(language, "alert_type", message_type)
    return message_type
