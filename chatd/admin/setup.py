"""``chatd init`` (a commented config for a mode), ``chatd migrate`` (schema upgrades as a step of their own) and
``chatd doctor`` (what is wrong with this installation, in plain words)."""

from __future__ import annotations

import asyncio
import os
import secrets
import shutil
import socket
import stat
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING
from urllib.parse import urlsplit

import click

from chatd.admin.options import DEFAULT_CONFIG, build_config, config_option, resolve_config_path, store_is_placed
from chatd.config import Config
from chatd.failures import path_problem

if TYPE_CHECKING:
    from chatd.store.base import Store

# --- init -------------------------------------------------------------------------------------------------------

_COMMON_TAIL = """
[web]
# The address people open in their browsers: the page's WebSocket is refused from any other origin.
allowed_origins = ["{origin}"]

[uploads]
dir = "{data}/uploads"

# Every other setting keeps its default; `chatd config check -c {config}` prints them all, and chatd.toml at the
# top of chatd's repository explains each one.
"""

SINGLE = """# chatd on one machine: SQLite for history, the in-process broker. Written by `chatd init --mode single`.
#
#   chatd users add admin --admin --password-stdin -c {config}    # makes the database too
#   chatd serve -c {config}
#
# Put nginx or Caddy in front for TLS (docs/operations.md) and keep chatd on loopback.

[server]
host = "127.0.0.1"
port = 8000
# The reverse proxy's address, so per-address limits see clients rather than the proxy.
trusted_proxies = ["127.0.0.1"]

[auth]
mode = "token"
# Signs WebSocket tickets and attachment links (and the admin CLI's requests to the server). Keep it secret;
# changing it only makes open tickets and links expire early.
secret = "{secret}"

[store]
backend = "sqlite"
path = "{data}/chatd.db"

[broker]
backend = "memory"
"""

SCALED = """# One node of a chatd deployment over {broker_name} and PostgreSQL (docs/scale-out.md). Written by
# `chatd init --mode {mode}`. Give every node this file, each with its own server.node_id (or
# CHATD_SERVER_NODE_ID), and put nginx in front (config/nginx.conf).
#
#   pip install 'chatd[{mode},postgres]'
#   chatd migrate -c {config}        # once, before the first node starts (or after an upgrade)
#   chatd serve -c {config}

[server]
# nginx on another machine proxies to this address: keep it on a private network.
host = "0.0.0.0"
port = 8000
# Stable across restarts and unique in the deployment: it names this node's queue in the broker.
node_id = "chat-1"
trusted_proxies = ["10.0.0.0/8"]

[auth]
mode = "token"
# The same value on every node: tickets and attachment links issued by one node are checked by another.
secret = "{secret}"

[store]
backend = "postgres"
# Put the password in CHATD_STORE_DSN (the environment) rather than here, or use a .pgpass file.
dsn = "postgresql://chatd@127.0.0.1:5432/chatd"

[broker]
backend = "{mode}"
url = "{broker_url}"
# Every key or queue chatd makes starts with this: one namespace per deployment on a shared {broker_name}.
namespace = "chatd"
"""

MODES = {
    "single": (SINGLE, {}),
    "redis": (SCALED, {"broker_name": "Redis", "broker_url": "redis://127.0.0.1:6379/0"}),
    "rabbitmq": (SCALED, {"broker_name": "RabbitMQ", "broker_url": "amqp://chatd:CHANGE-ME@127.0.0.1:5672/"}),
}


def render_config(mode: str, directory: Path, config: Path, origin: str, data: Path | None = None) -> str:
    template, extra = MODES[mode]
    values = {
        "mode": mode,
        "data": str(data or directory),
        "config": str(config),
        "secret": secrets.token_urlsafe(32),
        "origin": origin,
        **extra,
    }
    return template.format(**values) + _COMMON_TAIL.format(**values)


@click.command()
@click.argument("directory", type=click.Path(file_okay=False), default=".")
@click.option("--mode", type=click.Choice(sorted(MODES)), default="single", show_default=True)
@click.option("--origin", default="https://chat.example.com", show_default=True, help="Where the page is served.")
@click.option(
    "--data",
    type=click.Path(file_okay=False),
    help="Where the SQLite database and the uploads go (store.path, uploads.dir). Default: DIRECTORY.",
)
@click.option("--force", is_flag=True, help="Overwrite an existing chatd.toml.")
def init(directory: str, mode: str, origin: str, data: str | None, force: bool) -> None:
    """Write DIRECTORY/chatd.toml for a mode, commented, with a fresh auth.secret (readable by its owner only).

    single: one process, SQLite, no broker. redis / rabbitmq: one node of a scale-out deployment with PostgreSQL.

    \b
    Example:
        chatd init /etc/chatd --mode single --data /var/lib/chatd --origin https://chat.example.org
        chatd init . --mode redis && chatd config check -c chatd.toml
    """
    target_dir = Path(directory).resolve()
    target_dir.mkdir(parents=True, exist_ok=True)
    config = target_dir / DEFAULT_CONFIG
    if config.exists() and not force:
        raise click.ClickException(f"{config} exists; add --force to replace it")
    text = render_config(mode, target_dir, config, origin, Path(data).resolve() if data else None)
    fd = os.open(config, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)  # it holds the secret
    with os.fdopen(fd, "w") as f:
        f.write(text)
    os.chmod(config, 0o600)
    build_config(str(config))  # what init writes must load; a failure here is a bug in the template
    click.echo(str(config))
    click.echo(f"wrote a {mode} config; check it with: chatd config check -c {config}", err=True)


# --- migrate ----------------------------------------------------------------------------------------------------


def store_backend(cfg: Config) -> type[Store]:
    """The configured store's class (not opened): what it declares, and what it reads without opening."""
    from chatd.registry import BackendError, load

    try:
        backend: type[Store] = load("stores", cfg.store.backend)
    except BackendError as e:
        raise click.ClickException(str(e)) from None
    return backend


async def schema_state(cfg: Config) -> tuple[list[str], list[str]]:
    """(migrations the database has, migrations this chatd knows), without changing anything."""
    return await store_backend(cfg).schema_state(cfg)


def declares(kind: str, name: str, what: str) -> bool | None:
    """What the backend ``name`` of ``kind`` ("brokers", "stores") declares as ``what`` (``Broker.cluster_wide``,
    ``Store.networked``); None when it cannot be imported, which ``check_settings`` reports."""
    from chatd.registry import BackendError, load

    try:
        return bool(getattr(load(kind, name), what))
    except BackendError:
        return None


def store_file(cfg: Config) -> Path | None:
    """The store's file on this machine (SQLite); None for a database server or a store that cannot be imported."""
    return Path(cfg.store.path) if declares("stores", cfg.store.backend, "networked") is False else None


@click.command()
@config_option
@click.option("--check", is_flag=True, help="Only say what is pending; exit 1 if anything is.")
def migrate(config_path: str | None, check: bool) -> None:
    """Apply pending schema migrations to the store, as a step of its own (serve applies them too when it
    starts; this makes an upgrade's schema change visible and lets it happen before the nodes restart). A
    database migrated by a newer chatd is refused, by this and by serve.

    \b
    Example:
        chatd migrate --check -c /etc/chatd/chatd.toml
        systemctl stop chatd && chatd backup pre-upgrade.db && chatd migrate && systemctl start chatd
    """
    from chatd.store import make_store
    from chatd.store.base import StoreRefused
    from chatd.store.migrations import check_not_newer

    cfg = build_config(config_path)
    try:
        done, known = asyncio.run(schema_state(cfg))
        check_not_newer(done, known)
    except StoreRefused as e:
        raise click.ClickException(str(e)) from None
    except OSError as e:
        raise click.ClickException(path_problem(e, cfg.store.path, "the SQLite store")) from None
    pending = [name for name in known if name not in done]
    click.echo(f"schema: {len(done)} applied, {len(pending)} pending" + (f": {', '.join(pending)}" if pending else ""))
    if check:
        raise SystemExit(1 if pending else 0)
    if not pending:
        return

    async def run() -> None:
        # As a server: an SQLite database in use by a server is refused rather than changed under it.
        store = make_store(cfg, server=True)
        await store.open()
        await store.close()

    try:
        asyncio.run(run())
    except StoreRefused as e:
        raise click.ClickException(str(e)) from None
    click.echo(f"applied {', '.join(pending)}")


# --- doctor -----------------------------------------------------------------------------------------------------

Report = Callable[[bool, str, str], None]


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def check_files(cfg: Config, config_path: str | None, report: Report) -> None:
    if config_path and Path(config_path).exists() and cfg.auth.secret and _mode(Path(config_path)) & 0o077:
        report(
            False,
            "config",
            f"{config_path} holds auth.secret and others can read it: chmod 600 {config_path}",
        )
    db = store_file(cfg)
    if db is not None:
        if db.exists() and _mode(db) & 0o077:
            report(False, "files", f"{db} (every message, password hashes) is readable by others: chmod 600 {db}")
        parent = db.parent if db.parent != Path("") else Path(".")
        if parent.exists() and not os.access(parent, os.W_OK):
            report(False, "files", f"cannot write to {parent}: SQLite needs to create -wal and -shm files there")
    uploads = Path(cfg.uploads.dir)
    if uploads.exists() and _mode(uploads) & 0o077:
        report(False, "files", f"{uploads} is open to other users: chmod 700 {uploads}")


def check_disk(cfg: Config, report: Report) -> None:
    places = [("uploads", Path(cfg.uploads.dir), cfg.uploads.min_free_bytes)]
    if (db := store_file(cfg)) is not None:
        places.insert(0, ("store", db.resolve().parent, cfg.store.min_free_bytes))
    for name, path, watermark in places:
        probe = path
        while not probe.exists() and probe != probe.parent:
            probe = probe.parent
        free = shutil.disk_usage(probe).free
        if free < watermark * 2:
            report(
                False,
                "disk",
                f"{free // 2**20} MiB free for the {name} at {probe}; at {watermark // 2**20} MiB chatd stops "
                f"taking {'messages' if name == 'store' else 'uploads'}: free space or move it to a bigger disk",
            )
        else:
            report(True, "disk", f"{free // 2**20} MiB free for the {name} ({probe})")


async def check_store(cfg: Config, report: Report) -> None:
    from chatd.store.base import StoreRefused
    from chatd.store.migrations import check_not_newer

    try:
        done, known = await asyncio.wait_for(schema_state(cfg), 15)
    except StoreRefused as e:
        report(False, "store", str(e))
        return
    except Exception as e:  # noqa: BLE001 - any failure to reach the store is the finding
        report(False, "store", f"cannot read the {cfg.store.backend} store: {e}. Check [store] and that it runs")
        return
    if (db := store_file(cfg)) is not None and not done:
        db = db.resolve()
        if store_is_placed(cfg) and not db.exists():
            # A new installation: the config fixes where the database goes, and the first command that needs it
            # makes it there (check_files has said whether that directory can be written).
            report(True, "store", f"no database yet at {db}: chatd users add or chatd serve makes it")
        else:
            report(False, "store", f"no chatd database at {db}: run this where the server runs, or chatd migrate")
        return
    try:
        check_not_newer(done, known)
    except StoreRefused as e:
        report(False, "store", str(e))
        return
    pending = [n for n in known if n not in done]
    if pending:
        report(False, "store", f"schema migrations pending ({', '.join(pending)}): run chatd migrate")
    else:
        report(True, "store", f"{cfg.store.backend} store reachable, schema up to date ({done[-1]})")
    skew = await store_backend(cfg).clock_skew(cfg)
    if skew is not None:
        clock_report(report, *skew)


def clock_report(report: Report, other: str, skew: float) -> None:
    if abs(skew) > 2:
        report(
            False,
            "clock",
            f"this machine's clock is {skew:+.1f}s off {other}'s: token expiry, tickets and message times disagree "
            "between nodes. Run NTP (systemd-timesyncd or chrony) everywhere",
        )
    else:
        report(True, "clock", f"within {abs(skew):.2f}s of {other}")


def check_broker(cfg: Config, report: Report) -> None:
    if declares("brokers", cfg.broker.backend, "cluster_wide") is False:
        report(True, "broker", "in-process (one node); nothing to reach")
        if store_file(cfg) is not None:
            report(True, "clock", "one node and no database server: no other clock to disagree with")
        return
    parts = urlsplit(cfg.broker.url)
    default = {"redis": 6379, "rediss": 6380, "amqp": 5672, "amqps": 5671}.get(parts.scheme, 0)
    host, port = parts.hostname or "127.0.0.1", parts.port or default
    try:
        with socket.create_connection((host, port), timeout=5) as sock:
            if parts.scheme == "redis":
                sock.sendall(b"TIME\r\n")
                reply = sock.recv(256).split(b"\r\n")
                if reply[0] == b"*2":  # an array of seconds and microseconds
                    clock_report(report, "Redis", int(reply[2]) + int(reply[4]) / 1e6 - time.time())
    except OSError as e:
        report(
            False,
            "broker",
            f"cannot reach the {cfg.broker.backend} broker at {host}:{port} ({e.strerror or e}): start it, or fix "
            "broker.url",
        )
        return
    report(True, "broker", f"{cfg.broker.backend} answers at {host}:{port}")


def check_port(cfg: Config, report: Report) -> None:
    from chatd.admin.control import node_url
    from chatd.server import port_taken

    taken = port_taken(cfg.server.host, cfg.server.port)
    if taken is None:
        report(True, "port", f"{cfg.server.host}:{cfg.server.port} is free for chatd serve (no server running)")
        return
    url = node_url(cfg.server.host, cfg.server.port)
    try:
        with urllib.request.urlopen(url + "/readyz", timeout=5) as resp:  # noqa: S310 - this machine's own node
            resp.read()
        report(True, "port", f"a chatd server answers at {url} and is ready")
    except urllib.error.HTTPError as e:
        body = e.read().decode(errors="replace")
        report(False, "port", f"the chatd server at {url} is not ready: {body} (see its log)")
    except OSError:
        report(
            False,
            "port",
            f"something that is not chatd listens on {cfg.server.host}:{cfg.server.port}: stop it or pick another "
            "server.port",
        )


def check_settings(cfg: Config, report: Report) -> None:
    from chatd.config import is_loopback
    from chatd.server import check_startup

    problem = check_startup(cfg)
    if problem:
        report(False, "config", problem)
    elif cfg.auth.mode == "open":
        report(
            False, "config", 'auth.mode is "open": anyone on this machine can act as anyone. For people, use "token"'
        )
    elif not is_loopback(cfg.server.host) and not cfg.server.trusted_proxies:
        report(
            False,
            "config",
            f"chatd listens on {cfg.server.host} with no server.trusted_proxies: behind a proxy every client "
            "shares the proxy's sign-in and request limits. List the proxy's address",
        )
    else:
        report(True, "config", "settings load and pass the start-up checks")


@click.command()
@config_option
def doctor(config_path: str | None) -> None:
    """Check this installation: config, store and schema, broker, disk space, the port, file permissions and
    the clock. Each problem is printed with what to do; the exit status is 1 if there is any.

    \b
    Example:
        chatd doctor -c /etc/chatd/chatd.toml
    """
    problems = 0

    def report(ok: bool, area: str, text: str) -> None:
        nonlocal problems
        problems += not ok
        click.echo(f"{'ok     ' if ok else 'PROBLEM'}  {area:<7} {text}")

    path = resolve_config_path(config_path)
    cfg = build_config(config_path)  # a config that does not load stops here, with the key named
    report(True, "config", f"loaded {path or 'built-in defaults'} (+ environment)")
    check_settings(cfg, report)
    check_files(cfg, path, report)
    asyncio.run(check_store(cfg, report))
    check_broker(cfg, report)
    check_disk(cfg, report)
    check_port(cfg, report)
    if problems:
        raise click.ClickException(f"{problems} problem(s) found")
    click.echo("no problems found", err=True)
