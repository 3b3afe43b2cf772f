"""Seq is per room, starts at 1, has no gaps; every member sees the room in seq order; per-sender order holds."""

from __future__ import annotations

import asyncio

from harness import ChatdProcess, Client

SENDERS = 12
PER_SENDER = 60


async def test_many_concurrent_senders_get_gapless_seqs_in_sender_order(server: ChatdProcess) -> None:
    room = "order-room"
    senders = [await Client.connect(server.ws, user=f"ord{i}") for i in range(SENDERS)]
    watchers = [await Client.connect(server.ws, user=f"watch{i}") for i in range(3)]
    for c in senders + watchers:
        await c.join(room)

    async def blast(i: int, c: Client) -> list[dict]:
        # Fire every send without waiting for acks, so the server really sees them concurrently.
        for n in range(PER_SENDER):
            await c.send({"type": "send", "room": room, "body": f"{i}:{n}", "client_id": f"{i}-{n}"})
        acks = []
        while len(acks) < PER_SENDER:
            f = await c.recv(20)
            if f["type"] == "ack":
                acks.append(f)
        return acks

    all_acks = await asyncio.gather(*(blast(i, c) for i, c in enumerate(senders)))
    total = SENDERS * PER_SENDER
    seqs = sorted(a["seq"] for acks in all_acks for a in acks)
    assert seqs == list(range(1, total + 1)), "seqs must be exactly 1..N, no gap, no repeat"
    for i, acks in enumerate(all_acks):
        by_cid = {a["client_id"]: a["seq"] for a in acks}
        in_send_order = [by_cid[f"{i}-{n}"] for n in range(PER_SENDER)]
        assert in_send_order == sorted(in_send_order), f"sender {i}'s messages were reordered"

    for w in watchers:
        got = await w.messages(total, timeout=30)
        assert [m["seq"] for m in got] == list(range(1, total + 1)), "a member saw the room out of seq order"
    for c in senders + watchers:
        await c.close()


async def test_rooms_have_independent_seqs(server: ChatdProcess) -> None:
    c = await Client.connect(server.ws, user="multi_room")
    for room in ("indep-a", "indep-b"):
        await c.join(room)
    a1 = await c.say("indep-a", "x", "a1")
    b1 = await c.say("indep-b", "x", "b1")
    a2 = await c.say("indep-a", "x", "a2")
    assert (a1["seq"], b1["seq"], a2["seq"]) == (1, 1, 2)
    await c.close()
