"""Cluster-wide limits in Redis, for the Redis broker (the contract is in ``chatd.limiter``).

Keys, under ``[broker] namespace`` (``ns``):

- ``ns:limit:<key>``: a hash. A token bucket holds ``k`` (tokens) and ``t`` (when they were counted, Redis ms); a
  failure count holds ``n`` and ``t`` (the last failure). Each expires once it would be full again (a bucket) or
  forgotten (a count), so idle keys cost nothing.
- ``ns:slots:<key>``: a sorted set of holders scored by when their lease ends. A node renews the leases of what it
  holds every third of ``broker.node_timeout``; a dead node's holders drop out when their lease ends.

Every check is one Lua script, so it is atomic however many nodes ask at once, and it reads the clock of Redis, not
of the node, so nodes' clocks need not agree. Bucket takes that arrive while a script is in flight go together in
the next one (one round trip per batch, as group submit does for sends). While Redis cannot be reached, each call
is answered by this node's own limiter (policy ``fallback-local``): limits hold per node until the link is back.
The keys of one script are not in one hash slot, so this needs a single Redis (or a primary with replicas), not
Redis Cluster; the broker needs the same.
"""

from __future__ import annotations

import asyncio
import logging
import math
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any, TypeVar

from redis.exceptions import RedisError

from chatd.limiter import Limiter, LocalLimiter

if TYPE_CHECKING:
    from plugins.redis_broker import RedisBroker

log = logging.getLogger("chatd.broker.redis")

T = TypeVar("T")
UNREACHABLE = (RedisError, OSError, ConnectionError, asyncio.TimeoutError)
BATCH_MAX = 256

# Redis ms from TIME, shared by the scripts.
_NOW = "local t = redis.call('TIME') local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)\n"

# KEYS: buckets; ARGV: rate (per s), burst, cost for each. Returns the ms to wait for each (0: spent).
TAKE = (
    _NOW
    + """
local out = {}
for i, key in ipairs(KEYS) do
  local rate = tonumber(ARGV[i * 3 - 2]) / 1000
  local burst = tonumber(ARGV[i * 3 - 1])
  local cost = tonumber(ARGV[i * 3])
  local v = redis.call('HMGET', key, 'k', 't')
  local tokens = tonumber(v[1]) or burst
  local stamp = tonumber(v[2]) or now
  tokens = math.min(burst, tokens + math.max(0, now - stamp) * rate)
  local need = math.max(cost, 1)
  if tokens >= need then
    tokens = tokens - cost
    out[i] = 0
  else
    out[i] = math.max(1, math.ceil((need - tokens) / rate))
  end
  redis.call('HSET', key, 'k', tostring(tokens), 't', now)
  redis.call('PEXPIRE', key, math.ceil((burst - tokens) / rate) + 1000)
end
return out
"""
)

# KEYS[1]: a count; ARGV[1]: memory (ms). Returns the count after this failure.
STRIKE = (
    _NOW
    + """
local n = redis.call('HINCRBY', KEYS[1], 'n', 1)
redis.call('HSET', KEYS[1], 't', now)
redis.call('PEXPIRE', KEYS[1], ARGV[1])
return n
"""
)

# KEYS[1]: a count. Returns {count, ms since the last failure}.
STRIKES = (
    _NOW
    + """
local v = redis.call('HMGET', KEYS[1], 'n', 't')
if not v[1] then return {0, -1} end
return {tonumber(v[1]), now - tonumber(v[2])}
"""
)

# KEYS[1]: slots; ARGV: holder, limit, lease (ms). Returns 1 if the holder holds a slot now.
HOLD = (
    _NOW
    + """
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now)
if not redis.call('ZSCORE', KEYS[1], ARGV[1]) and redis.call('ZCARD', KEYS[1]) >= tonumber(ARGV[2]) then
  return 0
end
redis.call('ZADD', KEYS[1], now + tonumber(ARGV[3]), ARGV[1])
redis.call('PEXPIRE', KEYS[1], tonumber(ARGV[3]) + 1000)
return 1
"""
)

# KEYS: slots; ARGV: lease (ms), then one holder per key. Extends (or restores) each lease.
RENEW = (
    _NOW
    + """
local lease = tonumber(ARGV[1])
for i, key in ipairs(KEYS) do
  redis.call('ZADD', key, now + lease, ARGV[i + 1])
  redis.call('PEXPIRE', key, lease + 1000)
end
return #KEYS
"""
)


class RedisLimiter(Limiter):
    """Limits shared by every node of a deployment through its Redis (see the module docstring)."""

    scope = "cluster"

    def __init__(self, broker: RedisBroker) -> None:
        self.broker = broker
        self.lease = broker.cfg.node_timeout
        self.local = LocalLimiter()
        self._limit = f"{broker.ns}:limit:"
        self._slots = f"{broker.ns}:slots:"
        self._client: Any = None
        self._scripts: dict[str, Any] = {}
        self._batch: list[tuple[str, float, float, float, asyncio.Future[float]]] = []
        self._batch_ready = asyncio.Event()
        self._held: dict[tuple[str, str], None] = {}  # (key, holder) this node holds, to renew
        self._tasks: list[asyncio.Task[None]] = []
        self._degraded = False
        self.fallbacks = 0

    async def start(self) -> None:
        self._tasks = [
            asyncio.create_task(self._flush_takes(), name="chatd-redis-limits"),
            asyncio.create_task(self._renew_leases(), name="chatd-redis-leases"),
        ]

    async def close(self) -> None:
        for task in self._tasks:
            task.cancel()

    # --- the engine ---------------------------------------------------------------------------------------------

    def _script(self, name: str, lua: str) -> Any:
        client = self.broker.redis
        if client is None:
            raise ConnectionError("the redis broker is not connected")
        if client is not self._client:
            self._client, self._scripts = client, {}
        script = self._scripts.get(name)
        if script is None:
            script = self._scripts[name] = client.register_script(lua)
        return script

    async def _shared(self, call: Callable[[], Awaitable[T]], local: Callable[[], Awaitable[T]]) -> T:
        """``call`` against Redis; while Redis is unreachable, ``local`` instead (``fallback-local``)."""
        if self.broker.ready():
            try:
                result = await call()
            except UNREACHABLE as e:
                self._fall_back(str(e))
            else:
                if self._degraded:
                    self._degraded = False
                    log.info("redis limits: shared by every node again")
                return result
        else:
            self._fall_back("the broker link is down")
        return await local()

    def _fall_back(self, why: str) -> None:
        self.fallbacks += 1
        if not self._degraded:
            self._degraded = True
            log.warning("redis limits: Redis unreachable (%s); each node keeps its own limits meanwhile", why)

    # --- rates --------------------------------------------------------------------------------------------------

    async def take(self, key: str, rate: float, burst: float, cost: float = 1.0) -> float:
        if rate <= 0:
            return 0.0
        return await self._shared(
            lambda: self._queued(key, rate, burst, min(cost, burst)),
            lambda: self.local.take(key, rate, burst, cost),
        )

    async def peek(self, key: str, rate: float, burst: float) -> float:
        if rate <= 0:
            return 0.0
        return await self._shared(
            lambda: self._queued(key, rate, burst, 0.0), lambda: self.local.peek(key, rate, burst)
        )

    async def _queued(self, key: str, rate: float, burst: float, cost: float) -> float:
        done: asyncio.Future[float] = asyncio.get_running_loop().create_future()
        self._batch.append((self._limit + key, rate, burst, cost, done))
        self._batch_ready.set()
        return await done

    async def _flush_takes(self) -> None:
        """Run queued takes, as many per script as queued up while the previous one was in flight."""
        while True:
            await self._batch_ready.wait()
            self._batch_ready.clear()
            while self._batch:
                batch, self._batch = self._batch[:BATCH_MAX], self._batch[BATCH_MAX:]
                args: list[float] = []
                for _, rate, burst, cost, _ in batch:
                    args += [rate, max(1, int(burst)), cost]
                try:
                    waits = await self._script("take", TAKE)(keys=[b[0] for b in batch], args=args)
                except Exception as e:  # noqa: BLE001 - every waiter falls back (``_shared``) or sees it
                    for *_, done in batch:
                        if not done.done():
                            done.set_exception(e if isinstance(e, ConnectionError) else ConnectionError(str(e)))
                    continue
                for (*_, done), wait in zip(batch, waits, strict=True):
                    if not done.done():
                        done.set_result(int(wait) / 1000)

    # --- failure counts -----------------------------------------------------------------------------------------

    async def strike(self, key: str, memory: float) -> int:
        async def shared() -> int:
            return int(await self._script("strike", STRIKE)(keys=[self._limit + key], args=[int(memory * 1000)]))

        return await self._shared(shared, lambda: self.local.strike(key, memory))

    async def strikes(self, key: str) -> tuple[int, float]:
        async def shared() -> tuple[int, float]:
            count, age = await self._script("strikes", STRIKES)(keys=[self._limit + key])
            return (int(count), int(age) / 1000) if int(count) else (0, math.inf)

        return await self._shared(shared, lambda: self.local.strikes(key))

    async def clear(self, key: str) -> None:
        async def shared() -> None:
            assert self.broker.redis is not None
            await self.broker.redis.delete(self._limit + key)

        await self._shared(shared, lambda: self.local.clear(key))

    # --- slots --------------------------------------------------------------------------------------------------

    async def hold(self, key: str, holder: str, limit: int) -> bool:
        async def shared() -> bool:
            lease = int(self.lease * 1000)
            return bool(await self._script("hold", HOLD)(keys=[self._slots + key], args=[holder, limit, lease]))

        held = await self._shared(shared, lambda: self.local.hold(key, holder, limit))
        if held:
            self._held[(key, holder)] = None
        return held

    async def release(self, key: str, holder: str) -> None:
        if (key, holder) not in self._held:
            return
        del self._held[(key, holder)]
        await self.local.release(key, holder)  # held here if it was taken while Redis was away

        async def shared() -> None:
            assert self.broker.redis is not None
            await self.broker.redis.zrem(self._slots + key, holder)

        async def nothing() -> None:
            pass  # unreachable: the lease ends by itself

        await self._shared(shared, nothing)

    async def _renew_leases(self) -> None:
        """Every third of a lease, extend the leases of every slot this node holds (restoring any Redis lost)."""
        while True:
            await asyncio.sleep(self.lease / 3)
            held = list(self._held)
            for i in range(0, len(held), BATCH_MAX):
                chunk = held[i : i + BATCH_MAX]
                try:
                    await self._script("renew", RENEW)(
                        keys=[self._slots + key for key, _ in chunk],
                        args=[int(self.lease * 1000), *(holder for _, holder in chunk)],
                    )
                except Exception as e:  # noqa: BLE001 - retried next round; a lease outlives two missed ones
                    log.debug("redis limits: renewing leases failed: %s", e)
                    break

    def stats(self) -> dict[str, float]:
        return {
            "chatd_limiter_shared": int(not self._degraded),
            "chatd_limiter_fallbacks_total": self.fallbacks,
            "chatd_limiter_slots_held": len(self._held),
        }
