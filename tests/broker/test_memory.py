"""The in-process broker on its own: spill order, and a close that writes out what is still staged."""

from __future__ import annotations

import asyncio
import sqlite3
from pathlib import Path

import pytest

from chatd.broker.base import BrokerEvents, IngestItem
from chatd.broker.memory import MemoryBroker
from chatd.broker.spill import SpillFile
from chatd.store.base import NewMessage


def item(n: int) -> IngestItem:
    return IngestItem(NewMessage("r", 1, f"c{n}", "x" * 100), "node", n)


@pytest.mark.fast
async def test_past_the_bound_items_spill_and_come_back_in_arrival_order(tmp_path: Path) -> None:
    broker = MemoryBroker("node", max_messages=3, max_bytes=1 << 20, spill_path=str(tmp_path / "s"))
    await broker.start(BrokerEvents(lambda d: None, lambda c: None))
    for n in range(10):
        await broker.submit(item(n))
    taken: list[int] = []
    while len(taken) < 10:
        batch = await asyncio.wait_for(broker.take(4), 5)
        taken += [t.item.ticket for t in batch]
        await broker.settle(batch)
    assert taken == list(range(10)) and broker.spilled_total == 7
    await asyncio.wait_for(broker.close(), 5)


@pytest.mark.fast
async def test_close_writes_staged_items_to_the_spill_and_returns(tmp_path: Path) -> None:
    path = str(tmp_path / "s")
    broker = MemoryBroker("node", max_messages=1, max_bytes=1 << 20, spill_path=path)
    await broker.start(BrokerEvents(lambda d: None, lambda c: None))
    for n in range(5):
        await broker.submit(item(n))  # one in memory, four staged for the spill
    async with asyncio.timeout(5):  # awaited directly: wait_for would run the close in a task of its own
        await broker.close()
    spill = SpillFile(path)
    await spill.open()
    assert [i.ticket for _, i in await spill.read_after(0, 10)] == [1, 2, 3, 4]
    await spill.close()


async def test_a_failed_spill_append_is_rolled_back_so_the_next_one_works(tmp_path: Path) -> None:
    """A real SQLite fault mid-append: another connection holds the write lock, so the insert fails with "database
    is locked". The failed transaction must not stay open; before, every later append failed with "cannot start a
    transaction within a transaction", the spill writer retried forever and sends blocked for good."""
    path = tmp_path / "s"
    spill = SpillFile(str(path))
    await spill.open()
    other = sqlite3.connect(path, isolation_level=None)
    other.execute("BEGIN IMMEDIATE")  # holds the write lock
    with pytest.raises(sqlite3.OperationalError, match="locked"):
        await spill.append([item(0)])
    other.execute("COMMIT")
    other.close()
    await spill.append([item(1)])  # the fault is gone, and so must be its effects
    assert [i.ticket for _, i in await spill.read_after(0, 10)] == [1]
    await spill.close()


@pytest.mark.fast
async def test_the_broker_is_not_ready_while_spill_appends_fail(tmp_path: Path) -> None:
    broker = MemoryBroker("node", max_messages=1, max_bytes=1 << 20, spill_path=str(tmp_path / "s"))
    await broker.start(BrokerEvents(lambda d: None, lambda c: None))
    conn = broker._spill._conn
    assert conn is not None
    pages = (await conn.fetchall("PRAGMA page_count"))[0][0]
    await conn.execute(f"PRAGMA max_page_count = {pages + 1}")
    await broker.submit(item(0))  # in memory
    await broker.submit(IngestItem(NewMessage("r", 1, "big", "x" * 60_000), "node", 1))  # to the spill: fails
    async with asyncio.timeout(5):
        while broker.ready():
            await asyncio.sleep(0.02)
    await conn.execute("PRAGMA max_page_count = 1000000")
    async with asyncio.timeout(5):
        while not broker.ready():
            await asyncio.sleep(0.02)
    taken = []
    async with asyncio.timeout(5):
        while len(taken) < 2:
            taken += await broker.take(10)
    assert [t.item.ticket for t in taken] == [0, 1]
    await broker.close()
