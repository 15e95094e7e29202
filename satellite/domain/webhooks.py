"""Webhooks: where an account's alerts are delivered, and what became of each delivery."""

from __future__ import annotations

import datetime as dt
import ipaddress
import re
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal
from urllib.parse import urlsplit

from satellite.domain.alerts import AlertType

# The events a webhook may ask for; a test delivery ("webhook.test") goes to any webhook.
AlertEvent = Literal["alert.raised", "alert.cleared"]
ALERT_EVENTS: tuple[AlertEvent, ...] = ("alert.raised", "alert.cleared")
TEST_EVENT = "webhook.test"
DeliveryState = Literal["pending", "delivered", "failed", "cancelled"]

# Webhooks an account may have: each alert is queued once per matching webhook, in the
# transaction that raised it.
MAX_WEBHOOKS_PER_ACCOUNT = 20

# The alert an account gets when a delivery to one of its webhooks is given up; open until
# a later delivery to that webhook succeeds, or the webhook is deleted or disabled.
DELIVERY_FAILED: AlertType = "Webhook Delivery Failed"


def delivery_failed_key(webhook: uuid.UUID) -> str:
    return f"webhook:{webhook}:failed"


@dataclass(frozen=True)
class Webhook:
    id: int
    public_id: uuid.UUID
    account_id: int
    url: str
    secret: bytes  # encrypted
    events: list[str]
    alert_types: list[str]
    enabled: bool
    description: str
    created_at: dt.datetime
    updated_at: dt.datetime


@dataclass(frozen=True)
class Attempt:
    attempted_at: dt.datetime
    node: str
    status_code: int | None
    error: str | None
    duration_ms: int
    response_excerpt: str


@dataclass(frozen=True)
class Delivery:
    id: int
    event: str
    state: DeliveryState
    created_at: dt.datetime
    next_attempt_at: dt.datetime
    attempts: int
    finished_at: dt.datetime | None


@dataclass(frozen=True)
class DueDelivery:
    """A delivery a node claimed, with what it needs to send it."""

    id: int
    webhook_id: int
    webhook: uuid.UUID
    account_id: int
    url: str
    secret: bytes  # encrypted
    event: str
    payload: str
    created_at: dt.datetime
    attempts: int  # this one included


@dataclass(frozen=True)
class Outcome:
    """What one attempt came to: delivered or not, the receiver's HTTP status (none for an
    e-mail, or when there was no answer), and why it failed."""

    delivered: bool
    attempted_at: dt.datetime
    status_code: int | None
    error: str | None
    duration_ms: int
    response_excerpt: str


def is_mail(url: str) -> bool:
    """A ``mailto:`` destination: the delivery is an e-mail, through ``[smtp]``."""
    return url.startswith("mailto:")


# What an attempt's log keeps of an answer or an error: text a column holds and a terminal
# shows as it is (a receiver may answer NUL bytes or escape sequences).
_UNPRINTABLE = re.compile(r"[\x00-\x08\x0b-\x1f\x7f]")
EXCERPT_CHARS = 512
ERROR_CHARS = 500


def error_kind(error: str | None) -> str | None:
    """What an attempt's error is, without its detail: an error is written ``kind: detail``,
    the detail may quote the receiver (a status line, a header, a mail server's reply),
    and only system admins see it."""
    return None if error is None else error.partition(": ")[0]


def log_text(text: str, limit: int) -> str:
    """``text`` with its control characters (but newlines and tabs) replaced, cut at
    ``limit`` characters."""
    return _UNPRINTABLE.sub("\ufffd", text)[:limit]


def destination(url: str) -> str | None:
    """Where a delivery goes, as the log, the audit log and an alert name it: the
    receiver's host, or the e-mail's domain (never a path or query, which may hold a token)."""
    if is_mail(url):
        return url.rpartition("@")[2]
    return urlsplit(url).hostname


Network = ipaddress.IPv4Network | ipaddress.IPv6Network


def networks(texts: Sequence[str]) -> tuple[Network, ...]:
    """``webhooks.allowed_networks`` as networks (the settings checked them)."""
    return tuple(ipaddress.ip_network(text) for text in texts)


def address_allowed(address: str, allowed: Sequence[Network]) -> bool:
    """Whether a receiver at ``address`` (an IP address, as a socket names it) is in one of
    the ``allowed`` networks; no networks: anywhere. An IPv4-mapped IPv6 address is judged
    as the IPv4 address it reaches."""
    if not allowed:
        return True
    ip = ipaddress.ip_address(address.partition("%")[0])
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    return any(ip in network for network in allowed)


def address_literal(url: str) -> str | None:
    """The URL's host when it is an IP address, else None (a name)."""
    host = urlsplit(url).hostname
    try:
        return None if host is None else str(ipaddress.ip_address(host))
    except ValueError:
        return None
