"""The in-process broker on its own: spill order, and a close that writes out what is still staged."""

from __future__ import annotations

import asyncio
from pathlib import Path

from chatd.broker.base import BrokerEvents, IngestItem
from chatd.broker.memory import MemoryBroker
from chatd.broker.spill import SpillFile
from chatd.store.base import NewMessage


def item(n: int) -> IngestItem:
    return IngestItem(NewMessage("r", "u", f"c{n}", "x" * 100), "node", n)


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
