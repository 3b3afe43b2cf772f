"""The Redis broker (``[broker] backend = "redis"``, ``pip install 'chatd[redis]'``), through ``redis.asyncio``.

Keys, all under ``[broker] namespace`` (``ns`` below):

- ``ns:ingest:<node name>``: this node's ingest queue, a stream read through the consumer group ``workers`` by
  the consumer ``<node name>``. ``XADD`` is the durable hand-over (one entry carries the sends that queued up
  together); entries are ``XACK``-ed and ``XDEL``-eted once stored. A restarted node first re-reads its own
  pending entries (``XREADGROUP … 0``), then new ones (``>``).
- ``ns:fanout``: a pub/sub channel every node subscribes to, for deliveries, control events and presence.
- ``ns:node:<node id>``: a pub/sub channel per run of a node, for completions addressed to it.
- ``ns:limit:…`` and ``ns:slots:…``: the deployment's limits (``plugins/redis_limits.py``).
- ``ns:nodes``: a sorted set of node names scored by their last heartbeat (ms), and ``ns:adopt:<name>``: the
  one node draining a dead node's stream (see below).

Redis restarted without persistence loses the streams and the group: the next read sees ``NOGROUP``, the group is
made again and this node's unsettled items are put back (:meth:`RemoteBroker.put_back`). Pub/sub is at most once
by nature; the node catches up from the store when the link comes back.

A node that died and does not come back leaves entries in its stream (sends never acked, whose clients resent them
elsewhere). After ``node_timeout`` without a heartbeat, one live node takes the stream over: it claims the pending
entries with ``XAUTOCLAIM``, reads the rest, stores them (duplicates of resends are recognised as such) and deletes
the stream when it is empty. ``SET ns:adopt:<name> NX PX`` makes sure one node does it at a time.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from typing import Any

import redis.asyncio as aioredis
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import ResponseError
from redis.exceptions import TimeoutError as RedisTimeoutError

from chatd.broker.base import BrokerUnavailable, Taken
from chatd.broker.remote import PROBE_MAX, RemoteBroker, backoff, decode_items
from chatd.config import BrokerConfig
from chatd.limiter import Limiter
from plugins.redis_limits import RedisLimiter

log = logging.getLogger("chatd.broker.redis")

GROUP = "workers"
BLOCK_MS = 1000
HEARTBEAT = 2.0
LINK_ERRORS = (RedisConnectionError, RedisTimeoutError, OSError, asyncio.TimeoutError)


class RedisBroker(RemoteBroker):
    backend = "redis"

    def __init__(self, cfg: BrokerConfig, node_id: str, node_name: str) -> None:
        super().__init__(cfg, node_id, node_name)
        self.stream = f"{self.ns}:ingest:{node_name}"
        self.fanout = f"{self.ns}:fanout"
        self.inbox = f"{self.ns}:node:{node_id}"
        self.nodes_key = f"{self.ns}:nodes"
        self.redis: aioredis.Redis | None = None  # commands
        self.reader: aioredis.Redis | None = None  # blocking reads, on connections of their own
        self._backlog = True  # re-read this consumer's pending entries before new ones
        self._backlog_from: str | bytes = "0"
        self._subscribed = False
        self._adopted: dict[str, str] = {}  # dead node name -> its stream, while this node drains it
        self._released: list[str] = []  # adoption keys to delete
        self.adopted_total = 0

    # --- connection ---------------------------------------------------------------------------------------------

    async def _connect(self) -> None:
        url = self.cfg.url
        self.redis = aioredis.Redis.from_url(url, socket_timeout=5, socket_connect_timeout=3)
        self.reader = aioredis.Redis.from_url(url, socket_timeout=BLOCK_MS / 1000 + 5, socket_connect_timeout=3)
        await self.redis.ping()
        await self._ensure_group(self.stream)
        await self._heartbeat()
        self.tasks.start("chatd-redis-listen", self._listen)
        self.tasks.start("chatd-redis-watch", self._watch)
        for _ in range(100):  # the first subscription, so nothing published right after start is missed
            if self._subscribed:
                break
            await asyncio.sleep(0.02)

    async def _disconnect(self) -> None:
        for client in (self.redis, self.reader):
            if client is not None:
                with contextlib.suppress(Exception):
                    await client.aclose()

    async def _ensure_group(self, stream: str) -> bool:
        """Create the stream's consumer group if missing; True if it was (a new stream, or Redis lost it)."""
        assert self.redis is not None
        try:
            await self.redis.xgroup_create(stream, GROUP, id="0", mkstream=True)
            return True
        except ResponseError as e:
            if "BUSYGROUP" in str(e):
                return False
            raise

    async def _heartbeat(self) -> None:
        assert self.redis is not None
        await self.redis.zadd(self.nodes_key, {self.node_name: int(time.time() * 1000)})

    async def _listen(self) -> None:
        """Subscribe to the fan-out channel and this run's inbox, for the life of the node."""
        assert self.redis is not None
        attempt = 0
        while not self.closed:
            pubsub = self.redis.pubsub()
            try:
                await pubsub.subscribe(self.fanout, self.inbox)
                self._subscribed = True
                attempt = 0
                while True:
                    msg = await pubsub.get_message(ignore_subscribe_messages=True, timeout=1.0)
                    if msg is not None and msg["type"] == "message":
                        self.received_bytes(msg["data"])
            except LINK_ERRORS as e:
                self._subscribed = False
                self.link(False, f"subscription: {e}")
            except Exception as e:
                # Not a link error: a bug. The supervisor logs and restarts this loop; meanwhile fan-out is missed,
                # so the link is down until the healer sees the new subscription (and the node catches up).
                self.link(False, f"subscription: {type(e).__name__}")
                raise
            finally:
                self._subscribed = False
                with contextlib.suppress(Exception):
                    await pubsub.aclose()
            await backoff(attempt, PROBE_MAX)  # the healer waits for this subscription: never long
            attempt += 1

    async def _watch(self) -> None:
        """Heartbeat every couple of seconds, and look for dead nodes' queues every fifth beat."""
        beats = 0
        while not self.closed:
            await asyncio.sleep(HEARTBEAT)
            try:
                await self._heartbeat()
                beats += 1
                if beats % 5 == 0:
                    await self._adopt_dead()
            except LINK_ERRORS as e:
                self.link(False, str(e))
            except ResponseError as e:
                log.warning("redis broker: %s", e)

    async def _probe(self) -> bool:
        """Up again once the listener has its subscription back and a command round-trips."""
        assert self.redis is not None
        if not self._subscribed:
            return False
        # Pooled connections from before the outage are dead; drop them now rather than one failed command at a
        # time, which would report the link down again for each.
        await self.redis.connection_pool.disconnect(inuse_connections=False)
        await self._heartbeat()
        if await self._ensure_group(self.stream):
            await self.put_back()
        self._backlog = True
        return True

    # --- ingest -------------------------------------------------------------------------------------------------

    async def _put(self, data: bytes) -> None:
        assert self.redis is not None
        try:
            await self.redis.xadd(self.stream, {"i": data})
        except LINK_ERRORS as e:
            self.link(False, str(e))
            raise BrokerUnavailable(str(e)) from e

    async def take(self, max_items: int) -> list[Taken]:
        attempt = 0
        while True:
            if self.closed:
                await asyncio.Event().wait()  # a closed broker hands out nothing more
            try:
                taken = await self._read(max_items)
                attempt = 0
                if taken:
                    return taken
                continue
            except LINK_ERRORS as e:
                self.link(False, str(e))
                # The read may have reached Redis and its reply been lost: those entries are pending for this
                # consumer, never seen. Read the pending ones first, or the next new entries would overtake them.
                self._backlog, self._backlog_from = True, "0"
            except ResponseError as e:
                if "NOGROUP" in str(e):
                    await self._recreate()
                else:
                    log.error("redis broker: reading the ingest stream failed: %s", e)
            await backoff(attempt)
            attempt += 1

    async def _recreate(self) -> None:
        """Redis lost the stream (restarted without persistence): make it again and put back what is ours."""
        try:
            await self._ensure_group(self.stream)
            await self.put_back()
            self._backlog = True
        except LINK_ERRORS as e:
            self.link(False, str(e))

    async def _read(self, max_items: int) -> list[Taken]:
        assert self.reader is not None
        for name, stream in list(self._adopted.items()):
            taken = await self._read_adopted(name, stream, max_items)
            if taken:
                return taken
        if self._backlog:
            # This consumer's pending entries (delivered to an earlier run, never acked), walked with a cursor.
            resp: Any = await self.reader.xreadgroup(
                GROUP, self.node_name, {self.stream: self._backlog_from}, count=max_items
            )
            entries = resp[0][1] if resp else []
            if not entries:
                self._backlog = False
                self._backlog_from = "0"
            else:
                self._backlog_from = entries[-1][0]
                return self._decode(self.stream, resp)  # may be empty (deleted entries): the next call reads on
        resp = await self.reader.xreadgroup(GROUP, self.node_name, {self.stream: ">"}, count=max_items, block=BLOCK_MS)
        return self._decode(self.stream, resp)

    def _decode(self, stream: str, resp: Any) -> list[Taken]:
        taken: list[Taken] = []
        if not resp:
            return taken
        for entry_id, fields in resp[0][1]:
            if not fields:  # deleted after delivery: already stored
                continue
            try:
                items = decode_items(fields[b"i"])
            except Exception:  # noqa: BLE001 - a foreign entry must not stop the queue
                log.error("redis broker: dropping an undecodable entry %s in %s", entry_id, stream)
                continue
            receipt = (stream, entry_id)
            taken += [Taken(item, receipt) for item in items]
        return taken

    async def _settle(self, receipts: list[object]) -> None:
        assert self.redis is not None
        by_stream: dict[str, list[bytes]] = {}
        pairs: list[tuple[str, bytes]] = receipts  # type: ignore[assignment]
        for stream, entry_id in pairs:
            by_stream.setdefault(stream, []).append(entry_id)
        async with self.redis.pipeline(transaction=False) as pipe:
            for stream, ids in by_stream.items():
                pipe.xack(stream, GROUP, *ids)
                pipe.xdel(stream, *ids)
            await pipe.execute()

    async def _queue_length(self) -> float:
        assert self.redis is not None
        return float(await self.redis.xlen(self.stream))

    # --- adopting a dead node's stream --------------------------------------------------------------------------

    async def _adopt_dead(self) -> None:
        assert self.redis is not None
        cutoff = int((time.time() - self.cfg.node_timeout) * 1000)
        for raw in await self.redis.zrangebyscore(self.nodes_key, "-inf", cutoff):
            name = raw.decode() if isinstance(raw, bytes) else str(raw)
            if name == self.node_name or name in self._adopted:
                continue
            stream = f"{self.ns}:ingest:{name}"
            if not await self.redis.exists(stream):
                await self.redis.zrem(self.nodes_key, name)
                continue
            ttl = int(self.cfg.node_timeout * 2000)
            if await self.redis.set(f"{self.ns}:adopt:{name}", self.node_name, nx=True, px=ttl):
                log.warning("redis broker: node %s is gone; storing what its queue still holds", name)
                self._adopted[name] = stream
                self.adopted_total += 1
        while self._released:
            await self.redis.delete(self._released.pop())
        for name in list(self._adopted):
            await self.redis.pexpire(f"{self.ns}:adopt:{name}", int(self.cfg.node_timeout * 2000))

    async def _read_adopted(self, name: str, stream: str, max_items: int) -> list[Taken]:
        assert self.redis is not None and self.reader is not None
        score = await self.redis.zscore(self.nodes_key, name)
        if score is not None and score > (time.time() - self.cfg.node_timeout) * 1000:
            log.info("redis broker: node %s is back; leaving its queue to it", name)
            self._release(name)
            return []
        try:
            claimed = await self.redis.xautoclaim(stream, GROUP, self.node_name, 0, count=max_items)
        except ResponseError:  # NOGROUP: the stream is gone
            self._release(name)
            return []
        taken = self._decode(stream, [(stream, claimed[1])])
        if taken:
            return taken
        resp = await self.reader.xreadgroup(GROUP, self.node_name, {stream: ">"}, count=max_items)
        taken = self._decode(stream, resp)
        if not taken and not await self.redis.xlen(stream):
            log.info("redis broker: the queue of node %s is empty; removing it", name)
            await self.redis.delete(stream)
            await self.redis.zrem(self.nodes_key, name)
            self._release(name)
        return taken

    def _release(self, name: str) -> None:
        self._adopted.pop(name, None)
        self._released.append(f"{self.ns}:adopt:{name}")  # deleted by the watch loop

    # --- fan-out ------------------------------------------------------------------------------------------------

    async def _send_all(self, data: bytes) -> None:
        assert self.redis is not None
        try:
            await self.redis.publish(self.fanout, data)
        except LINK_ERRORS as e:
            self.link(False, str(e))
            raise BrokerUnavailable(str(e)) from e
        self.published += 1

    async def _send_one(self, node_id: str, data: bytes) -> None:
        assert self.redis is not None
        await self.redis.publish(f"{self.ns}:node:{node_id}", data)

    def stats(self) -> dict[str, float]:
        return {**super().stats(), "chatd_broker_adopted_queues_total": self.adopted_total}

    def limiter(self) -> Limiter:
        return RedisLimiter(self)
