"""Who may see and change what."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal, get_args

Role = Literal["system-admin", "account-admin", "account-viewer"]
ROLES: tuple[Role, ...] = get_args(Role)


@dataclass(frozen=True)
class Principal:
    """An authenticated caller: an API client, a user, the operator on the host (CLI), a
    product, a satellite (at its upstream), or the daemon itself (its scheduled jobs)."""

    kind: Literal["client", "user", "host", "product", "satellite", "system"]
    login: str
    role: Role
    account_ids: frozenset[int] = field(default_factory=frozenset)
    id: int | None = None

    @property
    def actor(self) -> str:
        return f"{self.kind}:{self.login}"

    @property
    def is_system_admin(self) -> bool:
        return self.role == "system-admin"

    def sees(self, account_id: int) -> bool:
        return self.is_system_admin or account_id in self.account_ids

    def may_write(self, account_id: int) -> bool:
        return self.sees(account_id) and self.role != "account-viewer"


def host_operator(user: str) -> Principal:
    """The operator running the CLI on the host: full rights, as the database owner has."""
    return Principal(kind="host", login=user, role="system-admin")


def product_actor(product_id: str) -> Principal:
    """A product instance acting through the device API: the audit log's actor."""
    return Principal(kind="product", login=product_id, role="account-viewer")


def system_actor(name: str) -> Principal:
    """The daemon acting on its own (``system:scheduler``): the audit log's actor."""
    return Principal(kind="system", login=name, role="system-admin")
