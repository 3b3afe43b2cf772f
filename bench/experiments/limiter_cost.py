"""What a send's rate check costs with each broker's limiter (issue 20 item 6).

    .venv/bin/python bench/experiments/limiter_cost.py [redis://127.0.0.1:6379/0]

With ``limits.send_rate`` on, every send, room change and read mark takes a token from the user's bucket. The
memory broker's limiter does it in this process; the Redis broker's in Redis, batching the takes that arrive while a
script is in flight. Reports, for each: the wall time of one take awaited alone (a client sending one message at a
time), and the wall and CPU time (of this process) per take when 200 are in flight at once (a busy node), over 500
users. ``chatd bench`` runs with ``send_rate = 0`` (a load generator floods on purpose), so it never measures this.
"""

from __future__ import annotations

import asyncio
import secrets
import sys
import time

from chatd.broker.base import BrokerEvents
from chatd.broker.memory import MemoryBroker
from chatd.config import BrokerConfig
from chatd.limiter import Limiter
from chatd.registry import load

ALONE = 2_000
BURSTS = 100
IN_FLIGHT = 200
USERS = 500


async def measure(name: str, limiter: Limiter) -> None:
    start = time.perf_counter()
    for i in range(ALONE):
        await limiter.take(f"send:u{i % USERS}", 1e6, 1e6)
    alone = (time.perf_counter() - start) / ALONE
    wall, cpu = time.perf_counter(), time.process_time()
    for b in range(BURSTS):
        await asyncio.gather(*(limiter.take(f"send:u{(b + i) % USERS}", 1e6, 1e6) for i in range(IN_FLIGHT)))
    n = BURSTS * IN_FLIGHT
    wall, cpu = (time.perf_counter() - wall) / n, (time.process_time() - cpu) / n
    print(
        f"{name:<8} alone: {alone * 1e6:7.1f} µs/take   {IN_FLIGHT} in flight: {wall * 1e6:6.1f} µs wall, "
        f"{cpu * 1e6:6.1f} µs CPU per take ({1 / wall:,.0f} takes/s)"
    )


async def main(url: str) -> None:
    memory = MemoryBroker("m/1", 100, 1 << 20, ":memory:")
    await measure("memory", memory.limiter())
    ns = f"limbench{secrets.token_hex(3)}"
    broker = load("brokers", "redis")(BrokerConfig(backend="redis", url=url, namespace=ns), "b/1", "b")
    limiter = broker.limiter()
    await broker.start(BrokerEvents(lambda d: None, lambda c: None))
    await limiter.start()
    try:
        await measure("redis", limiter)
    finally:
        await limiter.close()
        assert broker.redis is not None
        keys = [k async for k in broker.redis.scan_iter(match=f"{ns}:*")]
        if keys:
            await broker.redis.delete(*keys)
        await broker.close()


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1] if len(sys.argv) > 1 else "redis://127.0.0.1:6379/0"))
