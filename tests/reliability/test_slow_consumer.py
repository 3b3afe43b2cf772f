"""A client that stops reading must not slow the others or grow the server's memory; it is cut off with 4008
and, when it resumes with join + since, gets every message in order."""

from __future__ import annotations

import asyncio

import websockets

from harness import ChatdProcess, Client

MESSAGES = 2000
BODY = "s" * 4000
BOUND = 512 * 1024
STEP = 50
# 2000 x 4 KB = 8 MB for the stalled reader: more than the kernel's socket buffers absorb (the server's send
# buffer autotunes up to net.ipv4.tcp_wmem's max, 4 MiB here) plus the outbox bound, so the bound is reached.


async def test_stalled_reader_is_cut_off_while_others_get_everything_then_resumes(make_server) -> None:
    server: ChatdProcess = make_server({"limits": {"outbound_queue_bytes": BOUND}}).start()
    room = "slow-room"
    stalled = await Client.connect(server.ws, user="stalled", rcvbuf=4096)
    await stalled.join(room)
    stalled.stop_reading()
    active = [await Client.connect(server.ws, user=f"active{i}") for i in range(3)]
    for c in active:
        await c.join(room)
    sender = await Client.connect(server.ws, user="sender")
    await sender.join(room)
    await sender.send({"type": "leave", "room": room})
    await sender.expect("left")

    # The sender goes in steps and each step waits until every active reader has it: the active readers keep up
    # (this test client shares one core with them), while the stalled one reads nothing at all.
    got: list[list[int]] = [[] for _ in active]
    for first in range(1, MESSAGES + 1, STEP):
        for n in range(first, first + STEP):
            await sender.send({"type": "send", "room": room, "body": BODY, "client_id": f"m{n}"})
        step = await asyncio.gather(*(c.messages(STEP, timeout=60) for c in active))
        for mine, frames in zip(got, step, strict=True):
            mine += [m["seq"] for m in frames]
    # Every active reader got every message in order while the stalled one had not read a byte.
    for mine in got:
        assert mine == list(range(1, MESSAGES + 1))
    metrics = server.metrics()
    assert metrics["chatd_slow_consumer_closes_total"] == 1
    assert metrics["chatd_outbox_bytes"] <= BOUND * len(active)

    # The stalled client wakes up: it reads what reached it, then finds the connection closed with 4008.
    stalled.resume_reading()
    seen: list[int] = []
    code = None
    try:
        while True:
            f = await stalled.recv(30)
            if f["type"] == "message":
                seen.append(f["seq"])
    except websockets.ConnectionClosed as e:
        code = e.rcvd.code if e.rcvd else None
    assert code in (4008, None)  # the close frame itself may not fit into a full socket before it is dropped
    assert seen == list(range(1, len(seen) + 1)) and len(seen) < MESSAGES
    # It resumes from the last seq it saw and gets the rest, in order, with no gap or duplicate.
    again = await Client.connect(server.ws, user="stalled")
    last = seen[-1] if seen else 0
    rest = [m["seq"] for m in await again.resume(room, since=last)]
    assert seen + rest == list(range(1, MESSAGES + 1))
    for c in [*active, sender, again]:
        await c.close()


async def test_ephemeral_frames_are_shed_before_anyone_is_cut_off(make_server) -> None:
    """A stalled reader's outbox fills with typing frames; they are shed and it is not closed."""
    server: ChatdProcess = make_server({"limits": {"outbound_queue_bytes": 256 * 1024}}).start()
    stalled = await Client.connect(server.ws, user="sleepy", rcvbuf=4096)
    await stalled.join("typing-flood")
    stalled.stop_reading()
    talker = await Client.connect(server.ws, user="talker")
    await talker.join("typing-flood")
    # First fill the kernel's socket buffers with stored messages until the outbox itself starts to hold data.
    sent = 0
    while server.metrics()["chatd_outbox_bytes"] < 16 * 1024:
        for _ in range(25):
            sent += 1
            await talker.send({"type": "send", "room": "typing-flood", "body": "m" * 4000, "client_id": f"t{sent}"})
        await talker.messages(25, timeout=60)
        assert sent < 5000, "the stalled socket never pushed back"
    for _ in range(20_000):  # about 1 MB of typing frames: four times the bound
        await talker.send({"type": "typing", "room": "typing-flood"})
    await talker.send({"type": "ping"})
    await talker.expect("pong", skip=("presence", "typing", "message", "ack", "room"))
    metrics = server.metrics()
    assert metrics["chatd_ephemeral_shed_total"] > 0
    assert metrics["chatd_slow_consumer_closes_total"] == 0
    stalled.resume_reading()
    got = await stalled.messages(sent, timeout=60)  # every stored message still arrives, in order
    assert [m["seq"] for m in got] == list(range(1, sent + 1))
    await stalled.close()
    await talker.close()


async def test_a_message_frame_bigger_than_the_outbox_bound_reaches_a_reader_live_and_on_resume(make_server) -> None:
    # 450 KB message frames with a 128 KiB outbox: before, a reader resuming the room was closed with 4008 each time.
    bound = 128 * 1024
    server: ChatdProcess = make_server(
        {"limits": {"outbound_queue_bytes": bound, "max_frame_bytes": 512 * 1024, "close_frame_bytes": 1024 * 1024}}
    ).start()
    room = "big-frames"
    live = await Client.connect(server.ws, user="live_reader")
    await live.join(room)
    sender = await Client.connect(server.ws, user="big_sender")
    await sender.join(room)
    await sender.send({"type": "leave", "room": room})
    await sender.expect("left")
    bodies = [f"{n}" + "b" * 450_000 for n in range(3)]
    for n, body in enumerate(bodies):
        await sender.say(room, body, f"big{n}")
    assert [m["body"] for m in await live.messages(3, timeout=30)] == bodies
    resumer = await Client.connect(server.ws, user="resumer")
    joined = await resumer.join(room, since=0)
    assert joined["replay"] == 3
    assert [m["body"] for m in await resumer.messages(3, timeout=30)] == bodies
    await resumer.send({"type": "ping"})
    await resumer.expect("pong")  # still open: not closed with 4008
    assert server.metrics()["chatd_slow_consumer_closes_total"] == 0
    for c in (live, sender, resumer):
        await c.close()
