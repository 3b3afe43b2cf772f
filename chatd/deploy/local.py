"""A deployment on this machine: chatd nodes as child processes, nginx in front of them.

``chatd cluster up`` uses it to let anyone try several nodes with one command, and the test suite uses the same
code to run its multi-node tests, so what is tested is what a user starts. The nodes share the machine's Redis or
RabbitMQ and PostgreSQL (nothing is reinvented here); each deployment uses its own broker namespace and database.
Nodes are configured through the documented environment names (``CHATD_BROKER_BACKEND``, ``CHATD_STORE_DSN``,
``CHATD_SERVER_NODE_ID``, …) over an optional config file, exactly as an operator's tooling would start them.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Coroutine
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from chatd.config import settings_to_toml
from chatd.deploy.nginx import prepare_run_dir, render

BROKER_URLS = {"redis": "redis://127.0.0.1:6379/0", "rabbitmq": "amqp://guest:guest@127.0.0.1:5672/"}
DEFAULT_DSN = "postgresql://postgres@127.0.0.1:5432/chatd"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def port_open(port: int, host: str = "127.0.0.1") -> bool:
    with socket.socket() as s:
        s.settimeout(0.5)
        return s.connect_ex((host, port)) == 0


def http_status(url: str, timeout: float = 1.0) -> int | None:
    try:
        with urllib.request.urlopen(url, timeout=timeout) as r:
            return int(r.status)
    except urllib.error.HTTPError as e:
        return int(e.code)
    except (OSError, urllib.error.URLError):
        return None


def child_env(extra: dict[str, str] | None = None) -> dict[str, str]:
    """This process's environment without CHATD_* and PORT (they would reconfigure a child), plus ``extra``."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("CHATD_") and k != "PORT"}
    env.update(extra or {})
    return env


class NodeProcess:
    """One ``chatd serve`` child: its settings in ``<workdir>/chatd.toml``, its output in ``<workdir>/server.log``."""

    def __init__(self, workdir: Path, settings: dict[str, dict[str, Any]], env: dict[str, str] | None = None) -> None:
        self.workdir = workdir
        workdir.mkdir(parents=True, exist_ok=True)
        self.settings = settings
        self.port: int = settings["server"]["port"]
        self.config_path = workdir / "chatd.toml"
        self.config_path.write_text(settings_to_toml(settings))
        self.env = env or {}
        self.log_path = workdir / "server.log"
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def http(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def ws(self) -> str:
        return f"ws://127.0.0.1:{self.port}/ws"

    def launch(self) -> None:
        with open(self.log_path, "ab") as log:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "chatd", "serve", "--config", str(self.config_path)],
                cwd=self.workdir,
                stdout=log,
                stderr=subprocess.STDOUT,
                env=child_env(self.env),
            )

    def wait_ready(self, timeout: float = 30.0) -> None:
        assert self.proc is not None
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"chatd exited with {self.proc.returncode}:\n{self.log()[-4000:]}")
            if http_status(self.http + "/readyz") == 200:
                return
            time.sleep(0.05)
        self.kill()
        raise RuntimeError(f"chatd did not become ready in {timeout:.0f}s:\n{self.log()[-4000:]}")

    def start(self, timeout: float = 30.0) -> NodeProcess:
        self.launch()
        self.wait_ready(timeout)
        return self

    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def stop(self, timeout: float = 30.0) -> int:
        """SIGTERM, and wait for the drain to finish."""
        assert self.proc is not None
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        try:
            return self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.kill()
            raise

    def kill(self) -> None:
        """SIGKILL: a crash, with no chance to drain."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait(10)


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


class LocalCluster:
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
    ) -> None:
        self.workdir = workdir
        self.broker = broker
        self.broker_url = broker_url or BROKER_URLS[broker]
        self.dsn = dsn
        self.namespace = namespace
        self.port = port
        self.nodes: list[NodeProcess] = []
        for i in range(nodes):
            node_settings: dict[str, dict[str, Any]] = {k: dict(v) for k, v in (settings or {}).items()}
            node_settings.setdefault("server", {}).setdefault("host", "127.0.0.1")
            # nginx reaches the nodes from 127.0.0.1 and appends the client's address to X-Forwarded-For: trust it
            # (and only it), so per-address limits count clients, not the proxy (nor what a client claims).
            node_settings["server"].setdefault("trusted_proxies", ["127.0.0.1"])
            node_settings["server"]["port"] = free_port()
            env = {
                "CHATD_SERVER_NODE_ID": f"node{i + 1}",
                "CHATD_BROKER_BACKEND": broker,
                "CHATD_BROKER_URL": self.broker_url,
                "CHATD_BROKER_NAMESPACE": namespace,
                "CHATD_STORE_BACKEND": "postgres",
                "CHATD_STORE_DSN": dsn,
            }
            self.nodes.append(NodeProcess(workdir / f"node{i + 1}", node_settings, env))
        self.nginx = NginxProcess(workdir / "nginx", [f"127.0.0.1:{n.port}" for n in self.nodes], port)

    @property
    def http(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def ws(self) -> str:
        return f"ws://127.0.0.1:{self.port}/ws"

    def start(self) -> LocalCluster:
        ensure_database(self.dsn)
        try:
            # The first node applies the migrations alone; the rest start side by side.
            self.nodes[0].start()
            for node in self.nodes[1:]:
                node.launch()
            for node in self.nodes[1:]:
                node.wait_ready()
            self.nginx.start()
        except BaseException:
            self.stop()
            raise
        return self

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
