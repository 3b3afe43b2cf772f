"""Batches queued behind one another in the store (``Store.append_depth``): a batch that fails holds the ones behind
it, so one sender's messages are still stored in the order sent, and a stream of appends cannot starve the store's
other writes."""

from __future__ import annotations

import asyncio
import sqlite3
import time
from pathlib import Path

import aiosqlite

from chatd.store.base import AppendSkipped
from chatd.store.writegate import WriteGate
from harness import ChatdProcess, Client

SENDS = 60
POISON = 7  # the send the database refuses

# Slow (so batches queue up behind it on the writer's thread), then refuse: a fault only this message meets.
POISON_TRIGGER = """
CREATE TRIGGER poison BEFORE INSERT ON messages WHEN NEW.client_id = 'm{poison}'
BEGIN
    SELECT count(*) FROM (WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c WHERE x < 2000000)
                          SELECT x FROM c);
    SELECT RAISE(ABORT, 'poisoned');
END
"""


async def test_a_failed_batch_holds_the_batches_behind_it_and_the_senders_order_is_kept(make_server) -> None:
    server: ChatdProcess = make_server({"store": {"batch_max": 3}}).start()
    client = await Client.connect(server.ws, user="orderly")
    await client.join("pipeline")
    with sqlite3.connect(server.settings["store"]["path"]) as db:
        db.execute(POISON_TRIGGER.format(poison=POISON))

    for n in range(SENDS):
        await client.send({"type": "send", "room": "pipeline", "body": f"#{n}", "client_id": f"m{n}"})
    acked: dict[str, int] = {}
    refused: list[dict] = []
    deadline = time.monotonic() + 60
    while len(acked) + len(refused) < SENDS:
        frame = await client.recv(max(0.01, deadline - time.monotonic()))
        if frame["type"] == "ack":
            acked[frame["client_id"]] = frame["seq"]
        elif frame["type"] == "error":
            refused.append(frame)
    await client.close()

    assert [(f["ref"], f["code"]) for f in refused] == [(f"m{POISON}", "internal")]
    # Every other send was stored, in the order it was sent: the batches queued behind the poisoned one were not
    # committed ahead of its good messages.
    order = [f"m{n}" for n in range(SENDS) if n != POISON]
    assert sorted(acked, key=acked.__getitem__) == order
    assert sorted(acked.values()) == list(range(1, SENDS))
    with sqlite3.connect(server.settings["store"]["path"]) as db:
        stored = [r[0] for r in db.execute("SELECT client_id FROM messages WHERE room = 'pipeline' ORDER BY seq")]
    assert stored == order


async def test_appends_queued_behind_a_failed_one_are_skipped_and_other_writes_are_not_starved(
    tmp_path: Path,
) -> None:
    conn = await aiosqlite.connect(tmp_path / "gate.db", isolation_level=None)
    gate = WriteGate()
    ran: list[str] = []

    def job(name: str, fail: bool = False) -> str:
        time.sleep(0.005)  # on the writer's thread, as a commit would be
        ran.append(name)
        if fail:
            raise sqlite3.OperationalError("disk I/O error")
        return name

    try:
        first = asyncio.create_task(gate.append(conn, job, "a", True))
        second = asyncio.create_task(gate.append(conn, job, "b"))
        results = await asyncio.gather(first, second, return_exceptions=True)
        assert isinstance(results[0], sqlite3.OperationalError)
        assert isinstance(results[1], AppendSkipped)
        assert ran == ["a"]
        assert await gate.append(conn, job, "c") == "c"  # nothing queued any more: the next one runs

        # A stream of appends, always two queued, as the worker keeps them under load.
        done = 0
        exclusive_at: int | None = None

        async def stream() -> None:
            nonlocal done
            pending: list[asyncio.Task[str]] = []
            for i in range(200):
                pending.append(asyncio.create_task(gate.append(conn, job, f"s{i}")))
                if len(pending) == 2:
                    await pending.pop(0)
                    done += 1
            await asyncio.gather(*pending)

        async def other_write() -> None:
            nonlocal exclusive_at
            await asyncio.sleep(0.05)
            async with gate.exclusive():
                exclusive_at = done
                await conn.execute("SELECT 1")

        await asyncio.gather(stream(), other_write())
        assert exclusive_at is not None and exclusive_at < 150, f"the other write waited for {exclusive_at} appends"
    finally:
        await conn.close()
