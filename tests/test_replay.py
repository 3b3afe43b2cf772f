"""join + since replays history before live messages with no gap and no duplicate at the seam."""

from __future__ import annotations

import asyncio

from harness import ChatdProcess, Client


async def test_replay_while_live_messages_keep_arriving(server: ChatdProcess) -> None:
    room = "replay-live"
    writer = await Client.connect(server.ws, user="replay_writer")
    await writer.join(room)
    for n in range(1, 151):
        await writer.send({"type": "send", "room": room, "body": f"m{n}", "client_id": f"pre{n}"})
    stop = asyncio.Event()
    sent = 150

    async def keep_writing() -> None:
        nonlocal sent
        while not stop.is_set():
            sent += 1
            await writer.send({"type": "send", "room": room, "body": f"m{sent}", "client_id": f"live{sent}"})
            await asyncio.sleep(0.002)

    task = asyncio.create_task(keep_writing())
    await asyncio.sleep(0.05)
    readers = []
    for since in (0, 40, 120):  # several readers resume from different points while the writer goes on
        r = await Client.connect(server.ws, user=f"replay_reader{since}")
        joined = await r.join(room, since=since)
        readers.append((since, r, joined))
        await asyncio.sleep(0.03)
    await asyncio.sleep(0.2)
    stop.set()
    await task
    acks = 0
    while acks < sent:  # everything the writer sent is stored before we count
        if (await writer.recv(20))["type"] == "ack":
            acks += 1
    for since, r, joined in readers:
        got = await r.messages(sent - since, timeout=30)
        seqs = [m["seq"] for m in got]
        assert seqs == list(range(since + 1, sent + 1)), f"reader since={since} saw a gap or duplicate"
        assert joined["replay"] >= 1 and not joined.get("capped")
        await r.send({"type": "ping"})
        assert (await r.expect("pong", skip=("presence", "ping", "typing", "room")))["type"] == "pong"  # and no extras
        await r.close()
    await writer.close()


async def test_join_without_since_gets_only_live_messages(server: ChatdProcess) -> None:
    room = "no-since"
    w = await Client.connect(server.ws, user="ns_writer")
    await w.join(room)
    await w.say(room, "old", "o1")
    r = await Client.connect(server.ws, user="ns_reader")
    assert (await r.join(room))["seq"] == 1
    await w.say(room, "new", "n1")
    (msg,) = await r.messages(1)
    assert msg["body"] == "new" and msg["seq"] == 2


async def test_replay_is_capped_and_the_client_continues_with_another_join(make_server) -> None:
    server = make_server({"rooms": {"replay_max": 10}}).start()
    w = await Client.connect(server.ws, user="cap_writer")
    await w.join("capped")
    for n in range(1, 26):
        await w.say("capped", f"m{n}", f"c{n}")
    r = await Client.connect(server.ws, user="cap_reader")
    seen: list[int] = []
    since = 0
    rounds = 0
    while True:
        rounds += 1
        joined = await r.join("capped", since=since)
        got = await r.messages(joined["replay"])
        seen += [m["seq"] for m in got]
        if not joined.get("capped"):
            break
        assert joined["replay"] == 10
        since = got[-1]["seq"]
    assert seen == list(range(1, 26)) and rounds == 3
    await w.say("capped", "live", "c26")
    (live,) = await r.messages(1)
    assert live["seq"] == 26  # live delivery started once the replay was not capped
