"""Retention on a real server: old messages go, clients are told which seqs were deleted (not shown a gap), and
seqs carry on."""

from __future__ import annotations

import asyncio
from collections.abc import Callable

from harness import ChatdProcess, Client


async def test_old_history_is_deleted_and_reported_as_deleted(make_server: Callable[..., ChatdProcess]) -> None:
    # two seconds of history, checked five times a second
    server = make_server({"retention": {"messages_days": 2 / 86400, "interval": 0.2}}).start()
    c = await Client.connect(server.ws, user="keeper")
    await c.join("short-memory")
    for i in range(3):
        await c.say("short-memory", f"old {i}", f"o{i}")
    await asyncio.sleep(3)
    for i in range(2):
        await c.say("short-memory", f"new {i}", f"n{i}")
    await asyncio.sleep(0.6)  # at least one pass with the new messages well inside the two seconds
    await c.close()
    late = await Client.connect(server.ws, user="latecomer")
    joined = await late.join("short-memory", since=0)
    assert joined["deleted_through"] == 3 and joined["seq"] == 5 and joined["replay"] == 2
    assert [m["body"] for m in await late.messages(2)] == ["new 0", "new 1"]
    hist = server.get("/api/rooms/short-memory/messages?user=latecomer").json()
    assert hist["deleted_through"] == 3 and [m["seq"] for m in hist["messages"]] == [4, 5]
    assert (await late.say("short-memory", "after", "a1"))["seq"] == 6
    await late.close()


async def test_without_retention_nothing_is_deleted(make_server: Callable[..., ChatdProcess]) -> None:
    server = make_server().start()
    c = await Client.connect(server.ws, user="hoarder")
    await c.join("forever")
    await c.say("forever", "kept", "k1")
    await c.close()
    other = await Client.connect(server.ws, user="reader")
    joined = await other.join("forever", since=0)
    assert "deleted_through" not in joined and joined["replay"] == 1
    await other.close()
