"""Cleaning a test's namespace out of the shared Redis and RabbitMQ, and cutting a deployment's connections.

The services on this machine are shared by every test run: nothing here stops, flushes or resets them. A test
removes only what its own namespace made, and a fault is caused by closing only its own connections, or by a
server instance the test starts itself.
"""

from __future__ import annotations

import asyncio
import shutil
import subprocess
import time
from pathlib import Path

import redis

from chatd.deploy.local import drop_namespace


def drop_redis_namespace(url: str, namespace: str) -> None:
    try:
        drop_namespace("redis", url, namespace)
    except redis.RedisError:
        pass


def rabbitmqctl(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["rabbitmqctl", "-q", *args], capture_output=True, text=True, timeout=60)


def drop_rabbit_namespace(namespace: str, url: str = "amqp://guest:guest@127.0.0.1:5672/") -> None:
    """Delete the durable queues and exchanges a test's nodes declared (auto-deleted ones go by themselves)."""
    if shutil.which("rabbitmqctl") is None:
        return
    prefix = f"{namespace}."
    queues = [n for n in rabbitmqctl("list_queues", "name").stdout.split() if n.startswith(prefix)]
    exchanges = [n for n in rabbitmqctl("list_exchanges", "name").stdout.split() if n.startswith(prefix)]

    async def run() -> None:
        import aio_pika

        conn = await aio_pika.connect(url)
        try:
            channel = await conn.channel()
            for name in queues:
                await channel.queue_delete(name)
            for name in exchanges:
                await channel.exchange_delete(name)
        finally:
            await conn.close()

    if queues or exchanges:
        asyncio.run(run())  # by name, as listed: tests make queues for nodes of any name


def close_rabbit_connections(namespace: str) -> int:
    """Close the RabbitMQ connections of one deployment (each is named "chatd <namespace> <node>"); returns how
    many were closed."""
    listed = rabbitmqctl("list_connections", "pid", "client_properties")
    closed = 0
    for line in listed.stdout.splitlines():
        pid, _, props = line.partition("\t")
        if f'{{"connection_name","chatd {namespace} ' in props:
            rabbitmqctl("close_connection", pid, "chatd test: cutting the broker link")
            closed += 1
    return closed


def terminate_pg_connections(dsn: str) -> int:
    """``pg_terminate_backend`` on every connection to the DSN's database (one deployment's), from outside."""
    import asyncpg

    from chatd.deploy.local import urlsplit, urlunsplit

    parts = urlsplit(dsn)
    name = parts.path.lstrip("/")

    async def run() -> int:
        conn = await asyncpg.connect(urlunsplit(parts._replace(path="/postgres")), timeout=5)
        try:
            rows = await conn.fetch(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = $1 AND pid <> pg_backend_pid()",
                name,
            )
            return len(rows)
        finally:
            await conn.close()

    return asyncio.run(run())


class OwnRedis:
    """A redis-server of the test's own on a free port, keeping nothing on disk, that the test may kill."""

    def __init__(self, workdir: Path, port: int) -> None:
        self.workdir = workdir
        self.port = port
        self.proc: subprocess.Popen[bytes] | None = None
        workdir.mkdir(parents=True, exist_ok=True)

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> OwnRedis:
        binary = shutil.which("redis-server")
        assert binary, "redis-server is not installed"
        self.proc = subprocess.Popen(
            [
                binary,
                "--port",
                str(self.port),
                "--bind",
                "127.0.0.1",
                "--save",
                "",
                "--appendonly",
                "no",
                "--dir",
                str(self.workdir),
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        client = redis.Redis(port=self.port)
        deadline = time.monotonic() + 10
        while True:
            try:
                client.ping()
                break
            except redis.RedisError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.05)
        client.close()
        return self

    def kill(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(10)
