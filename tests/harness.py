"""Test harness: a real chatd process on a free port, and a protocol-v1 WebSocket client.

Nothing here is mocked. ``ChatdProcess`` runs ``python -m chatd serve`` with a config written to a temp dir and
waits for /readyz; ``Client`` is a thin wrapper around the ``websockets`` library that splits packed server
messages into frames.
"""

from __future__ import annotations

import asyncio
import json
import socket
import subprocess
import sys
import time
from collections import deque
from pathlib import Path
from typing import Any

import httpx
import websockets

from chatd.config import settings_to_toml
from chatd.deploy.local import NodeProcess
from chatd.deploy.procs import child_env, free_port, parse_metrics, rss_bytes

ROOT = Path(__file__).resolve().parent.parent


def clean_env(extra: dict[str, str] | None = None) -> dict[str, str]:
    """This process's environment without CHATD_* and PORT, which would reconfigure the server under test."""
    return child_env(extra)


def run_cli(
    *args: str,
    env: dict[str, str] | None = None,
    cwd: Path | None = None,
) -> subprocess.CompletedProcess[str]:
    """``python -m chatd ARGS`` to completion."""
    return subprocess.run(
        [sys.executable, "-m", "chatd", *args], capture_output=True, text=True, env=clean_env(env), cwd=cwd, timeout=60
    )


def write_config(path: Path, settings: dict[str, dict[str, Any]]) -> None:
    path.write_text(settings_to_toml(settings))


def server_settings(port: int, workdir: Path) -> dict[str, dict[str, Any]]:
    """Test-friendly defaults: open mode, files in ``workdir``, and no per-user or per-address rate limits (sends,
    typing, presence, sign-in attempts, registrations, new rooms), since every test client comes from 127.0.0.1
    and tests flood on purpose; tests/security turns them back on."""
    return {
        "server": {"host": "127.0.0.1", "port": port, "drain_timeout": 10.0},
        "auth": {"mode": "open", "attempts_per_minute": 0, "registrations_per_hour": 0},
        "store": {"path": str(workdir / "chatd.db")},
        "rooms": {"create_per_hour": 0},
        "limits": {"send_rate": 0, "typing_rate": 0, "presence_rate": 0},
        "uploads": {"dir": str(workdir / "uploads")},
    }


class HttpMixin:
    """REST helpers for anything with an ``http`` base URL."""

    http: str

    def metrics(self) -> dict[str, float]:
        """/metrics as a dict of sample name → value (histogram buckets keep their labels)."""
        return parse_metrics(self.get("/metrics").text, labelled=True)

    def get(self, path: str, **kw: Any) -> httpx.Response:
        return httpx.get(self.http + path, timeout=10, **kw)

    def post(self, path: str, **kw: Any) -> httpx.Response:
        return httpx.post(self.http + path, timeout=10, **kw)


class ChatdProcess(NodeProcess, HttpMixin):
    """One chatd server process. ``settings`` are merged over :func:`server_settings`."""

    def __init__(
        self, workdir: Path, settings: dict[str, dict[str, Any]] | None = None, env: dict[str, str] | None = None
    ) -> None:
        base = server_settings(free_port(), workdir)
        for section, values in (settings or {}).items():
            base.setdefault(section, {}).update(values)
        super().__init__(workdir, base, env)

    def rss(self) -> int:
        """Resident memory of the server process, in bytes."""
        assert self.proc is not None
        rss = rss_bytes(self.proc.pid)
        assert rss is not None, "the server process is gone"
        return rss


# Frames no test sequence waits for: ephemeral ones, and room-list pushes, which any session may get whenever
# another test creates a public room.
NOISE = ("presence", "ping", "typing", "room")


class Client:
    """A protocol-v1 client over a real WebSocket."""

    def __init__(self, ws: Any) -> None:
        self.ws = ws
        self.pending: deque[dict[str, Any]] = deque()
        self.hello: dict[str, Any] = {}

    @classmethod
    async def connect(
        cls,
        url: str,
        *,
        user: str | None = None,
        token: str | None = None,
        headers: dict[str, str] | None = None,
        hello: bool = True,
        rcvbuf: int | None = None,
        **kw: Any,
    ) -> Client:
        """Open a session. ``rcvbuf`` shrinks the socket's kernel receive buffer, so a client that stops
        reading pushes back on the server quickly instead of after megabytes."""
        if user is not None:
            url += ("&" if "?" in url else "?") + f"user={user}"
        hdrs = dict(headers or {})
        if token is not None:
            hdrs["Authorization"] = f"Bearer {token}"
        if rcvbuf is not None:
            sock = socket.socket()
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
            host_port = url.split("://", 1)[1].split("/", 1)[0]
            host, port = host_port.rsplit(":", 1)
            sock.connect((host, int(port)))
            sock.setblocking(False)
            kw["sock"] = sock
        ws = await websockets.connect(url, additional_headers=hdrs, max_size=None, **kw)
        client = cls(ws)
        if hello:
            client.hello = await client.expect("hello")
        return client

    async def send(self, frame: dict[str, Any] | str) -> None:
        await self.ws.send(frame if isinstance(frame, str) else json.dumps(frame))

    async def recv(self, timeout: float = 10.0) -> dict[str, Any]:
        """The next frame, splitting packed messages."""
        if not self.pending:
            # asyncio.timeout, not wait_for: on Python 3.11 wait_for can swallow a cancellation that arrives just
            # as a frame does, leaving a cancelled reader reading on.
            async with asyncio.timeout(timeout):
                raw = await self.ws.recv()
            for line in raw.split("\n"):
                self.pending.append(json.loads(line))
        return self.pending.popleft()

    async def expect(
        self,
        kind: str,
        timeout: float = 10.0,
        skip: tuple[str, ...] = NOISE,
    ) -> dict[str, Any]:
        """The next frame of ``kind``, skipping ephemeral noise; any other unexpected frame fails."""
        deadline = time.monotonic() + timeout
        while True:
            frame = await self.recv(max(0.01, deadline - time.monotonic()))
            if frame["type"] == kind:
                return frame
            if frame["type"] not in skip:
                raise AssertionError(f"expected {kind!r}, got {frame}")

    async def join(self, room: str, since: int | None = None) -> dict[str, Any]:
        frame: dict[str, Any] = {"type": "join", "room": room}
        if since is not None:
            frame["since"] = since
        await self.send(frame)
        return await self.expect("joined")

    async def resume(self, room: str, since: int) -> list[dict[str, Any]]:
        """join + since, repeated while the server says the replay was capped; returns the replayed messages."""
        got: list[dict[str, Any]] = []
        while True:
            joined = await self.join(room, since=since)
            batch = await self.messages(joined.get("replay", 0), timeout=60)
            got += batch
            if not joined.get("capped"):
                return got
            since = batch[-1]["seq"]

    async def say(self, room: str, body: str, client_id: str) -> dict[str, Any]:
        """Send and wait for the ack (skipping our own message frames)."""
        await self.send({"type": "send", "room": room, "body": body, "client_id": client_id})
        return await self.expect("ack", skip=(*NOISE, "message"))

    async def messages(self, n: int, timeout: float = 20.0) -> list[dict[str, Any]]:
        """The next ``n`` message frames, skipping acks and ephemeral frames."""
        out: list[dict[str, Any]] = []
        deadline = time.monotonic() + timeout
        while len(out) < n:
            frame = await self.recv(max(0.01, deadline - time.monotonic()))
            if frame["type"] == "message":
                out.append(frame)
            elif frame["type"] not in ("ack", *NOISE):
                raise AssertionError(f"unexpected frame {frame}")
        return out

    def stop_reading(self) -> None:
        """Stop reading from the socket, like a client stuck on a slow network."""
        self.ws.transport.pause_reading()

    def resume_reading(self) -> None:
        """Read again, with a normal-sized receive buffer so catching up is quick."""
        sock = self.ws.transport.get_extra_info("socket")
        if sock is not None:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4 * 1024 * 1024)
        self.ws.transport.resume_reading()

    async def close(self) -> None:
        """Close, discarding unread frames: a full receive queue would stall the closing handshake."""

        async def discard() -> None:
            try:
                async for _ in self.ws:
                    pass
            except websockets.ConnectionClosed:
                pass

        reader = asyncio.create_task(discard())
        await self.ws.close()
        reader.cancel()

    async def closed(self, timeout: float = 10.0) -> tuple[int | None, str]:
        """Read until the server closes; returns (code, reason)."""
        try:
            while True:
                await asyncio.wait_for(self.ws.recv(), timeout)
        except websockets.ConnectionClosed as e:
            rcvd = e.rcvd
            return (rcvd.code if rcvd else None, rcvd.reason if rcvd else "")


def register(server: ChatdProcess, name: str, password: str = "correct horse") -> str:
    r = server.post("/api/auth/register", json={"username": name, "password": password})
    assert r.status_code == 201, r.text
    return r.json()["token"]
