"""kill -9 in the middle of a burst: every acked message survives, seq stays gapless, nothing doubles, clients
resume with since, resends are recognised across the restart, and a surviving spill is replayed exactly once."""

from __future__ import annotations

import asyncio
import sqlite3
import time

import msgspec
import websockets

from chatd.broker.base import IngestItem
from harness import ChatdProcess, Client

SENDERS = 5
PER_SENDER = 3000


async def burst_until_killed(
    server: ChatdProcess, room: str, kill_after_acks: int, ready_to_kill=None
) -> tuple[dict[str, int], list[int]]:
    """Blast sends from several clients, kill -9 the server mid-burst; returns (acked client_id → seq, seqs a
    subscribed reader saw before the crash)."""
    senders = [await Client.connect(server.ws, user=f"crash{i}") for i in range(SENDERS)]
    for c in senders:
        await c.join(room)
        await c.send({"type": "leave", "room": room})
        await c.expect("left")
    reader = await Client.connect(server.ws, user="crash_reader")
    await reader.join(room)
    acked: dict[str, int] = {}
    seen: list[int] = []
    killed = asyncio.Event()

    async def send_all(i: int, c: Client) -> None:
        try:
            for n in range(PER_SENDER):
                await c.send({"type": "send", "room": room, "body": f"{i}/{n}", "client_id": f"{i}-{n}"})
        except websockets.ConnectionClosed:
            pass

    async def read_acks(c: Client) -> None:
        try:
            while True:
                f = await c.recv(60)
                if f["type"] == "ack":
                    acked[f["client_id"]] = f["seq"]
                    if (
                        len(acked) >= kill_after_acks
                        and not killed.is_set()
                        and (ready_to_kill is None or ready_to_kill())
                    ):
                        server.kill()
                        killed.set()
        except (TimeoutError, websockets.ConnectionClosed):
            pass

    async def read_messages() -> None:
        try:
            while True:
                f = await reader.recv(60)
                if f["type"] == "message":
                    seen.append(f["seq"])
        except (TimeoutError, websockets.ConnectionClosed):
            pass

    tasks = [asyncio.create_task(read_acks(c)) for c in senders] + [asyncio.create_task(read_messages())]
    await asyncio.gather(*(send_all(i, c) for i, c in enumerate(senders)))
    await asyncio.wait_for(killed.wait(), 60)
    await asyncio.gather(*tasks)
    return acked, seen


def stored(server: ChatdProcess, room: str) -> dict[str, int]:
    db = sqlite3.connect(server.settings["store"]["path"])
    rows = db.execute("SELECT client_id, seq FROM messages WHERE room = ?", (room,)).fetchall()
    assert len(rows) == len({cid for cid, _ in rows}), "a message was stored twice"
    return dict(rows)


async def test_kill_9_mid_burst_loses_no_acked_message_and_clients_resume(make_server) -> None:
    server: ChatdProcess = make_server().start()
    room = "crash-room"
    acked, seen = await burst_until_killed(server, room, kill_after_acks=3000)
    assert server.proc.returncode == -9
    server.start()
    history = stored(server, room)
    missing = [cid for cid in acked if cid not in history]
    assert not missing, f"{len(missing)} acked messages were lost"
    assert all(history[cid] == seq for cid, seq in acked.items()), "an acked seq changed"
    assert sorted(history.values()) == list(range(1, len(history) + 1)), "seq has a gap"
    assert len(history) < SENDERS * PER_SENDER, "the kill should have come mid-burst"
    # The reader saw a gapless prefix before the crash and resumes exactly after it.
    assert seen == list(range(1, len(seen) + 1))
    again = await Client.connect(server.ws, user="crash_reader")
    rest = [m["seq"] for m in await again.resume(room, since=seen[-1] if seen else 0)]
    assert seen + rest == list(range(1, len(history) + 1))

    # Idempotency survives the restart: everything resent is recognised, nothing is stored twice.
    sender = await Client.connect(server.ws, user="crash0")
    mine_acked = sorted((cid for cid in acked if cid.startswith("0-")), key=lambda c: int(c.split("-")[1]))
    mine_stored_unacked = [cid for cid in history if cid.startswith("0-") and cid not in acked]
    for cid in mine_acked[-20:] + mine_stored_unacked[:20]:
        ack = await sender.say(room, "resent", cid)
        assert ack["duplicate"] is True and ack["seq"] == history[cid]
    never_stored = next(f"0-{n}" for n in range(PER_SENDER) if f"0-{n}" not in history)
    fresh = await sender.say(room, "finally", never_stored)
    assert "duplicate" not in fresh and fresh["seq"] == len(history) + 1
    assert len(stored(server, room)) == len(history) + 1


async def test_a_spill_that_survives_a_crash_is_replayed_exactly_once(make_server) -> None:
    server: ChatdProcess = make_server(
        {
            "broker": {"queue_max_messages": 50, "queue_max_bytes": 64 * 1024},
            "store": {"synchronous": "FULL", "batch_max": 8},
        }
    ).start()
    room = "spill-crash"
    spill_path = server.settings["store"]["path"] + ".spill"

    def spill_has_rows() -> bool:
        try:
            db = sqlite3.connect(spill_path)
            return db.execute("SELECT COUNT(*) FROM spill").fetchone()[0] > 200
        except sqlite3.Error:
            return False

    acked, _ = await burst_until_killed(server, room, kill_after_acks=200, ready_to_kill=spill_has_rows)
    db = sqlite3.connect(spill_path)
    decoder = msgspec.msgpack.Decoder(IngestItem)
    spilled = [decoder.decode(blob).msg.client_id for (blob,) in db.execute("SELECT item FROM spill")]
    db.close()
    assert len(spilled) > 200, "the crash should leave a spill behind"
    server.start()
    deadline = time.monotonic() + 60
    while server.metrics()["chatd_ingest_queue_depth"] > 0 and time.monotonic() < deadline:
        await asyncio.sleep(0.1)
    history = stored(server, room)  # asserts no client_id is stored twice
    assert all(cid in history for cid in spilled), "a spilled send was not replayed"
    assert all(history[cid] == seq for cid, seq in acked.items())
    assert sorted(history.values()) == list(range(1, len(history) + 1))
    assert "replaying" in server.log()
    server.stop()
    server.start()  # a second restart replays nothing again
    assert stored(server, room) == history
