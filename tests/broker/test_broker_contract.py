"""The Broker contract (chatd/broker/base.py), run against every backend: memory, Redis and RabbitMQ.

Each remote test uses the machine's real server under a namespace of its own; the outage tests cut only their
own link (their own redis-server, or their own RabbitMQ connections).
"""

from __future__ import annotations

import asyncio
import secrets
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path

import pytest

import services
from chatd.broker.base import Broker, BrokerEvents, Completion, Control, Delivery, IngestItem, Taken
from chatd.broker.memory import MemoryBroker
from chatd.config import BrokerConfig
from chatd.deploy.procs import free_port
from chatd.registry import load
from chatd.store.base import NewMessage

MakeBroker = Callable[..., Awaitable[Broker]]


class Recorder:
    """A node's side of the callbacks."""

    def __init__(self) -> None:
        self.deliveries: list[Delivery] = []
        self.completions: list[Completion] = []
        self.controls: list[Control] = []
        self.links: list[bool] = []
        self.events = BrokerEvents(
            self.deliveries.append, self.completions.append, self.controls.append, self.links.append
        )


def item(n: int, origin: str = "a/1", room: str = "r") -> IngestItem:
    return IngestItem(NewMessage(room, 1, f"c{n}", f"body {n}"), origin, n)


@pytest.fixture(params=[pytest.param("memory", marks=pytest.mark.fast), "redis", "rabbitmq"])
async def make(request: pytest.FixtureRequest, tmp_path: Path, namespace: str) -> AsyncIterator[MakeBroker]:
    """``await make(name)``: start a broker for a node called ``name`` (a new run each call)."""
    kind = request.param
    url = request.getfixturevalue("redis_url" if kind == "redis" else "rabbit_url") if kind != "memory" else ""
    started: list[Broker] = []

    async def factory(
        name: str = "a", recorder: Recorder | None = None, max_messages: int = 10_000, broker_url: str | None = None
    ) -> Broker:
        run = f"{name}/{secrets.token_hex(3)}"
        broker: Broker
        if kind == "memory":
            broker = MemoryBroker(run, max_messages, 1 << 24, str(tmp_path / f"{name}.spill"), name)
        else:
            cfg = BrokerConfig(
                backend=kind, url=broker_url or url, namespace=namespace, queue_max_messages=max_messages
            )
            broker = load("brokers", kind)(cfg, run, name)
        await broker.start((recorder or Recorder()).events)
        started.append(broker)
        return broker

    factory.kind = kind  # type: ignore[attr-defined]
    yield factory
    for broker in started:
        await broker.close()


async def take_all(broker: Broker, n: int, timeout: float = 10.0) -> list[Taken]:
    taken: list[Taken] = []
    async with asyncio.timeout(timeout):
        while len(taken) < n:
            taken += await broker.take(n - len(taken))
    return taken


async def eventually(check: Callable[[], bool], timeout: float = 10.0) -> None:
    async with asyncio.timeout(timeout):
        while not check():
            await asyncio.sleep(0.02)


async def test_items_are_taken_in_submission_order_and_settled_once(make: MakeBroker) -> None:
    broker = await make("a")
    for n in range(50):
        await broker.submit(item(n, broker.node_id))
    taken = await take_all(broker, 50)
    assert [t.item.ticket for t in taken] == list(range(50))
    assert broker.depth() == (50 if make.kind != "memory" else 0)  # type: ignore[attr-defined]
    await broker.settle(taken)
    assert broker.depth() == 0
    # Nothing is taken twice once settled: the next take gives the next item submitted, and only it (the queue
    # keeps submission order, so anything settled coming back would come first).
    await broker.submit(item(50, broker.node_id))
    assert [t.item.ticket for t in await take_all(broker, 1)] == [50]


async def test_what_a_run_left_unsettled_is_taken_by_the_next_run_of_the_same_node(make: MakeBroker) -> None:
    if make.kind == "memory":  # type: ignore[attr-defined]
        pytest.skip("the memory queue lives in the process; its durable part is the spill (tests/reliability)")
    first = await make("a")
    for n in range(5):
        await first.submit(item(n, first.node_id))
    await take_all(first, 3)  # taken, never settled: the run "crashes"
    await first.close()
    second = await make("a")
    taken = await take_all(second, 5)
    assert [t.item.ticket for t in taken] == list(range(5))
    await second.settle(taken)


async def test_publish_and_broadcast_reach_every_other_node_but_not_the_sender(make: MakeBroker) -> None:
    a, b, c = Recorder(), Recorder(), Recorder()
    ba = await make("a", a)
    bb = await make("b", b)
    await make("c", c)
    deliveries = [Delivery("r", seq, f"m{seq}", ba.node_id) for seq in range(1, 21)]
    await ba.publish(deliveries[:10])
    await ba.publish(deliveries[10:])
    await ba.broadcast(Control("kick-user", ["bob", "4401"], origin=ba.node_id))
    if make.kind == "memory":  # type: ignore[attr-defined]
        assert a.deliveries == [] and a.controls == []  # no other node to reach; never an echo
        return
    for r in (b, c):
        await eventually(lambda r=r: len(r.deliveries) == 20 and len(r.controls) == 1)
        assert r.deliveries == deliveries  # in publish order
        assert r.controls[0].args == ["bob", "4401"]
    # No echo: b publishes a fence once everything reached it; an echo of a's own publishes, sent earlier on the
    # same fan-out (one Redis channel, one RabbitMQ queue per node, each in order), would reach a before it.
    fence = Delivery("fence", 1, "fence", bb.node_id)
    await bb.publish([fence])
    await eventually(lambda: a.deliveries[-1:] == [fence])
    assert a.deliveries == [fence] and a.controls == []


async def test_a_completion_reaches_only_the_node_it_is_addressed_to(make: MakeBroker) -> None:
    if make.kind == "memory":  # type: ignore[attr-defined]
        pytest.skip("one node: completions never leave it")
    a, b, c = Recorder(), Recorder(), Recorder()
    ba = await make("a", a)
    bb = await make("b", b)
    bc = await make("c", c)
    await ba.complete([Completion(bb.node_id, 7, "r", "c7", seq=3, ts=1)])
    await eventually(lambda: len(b.completions) == 1)
    assert b.completions[0].ticket == 7
    # Fences from b, sent after the completion arrived, to a and to c: a stray copy of the completion, sent
    # earlier, would reach them first (each node's one subscription, or queue, delivers in order).
    await bb.complete([Completion(ba.node_id, 8, "r", "c8", seq=4, ts=1), Completion(bc.node_id, 9, "r", "c9", 5, 1)])
    await eventually(lambda: len(a.completions) >= 1 and len(c.completions) >= 1)
    assert [x.ticket for x in a.completions] == [8] and [x.ticket for x in c.completions] == [9]


async def test_submit_waits_at_the_bound_until_items_are_settled(make: MakeBroker) -> None:
    if make.kind == "memory":  # type: ignore[attr-defined]
        pytest.skip("the memory broker's policy at the bound is the spill (tests/broker/test_memory.py)")
    broker = await make("a", max_messages=3)
    for n in range(3):
        await broker.submit(item(n, broker.node_id))
    fourth = asyncio.create_task(broker.submit(item(3, broker.node_id)))
    await asyncio.sleep(0.5)
    assert not fourth.done()  # backpressure: the sender waits
    taken = await take_all(broker, 3)
    await broker.settle(taken)
    await asyncio.wait_for(fourth, 5)
    assert [t.item.ticket for t in await take_all(broker, 1)] == [3]


async def test_redis_lost_and_back_reports_the_link_and_puts_back_unsettled_items(
    tmp_path: Path, namespace: str
) -> None:
    """Our own redis-server, killed and restarted empty (it keeps nothing on disk): the streams are gone."""
    own = services.OwnRedis(tmp_path / "redis", free_port()).start()
    rec = Recorder()
    cfg = BrokerConfig(backend="redis", url=own.url, namespace=namespace)
    broker = load("brokers", "redis")(cfg, "a/1", "a")
    await broker.start(rec.events)
    try:
        for n in range(5):
            await broker.submit(item(n, broker.node_id))
        own.kill()
        await eventually(lambda: rec.links[-1:] == [False])
        assert not broker.ready()
        with pytest.raises(Exception, match="unreachable"):
            await broker.submit(item(99, broker.node_id))  # refused while down: the sender resends later
        own.start()
        await eventually(lambda: rec.links[-1:] == [True], timeout=20)
        taken = await take_all(broker, 5, timeout=20)
        assert sorted(t.item.ticket for t in taken) == list(range(5))  # put back: the sends were never acked
    finally:
        await broker.close()
        own.kill()


async def test_rabbitmq_connections_cut_report_the_link_and_nothing_submitted_is_lost(
    rabbit_url: str, namespace: str
) -> None:
    rec = Recorder()
    cfg = BrokerConfig(backend="rabbitmq", url=rabbit_url, namespace=namespace)
    broker = load("brokers", "rabbitmq")(cfg, "a/1", "a")
    await broker.start(rec.events)
    try:
        for n in range(5):
            await broker.submit(item(n, broker.node_id))
        first = await take_all(broker, 2)  # taken but not settled when the link drops
        assert [t.item.ticket for t in first] == [0, 1]
        assert await asyncio.to_thread(services.close_rabbit_connections, namespace) >= 1
        await eventually(lambda: False in rec.links)
        await eventually(lambda: rec.links[-1:] == [True], timeout=20)
        taken = await take_all(broker, 5, timeout=20)
        assert [t.item.ticket for t in taken] == list(range(5))  # unacked items came back, in order
        await broker.settle(taken)
    finally:
        await broker.close()
