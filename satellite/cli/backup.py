"""``backup`` and ``restore``: the state directory's keys and the database in one file
sealed with a passphrase."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import click

from satellite.cli.context import QUIET_LOGS, CliContext, pass_cli
from satellite.errors import BackupError, StateDirError
from satellite.logging import configure_logging
from satellite.services import backup as backups
from satellite.wiring import database_server, ensure_state_dir, is_initialized, key_paths

PASSPHRASE_ENV = "SATELLITE_BACKUP_PASSPHRASE"  # noqa: S105 - the variable's name
MAX_PASSPHRASE_FILE_BYTES = 4096

passphrase_file_option = click.option(
    "--passphrase-file",
    type=click.Path(path_type=Path, dir_okay=False, exists=True),
    help=f"File holding the passphrase (its first line); else ${PASSPHRASE_ENV}, else a prompt.",
)


def _passphrase(path: Path | None, confirm: bool) -> str:
    """From the file, else the environment, else the terminal: never the command line,
    which every user of the host can read."""
    if path is not None:
        with path.open("rb") as handle:
            raw = handle.read(MAX_PASSPHRASE_FILE_BYTES + 1)
        if len(raw) > MAX_PASSPHRASE_FILE_BYTES:
            raise BackupError(f"{path} is too long for a passphrase file")
        try:
            lines = raw.decode("utf-8").splitlines()
        except UnicodeDecodeError as exc:
            raise BackupError(f"{path} is not UTF-8 text") from exc
        return lines[0] if lines else ""
    from_env = os.environ.get(PASSPHRASE_ENV)
    if from_env is not None:
        return from_env
    if not sys.stdin.isatty():
        raise BackupError(
            f"no passphrase: give --passphrase-file or ${PASSPHRASE_ENV}, or run on a terminal"
        )
    answer: str = click.prompt(
        "backup passphrase", hide_input=True, confirmation_prompt=confirm, err=True
    )
    return answer


@click.command()
@click.option(
    "--out",
    "out",
    required=True,
    type=click.Path(path_type=Path, dir_okay=False),
    help="File to write (mode 0600; an existing one is replaced once the new one is whole).",
)
@passphrase_file_option
@pass_cli
def backup(obj: CliContext, out: Path, passphrase_file: Path | None) -> None:
    """Write the server keys, CA and TLS material and a dump of the database to one file,
    encrypted with a passphrase. The daemon may keep running."""
    settings = obj.settings()
    configure_logging(QUIET_LOGS)
    if not is_initialized(settings):
        raise StateDirError(f"{settings.state_path} holds no server keys: nothing to back up")
    backups.check_output(out)
    passphrase = _passphrase(passphrase_file, confirm=True)
    backups.check_passphrase(passphrase)
    with database_server(settings) as dsn:
        manifest = backups.write_backup(key_paths(settings), dsn, out, passphrase)
    click.echo(f"backup written: {out} ({len(manifest.files)} key files and the database)")


@click.command()
@click.argument("source", type=click.Path(path_type=Path, dir_okay=False, exists=True))
@passphrase_file_option
@pass_cli
def restore(obj: CliContext, source: Path, passphrase_file: Path | None) -> None:
    """Restore a backup onto an empty state directory (and, with database.dsn, an empty
    database). The whole file is checked before anything is written."""
    settings = obj.settings()
    configure_logging(QUIET_LOGS)
    root = settings.state_path
    backups.check_empty_state_dir(root)
    passphrase = _passphrase(passphrase_file, confirm=False)
    manifest = backups.verify_backup(source, passphrase)
    if settings.database.dsn:
        backups.check_empty_database(settings.database.dsn)
    existed = root.exists()
    try:
        ensure_state_dir(settings)
        backups.restore_keys(manifest, root)
        with database_server(settings) as dsn:
            backups.restore_database(source, passphrase, dsn)
    except BaseException:
        backups.remove_restored(root, existed)
        raise
    click.echo(
        f"restored: {len(manifest.files)} key files into {root} and the database "
        f"(backup of satellite {manifest.satellite_version}, {manifest.created}); "
        "start it with: satellite serve"
    )
