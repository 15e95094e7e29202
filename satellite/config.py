"""Typed settings loaded from one TOML file.

Every key is documented in ``config/satellite.toml``; a test keeps the two in step.
Unknown keys and wrong types are refused with one line that names the key.
"""

from __future__ import annotations

import ipaddress
import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Literal

import msgspec
import platformdirs

from satellite.errors import ConfigError
from satellite_protocol.untrusted import nul_field

Role = Literal["satellite", "upstream"]
PositiveInt = Annotated[int, msgspec.Meta(ge=1)]
MAX_WORKERS = 64
# "auto": a worker per core on a host of more than AUTO_WORKERS_ABOVE cores (at most
# AUTO_WORKERS_MAX), else one; on a small host a second process only shares the cores.
Workers = Literal["auto"] | Annotated[int, msgspec.Meta(ge=1, le=MAX_WORKERS)]
AUTO_WORKERS_ABOVE = 2
AUTO_WORKERS_MAX = 8

_HOST_RE = re.compile(r"^[A-Za-z0-9](?:[A-Za-z0-9.-]{0,251}[A-Za-z0-9])?$")
_LISTEN_RE = re.compile(r"^(?:\[(?P<v6>[0-9A-Fa-f:.]+)\]|(?P<host>[^\[\]:]*)):(?P<port>\d{1,5})$")


@dataclass(frozen=True)
class ListenAddress:
    host: str
    port: int

    def __str__(self) -> str:
        return f"[{self.host}]:{self.port}" if ":" in self.host else f"{self.host}:{self.port}"


def parse_listen(text: str) -> ListenAddress:
    """Parse ``host:port`` or ``[v6]:port``; raise ValueError with a readable reason."""
    match = _LISTEN_RE.match(text.strip())
    if match is None:
        raise ValueError(f"listen address {text!r} is not HOST:PORT or [IPV6]:PORT")
    port = int(match["port"])
    if not 0 <= port <= 65535:
        raise ValueError(f"listen address {text!r} has a port outside 0-65535")
    if match["v6"] is not None:
        try:
            ipaddress.IPv6Address(match["v6"])
        except ValueError:
            raise ValueError(
                f"listen address {text!r}: {match['v6']!r} is not an IPv6 address"
            ) from None
        return ListenAddress(match["v6"], port)
    host = match["host"]
    if not _HOST_RE.match(host):
        raise ValueError(f"listen address {text!r}: {host!r} is not an IPv4 address or host name")
    return ListenAddress(host, port)


class _Section(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    pass


class TlsSettings(_Section):
    certificate: str | None = None
    key: str | None = None
    plain_http: bool = False
    renew_before_days: Annotated[int, msgspec.Meta(ge=1, le=300)] = 30

    def __post_init__(self) -> None:
        if (self.certificate is None) != (self.key is None):
            raise ValueError("tls.certificate and tls.key must be set together")
        if self.plain_http and self.certificate is not None:
            raise ValueError("tls.plain_http = true and tls.certificate exclude each other")

    @property
    def managed(self) -> bool:
        """HTTPS with the certificate the server's CA issues (in the state directory)."""
        return not self.plain_http and self.certificate is None


class DatabaseSettings(_Section):
    dsn: str | None = None
    pool_min_size: PositiveInt = 1
    pool_max_size: PositiveInt = 10
    connect_timeout_seconds: Annotated[float, msgspec.Meta(gt=0)] = 10.0

    def __post_init__(self) -> None:
        if self.pool_min_size > self.pool_max_size:
            raise ValueError("database.pool_min_size is larger than database.pool_max_size")


class TimerSettings(_Section):
    # (evaluation_days and usage_report_hours are read by nobody: products keep their own
    # evaluation period and report schedule; the server's answers do not carry them. They
    # stay so that configs naming them still load.)
    evaluation_days: PositiveInt = 90
    authorization_validity_days: PositiveInt = 90
    authorization_renewal_days: PositiveInt = 30
    usage_report_hours: PositiveInt = 6
    certificate_validity_days: PositiveInt = 365
    registration_renewal_days: PositiveInt = 182
    token_expiry_days: PositiveInt = 30
    sync_interval_minutes: PositiveInt = 1440
    sync_horizon_days: PositiveInt = 90
    jobs_interval_minutes: PositiveInt = 60
    usage_history_days: PositiveInt = 400
    # Minutes between samples of the daily usage roll-up (its peaks are sampled peaks).
    usage_rollup_minutes: Annotated[int, msgspec.Meta(ge=1, le=1440)] = 10

    def adopt(self, new: TimerSettings) -> None:
        """Take ``new``'s values in place (a reload): the services hold this object and read
        it on every use, so each new registration, token or job run follows the new timers."""
        for name in self.__struct_fields__:
            setattr(self, name, getattr(new, name))


class LogSettings(_Section):
    format: Literal["json", "console"] = "json"
    level: Literal["debug", "info", "warning", "error"] = "info"


class ApiSettings(_Section):
    access_token_ttl_seconds: Annotated[int, msgspec.Meta(ge=60)] = 3600
    max_body_bytes: Annotated[int, msgspec.Meta(ge=1024)] = 1_048_576


class ConsoleSettings(_Section):
    # A session unused this long ends (the user signs in again) ...
    session_idle_minutes: Annotated[int, msgspec.Meta(ge=1, le=1440)] = 30
    # ... and one this old ends however busy it is.
    session_absolute_hours: Annotated[int, msgspec.Meta(ge=1, le=168)] = 12


class DeviceSettings(_Section):
    # (The device API's message takes 1000 at most whatever this says.)
    max_usage_tags: Annotated[int, msgspec.Meta(ge=1, le=1000)] = 100


class SyncSettings(_Section):
    timeout_seconds: Annotated[float, msgspec.Meta(gt=0)] = 600.0
    connect_timeout_seconds: Annotated[float, msgspec.Meta(gt=0)] = 30.0
    attempts: PositiveInt = 3
    retry_backoff_seconds: Annotated[float, msgspec.Meta(ge=0)] = 30.0
    jitter_seconds: Annotated[int, msgspec.Meta(ge=0)] = 300
    proxy_url: str | None = None
    proxy_username: str | None = None
    proxy_password_file: str | None = None
    ca_file: str | None = None
    max_bundle_bytes: Annotated[int, msgspec.Meta(ge=65_536)] = 4 * 1024**3
    horizon_warning_days: PositiveInt = 15
    spool_dir: str | None = None

    def __post_init__(self) -> None:
        if self.proxy_url is not None and not re.match(r"^https?://[^/\s]+/?$", self.proxy_url):
            raise ValueError("sync.proxy_url must be http://HOST:PORT or https://HOST:PORT")
        if self.proxy_password_file is not None and self.proxy_username is None:
            raise ValueError("sync.proxy_password_file needs sync.proxy_username")


class WebhookSettings(_Section):
    give_up_after_hours: Annotated[float, msgspec.Meta(gt=0, le=24 * 30)] = 24.0
    timeout_seconds: Annotated[float, msgspec.Meta(gt=0, le=300)] = 10.0
    connect_timeout_seconds: Annotated[float, msgspec.Meta(gt=0, le=300)] = 5.0
    backoff_first_seconds: Annotated[float, msgspec.Meta(ge=0, le=86_400)] = 10.0
    backoff_longest_seconds: Annotated[float, msgspec.Meta(ge=0, le=86_400)] = 3600.0
    batch: Annotated[int, msgspec.Meta(ge=1, le=1000)] = 20
    # Of one pass's batch, at most this many for one account (the oldest due of each
    # account first): one account's backlog cannot hold up another's alerts.
    batch_per_account: Annotated[int, msgspec.Meta(ge=1, le=1000)] = 5
    # Deliveries waiting per webhook; beyond it the worker drops the oldest (logged).
    max_pending_per_webhook: Annotated[int, msgspec.Meta(ge=1, le=1_000_000)] = 1000
    poll_interval_seconds: Annotated[float, msgspec.Meta(gt=0, le=3600)] = 5.0
    log_days: Annotated[int, msgspec.Meta(ge=1, le=3650)] = 30
    allow_http: bool = False
    ca_file: str | None = None
    # CIDR networks receivers may be at (checked on each address connected to); empty: any.
    allowed_networks: Annotated[list[str], msgspec.Meta(max_length=100)] = msgspec.field(
        default_factory=list
    )

    def __post_init__(self) -> None:
        if self.backoff_longest_seconds < self.backoff_first_seconds:
            raise ValueError(
                "webhooks.backoff_longest_seconds must be at least backoff_first_seconds"
            )
        for network in self.allowed_networks:
            try:
                ipaddress.ip_network(network)
            except ValueError as exc:
                raise ValueError(f"webhooks.allowed_networks: {exc}") from exc


class SmtpSettings(_Section):
    host: str | None = None
    port: Annotated[int, msgspec.Meta(ge=1, le=65535)] = 587
    security: Literal["starttls", "tls", "none"] = "starttls"
    username: str | None = None
    password_file: str | None = None
    from_address: Annotated[str, msgspec.Meta(max_length=254)] | None = None
    timeout_seconds: Annotated[float, msgspec.Meta(gt=0, le=300)] = 30.0
    ca_file: str | None = None

    def __post_init__(self) -> None:
        if self.host is not None and self.from_address is None:
            raise ValueError("smtp.host needs smtp.from_address")
        if self.password_file is not None and self.username is None:
            raise ValueError("smtp.password_file needs smtp.username")
        if (
            self.security == "none"
            and self.username is not None
            and self.host is not None
            and not _loopback(self.host)
        ):
            # (Without TLS the password would cross the network in clear.)
            raise ValueError(
                'smtp.security = "none" with smtp.username sends the password in clear: '
                'use "starttls" or "tls", or a mail server on loopback'
            )


class SystemdSettings(_Section):
    watchdog_not_ready_seconds: Annotated[float, msgspec.Meta(ge=0, le=86_400)] = 60.0


class MetricsSettings(_Section):
    # "own-listener": plain HTTP on ``listen`` (loopback unless a bearer token is required);
    # "main-listener": at /metrics of the main listeners, a bearer token required;
    # "off" (the default: no port opened, nothing of the accounts shown unasked).
    serve: Literal["own-listener", "main-listener", "off"] = "off"
    listen: str = "127.0.0.1:9464"
    bearer_token_file: str | None = None
    # Each of a scrape's reads of the database gets this long before PostgreSQL cancels it.
    database_timeout_seconds: Annotated[float, msgspec.Meta(gt=0, le=60)] = 5.0

    def __post_init__(self) -> None:
        try:
            address = parse_listen(self.listen)
        except ValueError as exc:
            raise ValueError(f"metrics.listen: {exc}") from exc
        if self.bearer_token_file is not None:
            return
        if self.serve == "main-listener":
            raise ValueError('metrics.serve = "main-listener" needs metrics.bearer_token_file')
        if self.serve == "own-listener" and not _loopback(address.host):
            raise ValueError(
                "metrics.listen on an address other than loopback needs metrics.bearer_token_file"
            )


def _loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


WindowSeconds = Annotated[int, msgspec.Meta(ge=1, le=86_400)]


class FailureLimit(_Section):
    """Failed authentications allowed per window, per credential name and per source address."""

    failures_per_name: PositiveInt = 10
    failures_per_address: PositiveInt = 30
    window_seconds: WindowSeconds = 60


class PasswordLimit(FailureLimit):
    # People type passwords: few tries, a long window (one guess a minute per name).
    failures_per_name: PositiveInt = 5
    failures_per_address: PositiveInt = 20
    window_seconds: WindowSeconds = 300


class BearerTokenLimit(_Section):
    """Failed access tokens allowed per window and source address (a token has no name)."""

    failures_per_address: PositiveInt = 60
    window_seconds: WindowSeconds = 60


class RegistrationLimit(_Section):
    """Device registrations allowed per window, per token and per virtual account."""

    per_token: PositiveInt = 600
    per_virtual_account: PositiveInt = 1200
    window_seconds: WindowSeconds = 60


class LimitSettings(_Section):
    # An IPv6 source counts as its network of this many bits (a host usually holds a /64).
    ipv6_prefix_length: Annotated[int, msgspec.Meta(ge=32, le=128)] = 64
    password: PasswordLimit = msgspec.field(default_factory=PasswordLimit)
    client_secret: FailureLimit = msgspec.field(default_factory=FailureLimit)
    bearer_token: BearerTokenLimit = msgspec.field(default_factory=BearerTokenLimit)
    token_proof: FailureLimit = msgspec.field(default_factory=FailureLimit)
    registrations: RegistrationLimit = msgspec.field(default_factory=RegistrationLimit)


class Settings(_Section):
    role: Role = "satellite"
    listen: list[str] = msgspec.field(default_factory=lambda: ["0.0.0.0:8443", "[::]:8443"])
    state_dir: str | None = None
    catalog: str | None = None
    # How this process is named in the job runs every node records (default hostname:pid).
    node_name: Annotated[str, msgspec.Meta(min_length=1, max_length=200)] | None = None
    # Processes that serve the listen addresses (``satellite serve --workers``).
    workers: Workers = "auto"
    # How long the parent waits for a worker told to stop (SIGTERM) before it kills it.
    workers_stop_seconds: Annotated[float, msgspec.Meta(gt=0, le=600)] = 20.0
    tls: TlsSettings = msgspec.field(default_factory=TlsSettings)
    database: DatabaseSettings = msgspec.field(default_factory=DatabaseSettings)
    timers: TimerSettings = msgspec.field(default_factory=TimerSettings)
    log: LogSettings = msgspec.field(default_factory=LogSettings)
    api: ApiSettings = msgspec.field(default_factory=ApiSettings)
    device: DeviceSettings = msgspec.field(default_factory=DeviceSettings)
    console: ConsoleSettings = msgspec.field(default_factory=ConsoleSettings)
    sync: SyncSettings = msgspec.field(default_factory=SyncSettings)
    systemd: SystemdSettings = msgspec.field(default_factory=SystemdSettings)
    webhooks: WebhookSettings = msgspec.field(default_factory=WebhookSettings)
    smtp: SmtpSettings = msgspec.field(default_factory=SmtpSettings)
    limits: LimitSettings = msgspec.field(default_factory=LimitSettings)
    metrics: MetricsSettings = msgspec.field(default_factory=MetricsSettings)

    def __post_init__(self) -> None:
        if not self.listen:
            raise ValueError("listen needs at least one address")
        for address in self.listen:
            try:
                parse_listen(address)
            except ValueError as exc:
                raise ValueError(f"listen: {exc}") from exc

    @property
    def listen_addresses(self) -> list[ListenAddress]:
        return [parse_listen(a) for a in self.listen]

    @property
    def state_path(self) -> Path:
        if self.state_dir:
            return Path(self.state_dir).expanduser()
        return default_state_dir()


def default_state_dir() -> Path:
    """``$STATE_DIRECTORY`` under systemd (first entry), else the user's state directory."""
    systemd_dirs = os.environ.get("STATE_DIRECTORY")
    if systemd_dirs:
        return Path(systemd_dirs.split(":")[0])
    return Path(platformdirs.user_state_dir("satellite"))


def worker_count(workers: Workers | str, cores: int | None = None, name: str = "workers") -> int:
    """How many processes serve: ``workers`` as the config or ``--workers`` (``name``) says
    it ("auto" or 1 to MAX_WORKERS); ``cores``: those this process may run on."""
    if workers == "auto":
        if cores is None:
            cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else 1
        return min(cores, AUTO_WORKERS_MAX) if cores > AUTO_WORKERS_ABOVE else 1
    # (ASCII digits only: int() would also take " 2" or another script's digits.)
    text = str(workers)
    count = int(text) if text.isascii() and text.isdigit() else 0
    if not 1 <= count <= MAX_WORKERS:
        raise ConfigError(f'{name}: {workers!r} is not "auto" or a number of 1 to {MAX_WORKERS}')
    return count


_PATH_RE = re.compile(r" - at `\$\.?([^`]*)`$")


def _one_line(error: msgspec.MsgspecError, source: str) -> str:
    """Turn msgspec's message into ``source: key: reason``."""
    text = str(error).replace("\n", " ")
    match = _PATH_RE.search(text)
    reason = _PATH_RE.sub("", text)
    key = match.group(1) if match else ""
    unknown = re.match(r"Object contains unknown field `([^`]+)`", reason)
    if unknown:
        key = f"{key}.{unknown.group(1)}" if key else unknown.group(1)
        reason = "unknown key"
    return f"{source}: {key}: {reason}" if key else f"{source}: {reason}"


# A config file is a few kilobytes; a larger one (or a device such as /dev/zero) is not one.
MAX_CONFIG_BYTES = 1 << 20


def parse_settings(data: bytes, source: str = "config") -> Settings:
    if len(data) > MAX_CONFIG_BYTES:
        raise ConfigError(f"{source}: larger than {MAX_CONFIG_BYTES} bytes: not a config file")
    try:
        settings = msgspec.toml.decode(data, type=Settings)
    except msgspec.MsgspecError as exc:
        raise ConfigError(_one_line(exc, source)) from exc
    except RecursionError as exc:  # (the TOML parser descends into arrays by recursion)
        raise ConfigError(f"{source}: arrays or tables nested too deep") from exc
    where = nul_field(settings)
    if where is not None:
        # (No path or name holds it: the operating system refuses it in a path.)
        raise ConfigError(f"{source}: {where}: must not contain U+0000 (NUL)")
    return settings


def load_settings(
    path: Path | None = None,
    *,
    state_dir: Path | None = None,
    listen: tuple[str, ...] = (),
) -> Settings:
    """Read ``path`` (or ``$SATELLITE_CONFIG``; none means defaults) and apply CLI overrides."""
    if path is None and os.environ.get("SATELLITE_CONFIG"):
        path = Path(os.environ["SATELLITE_CONFIG"])
    if path is None:
        settings = Settings()
    else:
        try:
            with path.open("rb") as handle:
                data = handle.read(MAX_CONFIG_BYTES + 1)
        except OSError as exc:
            raise ConfigError(f"{path}: cannot read: {exc.strerror}") from exc
        settings = parse_settings(data, str(path))
    try:
        if state_dir is not None:
            settings = msgspec.structs.replace(settings, state_dir=str(state_dir))
        if listen:
            for address in listen:
                parse_listen(address)
            settings = msgspec.structs.replace(settings, listen=list(listen))
    except ValueError as exc:
        raise ConfigError(f"--listen: {exc}") from exc
    return settings
