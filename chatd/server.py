"""``chatd serve``: granian, embedded in this process's uvloop event loop, serving the app around one Node.

Embedding (rather than granian's worker processes) keeps the whole node in one process and lets chatd own the
signals: on SIGTERM or SIGINT it drains first (no new sessions or sends, every queued send stored and acked,
sockets closed with 1001) and only then stops granian, which would otherwise drop open WebSockets without a close
frame.
"""

from __future__ import annotations

import asyncio
import errno
import logging
import os
import signal
import socket
import sys
import time
import traceback
from pathlib import Path

import msgspec
import uvloop
from granian.constants import Interfaces
from granian.http import HTTP1Settings
from granian.log import LogLevels
from granian.server.embed import Server

from chatd import __version__
from chatd.broker.base import BrokerUnavailable
from chatd.config import Config, ConfigError, is_loopback, registration_mode
from chatd.core.node import Node
from chatd.failures import path_problem
from chatd.gateway.app import create_app
from chatd.gateway.ws import with_raw_websocket_io
from chatd.registry import BackendError, load
from chatd.rlimit import raise_open_files
from chatd.store.base import StoreRefused

log = logging.getLogger("chatd")


class JsonFormatter(logging.Formatter):
    """One JSON object per line, for log shippers: the same events and words as the text format."""

    def format(self, record: logging.LogRecord) -> str:
        entry = {
            "ts": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created)) + f".{int(record.msecs):03d}Z",
            "level": record.levelname.lower(),
            "logger": record.name,
            "msg": record.getMessage(),
        }
        if record.exc_info:
            entry["exc"] = self.formatException(record.exc_info)
        return msgspec.json.encode(entry).decode()


def setup_logging(level: str, fmt: str = "text") -> None:
    handler = logging.StreamHandler(sys.stderr)
    if fmt == "json":
        handler.setFormatter(JsonFormatter())
    else:
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)-7s %(name)s: %(message)s"))
    root = logging.getLogger("chatd")
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    root.propagate = False


def check_startup(cfg: Config) -> str | None:
    """Refusals that must stop start-up, as a message; None if fine. ``chatd config check`` runs the same."""
    for kind, name in (("brokers", cfg.broker.backend), ("stores", cfg.store.backend)):
        try:
            load(kind, name)  # imports the backend: a missing client library is reported here, with the extra
        except BackendError as e:
            return str(e)
    if cfg.auth.mode == "open" and not is_loopback(cfg.server.host):
        return (
            f"open mode lets anyone act as any user, so it only listens on loopback; refusing to bind "
            f'{cfg.server.host}. Use auth.mode = "token" or server.host = "127.0.0.1".'
        )
    if cfg.auth.oidc.enabled:
        return sso_problem(cfg)
    return None


def sso_problem(cfg: Config) -> str | None:
    """Single sign-on needs the oidc extra and a readable client secret."""
    try:
        from chatd.accounts.sso import read_client_secret
    except ImportError as e:
        return f"[auth.oidc] needs the oidc extra ({e.name} is missing): pip install 'chatd[oidc]'"
    try:
        read_client_secret(cfg.auth.oidc)
    except ConfigError as e:
        return str(e)
    return None


def port_taken(host: str, port: int) -> str | None:
    """Whether something already listens on host:port.

    granian binds with SO_REUSEPORT, so a second server on a taken port would start silently and the kernel would
    split connections between the two. A plain bind without that option finds out first.
    """
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    probe = socket.socket(family, socket.SOCK_STREAM)
    # SO_REUSEADDR only forgives connections in TIME_WAIT from a previous run; a live listener still blocks it.
    probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        probe.bind((host, port))
    except OSError as e:
        return f"cannot listen on {host}:{port}: {e.strerror} (is another chatd running there?)"
    finally:
        probe.close()
    return None


def uploads_dir_problem(cfg: Config) -> str | None:
    """Whether the uploads directory can be made and written: found at start-up, not at the first upload."""
    path = Path(cfg.uploads.dir)
    try:
        path.mkdir(mode=0o700, parents=True, exist_ok=True)
    except OSError as e:
        return path_problem(e, path, "uploads.dir")
    if not os.access(path, os.W_OK | os.X_OK):
        return path_problem(PermissionError(errno.EACCES, "Permission denied"), path, "uploads.dir")
    return None


def serve(cfg: Config, debug: bool = False) -> int:
    """Run until SIGTERM/SIGINT and a drain; what stops start-up is one line on stderr (and exit 2), with its
    traceback too when ``debug``."""
    problem = check_startup(cfg) or port_taken(cfg.server.host, cfg.server.port) or uploads_dir_problem(cfg)
    if problem:
        print(f"chatd: {problem}", file=sys.stderr)
        return 2
    # Everything the server creates (database, WAL, spill, uploads) holds private data: owner-only by default.
    os.umask(0o077)
    try:
        return uvloop.run(_serve(cfg))
    except (StoreRefused, BackendError, BrokerUnavailable) as e:
        if debug:
            traceback.print_exc()
        print(f"chatd: {e}", file=sys.stderr)
        return 2


async def _serve(cfg: Config) -> int:
    node = Node(cfg)
    lim = cfg.limits
    server = Server(
        with_raw_websocket_io(create_app(node)),
        address=cfg.server.host,
        port=cfg.server.port,
        interface=Interfaces.ASGINL,
        websockets=True,
        backlog=4096,
        # granian's default admits only ``backlog`` connections at a time; a chat server holds them open.
        backpressure=lim.max_connections + 64,
        http1_settings=HTTP1Settings(header_read_timeout=int(lim.handshake_timeout * 1000)),
        log_level=LogLevels.error,
    )
    setup_logging(cfg.server.log_level, cfg.server.log_format)
    files = raise_open_files()
    if files < lim.max_connections:
        log.warning(
            "the open-files limit (%d) is below limits.max_connections (%d): connections past it will be refused; "
            "raise it (ulimit -n, or LimitNOFILE= in a systemd unit)",
            files,
            lim.max_connections,
        )
    await node.start()
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    serving = asyncio.create_task(server.serve(), name="granian")
    mode = (
        "OPEN (anyone may connect as any ?user=NAME; for laptops and benchmarks only)"
        if cfg.auth.mode == "open"
        else "token"
    )
    if cfg.auth.mode == "open":
        log.warning("*** auth mode is OPEN: no passwords, no tokens. Never expose this server. ***")
    log.info(
        "chatd %s listening on http://%s:%d (auth: %s, store: %s %s, broker: %s, node %s)",
        __version__,
        cfg.server.host,
        cfg.server.port,
        mode,
        cfg.store.backend,
        "" if node.store.networked else cfg.store.path,  # a DSN may hold a password
        cfg.broker.backend,
        node.id,
    )
    log.info(
        "settings: registration %s, token_ttl %gs, max_connections %d (%d per user), send_rate %g/s, log_format %s",
        registration_mode(cfg.auth),
        cfg.auth.token_ttl,
        lim.max_connections,
        lim.max_connections_per_user,
        lim.send_rate,
        cfg.server.log_format,
    )
    stopper = asyncio.create_task(stop.wait())
    await asyncio.wait({serving, stopper}, return_when=asyncio.FIRST_COMPLETED)
    code = 0
    if serving.done():
        log.error("the HTTP server stopped unexpectedly: %r", serving.exception())
        code = 1
    else:
        log.info("draining: no new sessions or sends; storing and acking what was taken in")
        await node.drain()
        server.stop()
        await serving
    await node.close()
    log.info("stopped")
    return code
