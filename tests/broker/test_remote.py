"""What every networked broker shares (``chatd/broker/remote.py``), on its own: group submit, the bound, the wire
format's echo rule, contained callbacks, link state and healing, putting back what an engine lost.

The engine here is a few lines in this process, so each rule is shown without a network; the real engines (Redis,
RabbitMQ) run the same base under the broker contract (test_broker_contract.py), with outages of their own.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable

import pytest

from chatd.broker.base import BrokerEvents, BrokerUnavailable, Completion, Control, Delivery, IngestItem, Taken
from chatd.broker.remote import RemoteBroker, decode_items
from chatd.config import BrokerConfig
from chatd.store.base import NewMessage

pytestmark = pytest.mark.fast  # in-process: ./scripts/test --fast runs it


class Engine:
    """Queues by node name and a fan-out to every attached broker; ``gate`` holds hand-overs, ``failing`` makes
    them fail, ``up`` is what a probe finds."""

    def __init__(self) -> None:
        self.queues: dict[str, asyncio.Queue[bytes]] = {}
        self.brokers: list[InProcessBroker] = []
        self.puts: list[int] = []  # items per engine message
        self.gate = asyncio.Event()
        self.gate.set()
        self.failing = False
        self.up = True


class InProcessBroker(RemoteBroker):
    backend = "in-process"

    def __init__(self, engine: Engine, name: str, max_messages: int = 10_000) -> None:
        super().__init__(BrokerConfig(queue_max_messages=max_messages), f"{name}/1", name)
        self.engine = engine
        self.settled: list[object] = []

    async def _connect(self) -> None:
        self.engine.brokers.append(self)
        self.engine.queues.setdefault(self.node_name, asyncio.Queue())

    async def _disconnect(self) -> None:
        if self in self.engine.brokers:
            self.engine.brokers.remove(self)

    async def _put(self, data: bytes) -> None:
        await self.engine.gate.wait()
        if self.engine.failing:
            raise ConnectionError("engine gone")
        self.engine.puts.append(len(decode_items(data)))
        self.engine.queues[self.node_name].put_nowait(data)

    async def _settle(self, receipts: list[object]) -> None:
        self.settled += receipts

    async def _send_all(self, data: bytes) -> None:
        for broker in list(self.engine.brokers):
            broker.received_bytes(data)

    async def _send_one(self, node_id: str, data: bytes) -> None:
        for broker in list(self.engine.brokers):
            if broker.node_id == node_id:
                broker.received_bytes(data)

    async def take(self, max_items: int) -> list[Taken]:
        data = await self.engine.queues[self.node_name].get()
        return [Taken(item, data) for item in decode_items(data)]

    async def _probe(self) -> bool:
        return self.engine.up

    async def _queue_length(self) -> float:
        return float(self.engine.queues[self.node_name].qsize())


class Heard:
    def __init__(self, fail_on: Callable[[Delivery], bool] = lambda d: False) -> None:
        self.deliveries: list[Delivery] = []
        self.completions: list[Completion] = []
        self.controls: list[Control] = []
        self.links: list[bool] = []
        self.fail_on = fail_on
        self.events = BrokerEvents(self.deliver, self.completions.append, self.controls.append, self.links.append)

    def deliver(self, d: Delivery) -> None:
        if self.fail_on(d):
            raise RuntimeError("a bug in the node's handler")
        self.deliveries.append(d)


def item(n: int, origin: str = "a/1") -> IngestItem:
    return IngestItem(NewMessage("r", 1, f"c{n}", f"body {n}"), origin, n)


async def idle() -> None:
    """Let every ready task run until none is left to (nothing here waits on I/O or a timer)."""
    for _ in range(20):
        await asyncio.sleep(0)


async def started(engine: Engine, name: str, heard: Heard | None = None, max_messages: int = 10_000) -> InProcessBroker:
    broker = InProcessBroker(engine, name, max_messages)
    await broker.start((heard or Heard()).events)
    return broker


async def test_sends_that_queue_up_during_a_hand_over_go_together_as_one_engine_message() -> None:
    engine = Engine()
    broker = await started(engine, "a")
    try:
        engine.gate.clear()  # the engine is slow to answer the first hand-over
        first = asyncio.create_task(broker.submit(item(0)))
        await idle()
        rest = [asyncio.create_task(broker.submit(item(n))) for n in range(1, 6)]
        await idle()
        assert not first.done() and not any(t.done() for t in rest)  # each submit returns only once held
        engine.gate.set()
        await asyncio.wait_for(asyncio.gather(first, *rest), 5)
        assert engine.puts == [1, 5]
        taken = await broker.take(10) + await broker.take(10)
        assert [t.item.ticket for t in taken] == list(range(6))
    finally:
        await broker.close()


async def test_submit_waits_at_the_bound_until_a_settle_makes_room() -> None:
    engine = Engine()
    broker = await started(engine, "a", max_messages=2)
    try:
        await broker.submit(item(0))
        await broker.submit(item(1))
        third = asyncio.create_task(broker.submit(item(2)))
        await idle()
        assert not third.done() and broker.depth() == 2  # backpressure: the sender waits
        await broker.settle(await broker.take(10))
        await asyncio.wait_for(third, 5)
        assert broker.depth() == 2 and len(broker.settled) == 1
    finally:
        await broker.close()


async def test_a_node_never_hears_itself_and_a_failing_handler_costs_only_its_own_message() -> None:
    engine = Engine()
    a, b = Heard(), Heard(fail_on=lambda d: d.seq == 1)
    ba = await started(engine, "a", a)
    bb = await started(engine, "b", b)
    try:
        await ba.publish([Delivery("r", 1, "m1", ba.node_id), Delivery("r", 2, "m2", ba.node_id)])
        await ba.broadcast(Control("kick-user", ["7", "4401"], origin=ba.node_id))
        await ba.complete([Completion(bb.node_id, 3, "r", "c3"), Completion(ba.node_id, 4, "r", "c4")])
        assert [d.seq for d in b.deliveries] == [2] and bb.callback_errors == 1  # the next one still arrived
        assert [c.args for c in b.controls] == [["7", "4401"]]
        assert [c.ticket for c in b.completions] == [3]  # a completion for its own node never leaves it
        assert a.deliveries == a.controls == a.completions == []
    finally:
        await ba.close()
        await bb.close()


async def test_a_failed_hand_over_answers_unavailable_and_the_healer_brings_the_link_back() -> None:
    engine = Engine()
    heard = Heard()
    broker = await started(engine, "a", heard)
    try:
        engine.failing, engine.up = True, False
        with pytest.raises(BrokerUnavailable):
            await broker.submit(item(0))
        assert heard.links == [True, False] and not broker.ready()
        with pytest.raises(BrokerUnavailable, match="unreachable"):
            await broker.submit(item(1))  # refused at once while down: the sender resends later
        engine.failing, engine.up = False, True
        async with asyncio.timeout(10):
            while heard.links[-1] is not True:
                await asyncio.sleep(0.02)  # the healer's probes back off from 0.1 s
        assert heard.links == [True, False, True] and broker.ready()
        await broker.submit(item(2))
        assert [t.item.ticket for t in await broker.take(10)] == [2]
    finally:
        await broker.close()


async def test_what_the_engine_lost_is_put_back_until_settled() -> None:
    engine = Engine()
    broker = await started(engine, "a")
    try:
        for n in range(3):
            await broker.submit(item(n))
        await broker.settle(await broker.take(1))  # the first message (item 0) is stored
        engine.queues["a"] = asyncio.Queue()  # a Redis without persistence restarted: the queue is gone
        await broker.put_back()
        taken = await broker.take(10)
        assert sorted(t.item.ticket for t in taken) == [1, 2]
    finally:
        await broker.close()
