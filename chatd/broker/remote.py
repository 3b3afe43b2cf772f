"""What every networked broker shares: the inter-node wire format, link state, reconnect backoff, and the bound.

A backend (``plugins/redis_broker.py``, ``plugins/rabbitmq_broker.py``) implements only the engine's verbs: put an
item in this node's queue, read items, settle them, send bytes to every node or to one. This class does the rest,
once, so both backends behave alike:

- **Wire format.** Everything nodes send each other is an :class:`Envelope` encoded once with msgpack: deliveries,
  a control event, or completions for one node. A node drops envelopes it sent itself.
- **Link state.** ``link(False)`` / ``link(True)`` from any part of a backend report a change once (log line,
  ``on_link`` callback, ``ready()``); backends retry with :func:`backoff` (capped exponential, with jitter).
  **Every way down has a way back up**: whatever reported the link down (a lost connection, a hand-over that timed
  out while the connection stayed up, a crashed listener), the healer task probes the engine with backoff while it
  is down (:meth:`RemoteBroker._probe`: a round trip, plus every part the backend needs in place) and reports it up
  once the probe passes. No event from the engine, such as a reconnect, is needed to come back.
- **Supervised tasks.** Every background loop (the group submit, the queue sampler, the healer, a backend's
  listeners and watchers) runs under a :class:`~chatd.supervisor.Supervisor`: any exception, not only a link
  error, is logged with its traceback, counted (``chatd_broker_task_crashes_total``) and the loop restarted with
  backoff; ``ready()`` is false while a required one is down. An exception from a node callback while
  dispatching what another node sent is logged and counted (``chatd_broker_callback_errors_total``), and the
  listener goes on with the next callback and the next message.
- **Group submit.** Sends that arrive while the previous hand-over to the engine is in flight go together as one
  engine message (a stream entry, an AMQP message) holding a list of items, the way the worker's group commit
  batches transactions: one round trip per message when idle, one per hundreds under load. Each ``submit``
  still returns only once the engine holds its own item.
- **The bound.** ``submit`` waits while ``queue_max_messages`` of this node's items are unsettled (policy
  ``backpressure``). The unsettled items are kept in memory until settled, so that if the engine lost them (a
  Redis without persistence restarted) the backend can put them back: nothing accepted from a client is dropped
  by the broker, acked or not.
"""

from __future__ import annotations

import abc
import asyncio
import logging
import random
from collections.abc import AsyncIterator, Callable
from typing import Any, Self

import msgspec

from chatd.broker.base import (
    Broker,
    BrokerEvents,
    BrokerUnavailable,
    Completion,
    Control,
    Delivery,
    IngestItem,
    Taken,
)
from chatd.config import BrokerConfig, Config
from chatd.failures import unreachable
from chatd.supervisor import Supervisor

log = logging.getLogger("chatd.broker")

BACKOFF_MAX = 5.0
PROBE_TIMEOUT = 5.0  # seconds one probe of a link reported down may take
# Seconds between probes (and resubscriptions) at most: they are cheap, and a longer wait would be added, whole, to
# every outage (a 3 s outage probed at 0.1, 0.3, 0.7, 1.5, 3.1 s would be noticed over only at 6.3 s with 5 s).
PROBE_MAX = 1.0


class Envelope(msgspec.Struct, array_like=True, frozen=True):
    """One message between nodes."""

    origin: str
    deliveries: list[Delivery] = []
    control: Control | None = None
    completions: list[Completion] = []


_env_enc = msgspec.msgpack.Encoder()
_env_dec = msgspec.msgpack.Decoder(Envelope)
_items_enc = msgspec.msgpack.Encoder()
_items_dec = msgspec.msgpack.Decoder(list[IngestItem])
GROUP_MAX = 256  # items in one engine message


def encode_items(items: list[IngestItem]) -> bytes:
    return _items_enc.encode(items)


def decode_items(data: bytes) -> list[IngestItem]:
    return _items_dec.decode(data)


async def backoff(attempt: int, cap: float = BACKOFF_MAX) -> None:
    """Sleep before retry number ``attempt`` (0-based): 0.1 s doubling to ``cap`` (5 s), with ±20 % jitter."""
    delay = min(0.1 * 2**attempt, cap)
    await asyncio.sleep(delay * random.uniform(0.8, 1.2))


async def retrying(what: str, cap: float = BACKOFF_MAX) -> AsyncIterator[int]:
    """Yield attempt numbers forever, sleeping with backoff between them (``async for attempt in retrying(..)``)."""
    attempt = 0
    while True:
        yield attempt
        await backoff(attempt, cap)
        attempt += 1
        if attempt in (10, 100, 1000):
            log.warning("%s: still retrying (attempt %d)", what, attempt)


class RemoteBroker(Broker):
    """Base of the networked brokers. Subclasses implement the abstract engine verbs below."""

    backend = "remote"
    cluster_wide = True

    @classmethod
    def from_config(cls, cfg: Config, node_id: str, node_name: str) -> Self:
        return cls(cfg.broker, node_id, node_name)

    def __init__(self, cfg: BrokerConfig, node_id: str, node_name: str) -> None:
        self.cfg = cfg
        self.node_id = node_id
        self.node_name = node_name
        self.ns = cfg.namespace
        self.events: BrokerEvents | None = None
        # This node's items not yet settled, by (origin, ticket): what the engine must hold, kept to put back.
        self.unsettled: dict[tuple[str, int], IngestItem] = {}
        self._room = asyncio.Condition()
        self._group: list[tuple[IngestItem, asyncio.Future[None]]] = []
        self._group_ready = asyncio.Event()
        self.tasks = Supervisor()
        self._up = False
        self._down = asyncio.Event()  # set while the link is reported down: the healer's cue
        self.closed = False
        self.reconnects = 0
        self.published = 0
        self.received = 0
        self.callback_errors = 0
        self.engine_queue_length: float | None = None  # this node's queue as the engine counts it, sampled

    # --- link state ---------------------------------------------------------------------------------------------

    def link(self, up: bool, why: str = "") -> None:
        """Report the link's state; only changes are logged and passed on."""
        if up == self._up:
            return
        self._up = up
        if up:
            self._down.clear()
            self.reconnects += 1
            log.info("%s broker: connected", self.backend)
        else:
            self._down.set()
            log.error("%s broker: link lost%s", self.backend, f" ({why})" if why else "")
        if self.events is not None and not self.closed:
            self.events.on_link(up)

    def ready(self) -> bool:
        return self._up and not self.closed and not self.tasks.down()

    async def _heal(self) -> None:
        """While the link is reported down, probe it with backoff; report it up once the probe passes."""
        while True:
            await self._down.wait()
            async for attempt in retrying(f"{self.backend} broker: bringing the link back", PROBE_MAX):
                if self._up or self.closed:
                    break
                try:
                    async with asyncio.timeout(PROBE_TIMEOUT):
                        ok = await self._probe()
                except Exception as e:  # noqa: BLE001 - a probe that fails is the answer "still down"
                    log.debug("%s broker: probe %d failed: %s", self.backend, attempt, e)
                    ok = False
                if ok and not self.closed:
                    self.link(True)
                    break

    @abc.abstractmethod
    async def _probe(self) -> bool:
        """Is the link whole again? A round trip to the engine, and every part this backend needs (connection,
        channels, subscription, consumers) in place; may repair what is cheap to repair. Raising means no."""

    # --- inter-node messages ------------------------------------------------------------------------------------

    def encode(self, **fields: object) -> bytes:
        return _env_enc.encode(Envelope(self.node_id, **fields))  # type: ignore[arg-type]

    def received_bytes(self, data: bytes) -> None:
        """Dispatch an envelope from another node (a backend's listener calls this)."""
        try:
            env = _env_dec.decode(data)
        except msgspec.DecodeError:
            log.warning("%s broker: dropping an undecodable message (%d bytes)", self.backend, len(data))
            return
        if env.origin == self.node_id or self.events is None:
            return
        self.received += 1
        ev = self.events
        for d in env.deliveries:
            self._dispatch(ev.on_delivery, d)
        if env.control is not None:
            self._dispatch(ev.on_control, env.control)
        for c in env.completions:
            self._dispatch(ev.on_complete, c)

    def _dispatch(self, callback: Callable[[Any], None], arg: object) -> None:
        """One callback into the node. Its exception is a bug on this node: logged, counted, and contained, so the
        listener (shared by every room and every node's messages) goes on rather than leaving the node deaf."""
        try:
            callback(arg)
        except Exception:
            self.callback_errors += 1
            log.exception("%s broker: handling %s from another node failed", self.backend, type(arg).__name__)

    async def publish(self, deliveries: list[Delivery]) -> None:
        if deliveries:
            await self._send_all(self.encode(deliveries=deliveries))

    async def broadcast(self, event: Control) -> None:
        await self._send_all(self.encode(control=event))

    async def complete(self, completions: list[Completion]) -> None:
        by_origin: dict[str, list[Completion]] = {}
        for c in completions:
            if c.origin != self.node_id:
                by_origin.setdefault(c.origin, []).append(c)
        for origin, batch in by_origin.items():
            await self._send_one(origin, self.encode(completions=batch))

    # --- ingest -------------------------------------------------------------------------------------------------

    async def submit(self, item: IngestItem) -> None:
        if self.closed:
            raise BrokerUnavailable("the broker is closed")
        if len(self.unsettled) >= self.cfg.queue_max_messages:
            async with self._room:
                await self._room.wait_for(lambda: len(self.unsettled) < self.cfg.queue_max_messages)
        if not self._up:
            raise BrokerUnavailable(f"the {self.backend} broker is unreachable")
        key = (item.origin, item.ticket)
        self.unsettled[key] = item
        done: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._group.append((item, done))
        self._group_ready.set()
        try:
            await done
        except BaseException:
            self.unsettled.pop(key, None)
            raise

    async def _flush_groups(self) -> None:
        """Hand waiting items to the engine, as many per message as queued up meanwhile (group submit)."""
        while True:
            if not self._group:  # checked first: a restart after a crash must not wait for a cue already given
                self._group_ready.clear()
                await self._group_ready.wait()
            while self._group:
                group, self._group = self._group[:GROUP_MAX], self._group[GROUP_MAX:]
                try:
                    await self._put(encode_items([item for item, _ in group]))
                except Exception as e:
                    if not isinstance(e, BrokerUnavailable):
                        self.link(False, str(e) or type(e).__name__)
                    failure = BrokerUnavailable(f"the {self.backend} broker is unreachable")
                    for _, done in group:
                        if not done.done():
                            done.set_exception(failure)
                    continue
                for _, done in group:
                    if not done.done():
                        done.set_result(None)

    async def put_back(self) -> None:
        """The engine lost this node's queue (a restart without persistence): queue the unsettled items again.

        Some may already be stored; the store recognises those as duplicates."""
        items = list(self.unsettled.values())
        if items:
            log.warning("%s broker: the queue was lost; putting back %d unsettled sends", self.backend, len(items))
        for i in range(0, len(items), GROUP_MAX):
            await self._put(encode_items(items[i : i + GROUP_MAX]))

    async def settle(self, taken: list[Taken]) -> None:
        try:
            # Items of one engine message share its receipt: settle each message once.
            await self._settle(list({id(t.receipt): t.receipt for t in taken}.values()))
        finally:
            # Even if settling failed (the item will come again, as a duplicate), this node's send is stored.
            for t in taken:
                self.unsettled.pop((t.item.origin, t.item.ticket), None)
            async with self._room:
                self._room.notify_all()

    def depth(self) -> int:
        return len(self.unsettled)

    def stats(self) -> dict[str, float]:
        out: dict[str, float] = {
            "chatd_broker_unsettled_items": len(self.unsettled),
            "chatd_broker_envelopes_received_total": self.received,
            "chatd_broker_envelopes_published_total": self.published,
            "chatd_broker_callback_errors_total": self.callback_errors,
            "chatd_broker_task_crashes_total": sum(self.tasks.crashes().values()),
        }
        if self.engine_queue_length is not None:
            out["chatd_broker_queue_length"] = self.engine_queue_length
        return out

    async def _sample_queue_length(self) -> None:
        """Every half second, ask the engine how long this node's queue is (for /metrics and the bench's chart)."""
        while not self.closed:
            await asyncio.sleep(0.5)
            try:
                self.engine_queue_length = await self._queue_length()
            except Exception:  # noqa: BLE001 - a sample missed while the link is down
                self.engine_queue_length = None

    @abc.abstractmethod
    async def _queue_length(self) -> float:
        """Engine messages waiting in this node's queue (each may hold several sends)."""

    async def start(self, events: BrokerEvents) -> None:
        self.events = events
        try:
            await self._connect()
        except Exception as e:
            await self.tasks.stop()
            await self._disconnect()
            raise BrokerUnavailable(
                unreachable(f"{self.backend} broker", self.cfg.url, e, "[broker] url (CHATD_BROKER_URL)")
            ) from e
        self.link(True)
        self.tasks.start(f"chatd-{self.backend}-submit", self._flush_groups)
        self.tasks.start(f"chatd-{self.backend}-heal", self._heal)
        self.tasks.start(f"chatd-{self.backend}-length", self._sample_queue_length, required=False)

    async def close(self) -> None:
        self.closed = True
        await self.tasks.stop()
        await self._disconnect()

    # --- engine verbs -------------------------------------------------------------------------------------------

    @abc.abstractmethod
    async def _connect(self) -> None:
        """Connect, declare this node's queue and the fan-out, and start listening."""

    @abc.abstractmethod
    async def _disconnect(self) -> None: ...

    @abc.abstractmethod
    async def _put(self, data: bytes) -> None:
        """Put one engine message (encoded items) in this node's queue; return once the engine holds it."""

    @abc.abstractmethod
    async def _settle(self, receipts: list[object]) -> None: ...

    @abc.abstractmethod
    async def _send_all(self, data: bytes) -> None:
        """Send bytes to every node (at most once)."""

    @abc.abstractmethod
    async def _send_one(self, node_id: str, data: bytes) -> None:
        """Send bytes to one node (at most once)."""

    @abc.abstractmethod
    async def take(self, max_items: int) -> list[Taken]: ...
