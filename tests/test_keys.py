"""The server's key material: made once, together, never silently replaced."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pytest

from satellite.crypto.keys import KeyPaths, ensure_server_keys, load_server_keys
from satellite.errors import StateDirError
from satellite_protocol.crypto.pki import check_issued_by


def test_keys_are_made_once_with_private_modes(tmp_path: Path) -> None:
    paths = KeyPaths(tmp_path)
    created = ensure_server_keys(paths)
    assert {p.name for p in created} == {
        "ca.key",
        "ca.crt",
        "signing.key",
        "signing.pub",
        "signing.crt",
        "token.key",
    }
    for private in (paths.ca_key, paths.signing_key, paths.token_key):
        assert private.stat().st_mode & 0o777 == 0o600, private
    assert paths.keys_dir.stat().st_mode & 0o777 == 0o700
    before = {p: p.read_bytes() for p in created}
    assert ensure_server_keys(paths) == []
    assert {p: p.read_bytes() for p in created} == before
    keys = load_server_keys(paths)
    assert keys.ca_cert.public_key() == keys.ca_key.public_key()


@pytest.mark.parametrize("lost", ["ca.key", "ca.crt", "signing.key", "token.key"])
def test_a_lost_key_is_refused_not_remade(tmp_path: Path, lost: str) -> None:
    """A new token key would orphan every stored token, a new CA every issued token."""
    paths = KeyPaths(tmp_path)
    ensure_server_keys(paths)
    (paths.keys_dir / lost).unlink()
    left = {p.name: p.read_bytes() for p in paths.keys_dir.iterdir()}
    with pytest.raises(StateDirError, match=lost):
        ensure_server_keys(paths)
    assert {p.name: p.read_bytes() for p in paths.keys_dir.iterdir()} == left


def test_the_signing_certificate_is_issued_by_the_ca(tmp_path: Path) -> None:
    paths = KeyPaths(tmp_path)
    ensure_server_keys(paths)
    keys = load_server_keys(paths)
    check_issued_by(keys.signing_cert, keys.ca_cert, dt.datetime.now(dt.UTC))
    assert keys.signing_cert.public_key() == keys.signing_key.public_key()
    # Derived from keys that exist, so it may be made again when lost.
    paths.signing_cert.unlink()
    assert ensure_server_keys(paths) == [paths.signing_cert]


def test_the_public_signing_key_is_made_again_from_the_private_one(tmp_path: Path) -> None:
    paths = KeyPaths(tmp_path)
    ensure_server_keys(paths)
    public = paths.signing_public.read_bytes()
    paths.signing_public.unlink()
    assert ensure_server_keys(paths) == [paths.signing_public]
    assert paths.signing_public.read_bytes() == public
