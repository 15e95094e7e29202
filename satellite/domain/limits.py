"""Rate limits: what is counted, how, and what a refusal says.

A failure limit rations the checks of a secret (a password, a client secret, an access
token, a registration token). How an attempt is counted depends on the check:

* ``reserve``: the attempt counts before the secret is checked and is given back once it
  proved right. Used where a check is slow (argon2) or where the caller's connection
  bounds how many are in flight: guesses sent in parallel cannot all be checked.
* ``check``: the counter is read before the secret is checked and the attempt counts once
  it failed. Used for registration tokens, checked inside a registration that may take a
  while and that a whole site behind one address may send at once: counting those in
  flight would refuse a site's honest registrations. A token that is not known fails for
  certain and counts at once; wrong proofs of a known token in flight at once may pass
  the limit by as many (the check is a fast HMAC).

A flood limit counts every attempt it lets through and gives none back. An attempt over
any of its limits is refused and counts nowhere. Past a failure limit the right secret
is refused too, until the window ends: telling it apart would mean checking it, which is
what the limit rations.
"""

from __future__ import annotations

import ipaddress
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
Mode = Literal["reserve", "check", "flood"]

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
    mode: Mode

    def refuses(self, hits: int, *, counted: bool) -> bool:
        """``hits``: the counter now, with this attempt in it when ``counted`` (else it
        would be counted if it failed)."""
        return hits + (0 if counted else 1) > self.allowed


def address_key(address: str, ipv6_prefix_length: int = 64) -> str:
    """What an address limit counts a source address as: an IPv4 address as itself (also
    when a dual-stack socket shows it as ``::ffff:a.b.c.d``), an IPv6 one as its network
    of ``ipv6_prefix_length`` bits: a /64 is what a single host is usually given (else
    each host could guess from 2^64 addresses). Anything else (no IP address) as it is."""
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        return address
    if isinstance(ip, ipaddress.IPv4Address):
        return str(ip)
    if ip.ipv4_mapped is not None:
        return str(ip.ipv4_mapped)
    # (From the integer: a link-local address's scope id is no part of the network.)
    host_bits = 128 - ipv6_prefix_length
    return str(ipaddress.IPv6Network((int(ip) >> host_bits << host_bits, ipv6_prefix_length)))


def refusal(kind: LimitKind, retry_after: int) -> str:
    return f"{_REFUSALS[kind]}; try again in {retry_after} s"
