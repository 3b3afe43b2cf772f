"""A TCP proxy that fails on command: the network fault between one node and one service.

``chatd bench chaos`` and the fault tests put one :class:`FaultProxy` between each node and each service it uses
(its broker, PostgreSQL), so a fault can hit one node's link while the shared service and the other nodes go on.
Modes (:meth:`FaultProxy.set`):

- ``pass``: bytes flow both ways as they come.
- ``cut``: every open connection is reset now, and new ones are reset as soon as they are accepted (a process
  restarting, a firewall that rejects): the client sees the error at once.
- ``blackhole``: nothing flows and nothing is closed (a partition that drops packets). Connections stay open,
  bytes wait (reading stops, so TCP backpressure reaches the sender) and flow again, in order, when the mode goes
  back to ``pass``; new connections are accepted but not connected through until then. The client sees only
  silence, as in a real partition that heals before TCP gives up.
- ``delay``: each chunk is forwarded ``delay`` seconds after it arrived, in order (a slow or congested link).

The proxy runs in the caller's event loop; it binds 127.0.0.1 on a free port unless told otherwise. Each direction
of each connection holds at most ``QUEUE_CHUNKS`` chunks: past that the proxy stops reading that side.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from typing import Literal
from urllib.parse import urlsplit, urlunsplit

log = logging.getLogger("chatd.bench.faultproxy")

Mode = Literal["pass", "cut", "blackhole", "delay"]
MODES: tuple[Mode, ...] = ("pass", "cut", "blackhole", "delay")
QUEUE_CHUNKS = 64
CHUNK = 64 * 1024


class _Link:
    """One client connection and its upstream connection, pumped in both directions."""

    def __init__(self, proxy: FaultProxy, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.proxy = proxy
        self.client = (reader, writer)
        self.upstream: tuple[asyncio.StreamReader, asyncio.StreamWriter] | None = None
        self.tasks: list[asyncio.Task[None]] = []

    async def run(self) -> None:
        proxy = self.proxy
        try:
            await proxy._flowing.wait()  # a blackholed connect waits here, like a SYN that gets no answer
            if proxy.mode == "cut":
                return
            self.upstream = await asyncio.open_connection(proxy.target_host, proxy.target_port)
            if self.upstream[1].get_extra_info("sockname"):
                proxy.upstream_ports.add(self.upstream[1].get_extra_info("sockname")[1])
            self.tasks = [
                asyncio.create_task(self._pump(self.client[0], self.upstream[1])),
                asyncio.create_task(self._pump(self.upstream[0], self.client[1])),
            ]
            await asyncio.wait(self.tasks, return_when=asyncio.FIRST_COMPLETED)
        except (OSError, asyncio.IncompleteReadError):
            pass
        finally:
            self.abort()

    async def _pump(self, src: asyncio.StreamReader, dst: asyncio.StreamWriter) -> None:
        queue: asyncio.Queue[tuple[float, bytes]] = asyncio.Queue(QUEUE_CHUNKS)
        writer = asyncio.create_task(self._write(queue, dst))
        try:
            while True:
                data = await src.read(CHUNK)
                if not data:
                    break
                await queue.put((time.monotonic(), data))
            await queue.put((0.0, b""))
            await writer  # flush what is queued, then close this direction
        finally:
            writer.cancel()

    async def _write(self, queue: asyncio.Queue[tuple[float, bytes]], dst: asyncio.StreamWriter) -> None:
        proxy = self.proxy
        while True:
            arrived, data = await queue.get()
            await proxy._flowing.wait()
            if proxy.mode == "delay":
                wait = arrived + proxy.delay - time.monotonic()
                if wait > 0:
                    await asyncio.sleep(wait)
                    await proxy._flowing.wait()  # blackholed meanwhile: hold on
            if not data:
                with contextlib.suppress(OSError):
                    dst.write_eof()
                return
            dst.write(data)
            await dst.drain()

    def abort(self) -> None:
        """Reset both connections (RST where the transport allows), ending the pumps."""
        for task in self.tasks:
            task.cancel()
        for pair in (self.client, self.upstream):
            if pair is not None:
                transport = pair[1].transport
                with contextlib.suppress(Exception):
                    transport.abort()
        if self.upstream is not None:
            self.proxy.upstream_ports.discard(self.upstream[1].get_extra_info("sockname", ("", 0))[1])


class FaultProxy:
    """Listens on ``port`` (0: a free one) and forwards to ``target``; see the module docstring for the modes."""

    def __init__(self, target_host: str, target_port: int, *, host: str = "127.0.0.1", port: int = 0) -> None:
        self.target_host = target_host
        self.target_port = target_port
        self.host = host
        self.port = port
        self.mode: Mode = "pass"
        self.delay = 0.0
        self.upstream_ports: set[int] = set()  # local ports of the upstream connections (to spot them server-side)
        self._flowing = asyncio.Event()
        self._flowing.set()
        self._links: set[_Link] = set()
        self._server: asyncio.Server | None = None
        self._tasks: set[asyncio.Task[None]] = set()

    async def start(self) -> FaultProxy:
        self._server = await asyncio.start_server(self._accept, self.host, self.port)
        self.port = self._server.sockets[0].getsockname()[1]
        return self

    def set(self, mode: Mode, delay: float = 0.0) -> None:
        """Switch mode; ``delay`` (seconds) is used by ``delay``."""
        if mode not in MODES:
            raise ValueError(f"unknown proxy mode {mode!r}; one of {', '.join(MODES)}")
        self.mode = mode
        self.delay = delay
        if mode == "blackhole":
            self._flowing.clear()
            return
        if mode == "cut":
            for link in list(self._links):
                link.abort()
        self._flowing.set()

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        if self.mode == "cut":
            writer.transport.abort()
            return
        link = _Link(self, reader, writer)
        self._links.add(link)
        try:
            await link.run()
        finally:
            self._links.discard(link)

    def via(self, url: str) -> str:
        """``url`` (``redis://``, ``amqp://``, ``postgresql://``…) with its host and port pointed at this proxy."""
        parts = urlsplit(url)
        user = parts.netloc.rsplit("@", 1)[0] + "@" if "@" in parts.netloc else ""
        return urlunsplit(parts._replace(netloc=f"{user}{self.host}:{self.port}"))

    @property
    def connections(self) -> int:
        return len(self._links)

    async def close(self) -> None:
        if self._server is not None:
            self._server.close()
        for link in list(self._links):
            link.abort()
        self._flowing.set()
        if self._server is not None:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self._server.wait_closed(), 2)
