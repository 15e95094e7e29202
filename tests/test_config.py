"""Settings: defaults, the documented example file, one-line errors, overrides."""

from __future__ import annotations

import re
from pathlib import Path

import msgspec
import platformdirs
import pytest

from satellite.config import (
    DatabaseSettings,
    ListenAddress,
    Settings,
    load_settings,
    parse_listen,
    parse_settings,
)
from satellite.errors import ConfigError
from satellite.resources import config_dir

pytestmark = pytest.mark.unit

EXAMPLE = config_dir() / "satellite.toml"
ANY_V4 = "0.0.0.0"  # noqa: S104 - parsed, never bound

_SECTION_RE = re.compile(r"^\[([A-Za-z0-9_.]+)\]\s*$")
_COMMENTED_KEY_RE = re.compile(r"^#\s*([A-Za-z0-9_]+)\s*=")
_KEY_RE = re.compile(r"^([A-Za-z0-9_]+)\s*=")


def _setting_keys(struct: type[msgspec.Struct], prefix: str = "") -> list[tuple[str, str]]:
    """Every leaf key as (section, key); nested structs are TOML sections."""
    keys: list[tuple[str, str]] = []
    for field in msgspec.structs.fields(struct):
        kind = field.type
        if isinstance(kind, type) and issubclass(kind, msgspec.Struct):
            keys += _setting_keys(kind, f"{prefix}{field.encode_name}.")
        else:
            keys.append((prefix.rstrip("."), field.encode_name))
    return keys


def _sections(text: str) -> dict[str, list[str]]:
    """Lines of the file per section ("" is the top level)."""
    sections: dict[str, list[str]] = {"": []}
    current = ""
    for line in text.splitlines():
        match = _SECTION_RE.match(line.strip())
        if match:
            current = match[1]
            sections.setdefault(current, [])
        else:
            sections[current].append(line.strip())
    return sections


def _is_documented(lines: list[str], key: str) -> bool:
    """``key = `` or ``# key = `` in a paragraph that has a describing comment above it."""
    pattern = re.compile(rf"^(?:#\s*)?{re.escape(key)}\s*=")
    for index, line in enumerate(lines):
        if not pattern.match(line):
            continue
        above = index - 1
        while above >= 0 and lines[above]:
            text = lines[above]
            if text.startswith("#") and not _COMMENTED_KEY_RE.match(text):
                return True
            above -= 1
    return False


def undocumented(struct: type[msgspec.Struct], text: str) -> list[str]:
    sections = _sections(text)
    return [
        f"{section}.{key}" if section else key
        for section, key in _setting_keys(struct)
        if not _is_documented(sections.get(section, []), key)
    ]


def documented_keys(text: str) -> set[str]:
    """Every key the example file shows, set or commented out."""
    found: set[str] = set()
    for section, lines in _sections(text).items():
        for line in lines:
            match = _KEY_RE.match(line) or _COMMENTED_KEY_RE.match(line)
            if match:
                found.add(f"{section}.{match[1]}" if section else match[1])
    return found


def _write(tmp_path: Path, text: str, name: str = "satellite.toml") -> Path:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


# --- defaults and the example file ---------------------------------------------------------


def test_defaults_follow_the_design() -> None:
    settings = Settings()
    assert settings.role == "satellite"
    assert settings.listen_addresses == [ListenAddress(ANY_V4, 8443), ListenAddress("::", 8443)]
    assert settings.database.dsn is None  # embedded PostgreSQL
    assert settings.tls.certificate is None
    assert settings.tls.key is None
    timers = settings.timers
    assert timers.evaluation_days == 90
    assert timers.authorization_validity_days == 90
    assert timers.authorization_renewal_days == 30
    assert timers.usage_report_hours == 6
    assert timers.certificate_validity_days == 365
    assert 180 <= timers.registration_renewal_days <= 184  # about six months
    assert timers.token_expiry_days == 30
    assert timers.sync_interval_minutes == 24 * 60
    assert timers.sync_horizon_days == 90
    assert (settings.log.format, settings.log.level) == ("json", "info")
    assert settings.api.access_token_ttl_seconds == 3600


def test_empty_file_means_defaults(tmp_path: Path) -> None:
    assert load_settings(_write(tmp_path, "")) == Settings()


def test_example_config_parses_and_shows_the_defaults() -> None:
    assert parse_settings(EXAMPLE.read_bytes(), str(EXAMPLE)) == Settings()


def test_every_setting_is_documented_in_the_example_config() -> None:
    missing = undocumented(Settings, EXAMPLE.read_text("utf-8"))
    assert missing == [], f"document these keys in {EXAMPLE}: {missing}"


def test_example_config_shows_no_key_that_does_not_exist() -> None:
    real = {f"{s}.{k}" if s else k for s, k in _setting_keys(Settings)}
    stale = documented_keys(EXAMPLE.read_text("utf-8")) - real
    assert stale == set()


def test_commented_examples_in_the_example_config_are_valid(tmp_path: Path) -> None:
    text = EXAMPLE.read_text("utf-8")
    uncommented = re.sub(r"(?m)^#\s*([A-Za-z0-9_]+\s*=)", r"\1", text)
    settings = load_settings(_write(tmp_path, uncommented))
    assert settings.database.dsn is not None
    assert settings.state_dir is not None
    assert settings.tls.certificate is not None
    assert settings.tls.key is not None


class NewDatabase(DatabaseSettings):
    """A database section that gained a key."""

    replica_dsn: str | None = None


class NewSettings(Settings):
    """Settings that gained a top-level key and a nested one."""

    database: NewDatabase = msgspec.field(default_factory=NewDatabase)
    brand_new: int = 1


def test_documentation_check_catches_a_new_undocumented_key() -> None:
    """The check above fails when someone adds a setting and forgets the example file."""

    text = EXAMPLE.read_text("utf-8")
    assert sorted(undocumented(NewSettings, text)) == ["brand_new", "database.replica_dsn"]
    # A key with no describing comment above it does not count as documented either.
    bare = text + "\nbrand_new = 1\n"
    assert "brand_new" in undocumented(NewSettings, bare)
    described = text.replace("[tls]", "# A brand new setting.\n# brand_new = 1\n\n[tls]").replace(
        "[database]\n", '[database]\n# A read replica.\n# replica_dsn = "postgresql://r/s"\n\n'
    )
    assert undocumented(NewSettings, described) == []


# --- errors name the key, on one line ------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "key"),
    [
        ("foo = 1", "foo"),
        ("[database]\nfoo = 1", "database.foo"),
        ("[timers]\nevaluation_weeks = 3", "timers.evaluation_weeks"),
        ("[nosuchsection]\nx = 1", "nosuchsection"),
    ],
)
def test_unknown_key_is_refused_in_one_line_naming_it(tmp_path: Path, text: str, key: str) -> None:
    path = _write(tmp_path, text)
    with pytest.raises(ConfigError) as caught:
        load_settings(path)
    message = str(caught.value)
    assert "\n" not in message
    assert re.search(rf"(?<![\w.]){re.escape(key)}(?![\w.])", message), message
    assert "unknown" in message
    assert str(path) in message


@pytest.mark.parametrize(
    ("text", "key"),
    [
        ("role = 5", "role"),
        ('role = "primary"', "role"),
        ('listen = "0.0.0.0:8443"', "listen"),
        ("database = 3", "database"),
        ('[database]\npool_min_size = "x"', "database.pool_min_size"),
        ("[database]\npool_min_size = 5\npool_max_size = 2", "database.pool_min_size"),
        ("[timers]\nevaluation_days = 0", "timers.evaluation_days"),
        ('[timers]\ntoken_expiry_days = "30"', "timers.token_expiry_days"),
        ('[log]\nlevel = "verbose"', "log.level"),
        ("[api]\naccess_token_ttl_seconds = 1.5", "api.access_token_ttl_seconds"),
        ('[tls]\ncertificate = "/etc/satellite/server.crt"', "tls"),
        ('[tls]\nkey = "/etc/satellite/server.key"', "tls"),
        ('listen = ["8443"]', "listen"),
        (
            '[smtp]\nhost = "mail.example.com"\nfrom_address = "s@example.com"\n'
            'security = "none"\nusername = "satellite"',
            'smtp.security = "none" with smtp.username',
        ),
    ],
)
def test_wrong_value_is_refused_in_one_line_naming_the_key(
    tmp_path: Path, text: str, key: str
) -> None:
    path = _write(tmp_path, text)
    with pytest.raises(ConfigError) as caught:
        load_settings(path)
    message = str(caught.value)
    assert "\n" not in message
    assert key in message, message
    assert str(path) in message


def test_toml_syntax_error_is_one_line(tmp_path: Path) -> None:
    path = _write(tmp_path, "role = \n[database\n")
    with pytest.raises(ConfigError) as caught:
        load_settings(path)
    assert "\n" not in str(caught.value)
    assert str(path) in str(caught.value)


def test_missing_config_file_is_one_line(tmp_path: Path) -> None:
    path = tmp_path / "absent.toml"
    with pytest.raises(ConfigError) as caught:
        load_settings(path)
    assert "\n" not in str(caught.value)
    assert str(path) in str(caught.value)


# --- listen addresses and TLS --------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "host", "port"),
    [
        ("[::]:8443", "::", 8443),
        ("[::1]:1", "::1", 1),
        ("[fe80::1:2]:65535", "fe80::1:2", 65535),
        ("0.0.0.0:8443", ANY_V4, 8443),
        ("127.0.0.1:0", "127.0.0.1", 0),
        ("satellite.example.net:443", "satellite.example.net", 443),
    ],
)
def test_listen_addresses_parse(text: str, host: str, port: int) -> None:
    address = parse_listen(text)
    assert address == ListenAddress(host, port)
    assert str(address) == text


@pytest.mark.parametrize(
    "text",
    ["8443", "[::1", "[::1]", "host:99999", ":8443", "::1:8443", "0.0.0.0:", "[::1]:8443x", ""],
)
def test_bad_listen_addresses_are_refused(tmp_path: Path, text: str) -> None:
    with pytest.raises(ValueError, match="listen address"):
        parse_listen(text)
    with pytest.raises(ConfigError) as caught:
        load_settings(_write(tmp_path, f"listen = [{text!r}]".replace("'", '"')))
    assert "\n" not in str(caught.value)
    assert "listen" in str(caught.value)


def test_ipv4_and_ipv6_listen_from_the_config_file(tmp_path: Path) -> None:
    settings = load_settings(_write(tmp_path, 'listen = ["0.0.0.0:9443", "[::]:9443"]'))
    assert settings.listen_addresses == [ListenAddress(ANY_V4, 9443), ListenAddress("::", 9443)]


def test_empty_listen_list_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="listen"):
        load_settings(_write(tmp_path, "listen = []"))


def test_tls_certificate_and_key_together(tmp_path: Path) -> None:
    settings = load_settings(
        _write(tmp_path, '[tls]\ncertificate = "/etc/s/server.crt"\nkey = "/etc/s/server.key"')
    )
    assert settings.tls.certificate == "/etc/s/server.crt"
    assert settings.tls.key == "/etc/s/server.key"
    assert not settings.tls.managed


def test_https_unless_the_config_says_plain_http(tmp_path: Path) -> None:
    assert load_settings(_write(tmp_path, "")).tls.managed
    plain = load_settings(_write(tmp_path, "[tls]\nplain_http = true"))
    assert plain.tls.plain_http
    assert not plain.tls.managed
    both = '[tls]\nplain_http = true\ncertificate = "/etc/s/c.crt"\nkey = "/etc/s/c.key"'
    with pytest.raises(ConfigError, match="plain_http"):
        load_settings(_write(tmp_path, both))
    with pytest.raises(ConfigError, match="renew_before_days"):
        load_settings(_write(tmp_path, "[tls]\nrenew_before_days = 0"))


# --- where the settings come from ----------------------------------------------------------


def test_satellite_config_env_var_is_read(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = _write(tmp_path, 'role = "upstream"\n[database]\ndsn = "postgresql://db/sat"\n')
    monkeypatch.setenv("SATELLITE_CONFIG", str(path))
    settings = load_settings()
    assert settings.role == "upstream"
    assert settings.database.dsn == "postgresql://db/sat"
    # An explicit --config wins over the environment.
    other = _write(tmp_path, 'role = "satellite"', "other.toml")
    assert load_settings(other).role == "satellite"


def test_satellite_config_env_var_errors_name_the_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = _write(tmp_path, "[log]\ncolour = true\n")
    monkeypatch.setenv("SATELLITE_CONFIG", str(path))
    with pytest.raises(ConfigError) as caught:
        load_settings()
    assert str(path) in str(caught.value)
    assert "log.colour" in str(caught.value)


def test_no_config_at_all_means_defaults(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("SATELLITE_CONFIG", raising=False)
    assert load_settings() == Settings()


def test_command_line_overrides_replace_the_config(tmp_path: Path) -> None:
    path = _write(
        tmp_path,
        'state_dir = "/srv/from-config"\nlisten = ["0.0.0.0:8443"]\nrole = "upstream"\n',
    )
    settings = load_settings(
        path, state_dir=tmp_path / "cli-state", listen=("127.0.0.1:9000", "[::1]:9001")
    )
    assert settings.state_path == tmp_path / "cli-state"
    assert settings.listen_addresses == [
        ListenAddress("127.0.0.1", 9000),
        ListenAddress("::1", 9001),
    ]
    assert settings.role == "upstream"  # the rest of the file still applies
    unchanged = load_settings(path)
    assert unchanged.state_path == Path("/srv/from-config")
    assert unchanged.listen == ["0.0.0.0:8443"]


def test_bad_listen_override_is_one_line(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as caught:
        load_settings(_write(tmp_path, ""), listen=("127.0.0.1:8443", "8443"))
    assert "\n" not in str(caught.value)
    assert "--listen" in str(caught.value)
    assert "8443" in str(caught.value)


def test_default_state_dir_is_systemd_state_directory(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("STATE_DIRECTORY", "/var/lib/satellite:/var/lib/satellite-extra")
    assert Settings().state_path == Path("/var/lib/satellite")
    # The config file and --state-dir still win.
    assert Settings(state_dir="/srv/satellite").state_path == Path("/srv/satellite")


def test_default_state_dir_without_systemd_is_the_users(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("STATE_DIRECTORY", raising=False)
    path = Settings().state_path
    assert path == Path(platformdirs.user_state_dir("satellite"))
    assert path.is_absolute()


def test_state_dir_expands_home(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("HOME", str(tmp_path))
    assert Settings(state_dir="~/sat").state_path == tmp_path / "sat"


def test_smtp_without_tls_logs_in_only_on_loopback(tmp_path: Path) -> None:
    """The password crosses no network in clear: a relay on this host may take it."""
    text = (
        '[smtp]\nhost = "127.0.0.1"\nfrom_address = "s@example.com"\n'
        'security = "none"\nusername = "satellite"'
    )
    assert load_settings(_write(tmp_path, text)).smtp.username == "satellite"
