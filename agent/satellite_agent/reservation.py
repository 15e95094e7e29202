"""Specific license reservation (SLR), the product's side: it never talks to the server.

The operator carries codes by hand: the product's request code to the server, the
server's authorization code back (verified here, offline, against the server key the
product trusts), then the product's confirmation or return code to the server. States:

    unregistered (or deregistered) --enable--> reservation in progress --request--> (request open)
    (request open) --install--> registered - specific license reservation
    (request open) --cancel--> reservation in progress
    registered - SLR --install (a newer code for this reservation)--> registered - SLR
    registered - SLR --return--> reservation in progress (return code printed)
    reservation in progress --return-authorization CODE--> same (return code printed)
    reservation in progress --disable--> unregistered

A refused code changes nothing. What is reserved is all there is: no borrowing from a
higher tier, and a TERM entitlement stops counting after its end date.
"""

from __future__ import annotations

import datetime as dt
import getpass
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Concatenate, Literal, ParamSpec, TypeVar
from urllib.parse import unquote, urlsplit

import msgspec

from satellite_agent.client import AgentError
from satellite_agent.state import AgentState, ReservedEntitlement, StateDir
from satellite_protocol.crypto.keys import PrivateKey, PublicKey, new_private_key, private_key_pem
from satellite_protocol.crypto.slr import (
    MAX_CODE_CHARS,
    AuthorizationCode,
    CodeError,
    RequestCode,
    load_private_key,
    load_trusted_key,
    make_product_code,
    public_key_pem,
    public_key_text,
    udi_text,
    verify_authorization_code,
)

MAX_FILE_BYTES = MAX_CODE_CHARS
TagState = Literal["AUTHORIZED", "OUT_OF_COMPLIANCE", "NOT_AUTHORIZED"]


P = ParamSpec("P")
R = TypeVar("R")


def _locked(
    method: Callable[Concatenate[Reservations, P], R],
) -> Callable[Concatenate[Reservations, P], R]:
    """The method's load-modify-save under the state's lock (see ``StateDir.locked``)."""

    def run(self: Reservations, /, *args: P.args, **kwargs: P.kwargs) -> R:
        with self.dir.locked():
            return method(self, *args, **kwargs)

    run.__doc__ = method.__doc__
    return run


def _now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


class SftpOptions(msgspec.Struct, kw_only=True):
    password: str | None = None
    identity: Path | None = None  # private key file
    known_hosts: Path | None = None  # None: ~/.ssh/known_hosts


class Reservations:
    """The reservation commands of one product's state directory."""

    def __init__(self, state_dir: Path, clock: Callable[[], dt.datetime] = _now) -> None:
        self.dir = StateDir(state_dir, clock)
        self._clock = clock

    # --- state -----------------------------------------------------------------------------

    @property
    def state(self) -> AgentState:
        return self.dir.load()

    def _udi(self, state: AgentState) -> str:
        identity = state.identity
        return udi_text(identity.pid, identity.serial_number, identity.uuid)

    @staticmethod
    def installed(state: AgentState) -> bool:
        return state.reservation.authorization_code is not None

    @staticmethod
    def describe(state: AgentState) -> str | None:
        """The registration state as the reference names it, when reservation is on."""
        if state.reservation.authorization_code is not None:
            return "registered - specific license reservation"
        if state.reservation.enabled:
            return "reservation in progress"
        return None

    def _key(self) -> PrivateKey:
        path = self.dir.reservation_key_file
        if not path.exists():
            self.dir.write_private(path, private_key_pem(new_private_key()))
        try:
            return load_private_key(path.read_bytes())
        except (CodeError, ValueError) as exc:
            raise AgentError(f"{path} is not a usable key: {exc}") from exc

    def _trusted(self, state: AgentState) -> PublicKey:
        if state.reservation.trusted_key is None:
            raise AgentError(
                "no trusted server key: run 'license smart reservation trust FILE' with the "
                "server's keys/signing.pub (or signing.crt) first"
            )
        try:
            return load_trusted_key(state.reservation.trusted_key.encode("ascii"))
        except CodeError as exc:
            raise AgentError(f"the trusted server key in the state is unusable: {exc}") from exc

    def _require_enabled(self, state: AgentState) -> None:
        if not state.reservation.enabled:
            raise AgentError(
                "specific license reservation is not enabled: run "
                "'license smart reservation enable' first"
            )

    # --- commands --------------------------------------------------------------------------

    @_locked
    def trust(self, pem: bytes) -> str:
        """Trust the server key in ``pem`` (public key or certificate) for authorization
        codes; return it as a PEM public key."""
        try:
            key = load_trusted_key(pem)
        except CodeError as exc:
            raise AgentError(f"cannot trust this file: {exc}") from exc
        state = self.state
        state.reservation.trusted_key = public_key_pem(key)
        self.dir.save(state)
        return state.reservation.trusted_key

    @_locked
    def enable(self) -> AgentState:
        state = self.state
        if state.registration == "registered":
            raise AgentError(
                "this product is registered: deregister it before enabling specific license "
                "reservation"
            )
        if state.registration not in ("unregistered", "deregistered"):
            ended = "was removed on the server" if state.registration == "removed" else "expired"
            raise AgentError(
                f"this product's registration {ended}, it is not unregistered: register it "
                "again and deregister it before enabling specific license reservation"
            )
        state.reservation.enabled = True
        self.dir.save(state)
        return state

    @_locked
    def disable(self) -> AgentState:
        state = self.state
        if self.installed(state):
            raise AgentError(
                "a reservation is installed: run 'license smart reservation return' first"
            )
        state.reservation.enabled = False
        state.reservation.request_nonce = None
        state.reservation.requested_at = None
        self.dir.save(state)
        return state

    @_locked
    def request(self) -> str:
        """The request code (UDI, nonce, key); the open request's again if there is one."""
        state = self.state
        self._require_enabled(state)
        if self.installed(state):
            raise AgentError(
                "a reservation is installed: the server updates it; install its new code"
            )
        key = self._key()
        if state.reservation.request_nonce is None:
            state.reservation.request_nonce = str(uuid.uuid4())
            state.reservation.requested_at = self._clock()
            self.dir.save(state)
        identity = state.identity
        return RequestCode(
            udi_pid=identity.pid,
            udi_serial=identity.serial_number,
            udi_uuid=identity.uuid,
            product_type=identity.product_type,
            nonce=state.reservation.request_nonce,
            public_key=public_key_text(key.public_key()),
        ).encode()

    @_locked
    def cancel(self) -> AgentState:
        state = self.state
        self._require_enabled(state)
        if self.installed(state):
            raise AgentError("a reservation is installed: give it back with 'return'")
        if state.reservation.request_nonce is None:
            raise AgentError("no reservation request is open")
        state.reservation.request_nonce = None
        state.reservation.requested_at = None
        self.dir.save(state)
        return state

    def _verified(self, state: AgentState, text: str) -> AuthorizationCode:
        """Signature first (nothing in the code is read before), then the UDI."""
        trusted = self._trusted(state)
        try:
            code = verify_authorization_code(text, trusted)
        except CodeError as exc:
            raise AgentError(f"authorization code refused: {exc}; nothing changed") from exc
        if code.udi != self._udi(state):
            raise AgentError(
                f"authorization code refused: it is for another product ({code.udi}), not "
                f"this one ({self._udi(state)}); nothing changed"
            )
        return code

    @_locked
    def install(self, text: str) -> str:
        """Install an authorization code; return the confirmation code."""
        state = self.state
        self._require_enabled(state)
        code = self._verified(state, text)
        reservation = state.reservation
        if self.installed(state):
            if code.piid != reservation.piid:
                raise AgentError(
                    "authorization code refused: it is for another reservation of this product "
                    "(an older request); nothing changed"
                )
            if code.timestamp <= (reservation.timestamp or 0):
                raise AgentError(
                    "authorization code refused: it is not newer than the installed one; "
                    "nothing changed"
                )
        elif reservation.request_nonce is None:
            raise AgentError(
                "authorization code refused: no reservation request is open (run "
                "'license smart reservation request'); nothing changed"
            )
        elif code.piid != reservation.request_nonce:
            raise AgentError(
                "authorization code refused: it answers an older request of this product, "
                "not the open one; nothing changed"
            )
        confirmation = make_product_code("confirmation", self._key(), code.piid, code.timestamp)
        reservation.authorization_code = code.text
        reservation.piid = code.piid
        reservation.timestamp = code.timestamp
        reservation.installed_at = self._clock()
        reservation.request_nonce = None
        reservation.entitlements = [
            ReservedEntitlement(
                tag=e.tag,
                count=e.count,
                license_type=e.license_type,
                start_date=e.start_date,
                end_date=e.end_date,
                display_name=e.display_name,
                subscription_id=e.subscription_id,
            )
            for e in code.entitlements
        ]
        reservation.confirmation_code = confirmation
        state.time_seen.see(code.issued_at)  # the server's signed time: no earlier than now
        self.dir.save(state)
        return confirmation

    @_locked
    def give_back(self) -> str:
        """``return``: remove the installed authorization; return the return code."""
        state = self.state
        reservation = state.reservation
        if (
            reservation.authorization_code is None
            or reservation.piid is None
            or reservation.timestamp is None
        ):
            raise AgentError("no reservation is installed: nothing to return")
        code = make_product_code("return", self._key(), reservation.piid, reservation.timestamp)
        reservation.authorization_code = None
        reservation.piid = None
        reservation.timestamp = None
        reservation.installed_at = None
        reservation.entitlements = []
        reservation.confirmation_code = None
        reservation.return_code = code
        self.dir.save(state)
        return code

    @_locked
    def return_authorization(self, text: str) -> str:
        """A return code for an authorization code that was never installed."""
        state = self.state
        self._require_enabled(state)
        if self.installed(state):
            raise AgentError(
                "a reservation is installed: use 'license smart reservation return' for it"
            )
        code = self._verified(state, text)
        returned = make_product_code("return", self._key(), code.piid, code.timestamp)
        if code.piid == state.reservation.request_nonce:
            # The server forgets that request with this code: a new one is needed.
            state.reservation.request_nonce = None
            state.reservation.requested_at = None
        state.reservation.return_code = returned
        self.dir.save(state)
        return returned

    # --- what the product may use ----------------------------------------------------------

    def authorized(self, state: AgentState | None = None) -> dict[str, int]:
        """Per tag, what the installed reservation grants today (TERM within its dates);
        today by the latest time seen, so a clock set back revives no TERM license."""
        state = state or self.state
        today = state.time_seen.judged_now(self._clock()).date()
        counts: dict[str, int] = {}
        for entitlement in state.reservation.entitlements:
            if entitlement.counts_on(today):
                counts[entitlement.tag] = counts.get(entitlement.tag, 0) + entitlement.count
        return counts

    def check_usage(self, usage: dict[str, int]) -> dict[str, TagState]:
        """Each tag's state: covered by its own reserved count only (never a higher tier).
        The check records the time it judged by (see ``StateDir.checkpoint``)."""
        self.dir.checkpoint()
        granted = self.authorized()
        result: dict[str, TagState] = {}
        for tag, count in sorted(usage.items()):
            if count <= granted.get(tag, 0):
                result[tag] = "AUTHORIZED"
            elif tag in granted:
                result[tag] = "OUT_OF_COMPLIANCE"
            else:
                result[tag] = "NOT_AUTHORIZED"
        return result


# --- fetching a code file ------------------------------------------------------------------


async def fetch_code_file(url: str, sftp: SftpOptions) -> str:
    """The authorization code in the file at ``url``: ``file:///path`` or
    ``sftp://[user@]host:port/path`` (key or password; the host key must be known)."""
    parts = urlsplit(url)
    if parts.scheme == "file":
        if parts.netloc not in ("", "localhost") or not parts.path:
            raise AgentError("a file URL is file:///absolute/path/to/code")
        data = _read_local(Path(unquote(parts.path)))
    elif parts.scheme == "sftp":
        data = await _sftp_read(url, sftp)
    else:
        raise AgentError("the URL starts with file:// or sftp://host:port/path")
    if len(data) > MAX_FILE_BYTES:
        raise AgentError(f"the file is larger than {MAX_FILE_BYTES} bytes: not a code")
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise AgentError("the file is not text: not an authorization code") from exc


def _read_local(path: Path) -> bytes:
    try:
        with path.open("rb") as handle:
            return handle.read(MAX_FILE_BYTES + 1)
    except OSError as exc:
        raise AgentError(f"cannot read {path}: {exc.strerror}") from exc


async def _sftp_read(url: str, options: SftpOptions) -> bytes:
    import asyncssh  # only products that fetch codes by SFTP need it loaded

    parts = urlsplit(url)
    if not parts.hostname or not parts.path or parts.path == "/":
        raise AgentError("an sftp URL is sftp://[user@]host:port/path/to/code")
    if parts.password:
        raise AgentError("no password in the URL: use --password or SATELLITE_AGENT_SFTP_PASSWORD")
    try:
        port = parts.port or 22
    except ValueError as exc:
        raise AgentError(f"the port in {url!r} is not a number") from exc
    connect_args: dict[str, object] = {
        "username": unquote(parts.username) if parts.username else getpass.getuser(),
        "known_hosts": str(options.known_hosts) if options.known_hosts else (),
        "password": options.password,
        "client_keys": [str(options.identity)] if options.identity else None,
        "agent_path": None,
        "connect_timeout": 30,
    }
    try:
        async with (
            asyncssh.connect(parts.hostname, port, **connect_args) as connection,
            connection.start_sftp_client() as client,
            client.open(unquote(parts.path), "rb") as handle,
        ):
            data: object = await handle.read(MAX_FILE_BYTES + 1)
    except asyncssh.HostKeyNotVerifiable as exc:
        raise AgentError(
            f"the host key of {parts.hostname} is not known (add it to the known hosts file "
            f"given with --known-hosts): {exc.reason}"
        ) from exc
    except asyncssh.PermissionDenied as exc:
        raise AgentError(f"the SFTP server refused the credentials: {exc.reason}") from exc
    except asyncssh.SFTPError as exc:
        raise AgentError(f"cannot read {parts.path} over SFTP: {exc.reason}") from exc
    except (OSError, asyncssh.Error) as exc:
        raise AgentError(f"cannot reach sftp://{parts.hostname}:{port}: {exc}") from exc
    if not isinstance(data, bytes):
        raise AgentError("the SFTP server sent text where bytes were asked for")
    return data
