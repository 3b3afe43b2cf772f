"""A protocol-v1 server that misbehaves on purpose, and counts exactly what it did.

Built on the ``websockets`` library's asyncio server, in the test's own event loop. Each message delivery gets a
global number k; by k it is dropped, sent twice, or held back and sent after the next message for the same
connection and room (a swap). Some acks are never sent. A held message with no follower is released in order by a
timer, and is then not a swap. The bench, run against it, must report exactly these counts.
"""

from __future__ import annotations

import asyncio
import json
import time
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qs, urlsplit

from websockets.asyncio.server import Server, ServerConnection, serve


@dataclass
class Faults:
    drop_every: int = 17  # k % drop_every == drop_at → dropped
    drop_at: int = 5
    dup_every: int = 13
    dup_at: int = 7
    swap_every: int = 11
    swap_at: int = 3
    ack_drop_every: int = 50  # every n-th ack is never sent
    dropped: int = 0
    duplicated: int = 0
    swapped: int = 0
    acks_dropped: int = 0
    deliveries: int = 0


@dataclass
class FaultyServer:
    faults: Faults = field(default_factory=Faults)
    rooms: dict[str, list[ServerConnection]] = field(default_factory=dict)
    seq: dict[str, int] = field(default_factory=dict)
    held: dict[tuple[int, str], str] = field(default_factory=dict)
    acks: int = 0
    server: Server | None = None
    port: int = 0
    _flusher: asyncio.Task[None] | None = None
    # One send's fan-out finishes before the next starts, so the only disorder is the one we count.
    _lock: asyncio.Lock = field(default_factory=asyncio.Lock)

    async def start(self) -> FaultyServer:
        self.server = await serve(self.handler, "127.0.0.1", 0, max_size=None)
        self.port = self.server.sockets[0].getsockname()[1]
        self._flusher = asyncio.create_task(self._flush_loop())
        return self

    async def stop(self) -> None:
        if self._flusher is not None:
            self._flusher.cancel()
        if self.server is not None:
            self.server.close()
            await self.server.wait_closed()

    @property
    def url(self) -> str:
        return f"ws://127.0.0.1:{self.port}/ws"

    async def handler(self, ws: ServerConnection) -> None:
        query = parse_qs(urlsplit(ws.request.path if ws.request else "").query)
        user = query.get("user", ["anon"])[0]
        await ws.send(json.dumps({"type": "hello", "user": user, "protocol": 1, "max_frame_bytes": 65536}))
        try:
            async for raw in ws:
                frame: dict[str, Any] = json.loads(raw)
                if frame["type"] == "join":
                    room = frame["room"]
                    self.rooms.setdefault(room, []).append(ws)
                    await ws.send(json.dumps({"type": "joined", "room": room, "seq": self.seq.get(room, 0)}))
                elif frame["type"] == "send":
                    async with self._lock:
                        await self._send(ws, user, frame)
                elif frame["type"] == "ping":
                    await ws.send('{"type":"pong"}')
        except Exception:  # noqa: BLE001 - a closing client is not a test failure here
            pass

    async def _send(self, ws: ServerConnection, user: str, frame: dict[str, Any]) -> None:
        room = frame["room"]
        seq = self.seq[room] = self.seq.get(room, 0) + 1
        ts = int(time.time() * 1000)
        self.acks += 1
        if self.acks % self.faults.ack_drop_every == 0:
            self.faults.acks_dropped += 1
        else:
            await ws.send(
                json.dumps({"type": "ack", "client_id": frame["client_id"], "room": room, "seq": seq, "ts": ts})
            )
        text = json.dumps(
            {
                "type": "message",
                "room": room,
                "seq": seq,
                "from": user,
                "body": frame["body"],
                "client_id": frame["client_id"],
                "ts": ts,
            }
        )
        for peer in self.rooms.get(room, []):
            await self._deliver(peer, room, text)

    async def _deliver(self, peer: ServerConnection, room: str, text: str) -> None:
        f = self.faults
        k = f.deliveries
        f.deliveries += 1
        if k % f.drop_every == f.drop_at:
            f.dropped += 1
            return
        copies = 1
        if k % f.dup_every == f.dup_at:
            copies = 2
            f.duplicated += 1
        key = (id(peer), room)
        held = self.held.pop(key, None)
        if held is None and copies == 1 and k % f.swap_every == f.swap_at:
            self.held[key] = text
            return
        for _ in range(copies):
            await peer.send(text)
        if held is not None:
            await peer.send(held)
            f.swapped += 1

    async def _flush_loop(self) -> None:
        # Release held frames that found no follower, in order (not a swap), so they are not lost.
        while True:
            await asyncio.sleep(0.2)
            async with self._lock:
                await self._flush()

    async def _flush(self) -> None:
        conns = {id(c): c for members in self.rooms.values() for c in members}
        for key in list(self.held):
            text = self.held.pop(key)
            peer = conns.get(key[0])
            if peer is not None:
                await peer.send(text)
