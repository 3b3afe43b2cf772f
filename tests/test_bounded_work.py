"""Bounded work, counted rather than timed: no store transaction holds more than ``store.batch_max`` items even when
the broker hands over more at once (real Redis, group-submitted stream entries)."""

from __future__ import annotations

import asyncio
from pathlib import Path

from chatd.broker.base import BrokerEvents, Completion, IngestItem
from chatd.config import BrokerConfig
from chatd.metrics import Metrics
from chatd.registry import load
from chatd.store.base import NewMessage
from chatd.store.sqlite import SQLiteStore
from chatd.worker import Worker


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
    running = asyncio.create_task(worker.run())
    async with asyncio.timeout(30):
        while len(answers) < total:
            await asyncio.sleep(0.01)
    running.cancel()
    await asyncio.gather(running, return_exceptions=True)
    hist = metrics.persist_batch
    assert hist.total == total and sorted(c.seq for c in answers.values()) == list(range(1, total + 1))
    over = sum(n for bound, n in zip([*hist.bounds, float("inf")], hist.counts, strict=True) if bound > batch_max)
    assert over == 0, f"a transaction held more than {batch_max} items: {hist.counts}"
    assert hist.count < total / 10  # and they were grouped: a few transactions, not one per item
    await broker.close()
    await store.close()
