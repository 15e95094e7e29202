"""The agent's local state: one JSON file and one private key, written atomically.

A write goes to a temporary file in the same directory, is flushed to disk, then renamed
over the old file: a crash leaves either the old state or the new one, never a mix.

Every change is a load-modify-save under an exclusive lock on ``state.lock`` in the same
directory (``StateDir.update`` / ``StateDir.locked``), so that two processes of one product
(the runner and a command line) never lose each other's changes. Nothing waits on the
network while holding it: what an answer changes is applied to the state as it is when
the answer arrives. Every write holds the lock, so a temporary file found while holding it
is a crashed writer's: it is removed (it may hold a private key).

The state keeps the latest time the product has seen (``TimeSeen``): its own clock at every
write and the times the server signed. Expiry is judged against the later of that and the
clock, so setting the clock back brings nothing expired back.
"""

from __future__ import annotations

import datetime as dt
import fcntl
import os
import tempfile
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated, Any, Literal, TypeVar
from urllib.parse import urlsplit, urlunsplit

import msgspec
import structlog

from satellite_protocol.crypto.keys import (
    PrivateKey,
    load_private_key,
    new_private_key,
    private_key_pem,
)

T = TypeVar("T")
log = structlog.get_logger("satellite.agent")

# How far the clock may be behind the latest time seen before 'status' calls it a rollback.
# Five minutes (Kerberos' default for clocks that agree) is far above what an NTP-kept clock
# is ever off, and above a free-running one's drift against the server's between two
# answers (20 ppm over the 90-day authorization: under 3 minutes); an expiry that matters
# is days away, far beyond it. Expiry is judged against the latest time seen either way.
DEFAULT_CLOCK_TOLERANCE = 300
MAX_CLOCK_TOLERANCE = 86_400
# A licensing check records the time it judged by at most this often (a state write each).
CHECKPOINT_EVERY = dt.timedelta(minutes=1)

RegistrationState = Literal[
    "unregistered", "registered", "deregistered", "removed", "registration_expired", "replaced"
]


class Identity(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    pid: str
    serial_number: str
    uuid: str
    product_type: str
    product_version: str


class Transport(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    """Where the product talks to: the server URL, and optionally an HTTP(S) proxy."""

    url: str = "http://127.0.0.1:8443"
    # PEM bundle to verify TLS peers with: an https:// server (e.g. its self-signed
    # certificate) and an HTTPS proxy; None: the system's trust store.
    ca_file: str | None = None
    proxy_url: str | None = None  # http://host:port or https://host:port
    proxy_user: str | None = None
    proxy_password: str | None = None  # a secret: never shown (see ``shown``)

    def shown(self) -> dict[str, str | None]:
        """The settings as 'status' shows them: a password only as "set"."""
        return {
            "url": shown_url(self.url),
            "ca_file": self.ca_file,
            "proxy_url": shown_url(self.proxy_url) if self.proxy_url else None,
            "proxy_user": self.proxy_user,
            "proxy_password": "set" if self.proxy_password else None,
        }


def shown_url(url: str) -> str:
    """``url`` fit to print or log: a password in it replaced by ``***``."""
    try:
        parts = urlsplit(url)
        password = parts.password
    except ValueError:
        return "(not a valid URL)"
    if password is None:
        return url
    host = parts.netloc.rpartition("@")[2]
    return urlunsplit(parts._replace(netloc=f"{parts.username or ''}:***@{host}"))


class ReservedEntitlement(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    """One entitlement of the installed authorization code (specific license reservation)."""

    tag: str
    count: int
    license_type: str
    start_date: dt.date | None = None
    end_date: dt.date | None = None
    display_name: str = ""
    subscription_id: str = ""

    def counts_on(self, day: dt.date) -> bool:
        """TERM licenses count from their start date to their end date, inclusive."""
        if self.start_date is not None and day < self.start_date:
            return False
        return self.end_date is None or day <= self.end_date


class ReservationState(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    """Specific license reservation: enabled, an open request, an installed code."""

    enabled: bool = False
    # PEM public key (or certificate) that authorization codes must be signed with.
    trusted_key: str | None = None
    request_nonce: str | None = None  # the open request (None: no request open)
    requested_at: dt.datetime | None = None
    authorization_code: str | None = None  # installed, verified when it was installed
    piid: str | None = None
    timestamp: int | None = None
    installed_at: dt.datetime | None = None
    entitlements: list[ReservedEntitlement] = msgspec.field(default_factory=list)
    confirmation_code: str | None = None  # for the installed code
    return_code: str | None = None  # the last one made


class ExportKey(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    """An export authorization key the server granted: it enables ``feature`` here."""

    feature: str
    tag: str
    display_name: str = ""
    key_id: str
    key: dict[str, str]  # the server-signed key (flattened JWS), verified when stored
    granted_at: dt.datetime
    # The server took the license back (the product was deregistered, or registered again
    # without export-controlled features): the feature stays enabled, under the alarm.
    released: bool = False


class PendingExport(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    """A request or return that failed and is retried with backoff until it succeeds or
    'license smart export cancel' stops it."""

    action: Literal["request", "return"]
    feature: str
    since: dt.datetime
    attempts: int = 0
    next_attempt: dt.datetime
    last_error: str | None = None


class Alarm(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    name: str
    raised_at: dt.datetime
    features: list[str]
    message: str


class ExportState(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    keys: list[ExportKey] = msgspec.field(default_factory=list)
    pending: list[PendingExport] = msgspec.field(default_factory=list)
    alarms: list[Alarm] = msgspec.field(default_factory=list)


class TimeSeen(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    """The latest time this product has seen (monotonic): its own clock at every state
    write, and the times the server signed in its answers and authorization codes."""

    latest: dt.datetime | None = None
    tolerance_seconds: Annotated[int, msgspec.Meta(ge=0, le=MAX_CLOCK_TOLERANCE)] = (
        DEFAULT_CLOCK_TOLERANCE
    )

    def see(self, moment: dt.datetime) -> None:
        """Raise the mark to ``moment`` if it is later; never lower it."""
        if self.latest is None or moment > self.latest:
            self.latest = moment

    def vouched(self, moment: dt.datetime) -> None:
        """``moment``: the time the server signed in its answer to a request of this
        product (bound to that request's nonce, so not an old answer replayed): what time
        it was then. A mark beyond the tolerance after it was left by this host's clock
        running ahead (set years forward once, then put right); it is brought back to the
        server's time, else nothing would be valid here until the real time caught up with
        the wrong one. A clock set back gains nothing by this: the server's time is no
        earlier than the real one."""
        if self.latest is not None and self.latest - moment > dt.timedelta(
            seconds=self.tolerance_seconds
        ):
            self.latest = moment
        else:
            self.see(moment)

    def judged_now(self, clock: dt.datetime) -> dt.datetime:
        """The time expiry is judged by: the clock, unless the mark is later."""
        return clock if self.latest is None else max(clock, self.latest)

    def behind(self, clock: dt.datetime) -> dt.timedelta:
        """How far the clock is behind the mark (zero when it is not)."""
        if self.latest is None:
            return dt.timedelta(0)
        return max(dt.timedelta(0), self.latest - clock)

    def rolled_back(self, clock: dt.datetime) -> bool:
        """The clock is behind the mark beyond the tolerance: it was set back."""
        return self.behind(clock) > dt.timedelta(seconds=self.tolerance_seconds)


class AgentState(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    identity: Identity
    transport: Transport = msgspec.field(default_factory=Transport)
    share_host_identity: bool = True  # "do not share my hostname or IP address" when False
    first_start: dt.datetime  # the evaluation period counts from here
    evaluation_days: int = 90
    registration: RegistrationState = "unregistered"
    product_instance_id: str | None = None
    virtual_account: str | None = None
    export_controlled: bool = False
    ca_certificate: str | None = None  # pinned at registration (the token's fingerprint)
    signing_certificate: str | None = None
    certificate: str | None = None
    certificate_expires_at: dt.datetime | None = None
    renew_registration_after: dt.datetime | None = None
    authorization: dict[str, Any] | None = None  # the last signed authorization's content
    usage: dict[str, int] = msgspec.field(default_factory=dict)
    last_error: str | None = None
    reservation: ReservationState = msgspec.field(default_factory=ReservationState)
    export: ExportState = msgspec.field(default_factory=ExportState)
    time_seen: TimeSeen = msgspec.field(default_factory=TimeSeen)


def _now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


class StateUnreadable(OSError):
    """The state file is there but is not an agent state (damaged, or not the agent's)."""


class StateDir:
    """``state.json`` and ``key.pem`` (mode 0600) in a directory of the product's own.

    ``clock``: the product's clock, recorded in the state's time seen at every write."""

    # The files written through a temporary one (``.<name>.<random>`` beside them).
    WRITTEN = ("state.json", "key.pem", "reservation-key.pem")

    def __init__(self, path: Path, clock: Callable[[], dt.datetime] = _now) -> None:
        self.path = path
        self._clock = clock
        self._swept = False  # this object removed crashed writers' temporary files
        # The parsed key and the file identity it was read from: parsing PEM on every
        # request costs more than signing it; a changed file is read again.
        self._key: tuple[tuple[int, int, int], PrivateKey] | None = None
        self._lock_depth = 0  # held by this object (re-entrant within it)

    @property
    def state_file(self) -> Path:
        return self.path / "state.json"

    @property
    def key_file(self) -> Path:
        return self.path / "key.pem"

    @property
    def reservation_key_file(self) -> Path:
        """The key that signs reservation confirmation and return codes (kept for good:
        a return code for any code ever issued to this product must verify)."""
        return self.path / "reservation-key.pem"

    def write_private(self, target: Path, data: bytes) -> None:
        """Write ``data`` to ``target`` in this directory atomically, mode 0600."""
        if target.parent != self.path or target.name not in self.WRITTEN:
            raise ValueError(f"{target} is not one of the agent's files in {self.path}")
        self._write_atomically(target, data)

    @property
    def lock_file(self) -> Path:
        return self.path / "state.lock"

    def exists(self) -> bool:
        return self.state_file.exists()

    @contextmanager
    def locked(self) -> Iterator[None]:
        """Hold the state's lock (flock on ``state.lock``): no other process or object
        changes the state meanwhile. Re-entrant for this object; never hold it across an
        await."""
        if self._lock_depth:
            self._lock_depth += 1
            try:
                yield
            finally:
                self._lock_depth -= 1
            return
        self.path.mkdir(parents=True, exist_ok=True, mode=0o700)
        fd = os.open(self.lock_file, os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            self._lock_depth = 1
            try:
                if not self._swept:
                    self._remove_leftovers()
                yield
            finally:
                self._lock_depth = 0
        finally:
            os.close(fd)  # closing releases the lock

    def _remove_leftovers(self) -> None:
        """Temporary files of writers that crashed (only under the lock: every writer
        holds it, so none of them is being written now)."""
        self._swept = True
        prefixes = tuple(f".{name}." for name in self.WRITTEN)
        for entry in self.path.iterdir():
            if entry.name.startswith(prefixes) and entry.is_file():
                entry.unlink(missing_ok=True)

    def remove_leftovers(self) -> None:
        """What a start does: remove crashed writers' temporary files, if there are any."""
        if not self.path.is_dir():
            return
        try:
            with self.locked():
                pass  # taking the lock the first time sweeps
        except PermissionError:
            return  # a state directory this user may only read ('status'): nothing to sweep

    def checkpoint(self) -> None:
        """Record the clock in the time seen, if it is a while past it (a licensing check
        judged by it: a clock set back later must not undo that)."""
        with self.locked():
            state = self.load()
            latest = state.time_seen.latest
            if latest is None or self._clock() >= latest + CHECKPOINT_EVERY:
                self.save(state)

    def update(self, change: Callable[[AgentState], T]) -> T:
        """Load the state, change it, save it, all under the lock; what ``change`` returned."""
        with self.locked():
            state = self.load()
            result = change(state)
            self.save(state)
            return result

    def load(self) -> AgentState:
        try:
            return msgspec.json.decode(self.state_file.read_bytes(), type=AgentState)
        except FileNotFoundError as exc:
            raise FileNotFoundError(
                f"{self.path} holds no agent state: run 'satellite-agent init' first"
            ) from exc
        except msgspec.DecodeError as exc:  # (ValidationError included)
            raise StateUnreadable(
                f"{self.state_file} is not an agent state ({exc}): restore it from a backup, "
                "or move it away and run 'satellite-agent init' (the product registers again)"
            ) from exc

    def save(self, state: AgentState) -> None:
        """Write the state, the clock recorded in its time seen (in the same write)."""
        now = self._clock()
        if state.time_seen.rolled_back(now):
            log.warning(
                "agent.clock_rollback",
                clock=now.isoformat(),
                latest_seen=state.time_seen.latest.isoformat() if state.time_seen.latest else None,
            )
        state.time_seen.see(now)
        self._write_atomically(self.state_file, msgspec.json.format(msgspec.json.encode(state)))

    def create(self, identity: Identity) -> AgentState:
        self.path.mkdir(parents=True, exist_ok=True, mode=0o700)
        state = AgentState(identity=identity, first_start=self._clock())
        self.save(state)
        return state

    def load_key(self) -> PrivateKey:
        with self.key_file.open("rb") as handle:
            info = os.fstat(handle.fileno())
            identity = (info.st_ino, info.st_mtime_ns, info.st_size)
            if self._key is not None and self._key[0] == identity:
                return self._key[1]
            key = load_private_key(handle.read())
        if key is None:
            raise ValueError(f"{self.key_file} does not hold an EC private key")
        self._key = (identity, key)
        return key

    def new_key(self) -> PrivateKey:
        """A new key for a (re)registration, stored only once the server accepted it."""
        return new_private_key()

    def save_key(self, key: PrivateKey) -> None:
        self._write_atomically(self.key_file, private_key_pem(key))

    def _write_atomically(self, target: Path, data: bytes) -> None:
        with self.locked():  # (re-entrant: most callers hold it already)
            self._write_locked(target, data)

    def _write_locked(self, target: Path, data: bytes) -> None:
        # mkstemp creates the file 0600 whatever the umask: a crash never leaves a key or
        # the state readable by others, even before the fchmod.
        fd, temp = tempfile.mkstemp(dir=self.path, prefix=f".{target.name}.")
        try:
            os.fchmod(fd, 0o600)
            with os.fdopen(fd, "wb") as handle:
                handle.write(data)
                handle.flush()
                os.fsync(handle.fileno())
            os.replace(temp, target)
            directory = os.open(self.path, os.O_RDONLY)
            try:
                os.fsync(directory)
            finally:
                os.close(directory)
        except BaseException:
            Path(temp).unlink(missing_ok=True)
            raise


def new_uuid() -> str:
    return str(uuid.uuid4())
