"""A deployment on this machine: chatd nodes as child processes, nginx in front of them.

``chatd cluster up`` uses it to let anyone try several nodes with one command, and the test suite uses the same
code to run its multi-node tests, so what is tested is what a user starts. The nodes share the machine's Redis or
RabbitMQ and PostgreSQL (nothing is reinvented here); each deployment uses its own broker namespace and database.
Each node's ``chatd.toml`` is complete (node id, port, store, broker and namespace), so an operator's command
pointed at it (``chatd users add dave -c cluster-run/node1/chatd.toml``) acts on the cluster, as it would on any
deployment's node.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Coroutine
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from chatd.config import settings_to_toml
from chatd.deploy.nginx import prepare_run_dir, render
from chatd.deploy.procs import LocalAddress, ServerProcess, exit_description, free_port
from chatd.failures import unreachable

BROKER_URLS = {"redis": "redis://127.0.0.1:6379/0", "rabbitmq": "amqp://guest:guest@127.0.0.1:5672/"}
DEFAULT_DSN = "postgresql://postgres@127.0.0.1:5432/chatd"


def port_open(port: int, host: str = "127.0.0.1") -> bool:
    with socket.socket() as s:
        s.settimeout(0.5)
        return s.connect_ex((host, port)) == 0


class NodeProcess(ServerProcess):
    """One ``chatd serve`` child: its settings in ``<workdir>/chatd.toml``, its output in ``<workdir>/server.log``."""

    def __init__(self, workdir: Path, settings: dict[str, dict[str, Any]], env: dict[str, str] | None = None) -> None:
        config_path = workdir / "chatd.toml"
        argv = [sys.executable, "-m", "chatd", "serve", "--config", str(config_path)]
        super().__init__(workdir, argv, settings["server"]["port"], env)
        self.settings = settings
        self.config_path = config_path
        # Private: it may hold a broker URL's password.
        fd = os.open(self.config_path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as f:
            f.write(settings_to_toml(settings))
        os.chmod(self.config_path, 0o600)

    def launch(self) -> None:
        # Read at each start, not when made: a caller may point the node at another file (an operator's own).
        self.argv = [sys.executable, "-m", "chatd", "serve", "--config", str(self.config_path)]
        super().launch()


class NginxProcess:
    """nginx in the foreground with its config and state in ``workdir``."""

    def __init__(self, workdir: Path, upstreams: list[str], port: int, host: str = "127.0.0.1") -> None:
        self.workdir = workdir
        self.port = port
        self.host = host
        self.conf = workdir / "nginx.conf"
        prepare_run_dir(workdir)
        self.conf.write_text(render(upstreams, f"{host}:{port}", workdir, access_log=str(workdir / "access.log")))
        self.proc: subprocess.Popen[bytes] | None = None

    @staticmethod
    def binary() -> str | None:
        return shutil.which("nginx") or next(
            (p for p in ("/usr/sbin/nginx", "/usr/local/sbin/nginx") if os.path.exists(p)), None
        )

    def start(self, timeout: float = 10.0) -> NginxProcess:
        nginx = self.binary()
        if nginx is None:
            raise RuntimeError("nginx is not installed (Debian: apt-get install nginx)")
        test = subprocess.run(
            [nginx, "-t", "-q", "-c", str(self.conf), "-p", str(self.workdir)], capture_output=True, text=True
        )
        if test.returncode != 0:
            raise RuntimeError(f"nginx refused the generated config:\n{test.stderr}")
        with open(self.workdir / "nginx.out", "ab") as out:
            self.proc = subprocess.Popen(
                [nginx, "-c", str(self.conf), "-p", str(self.workdir), "-g", "daemon off;"],
                stdout=out,
                stderr=subprocess.STDOUT,
            )
        deadline = time.monotonic() + timeout
        while not port_open(self.port, self.host):
            if self.proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"nginx did not start: {(self.workdir / 'nginx-error.log').read_text()[-2000:]}")
            time.sleep(0.05)
        return self

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGQUIT)  # graceful: finish open requests
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)


async def _ensure_database(dsn: str) -> None:
    import asyncpg

    parts = urlsplit(dsn)
    name = parts.path.lstrip("/")
    if not name:
        return
    admin = urlunsplit(parts._replace(path="/postgres"))
    conn = await asyncpg.connect(admin, timeout=5)
    try:
        if not await conn.fetchval("SELECT 1 FROM pg_database WHERE datname = $1", name):
            await conn.execute(f'CREATE DATABASE "{name}"')
    finally:
        await conn.close()


async def _drop_database(dsn: str) -> None:
    import asyncpg

    parts = urlsplit(dsn)
    name = parts.path.lstrip("/")
    conn = await asyncpg.connect(urlunsplit(parts._replace(path="/postgres")), timeout=5)
    try:
        await conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    finally:
        await conn.close()


def _run_sync(fn: Callable[[str], Coroutine[Any, Any, None]], dsn: str) -> None:
    """Run ``fn(dsn)`` to completion from synchronous code, even if this thread already runs an event loop."""
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        asyncio.run(fn(dsn))
        return
    with ThreadPoolExecutor(1) as pool:
        pool.submit(asyncio.run, fn(dsn)).result()


def ensure_database(dsn: str) -> None:
    """Create the DSN's database if it does not exist (connecting to the server's ``postgres`` database)."""
    _run_sync(_ensure_database, dsn)


def drop_database(dsn: str) -> None:
    _run_sync(_drop_database, dsn)


def drop_namespace(broker: str, url: str, namespace: str, queues: list[str] | None = None) -> None:
    """Remove what a deployment made in a shared broker: Redis keys under ``namespace:``; RabbitMQ's exchanges
    and the durable queues named in ``queues`` (AMQP cannot list queues; its exclusive ones go by themselves)."""
    if broker == "redis":
        import redis

        client = redis.Redis.from_url(url)
        try:
            keys = list(client.scan_iter(match=f"{namespace}:*", count=1000))
            if keys:
                client.delete(*keys)
        finally:
            client.close()
    elif broker == "rabbitmq":

        async def run() -> None:
            import aio_pika

            conn = await aio_pika.connect(url, timeout=5)
            try:
                channel = await conn.channel()
                for name in queues or []:
                    await channel.queue_delete(name)
                for kind in ("fanout", "direct"):
                    await channel.exchange_delete(f"{namespace}.{kind}")
            finally:
                await conn.close()

        asyncio.run(run())


def rabbitmqctl(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["rabbitmqctl", "-q", *args], capture_output=True, text=True, timeout=60)


def close_rabbit_connections(namespace: str) -> int:
    """Close the RabbitMQ connections of one deployment (each is named "chatd <namespace> <node>"), and no other;
    returns how many were closed."""
    listed = rabbitmqctl("list_connections", "pid", "client_properties")
    closed = 0
    for line in listed.stdout.splitlines():
        pid, _, props = line.partition("\t")
        if f'{{"connection_name","chatd {namespace} ' in props:
            rabbitmqctl("close_connection", pid, "chatd: cutting the broker link on purpose")
            closed += 1
    return closed


async def terminate_sessions(dsn: str) -> int:
    """``pg_terminate_backend`` on every session of the DSN's database (one deployment's), from outside."""
    import asyncpg

    parts = urlsplit(dsn)
    conn = await asyncpg.connect(urlunsplit(parts._replace(path="/postgres")), timeout=5)
    try:
        rows = await conn.fetch(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = $1 AND pid <> pg_backend_pid()",
            parts.path.lstrip("/"),
        )
        return len(rows)
    finally:
        await conn.close()


RESTARTS_MAX, RESTART_WINDOW = 5, 60.0


class LocalCluster(LocalAddress):
    """N nodes sharing one broker namespace and one PostgreSQL database, behind nginx on ``port``."""

    def __init__(
        self,
        workdir: Path,
        nodes: int = 3,
        broker: str = "redis",
        broker_url: str | None = None,
        dsn: str = DEFAULT_DSN,
        namespace: str = "chatd",
        port: int = 8080,
        settings: dict[str, dict[str, Any]] | None = None,
        node_env: dict[int, dict[str, str]] | None = None,
    ) -> None:
        """``node_env``: environment names for one node (by index from 0), over its settings, such as a
        ``CHATD_BROKER_URL`` or ``CHATD_STORE_DSN`` that reaches the service through a fault proxy."""
        self.workdir = workdir
        self.broker = broker
        self.broker_url = broker_url or BROKER_URLS[broker]
        self.dsn = dsn
        self.namespace = namespace
        self.port = port
        self.nodes: list[NodeProcess] = []
        for i in range(nodes):
            node_settings: dict[str, dict[str, Any]] = {k: dict(v) for k, v in (settings or {}).items()}
            server = node_settings.setdefault("server", {})
            server.setdefault("host", "127.0.0.1")
            # nginx reaches the nodes from 127.0.0.1 and appends the client's address to X-Forwarded-For: trust it
            # (and only it), so per-address limits count clients, not the proxy (nor what a client claims).
            server.setdefault("trusted_proxies", ["127.0.0.1"])
            server.update(port=free_port(), node_id=f"node{i + 1}")
            node_settings.setdefault("broker", {}).update(backend=broker, url=self.broker_url, namespace=namespace)
            node_settings.setdefault("store", {}).update(backend="postgres", dsn=dsn)
            self.nodes.append(NodeProcess(workdir / f"node{i + 1}", node_settings, (node_env or {}).get(i)))
        self.nginx = NginxProcess(workdir / "nginx", [f"127.0.0.1:{n.port}" for n in self.nodes], port)

    def start(self, nginx: bool = True) -> LocalCluster:
        try:
            ensure_database(self.dsn)
        except Exception as e:  # noqa: BLE001 - any failure to reach or use the server, said with where
            raise RuntimeError(unreachable("PostgreSQL server", self.dsn, e, "--dsn")) from e
        try:
            # The first node applies the migrations alone; the rest start side by side.
            self.nodes[0].start()
            for node in self.nodes[1:]:
                node.launch()
            for node in self.nodes[1:]:
                node.wait_ready()
            if nginx:
                self.nginx.start()
        except BaseException:
            self.stop()
            raise
        return self

    def watch(self, stop: threading.Event, say: Callable[[str], None], interval: float = 0.5) -> None:
        """Until ``stop`` is set: notice a node (or nginx) that exited, say so, and start it again.

        A node that keeps dying (``RESTARTS_MAX`` times within ``RESTART_WINDOW`` seconds) is left down, with its
        log's last line, rather than restarted in a loop; the others keep serving."""
        deaths: dict[str, list[float]] = {}
        given_up: set[str] = set()
        while not stop.wait(interval):
            for i, node in enumerate(self.nodes, 1):
                name = f"node{i}"
                if name in given_up or node.proc is None or node.proc.poll() is None:
                    continue
                now = time.monotonic()
                recent = [t for t in deaths.get(name, []) if now - t < RESTART_WINDOW] + [now]
                deaths[name] = recent
                how = exit_description(node.proc.returncode)
                if len(recent) > RESTARTS_MAX:
                    given_up.add(name)
                    last = (node.log().strip().splitlines() or ["(empty log)"])[-1]
                    say(
                        f"{name} (pid {node.proc.pid}) {how} {len(recent)} times in {RESTART_WINDOW:.0f}s; "
                        f"leaving it down. Its log ({node.log_path}) ends: {last}"
                    )
                    continue
                say(f"{name} (pid {node.proc.pid}) {how}; restarting it (log: {node.log_path})")
                try:
                    node.launch()
                    node.wait_ready()
                except RuntimeError as e:
                    say(f"{name} did not come back: {str(e).splitlines()[0]}")
                    continue
                say(f"{name} is back at {node.http} (pid {node.proc.pid})")
            if self.nginx.proc is not None and self.nginx.proc.poll() is not None and not stop.is_set():
                say(f"nginx {exit_description(self.nginx.proc.returncode)}; restarting it")
                try:
                    self.nginx.start()
                except RuntimeError as e:
                    say(f"nginx did not come back: {e}")

    def queue_names(self) -> list[str]:
        """The durable queues this deployment's nodes declare in RabbitMQ."""
        return [f"{self.namespace}.ingest.node{i + 1}" for i in range(len(self.nodes))]

    def stop(self) -> None:
        self.nginx.stop()
        for node in self.nodes:
            if node.proc is not None and node.proc.poll() is None:
                node.proc.send_signal(signal.SIGTERM)
        for node in self.nodes:
            if node.proc is not None:
                try:
                    node.proc.wait(30)
                except subprocess.TimeoutExpired:
                    node.kill()
