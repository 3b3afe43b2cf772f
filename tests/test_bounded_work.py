"""Bounded work, counted rather than timed: no store transaction holds more than ``store.batch_max`` items even when
the broker hands over more at once (real Redis, group-submitted stream entries); retention deletes in chunks with
appends going between them."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import pytest

from chatd.broker.base import BrokerEvents, Completion, IngestItem
from chatd.config import BrokerConfig
from chatd.core.worker import Worker
from chatd.metrics import Metrics
from chatd.registry import load
from chatd.store.base import NewMessage
from chatd.store.sqlite import SQLiteStore
from chatd.supervisor import Supervisor

pytestmark = pytest.mark.fast  # in-process: ./scripts/test --fast runs it


async def test_a_take_larger_than_batch_max_is_stored_in_transactions_of_at_most_batch_max(
    tmp_path: Path, redis_url: str, namespace: str
) -> None:
    store = SQLiteStore(tmp_path / "chatd.db")
    await store.open()
    u = (await store.create_user("u", None)).id
    await store.create_room("r", False, u)
    broker = load("brokers", "redis")(BrokerConfig(backend="redis", url=redis_url, namespace=namespace), "n/1", "n")
    await broker.start(BrokerEvents(lambda d: None, lambda c: None))
    total, batch_max = 600, 100
    # Submitted together: the broker groups them into a few stream entries of up to 256 items each, so one
    # take(batch_max) hands the worker far more than batch_max items.
    await asyncio.gather(
        *(broker.submit(IngestItem(NewMessage("r", u, f"c{i}", f"m{i}"), "n/1", i)) for i in range(total))
    )
    answers: dict[int, Completion] = {}
    metrics = Metrics()
    worker = Worker(broker, store, metrics, batch_max, lambda c: answers.__setitem__(c.ticket, c), lambda ds: None)
    sup = Supervisor()  # as the node runs it: its stop gets the worker out of a blocking Redis read
    sup.start("chatd-worker", worker.run)
    async with asyncio.timeout(30):
        while len(answers) < total:
            await asyncio.sleep(0.01)
    await sup.stop()
    hist = metrics.persist_batch
    assert hist.total == total and sorted(c.seq for c in answers.values()) == list(range(1, total + 1))
    over = sum(n for bound, n in zip([*hist.bounds, float("inf")], hist.counts, strict=True) if bound > batch_max)
    assert over == 0, f"a transaction held more than {batch_max} items: {hist.counts}"
    assert hist.count < total / 10  # and they were grouped: a few transactions, not one per item
    await broker.close()
    await store.close()


class LoggedStore(SQLiteStore):
    """The SQLite store, recording the order of its writes: each retention chunk (with the rows it deleted) and
    each append."""

    def __init__(self, path: Path) -> None:
        super().__init__(path)
        self.log: list[tuple[str, int]] = []
        self.after_first_chunk: asyncio.Task[object] | None = None

    async def purge_prefix(self, room: str, through: int, limit: int) -> tuple[int, int]:
        deleted, done = await super().purge_prefix(room, through, limit)
        self.log.append(("chunk", deleted))
        if self.after_first_chunk is None:
            # A send arrives while retention is under way: it must not wait for the whole pass.
            self.after_first_chunk = asyncio.create_task(self.append([NewMessage("busy", 1, "live", "hello")]))
        return deleted, done

    async def append(self, batch):  # type: ignore[no-untyped-def]
        outcomes = await super().append(batch)
        self.log.append(("append", len(batch)))
        return outcomes


async def test_retention_deletes_in_bounded_chunks_and_appends_go_between_them(tmp_path: Path) -> None:
    from chatd.config import RetentionConfig
    from chatd.features.retention import Retention

    store = LoggedStore(tmp_path / "chatd.db")
    await store.open()
    u = (await store.create_user("u", None)).id
    assert u == 1  # the sender LoggedStore uses
    for room in ("busy", "quiet"):
        await store.create_room(room, False, u)
    await store.append([NewMessage("busy", u, f"b{i}", "old") for i in range(250)])
    await store.append([NewMessage("quiet", u, f"q{i}", "old") for i in range(30)])
    store.log.clear()
    retention = Retention(RetentionConfig(messages_days=1), str(tmp_path / "uploads"), store, chunk=100)
    deleted, _ = await retention.sweep(now=time.time() + 2 * 86400)
    assert deleted == 280
    chunks = [n for kind, n in store.log if kind == "chunk"]
    assert chunks == [100, 100, 50, 30]  # per room, at most a chunk per transaction
    assert store.log.index(("append", 1)) == 1  # the send went right after the first chunk, not after the pass
    assert store.after_first_chunk is not None and (await store.after_first_chunk)[0].seq == 251
    assert await store.purged_through("busy") == 250 and await store.purged_through("quiet") == 30
    await store.close()


async def test_sends_past_pending_sends_max_wait_for_an_answer(tmp_path: Path) -> None:
    from inprocess import node_config

    from chatd.core.node import Node

    node = Node(node_config(tmp_path, pending_sends_max=2))
    await node.start()
    u = (await node.store.create_user("u", None)).id
    await node.store.create_room("r", False, u)
    store_free = asyncio.Event()
    real_append = node.store.append

    async def held_append(batch):  # type: ignore[no-untyped-def]
        await store_free.wait()  # the store is slow: nothing is answered meanwhile
        return await real_append(batch)

    node.store.append = held_append  # type: ignore[method-assign]
    answers: list[Completion] = []

    async def send(n: int) -> None:
        await node.submit(u, "r", f"m{n}", f"c{n}", [], answers.append)

    await send(1)
    await send(2)  # two unanswered: the bound
    third = asyncio.create_task(send(3))
    await asyncio.sleep(0.1)
    assert not third.done() and len(node._tickets) == 2 and node.metrics.pending_sends_waits == 1
    store_free.set()
    await asyncio.wait_for(third, 5)
    async with asyncio.timeout(5):
        while len(answers) < 3:
            await asyncio.sleep(0.01)
    assert sorted(a.seq for a in answers) == [1, 2, 3]
    await node.close()
