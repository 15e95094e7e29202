"""Rate limits: what is counted, by which key, and what a refusal says.

Two sorts of limit. A failure limit counts attempts to prove a secret (a password, a
client secret, an access token, a registration token): the attempt counts before the
secret is checked, so that guesses sent in parallel cannot all be checked, and is given
back once the secret proved right. A flood limit counts every attempt it admits and
gives none back. Once a counter reaches its limit, further attempts are refused (and not
counted) until its window ends, the right secret too: telling it apart would mean
checking it, which is what the limit rations.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

LimitKind = Literal[
    "password-name",
    "password-address",
    "client-secret-name",
    "client-secret-address",
    "bearer-token-address",
    "token-proof-token",
    "token-proof-address",
    "registrations-token",
    "registrations-virtual-account",
]

_REFUSALS: dict[LimitKind, str] = {
    "password-name": "too many failed logins for this user name",
    "password-address": "too many failed logins from this address",
    "client-secret-name": "too many failed token requests for this client id",
    "client-secret-address": "too many failed token requests from this address",
    "bearer-token-address": "too many unknown access tokens from this address",
    "token-proof-token": "too many failed registrations with this token",
    "token-proof-address": "too many failed registrations from this address",
    "registrations-token": "too many registrations with this token",
    "registrations-virtual-account": "too many registrations into this virtual account",
}


@dataclass(frozen=True)
class Limit:
    kind: LimitKind
    allowed: int  # attempts per window
    window_seconds: int
    failures_only: bool  # a failure limit (given back on success), else a flood limit


def refusal(kind: LimitKind, retry_after: int) -> str:
    return f"{_REFUSALS[kind]}; try again in {retry_after} s"
