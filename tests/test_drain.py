"""SIGTERM drains: stop taking sends, store and ack what was taken in, then close sockets with 1001."""

from __future__ import annotations

import asyncio
import sqlite3

import websockets

from harness import ChatdProcess, Client

CLIENTS = 6
BURST = 400


async def test_graceful_drain_stores_every_acked_message_and_closes_with_1001(make_server) -> None:
    # FULL synchronous makes each commit slow, so a backlog is still queued when SIGTERM arrives.
    server: ChatdProcess = make_server({"store": {"synchronous": "FULL", "batch_max": 16}}).start()
    clients = [await Client.connect(server.ws, user=f"drain{i}") for i in range(CLIENTS)]
    for c in clients:
        await c.join("drain-room")

    async def blast(i: int, c: Client) -> None:
        for n in range(BURST):
            await c.send({"type": "send", "room": "drain-room", "body": f"{i}-{n}", "client_id": f"{i}-{n}"})

    await asyncio.gather(*(blast(i, c) for i, c in enumerate(clients)))
    acked: dict[str, int] = {}
    refused = 0

    async def collect(c: Client) -> int | None:
        nonlocal refused
        try:
            while True:
                f = await c.recv(30)
                if f["type"] == "ack":
                    acked[f["client_id"]] = f["seq"]
                elif f["type"] == "error":
                    assert f["code"] == "unavailable", f
                    refused += 1
        except websockets.ConnectionClosed as e:
            return e.rcvd.code if e.rcvd else None

    collectors = [asyncio.create_task(collect(c)) for c in clients]
    await asyncio.sleep(0.05)
    server.proc.send_signal(15)  # SIGTERM while the backlog is being stored
    codes = await asyncio.gather(*collectors)
    assert server.proc.wait(30) == 0
    assert codes == [1001] * CLIENTS
    db = sqlite3.connect(server.settings["store"]["path"])
    stored = dict(db.execute("SELECT client_id, seq FROM messages WHERE room = 'drain-room'").fetchall())
    assert acked, "the test should have seen some acks before the drain"
    missing = {cid for cid in acked if cid not in stored}
    assert not missing, f"{len(missing)} acked messages are not in history"
    assert all(stored[cid] == seq for cid, seq in acked.items())
    # Draining means acking what was taken in: nothing is stored without its ack reaching the sender.
    assert set(stored) == set(acked)
    seqs = sorted(stored.values())
    assert seqs == list(range(1, len(seqs) + 1))
    assert "draining" in server.log() and "stopped" in server.log()


async def test_new_sessions_are_refused_while_draining(make_server) -> None:
    # A reader that has stopped reading keeps the drain busy flushing its outbox (up to drain_timeout),
    # which gives a window in which to try a new session.
    server: ChatdProcess = make_server(
        {"server": {"drain_timeout": 4.0}, "limits": {"outbound_queue_bytes": 64 * 1024 * 1024}}
    ).start()
    stalled = await Client.connect(server.ws, user="stalled", rcvbuf=4096)
    await stalled.join("busy")
    stalled.stop_reading()
    talker = await Client.connect(server.ws, user="talker")
    await talker.join("busy")
    for n in range(400):
        await talker.send({"type": "send", "room": "busy", "body": "x" * 8000, "client_id": f"b{n}"})
    acks = 0
    while acks < 400:
        acks += (await talker.recv(30))["type"] == "ack"
    server.proc.send_signal(15)
    await asyncio.sleep(0.3)
    late = await websockets.connect(server.ws + "?user=latecomer")
    try:
        first = await late.recv()
        raise AssertionError(f"a session was opened during the drain: {first}")
    except websockets.ConnectionClosed as e:
        assert e.rcvd is not None and e.rcvd.code == 1001
    assert server.proc.wait(30) == 0
