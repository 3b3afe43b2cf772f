"""The Limiter contract (chatd/limiter.py), run against each broker's limiter: the memory broker's (this
process's own) and the Redis broker's (shared through Redis), the latter as two "nodes" on one namespace."""

from __future__ import annotations

import asyncio
import math
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path

import pytest
from test_broker_contract import Recorder, eventually

import services
from chatd.broker.memory import MemoryBroker
from chatd.config import BrokerConfig
from chatd.deploy.procs import free_port
from chatd.limiter import Limiter, LocalLimiter
from chatd.registry import load

MakeLimiter = Callable[[], Awaitable[Limiter]]


@pytest.fixture(params=[pytest.param("memory", marks=pytest.mark.fast), "redis"])
async def make(request: pytest.FixtureRequest, tmp_path: Path, namespace: str) -> AsyncIterator[MakeLimiter]:
    """``await make()`` starts a broker and returns its started limiter; with Redis, each call is another node."""
    brokers = []
    limiters: list[Limiter] = []

    async def factory() -> Limiter:
        if request.param == "memory":
            if limiters:
                return limiters[0]  # one node is the whole deployment
            broker = MemoryBroker("n/1", 100, 1 << 20, str(tmp_path / "spill.db"))
        else:
            url = request.getfixturevalue("redis_url")
            n = len(brokers)
            broker = load("brokers", "redis")(
                BrokerConfig(backend="redis", url=url, namespace=namespace), f"n{n}/1", f"n{n}"
            )
        limiter = broker.limiter()
        await broker.start(Recorder().events)
        await limiter.start()
        brokers.append(broker)
        limiters.append(limiter)
        return limiter

    factory.kind = request.param  # type: ignore[attr-defined]
    yield factory
    for limiter, broker in zip(limiters, brokers, strict=False):
        await limiter.close()
        await broker.close()


async def test_a_bucket_spends_its_burst_then_says_how_long_to_wait(make: MakeLimiter) -> None:
    a, b = await make(), await make()
    assert [await a.take("send:ann", 2.0, 3) for _ in range(2)] == [0.0, 0.0]
    assert await b.peek("send:ann", 2.0, 3) == 0.0  # peeking spends nothing ...
    assert await b.take("send:ann", 2.0, 3) == 0.0  # ... so the third token is still there, on any node
    wait = await a.take("send:ann", 2.0, 3)
    assert 0 < wait <= 0.5 + 0.01  # one token comes back every 1/rate seconds
    assert await b.peek("send:ann", 2.0, 3) > 0
    assert await a.take("send:bob", 2.0, 3) == 0.0  # another key is its own bucket
    assert all([await b.take("anything", 0, 1) == 0.0 for _ in range(10)])  # rate 0: no limit
    await asyncio.sleep(wait + 0.05)
    assert await b.take("send:ann", 2.0, 3) == 0.0  # refilled


async def test_failures_count_up_and_are_forgotten(make: MakeLimiter) -> None:
    a, b = await make(), await make()
    assert await a.strikes("login:x") == (0, math.inf)
    assert [await a.strike("login:x", 0.5), await b.strike("login:x", 0.5)] == [1, 2]
    count, age = await b.strikes("login:x")
    assert count == 2 and 0 <= age < 0.5
    await a.clear("login:x")
    assert (await b.strikes("login:x"))[0] == 0
    await a.strike("login:y", 0.3)
    await asyncio.sleep(0.5)
    assert (await b.strikes("login:y"))[0] == 0  # forgotten ``memory`` after the last failure


async def test_slots_are_capped_and_given_back(make: MakeLimiter) -> None:
    a, b = await make(), await make()
    assert await a.hold("sockets:ann", "a:1", 2) and await b.hold("sockets:ann", "b:1", 2)
    assert not await b.hold("sockets:ann", "b:2", 2)  # full, counting the other node's
    assert await a.hold("sockets:ann", "a:1", 2)  # a holder already in is still in
    await a.release("sockets:ann", "a:1")
    assert await b.hold("sockets:ann", "b:2", 2)
    assert await a.hold("sockets:bob", "a:3", 1)


async def test_concurrent_takes_on_two_nodes_never_overspend(make: MakeLimiter) -> None:
    a, b = await make(), await make()
    waits = await asyncio.gather(*(lim.take("typing:ann", 0.01, 25) for lim in (a, b) for _ in range(40)))
    assert waits.count(0.0) == 25


async def test_a_redis_limiter_falls_back_to_its_node_while_redis_is_away(tmp_path: Path, namespace: str) -> None:
    own = services.OwnRedis(tmp_path / "redis", free_port()).start()
    rec = Recorder()
    broker = load("brokers", "redis")(BrokerConfig(backend="redis", url=own.url, namespace=namespace), "a/1", "a")
    limiter = broker.limiter()
    await broker.start(rec.events)
    await limiter.start()
    try:
        assert limiter.scope == "cluster" and limiter.stats()["chatd_limiter_shared"] == 1
        own.kill()
        await eventually(lambda: rec.links[-1:] == [False])
        # not a free-for-all and not a lockout: this node applies the limit alone
        assert [await limiter.take("send:ann", 1.0, 2) for _ in range(3)][:2] == [0.0, 0.0]
        assert await limiter.take("send:ann", 1.0, 2) > 0
        assert await limiter.hold("sockets:ann", "a:1", 1) and not await limiter.hold("sockets:ann", "a:2", 1)
        assert limiter.stats()["chatd_limiter_shared"] == 0 and limiter.stats()["chatd_limiter_fallbacks_total"] > 0
        own.start()
        await eventually(lambda: rec.links[-1:] == [True], timeout=20)
        assert await limiter.take("send:carl", 1.0, 2) == 0.0
        assert limiter.stats()["chatd_limiter_shared"] == 1
    finally:
        await limiter.close()
        await broker.close()
        own.kill()


async def test_a_local_limiter_remembers_a_bounded_number_of_keys() -> None:
    """A node's per-user buckets used to grow with every user ever seen (``Node._buckets``); now the least recently
    used is forgotten past ``max_keys``, and forgetting an idle bucket costs nothing (it would be full)."""
    limiter = LocalLimiter(max_keys=100)
    for n in range(10_000):
        await limiter.take(f"send:user{n}", 20, 60)
        await limiter.strike(f"login:user{n}", 60)
    assert limiter.stats()["chatd_limiter_keys"] == 200
    assert (await limiter.strikes("login:user0"))[0] == 0  # the oldest went first
    assert (await limiter.strikes("login:user9999"))[0] == 1
