"""An operation: one thing a caller may do, written once, with who may do it.

An operation is an async function ``(services, caller, request) -> answer`` whose request
and answer are wire types (``satellite.api.types``), declared with :func:`operation`::

    @operation("POST", VA + "/tokens", "Create a registration token", tag="tokens",
               access=WRITE)
    async def create_token(services: Services, caller: Principal, request: TokenCreate)
        -> TokenCreated: ...

The declaration is the whole contract: the HTTP layer generates the route and its OpenAPI
entry from it (path parameters and body or query fields are the request type's fields,
by their wire names), the CLI and the console call the same object. Calling it checks the
request against its type's limits and the declared access first, so no caller repeats
either:

* the account named by the request (its ``account`` field, for ``account_scoped``
  operations) must be one the caller sees, else it is reported missing (404) exactly as an
  account that does not exist, whatever the role;
* then the caller's role must be at least the declared one (403, in the services' words:
  the account it may not change, or that only a system admin may do this).

Services check account scope again inside their transactions (with the locks they need):
the declaration is what a reader sees, the service is what holds under concurrency.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, Generic, Literal, TypeVar, get_type_hints

import msgspec

from satellite.api import tables
from satellite.api.context import Services
from satellite.api.files import Upload
from satellite.api.types import Description, Name
from satellite.domain.access import Principal, Role
from satellite.domain.names import check_description, check_name
from satellite.errors import Forbidden
from satellite.services import scope
from satellite_protocol.validation import validation_error

RequestT = TypeVar("RequestT", bound=msgspec.Struct)
AnswerT = TypeVar("AnswerT", bound=msgspec.Struct)
Method = Literal["GET", "POST", "PUT", "DELETE"]

# The roles in order of what they may do; an operation declares the least it needs.
_RANK: dict[Role, int] = {"account-viewer": 0, "account-admin": 1, "system-admin": 2}


@dataclass(frozen=True)
class Access:
    """Who may call an operation: at least ``role``; ``account_scoped``: only in an account
    the caller sees (the request's ``account`` field names it)."""

    role: Role
    account_scoped: bool = True

    def allows(self, role: Role) -> bool:
        return _RANK[role] >= _RANK[self.role]


READ = Access("account-viewer")  # any authenticated caller, in an account it sees
WRITE = Access("account-admin")  # an admin of the account (or a system admin)
SYSTEM = Access("system-admin", account_scoped=False)  # system admins only
ANYONE = Access("account-viewer", account_scoped=False)  # any authenticated caller


Run = Callable[[Services, Principal, RequestT], Awaitable[AnswerT]]


@dataclass(frozen=True)
class Operation(Generic[RequestT, AnswerT]):
    """A declared operation; call it as the function it wraps."""

    method: Method
    path: str  # under the API prefixes; ``{name}`` segments are request fields (wire names)
    summary: str
    tag: str
    access: Access
    request: type[RequestT]
    answer: type[AnswerT]
    run: Run[RequestT, AnswerT]
    # Answers holding secrets (registration tokens) must not be kept by caches.
    no_store: bool = False
    # What the answer means beyond its summary (the OpenAPI document's description).
    description: str = ""
    # The answer's field (Python name) holding a list of flat records, when the operation
    # also answers as CSV, one row per record (``satellite.api.tables``).
    csv: str | None = None

    @property
    def name(self) -> str:
        return self.run.__name__

    async def __call__(self, services: Services, caller: Principal, request: RequestT) -> AnswerT:
        request = _validated(request, self.request)
        if self.access.account_scoped:
            await services.accounts.visible_account(caller, _account_of(request))
        if not self.access.allows(caller.role):
            raise _refusal(caller, self.access, request)
        return await self.run(services, caller, request)


def operation(
    method: Method,
    path: str,
    summary: str,
    *,
    tag: str,
    access: Access,
    no_store: bool = False,
    description: str = "",
    csv: str | None = None,
) -> Callable[[Run[RequestT, AnswerT]], Operation[RequestT, AnswerT]]:
    """Declare the decorated function an operation; its request and answer types are read
    from its annotations (so they are written once)."""

    def declare(run: Run[RequestT, AnswerT]) -> Operation[RequestT, AnswerT]:
        hints = get_type_hints(run)
        request, answer = hints["request"], hints["return"]
        if access.account_scoped and "account" not in request.__struct_fields__:
            raise TypeError(f"{run.__name__}: an account-scoped request needs an account field")
        if csv is not None:
            tables.columns(answer, csv)  # (a CSV form that cannot be written fails here)
        return Operation(
            method, path, summary, tag, access, request, answer, run, no_store, description, csv
        )

    return declare


def _validated(request: RequestT, type_: type[RequestT]) -> RequestT:
    """The request checked against its type's constraints (lengths, ranges, patterns), as
    decoding checks them: a request built in code (the CLI's, the console's) is held to
    the same limits as one decoded from HTTP (a file it sends is passed as it is).

    A ``Name`` or ``Description`` the constraints refuse is refused with the rule it
    breaks, in the words of ``domain.names`` (whose checks refuse all that the constraints
    refuse), as the services refused it before the CLI called operations: an operator reads
    the rule, not a pattern or a length."""
    try:
        return msgspec.convert(msgspec.to_builtins(request, builtin_types=(Upload,)), type_)
    except msgspec.ValidationError as exc:
        error = validation_error(exc)
        _refuse_in_words(request, error.field)
        raise error from exc


# The checks that word the rule of a wire type (each refuses all its constraints refuse).
_IN_WORDS: dict[Any, Callable[[str, str], str]] = {
    Name: check_name,
    Name | None: check_name,
    Description: check_description,
    Description | None: check_description,
}


def _refuse_in_words(request: msgspec.Struct, wire_name: str | None) -> None:
    """The worded refusal if ``wire_name`` is a top-level field of the request whose type
    has one (``_IN_WORDS``) and whose value it refuses."""
    hints = get_type_hints(type(request), include_extras=True)
    for field in msgspec.structs.fields(request):
        check = _IN_WORDS.get(hints[field.name])
        value = getattr(request, field.name)
        if field.encode_name == wire_name and check is not None and isinstance(value, str):
            check(value, wire_name)


def _refusal(caller: Principal, access: Access, request: Any) -> Forbidden:
    """Why the caller may not, in the words the services refuse it with: a change to an
    account it only sees, or what only a system admin may do."""
    if access.account_scoped and not WRITE.allows(caller.role):
        return scope.may_not_change(caller, _account_of(request))
    return scope.system_admins_only()


def _account_of(request: Any) -> str:
    account: str = request.account
    return account
