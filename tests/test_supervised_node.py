"""No silent dead task, in-process: a real Node (SQLite in a temp dir, the memory broker) whose background tasks run
under its supervisor, and a real Worker whose batch fails. Each fault is an exception injected where a bug would
raise it."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from inprocess import node_config

from chatd.broker.base import BrokerEvents, Completion, IngestItem
from chatd.broker.memory import MemoryBroker
from chatd.core.hub import Conn
from chatd.core.node import Node
from chatd.core.worker import Worker
from chatd.errors import Close
from chatd.metrics import Metrics
from chatd.protocol.frames import Message
from chatd.store.base import NewMessage
from chatd.store.sqlite import SQLiteStore

pytestmark = pytest.mark.fast  # in-process: ./scripts/test --fast runs it


@pytest.fixture
async def node(tmp_path: Path) -> AsyncIterator[Node]:
    n = Node(node_config(tmp_path, retention_days=30, heartbeat_interval=0.05, heartbeat_timeout=0.1))
    await n.start()
    yield n
    await n.close()


async def until(cond: Any, timeout: float = 5.0) -> None:
    async with asyncio.timeout(timeout):
        while not cond():
            await asyncio.sleep(0.01)


def crash_counts(node: Node) -> dict[str, float]:
    text = node.metrics.exposition()[0].decode()
    return {
        line.split('task="')[1].split('"')[0]: float(line.rsplit(" ", 1)[1])
        for line in text.splitlines()
        if line.startswith("chatd_task_crashes_total{")
    }


async def test_every_background_task_of_the_node_is_supervised(node: Node) -> None:
    assert set(node.supervisor.crashes()) == {
        "chatd-worker",
        "chatd-heartbeat",
        "chatd-loop-lag",
        "chatd-cluster",
        "chatd-presence",
        "chatd-upload-sweeper",
        "chatd-retention",
        "chatd-webhooks",
    }
    assert all(await node.ready()) and (await node.ready())["tasks"] and node.down_tasks() == []
    assert set(crash_counts(node)) == set(node.supervisor.crashes())  # /metrics lists each, at 0


async def test_a_crashing_task_is_counted_reported_down_by_name_and_restarted(
    node: Node, caplog: pytest.LogCaptureFixture
) -> None:
    broken: list[Close] = []

    def kick(code: Close) -> None:  # a connection whose close raises: the heartbeat meets it first
        broken.append(code)
        raise KeyError("a bug in closing a silent connection")

    conn = Conn(node.hub.next_id(), 999, "ghost", None, 1 << 20, kick, 0.0)
    with caplog.at_level(logging.ERROR, logger="chatd.supervisor"):
        node.hub.register(conn)
        await until(lambda: node.down_tasks() == ["chatd-heartbeat"])
    checks = await node.ready()
    assert checks["tasks"] is False and checks["worker"] is True
    assert crash_counts(node)["chatd-heartbeat"] >= 1
    assert "KeyError" in caplog.text and "chatd-heartbeat" in caplog.text  # with its traceback
    node.hub.unregister(conn)  # the fault goes away: the restarted task stays up
    await until(lambda: node.supervisor.running("chatd-heartbeat") and not node.down_tasks(), timeout=10)
    assert (await node.ready())["tasks"] is True


async def test_a_batch_that_fails_unexpectedly_answers_its_senders_internal_and_the_worker_goes_on(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    store = SQLiteStore(tmp_path / "chatd.db")
    await store.open()
    ann = (await store.create_user("ann", None)).id
    bob = (await store.create_user("bob", None)).id
    await store.create_room("r", False, ann)
    await store.add_member("r", bob)
    broker = MemoryBroker("n/1", 1000, 1 << 20, str(tmp_path / "spill.db"), "n")
    answers: dict[int, Completion] = {}
    await broker.start(BrokerEvents(lambda d: None, lambda c: None))
    named: list[str] = []

    def on_mentions(message: Message, users: list[int]) -> None:
        named.append(message.body)
        if len(named) == 1:
            raise KeyError("a bug in telling bob he was mentioned")

    metrics = Metrics()
    answer = answers.__setitem__
    worker = Worker(broker, store, metrics, 512, lambda c: answer(c.ticket, c), lambda ds: None, on_mentions)
    for ticket, body in enumerate(["@bob look", "two", "three"], start=1):  # queued together: one batch
        await broker.submit(IngestItem(NewMessage("r", ann, f"c{ticket}", body), "n/1", ticket))
    running = asyncio.create_task(worker.run())
    with caplog.at_level(logging.ERROR, logger="chatd.core.worker"):
        await until(lambda: len(answers) == 3)
    assert (answers[1].seq, answers[1].error) == (1, "")  # answered before the fault
    assert [answers[t].error for t in (2, 3)] == ["internal", "internal"]
    assert "resend it with the same client_id" in answers[2].message
    assert metrics.batches_failed == 1 and "KeyError" in caplog.text
    await broker.submit(IngestItem(NewMessage("r", ann, "c4", "four"), "n/1", 4))
    await until(lambda: 4 in answers)
    assert (answers[4].seq, answers[4].error) == (4, "")  # the writer went on (2 and 3 were stored before the fault)
    running.cancel()
    with pytest.raises(asyncio.CancelledError):
        await running
    await broker.close()
    await store.close()
