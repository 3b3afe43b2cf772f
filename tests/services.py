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

from chatd.deploy.local import close_rabbit_connections, drop_namespace, rabbitmqctl, terminate_sessions

__all__ = ["close_rabbit_connections", "rabbitmqctl"]


def drop_redis_namespace(url: str, namespace: str) -> None:
    try:
        drop_namespace("redis", url, namespace)
    except redis.RedisError:
        pass


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


def terminate_pg_connections(dsn: str) -> int:
    """``pg_terminate_backend`` on every connection to the DSN's database (one deployment's), from outside."""
    return asyncio.run(terminate_sessions(dsn))


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
