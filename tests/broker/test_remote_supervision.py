"""No deaf node, whatever the exception: the networked brokers' loops survive exceptions that are not link errors.

Two brokers in this process play two nodes of one namespace on the machine's real Redis or RabbitMQ. The faults are
injected: a node callback that raises (a bug in what the listener calls), and a loop of the broker's own that
crashes. In both cases the node goes on receiving, the crash is counted, and readiness tells the truth.
"""

from __future__ import annotations

import asyncio
import secrets
from collections.abc import AsyncIterator, Awaitable, Callable

import pytest

from chatd.broker.base import Broker, BrokerEvents, Delivery
from chatd.broker.remote import RemoteBroker
from chatd.config import BrokerConfig
from chatd.registry import load

MakeBroker = Callable[[str, BrokerEvents], Awaitable[RemoteBroker]]


@pytest.fixture(params=["redis", "rabbitmq"])
async def make(request: pytest.FixtureRequest, namespace: str) -> AsyncIterator[MakeBroker]:
    kind = request.param
    url = request.getfixturevalue("redis_url" if kind == "redis" else "rabbit_url")
    started: list[Broker] = []

    async def factory(name: str, events: BrokerEvents) -> RemoteBroker:
        cfg = BrokerConfig(backend=kind, url=url, namespace=namespace)
        broker = load("brokers", kind)(cfg, f"{name}/{secrets.token_hex(3)}", name)
        await broker.start(events)
        started.append(broker)
        return broker

    yield factory
    for broker in started:
        await broker.close()


def quiet() -> BrokerEvents:
    return BrokerEvents(lambda d: None, lambda c: None)


async def test_a_callback_that_raises_leaves_the_node_listening_and_ready(make: MakeBroker) -> None:
    got: list[Delivery] = []

    def on_delivery(d: Delivery) -> None:
        if d.room == "boom":
            raise KeyError(d.room)  # the bug reproduced in issue 18: an exception from the node's dispatch
        got.append(d)

    b = await make("b", BrokerEvents(on_delivery, lambda c: None))
    a = await make("a", quiet())
    await asyncio.sleep(0.3)  # b's subscription is in place before a publishes
    await a.publish([Delivery("boom", 1, "x")])
    await a.publish([Delivery("fine", 1, "y"), Delivery("boom", 2, "x"), Delivery("fine", 2, "z")])
    async with asyncio.timeout(10):
        while len(got) < 2:
            await asyncio.sleep(0.02)
    assert [(d.room, d.seq) for d in got] == [("fine", 1), ("fine", 2)]  # the rest of an envelope still arrives
    assert b.ready()
    assert b.stats()["chatd_broker_callback_errors_total"] == 2
    await a.publish([Delivery("fine", 3, "later")])  # and the listener still listens
    async with asyncio.timeout(10):
        while len(got) < 3:
            await asyncio.sleep(0.02)


async def test_a_crashed_listener_is_restarted_counted_and_the_node_caught_up(make: MakeBroker) -> None:
    """The listener itself crashes (not a link error): the supervisor restarts it; meanwhile the link is reported
    down (fan-out was missed, so the node will catch up from the store) and it comes back up by itself."""
    got: list[Delivery] = []
    links: list[bool] = []
    b = await make("b", BrokerEvents(got.append, lambda c: None, on_link=links.append))
    if b.backend != "redis":
        pytest.skip("RabbitMQ's consumers are aio-pika's callbacks, covered by the test above")
    a = await make("a", quiet())
    await asyncio.sleep(0.3)
    links.clear()  # the start's "up"
    dispatch = b.received_bytes
    crashed = False

    def crash_once(data: bytes) -> None:
        nonlocal crashed
        if not crashed:
            crashed = True
            raise RuntimeError("injected: a bug in the listener's own code")
        dispatch(data)

    b.received_bytes = crash_once  # type: ignore[method-assign]
    await a.publish([Delivery("r", 1, "lost to the crash")])
    async with asyncio.timeout(15):
        while links != [False, True]:
            await asyncio.sleep(0.02)
    assert b.stats()["chatd_broker_task_crashes_total"] == 1
    assert b.ready()
    await a.publish([Delivery("r", 2, "after")])
    async with asyncio.timeout(10):
        while not got:
            await asyncio.sleep(0.02)
    assert [d.seq for d in got] == [2]


async def test_redis_entries_whose_delivery_was_lost_are_taken_before_newer_ones(
    namespace: str, redis_url: str
) -> None:
    """Found by the chaos run: Redis delivered an entry (XREADGROUP marked it pending) but the reply was lost when
    the link was cut. Taking new entries (">") before the pending ones would store a later send first."""
    import redis.asyncio as aioredis

    from chatd.bench.faultproxy import FaultProxy
    from chatd.broker.base import IngestItem
    from chatd.broker.remote import encode_items
    from chatd.store.base import NewMessage

    proxy = await FaultProxy("127.0.0.1", 6379).start()
    direct = aioredis.Redis.from_url(redis_url)
    cfg = BrokerConfig(backend="redis", url=f"redis://127.0.0.1:{proxy.port}/0", namespace=namespace)
    b = load("brokers", "redis")(cfg, f"w/{secrets.token_hex(3)}", "w")
    await b.start(quiet())
    stream = b.stream

    def entry(n: int) -> dict[str, bytes]:
        return {"i": encode_items([IngestItem(NewMessage("r", 1, f"c{n}", "x"), b.node_id, n)])}

    async def blocked_read() -> bool:
        return any(c.get("cmd") == "xreadgroup" and "b" in c.get("flags", "") for c in await direct.client_list())

    try:
        proxy.set("delay", 2.0)  # replies from Redis now take 2 s to come back
        taking = asyncio.create_task(b.take(10))
        async with asyncio.timeout(20):
            while not await blocked_read():
                await asyncio.sleep(0.05)
        await direct.xadd(stream, entry(1))  # served to a blocked read (this one or the next); its reply is slow
        # On a loaded machine the read can outlast its socket timeout (2 s each way plus the 1 s block): the broker
        # then reconnects through the same 2 s delay, several round trips, before its next read is served.
        async with asyncio.timeout(45):
            while not (await direct.xpending(stream, "workers"))["pending"]:
                await asyncio.sleep(0.01)
        proxy.set("cut")  # the reply is lost; entry 1 stays pending, never seen by this node
        await direct.xadd(stream, entry(2))
        await asyncio.sleep(0.3)
        proxy.set("pass")
        got: list[int] = []
        async with asyncio.timeout(30):
            got += [t.item.ticket for t in await taking]
            while len(got) < 2:
                got += [t.item.ticket for t in await b.take(10)]
        assert got[:2] == [1, 2], got
    finally:
        await b.close()
        await direct.aclose()
        await proxy.close()
