"""Clients for multi-node tests: a sender that survives node deaths, and checks of what the store holds."""

from __future__ import annotations

import asyncio
from collections import OrderedDict
from collections.abc import Callable
from typing import Any

import httpx
import websockets

from chatd.deploy.local import LocalCluster
from harness import Client

MakeCluster = Callable[..., LocalCluster]


class Sender:
    """Sends ``count`` messages to ``room`` through ``url`` with up to ``window`` unacked, like a careful client:
    when its connection drops or a send is refused as ``unavailable``, it reconnects (through nginx, to whichever
    node is alive) and resends what is unacked, in order, with the same client_ids."""

    def __init__(self, url: str, user: str, room: str, count: int, window: int = 20) -> None:
        self.url = url
        self.user = user
        self.room = room
        self.count = count
        self.window = window
        self.acked: dict[str, int] = {}
        self.conflicts: list[tuple[str, int, int]] = []  # a client_id acked twice with different seqs
        self.unacked: OrderedDict[str, str] = OrderedDict()
        self.reconnects = 0
        self.refused = 0
        self.nodes: list[str] = []
        self._next = 0

    def cid(self, n: int) -> str:
        return f"{self.user}-{n}"

    async def run(self, timeout: float = 120.0) -> Sender:
        async with asyncio.timeout(timeout):
            while len(self.acked) < self.count:
                try:
                    await self._session()
                except (websockets.ConnectionClosed, OSError, TimeoutError, AssertionError):
                    self.reconnects += 1
                    await asyncio.sleep(0.2)
        return self

    async def _session(self) -> None:
        client = await Client.connect(self.url, user=self.user)
        self.nodes.append(client.hello["node"])
        try:
            await client.join(self.room)
            for cid, body in self.unacked.items():
                await self._send(client, cid, body)
            while len(self.acked) < self.count:
                while self._next < self.count and len(self.unacked) < self.window:
                    cid = self.cid(self._next)
                    self._next += 1
                    self.unacked[cid] = f"{self.user} says {cid}"
                    await self._send(client, cid, self.unacked[cid])
                frame = await client.recv(15)
                if frame["type"] == "ack":
                    cid, seq = frame["client_id"], frame["seq"]
                    if cid in self.acked and self.acked[cid] != seq:
                        self.conflicts.append((cid, self.acked[cid], seq))
                    self.acked.setdefault(cid, seq)
                    self.unacked.pop(cid, None)
                elif frame["type"] == "error" and frame.get("ref") in self.unacked:
                    assert frame["code"] in ("unavailable", "internal"), frame
                    self.refused += 1
                    await asyncio.sleep(0.2)
                    await self._send(client, frame["ref"], self.unacked[frame["ref"]])
        finally:
            await client.close()

    async def _send(self, client: Client, cid: str, body: str) -> None:
        await client.send({"type": "send", "room": self.room, "body": body, "client_id": cid})


def history(http: str, room: str, user: str = "checker") -> list[dict[str, Any]]:
    """Every stored message of ``room``, oldest first, read through REST page by page."""
    out: list[dict[str, Any]] = []
    after = 0
    while True:
        r = httpx.get(
            f"{http}/api/rooms/{room}/messages", params={"after": after, "limit": 500, "user": user}, timeout=30
        )
        r.raise_for_status()
        page = r.json()["messages"]
        out += page
        if not r.json()["has_more"]:
            return out
        after = page[-1]["seq"]


def check_stored(stored: list[dict[str, Any]], senders: list[Sender]) -> None:
    """Every acked message stored once, at its acked seq; seqs gapless from 1."""
    assert [m["seq"] for m in stored] == list(range(1, len(stored) + 1)), "a gap or a reorder in the stored seqs"
    keys = [(m["from"], m["client_id"]) for m in stored]
    assert len(keys) == len(set(keys)), "a message was stored twice"
    at = {(m["from"], m["client_id"]): m["seq"] for m in stored}
    for s in senders:
        assert not s.conflicts, s.conflicts
        for cid, seq in s.acked.items():
            assert at.get((s.user, cid)) == seq, f"acked {s.user}/{cid} at seq {seq}, stored at {at.get((s.user, cid))}"


class Reader:
    """A client that follows a room on one node and records every message seq it gets, in order."""

    def __init__(self, client: Client, room: str) -> None:
        self.client = client
        self.room = room
        self.seqs: list[int] = []
        self.frames: list[dict[str, Any]] = []
        self.task: asyncio.Task[None] | None = None

    @classmethod
    async def follow(cls, url: str, user: str, room: str) -> Reader:
        reader = cls(await Client.connect(url, user=user), room)
        await reader.client.join(room)
        reader.task = asyncio.create_task(reader._read())
        return reader

    async def _read(self) -> None:
        while True:
            frame = await self.client.recv(3600)
            if frame["type"] == "message" and frame["room"] == self.room:
                self.seqs.append(frame["seq"])
                self.frames.append(frame)

    async def until(self, count: int, timeout: float = 60.0) -> list[int]:
        async with asyncio.timeout(timeout):
            while len(self.seqs) < count:
                if self.task is not None and self.task.done():
                    self.task.result()  # the connection broke: raise why
                await asyncio.sleep(0.05)
        return self.seqs

    async def close(self) -> None:
        if self.task is not None:
            self.task.cancel()
            await asyncio.gather(self.task, return_exceptions=True)
        await self.client.close()
