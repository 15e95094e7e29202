"""``serve``, ``migrate`` and ``init``."""

from __future__ import annotations

import asyncio
import functools
import sys
from collections.abc import Callable
from pathlib import Path

import click
import msgspec
import uvloop

from satellite import systemd, tls, workers, workers_plan
from satellite.cli.context import QUIET_LOGS, CliContext, pass_cli
from satellite.config import Settings
from satellite.crypto.keys import replace_file
from satellite.daemon import console_urls
from satellite.daemon import serve as run_daemon
from satellite.errors import SchemaMismatch, StateDirError
from satellite.logging import configure_logging
from satellite.services import health
from satellite.wiring import (
    InitResult,
    Runtime,
    apply_migrations,
    create_key_material,
    database_server,
    embedded_or_configured,
    initialize,
    is_initialized,
    key_paths,
    load_runtime,
    open_services,
)

state_dir_option = click.option(
    "--state-dir",
    "state_dir",
    type=click.Path(path_type=Path, file_okay=False),
    help="State directory (overrides the config).",
)
listen_option = click.option(
    "--listen",
    multiple=True,
    metavar="ADDR",
    help="Address to listen on, HOST:PORT or [IPV6]:PORT; repeat for several.",
)


def _report_init(settings: Settings, created: list[Path], result: InitResult) -> None:
    click.echo(f"state directory: {settings.state_path}")
    for path in created:
        click.echo(f"created: {path}")
    for migration in result.applied:
        click.echo(f"migration applied: {migration.version:03d}_{migration.name}")
    lines = ""
    if result.first_client is not None:
        lines += (
            "first system-admin API client:\n"
            f"client_id: {result.first_client.client_id}\n"
            f"client_secret: {result.first_client.client_secret}\n"
        )
    if result.first_user is not None:
        lines += (
            "first console user (a system admin; sign in to the console with it):\n"
            f"username: {result.first_user.record.login}\n"
            f"password: {result.first_user.password}\n"
        )
    if not lines:
        click.echo("a system admin and a user exist already; no new credentials")
    elif systemd.stdout_is_journal():
        # The journal keeps what it is given, readable by its readers: not for a secret.
        path = settings.state_path / "first-client.txt"
        # (Replacing one an earlier init left: its credentials are not this database's.)
        replace_file(path, lines.encode(), 0o600)
        click.echo(
            f"first system-admin credentials written to {path} (mode 0600): "
            "store them elsewhere and delete the file"
        )
    else:
        click.echo("the first credentials are shown only this once:")
        click.echo(lines, nl=False)
    paths = key_paths(settings)
    if paths.tls_cert in created:
        click.echo(
            f"HTTPS certificate {paths.tls_cert} issued by the server's CA: clients trust "
            f"{paths.ca_cert} (curl --cacert {paths.ca_cert}); products that registered "
            "with a token of this server trust it already"
        )


@click.command()
@state_dir_option
@listen_option
@click.option(
    "--tls-hostname",
    "tls_hostnames",
    multiple=True,
    metavar="NAME",
    help="Name (or IP address) the HTTPS certificate is for, besides the host's own; "
    "repeat for several.",
)
@pass_cli
def init(
    obj: CliContext, state_dir: Path | None, listen: tuple[str, ...], tls_hostnames: tuple[str, ...]
) -> None:
    """Create the state directory, server keys and schema, and the first admin client.

    Running it again never overwrites a key.
    """
    settings = obj.settings(state_dir, listen)
    configure_logging(QUIET_LOGS)
    tls.check_requested_names(settings, list(tls_hostnames))
    created = create_key_material(settings, list(tls_hostnames))
    with database_server(settings) as dsn:
        result = asyncio.run(initialize(load_runtime(settings, dsn), obj.operator.login))
    _report_init(settings, created, result)
    scheme = "http" if settings.tls.plain_http else "https"
    click.echo(
        f"serve with: satellite serve  (listening on {', '.join(settings.listen)}, {scheme})"
    )


@click.command()
@state_dir_option
@pass_cli
def migrate(obj: CliContext, state_dir: Path | None) -> None:
    """Apply the pending schema migrations."""
    settings = obj.settings(state_dir)
    configure_logging(QUIET_LOGS)
    with database_server(settings) as dsn:
        applied, version = asyncio.run(apply_migrations(settings, dsn))
    for migration in applied:
        click.echo(f"migration applied: {migration.version:03d}_{migration.name}")
    click.echo(f"schema is at version {version}")


async def _check_schema(runtime: Runtime) -> None:
    async with open_services(runtime) as services:
        await health.check_ready(services.db, runtime.migrations)


@click.command()
@state_dir_option
@listen_option
@click.option("--no-migrate", is_flag=True, help="Refuse to start rather than migrate.")
@click.option(
    "--plain-http",
    is_flag=True,
    help="Serve plain HTTP instead of HTTPS (credentials travel in clear); as tls.plain_http.",
)
@click.option(
    "--workers",
    "workers_option",
    metavar="N",
    help='Processes that serve (1 to 64, or "auto": one per core on a host of more than '
    "2 cores); as workers in the config.",
)
@click.option("--worker", "worker_index", type=int, hidden=True)  # (the parent starts these)
@pass_cli
def serve(
    obj: CliContext,
    state_dir: Path | None,
    listen: tuple[str, ...],
    no_migrate: bool,
    plain_http: bool,
    workers_option: str | None,
    worker_index: int | None,
) -> None:
    """Run the daemon (on the embedded PostgreSQL unless database.dsn is set).

    It serves HTTPS with a certificate from the server's CA unless the config names its
    own or says plain HTTP. An empty state directory is initialized first, as
    'satellite init' would.
    """

    def read_settings() -> Settings:
        settings = obj.settings(state_dir, listen)
        if plain_http:
            # The command line wins over the config, as --listen does.
            plain = msgspec.structs.replace(
                settings.tls, plain_http=True, certificate=None, key=None
            )
            settings = msgspec.structs.replace(settings, tls=plain)
        return settings

    settings = read_settings()
    configure_logging(settings.log, worker_index)
    if worker_index is not None:
        _serve_worker(read_settings, worker_index)
        return
    plan = workers_plan.plan(settings, workers_option)
    if no_migrate and not is_initialized(settings):
        raise StateDirError(
            f"{settings.state_path} is not initialized (started with --no-migrate): "
            "run 'satellite init' first"
        )
    created = create_key_material(settings, [])
    with embedded_or_configured(settings) as (dsn, embedded):
        runtime = load_runtime(settings, dsn)
        if no_migrate:
            try:
                asyncio.run(_check_schema(runtime))
            except SchemaMismatch as exc:
                raise SchemaMismatch(f"{exc.detail} (started with --no-migrate)") from exc
        else:
            result = asyncio.run(initialize(runtime, obj.operator.login))
            if created or result.first_client is not None or result.first_user is not None:
                _report_init(settings, created, result)
        if plan.count > 1:

            def command(index: int) -> list[str]:
                return _worker_command(obj, state_dir, listen, plain_http, index)

            scheme = "http" if settings.tls.plain_http else "https"
            urls = console_urls(scheme, [(a.host, a.port) for a in settings.listen_addresses])
            parent = workers.run_parent(
                runtime, embedded, plan, command, read_settings, functools.partial(_announce, urls)
            )
            uvloop.run(parent)
            return
        # uvloop: the same asyncio, its event loop in C; the device API answers about a
        # third more requests per second of CPU with it.
        uvloop.run(run_daemon(runtime, embedded, announce=_announce, read_settings=read_settings))


def _worker_command(
    obj: CliContext, state_dir: Path | None, listen: tuple[str, ...], plain_http: bool, index: int
) -> list[str]:
    """Worker ``index``'s command line: this one's config and overrides, as given (a SIGHUP
    reads the config again in each worker as it would in a daemon of one process)."""
    args = [sys.executable, "-m", "satellite"]
    if obj.config is not None:
        args += ["--config", str(obj.config)]
    directory = state_dir or obj.state_dir
    args += ["serve", *(["--state-dir", str(directory)] if directory else [])]
    for address in listen:
        args += ["--listen", address]
    return [*args, *(["--plain-http"] if plain_http else []), "--worker", str(index)]


def _serve_worker(read_settings: Callable[[], Settings], index: int) -> None:
    """Worker ``index`` of a daemon's parent process: no key material, migrations or
    embedded PostgreSQL of its own (the parent has them), only the serving."""
    part = workers.worker_part(index)
    settings = workers.started_settings()
    runtime = load_runtime(settings, workers.worker_dsn(settings))
    uvloop.run(run_daemon(runtime, read_settings=read_settings, worker=part))


def _announce(urls: list[str]) -> None:
    """Where to open the console, once the daemon listens."""
    click.echo(f"console: {'  '.join(urls)}")
