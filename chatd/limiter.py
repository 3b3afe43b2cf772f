"""Limits that hold across a deployment: rate buckets, failure counts and connection slots behind one interface.

Every limit that protects other people is kept by the node's :class:`Limiter`: the send rate (messages, room
changes, read marks), typing notices, new rooms, uploads, new direct conversations, sign-in attempts and
registrations per client address, failed logins per account and per (account, address), and WebSocket sessions
per user. The broker provides it (:meth:`chatd.broker.base.Broker.limiter`), so the core never asks which backend
runs:

- the memory broker (one node) keeps them in this process, which *is* the whole deployment;
- the Redis broker keeps them in Redis (``plugins/redis_limits.py``), so a user spread over N nodes gets each limit
  once, not N times;
- a broker without a shared counter (RabbitMQ: AMQP has no atomic read-modify-write) keeps them per node, and says
  so (``scope``), and a deployment over it gets each limit once per node a client reaches.

Contract (every implementation):

- ``take(key, rate, burst, cost)``: a token bucket of ``burst`` tokens refilled at ``rate`` per second. Spends
  ``cost`` and answers 0.0 when the tokens are there; otherwise spends nothing and answers the seconds until they
  will be. A rate of 0 or less means no limit. ``peek`` answers the same without spending.
- ``strike(key, memory)`` counts one more failure under ``key`` and answers the count; a count is forgotten
  ``memory`` seconds after its last failure. ``strikes(key)`` answers (count, seconds since the last failure),
  ``(0, inf)`` for none. ``clear(key)`` forgets a key's count.
- ``hold(key, holder, limit)`` takes one of ``limit`` slots for ``holder`` (unique per holder: a session), True
  if one was free; ``release`` gives it back. A holder whose node dies without releasing is freed within a lease
  (``broker.node_timeout``) on a cluster-wide limiter.
- Each call is atomic per key: concurrent callers, on any node, cannot both pass one check.
- A cluster-wide limiter that cannot reach its engine answers from a local one meanwhile (``fallback-local``,
  logged once per outage and counted), so while Redis is away each limit still holds per node, never not at all.
- Memory is bounded: a local limiter remembers at most ``max_keys`` keys of each kind and forgets the least
  recently used first (``evict-lru``); a forgotten bucket is a full one, which an idle key's bucket is anyway.
"""

from __future__ import annotations

import abc
import math
import time
from collections import OrderedDict

from chatd.protocol.limits import TokenBucket

MAX_KEYS = 65_536


class Limiter(abc.ABC):
    """Rate buckets, failure counts and connection slots (see the module docstring for the contract)."""

    scope: str = "node"  # "cluster": every node of a deployment shares the limits; "node": each keeps its own

    async def start(self) -> None:  # noqa: B027 - most limiters have nothing to start
        """Called once the broker has started."""

    async def close(self) -> None:  # noqa: B027
        """Called before the broker closes."""

    @abc.abstractmethod
    async def take(self, key: str, rate: float, burst: float, cost: float = 1.0) -> float: ...

    @abc.abstractmethod
    async def peek(self, key: str, rate: float, burst: float) -> float: ...

    @abc.abstractmethod
    async def strike(self, key: str, memory: float) -> int: ...

    @abc.abstractmethod
    async def strikes(self, key: str) -> tuple[int, float]: ...

    @abc.abstractmethod
    async def clear(self, key: str) -> None: ...

    @abc.abstractmethod
    async def hold(self, key: str, holder: str, limit: int) -> bool: ...

    @abc.abstractmethod
    async def release(self, key: str, holder: str) -> None: ...

    def stats(self) -> dict[str, float]:
        """Gauges and counters for /metrics."""
        return {}


class LocalLimiter(Limiter):
    """The limits kept in this process: exact for a single node, per node otherwise. Never awaits, so each call is
    atomic by itself."""

    def __init__(self, max_keys: int = MAX_KEYS) -> None:
        self.max_keys = max_keys
        self._buckets: OrderedDict[str, TokenBucket] = OrderedDict()
        self._strikes: OrderedDict[str, tuple[int, float, float]] = OrderedDict()  # count, last, memory
        self._held: dict[str, set[str]] = {}  # bounded by the sessions open now

    # --- rates --------------------------------------------------------------------------------------------------

    def _bucket(self, key: str, rate: float, burst: float, now: float) -> TokenBucket:
        b = self._buckets.get(key)
        if b is None:
            b = self._buckets[key] = TokenBucket(rate, max(1, int(burst)), now)
            if len(self._buckets) > self.max_keys:
                self._buckets.popitem(last=False)
        else:
            self._buckets.move_to_end(key)
            b.rate, b.burst = rate, float(max(1, int(burst)))  # a changed setting applies at once
        return b

    def take_now(self, key: str, rate: float, burst: float, cost: float = 1.0) -> float:
        """``take``, synchronously (this limiter never waits on anything)."""
        if rate <= 0:
            return 0.0
        now = time.monotonic()
        b = self._bucket(key, rate, burst, now)
        cost = min(cost, b.burst)
        if b.take(now, cost):
            return 0.0
        return max((cost - b.tokens) / rate, 0.001)

    async def take(self, key: str, rate: float, burst: float, cost: float = 1.0) -> float:
        return self.take_now(key, rate, burst, cost)

    async def peek(self, key: str, rate: float, burst: float) -> float:
        if rate <= 0:
            return 0.0
        now = time.monotonic()
        b = self._bucket(key, rate, burst, now)
        b.take(now, 0.0)  # refill up to now
        return b.retry_after()

    # --- failure counts -----------------------------------------------------------------------------------------

    def _live(self, key: str, now: float) -> tuple[int, float, float] | None:
        found = self._strikes.get(key)
        if found is not None and now - found[1] > found[2]:
            del self._strikes[key]
            return None
        return found

    async def strike(self, key: str, memory: float) -> int:
        now = time.monotonic()
        found = self._live(key, now)
        count = (found[0] if found else 0) + 1
        self._strikes[key] = (count, now, memory)
        self._strikes.move_to_end(key)
        if len(self._strikes) > self.max_keys:
            self._strikes.popitem(last=False)
        return count

    async def strikes(self, key: str) -> tuple[int, float]:
        now = time.monotonic()
        found = self._live(key, now)
        return (found[0], now - found[1]) if found else (0, math.inf)

    async def clear(self, key: str) -> None:
        self._strikes.pop(key, None)

    # --- slots --------------------------------------------------------------------------------------------------

    def hold_now(self, key: str, holder: str, limit: int) -> bool:
        held = self._held.setdefault(key, set())
        if holder in held:
            return True
        if len(held) >= limit:
            if not held:
                del self._held[key]
            return False
        held.add(holder)
        return True

    async def hold(self, key: str, holder: str, limit: int) -> bool:
        return self.hold_now(key, holder, limit)

    async def release(self, key: str, holder: str) -> None:
        held = self._held.get(key)
        if held is not None:
            held.discard(holder)
            if not held:
                del self._held[key]

    def stats(self) -> dict[str, float]:
        return {"chatd_limiter_keys": len(self._buckets) + len(self._strikes)}
