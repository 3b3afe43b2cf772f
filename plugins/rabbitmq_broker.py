"""The RabbitMQ broker (``[broker] backend = "rabbitmq"``, ``pip install 'chatd[rabbitmq]'``), through aio-pika.

Names, all under ``[broker] namespace`` (``ns`` below):

- ``ns.ingest.<node name>``: this node's ingest queue, durable, with ``x-single-active-consumer``: only one
  consumer takes from it at a time, so if a previous run's connection lingers the new run waits its turn
  instead of taking items side by side. Items are published persistent (one message carries the sends that
  queued up together), with publisher confirms (``submit`` returns after the broker confirmed), and acked by
  the worker after the store commit (manual acks). Unacked items go back to the queue when the connection drops
  and are taken again (at least once).
- ``ns.fanout``: a fanout exchange for deliveries, control events and presence; ``ns.direct``: a direct exchange
  for completions, routed by node id. Each run of a node reads both through its own exclusive, auto-deleted
  queue ``ns.node.<node id>``, so a node that is gone leaves nothing behind.

Reconnection is aio-pika's robust connection (every second), which restores channels, queues, bindings and
consumers. Deliveries received on a channel that has closed since are skipped and never acked (a delivery tag
belongs to its channel): RabbitMQ redelivers those items on the new channel, and the store recognises any that
were already stored.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from typing import Any

import aio_pika
from aio_pika.abc import (
    AbstractChannel,
    AbstractExchange,
    AbstractIncomingMessage,
    AbstractRobustConnection,
    ExchangeType,
)
from aiormq.exceptions import ChannelInvalidStateError

from chatd.broker.base import BrokerUnavailable, Taken
from chatd.broker.remote import RemoteBroker, decode_items
from chatd.config import BrokerConfig

log = logging.getLogger("chatd.broker.rabbitmq")


class RabbitMQBroker(RemoteBroker):
    backend = "rabbitmq"

    def __init__(self, cfg: BrokerConfig, node_id: str, node_name: str) -> None:
        super().__init__(cfg, node_id, node_name)
        self.queue_name = f"{self.ns}.ingest.{node_name}"
        self.conn: AbstractRobustConnection | None = None
        self._confirmed: AbstractChannel | None = None  # ingest publishes, with confirms
        self._fast: AbstractChannel | None = None  # fan-out publishes, at most once, no confirms
        self._work: AbstractChannel | None = None  # consumes the ingest queue
        self._listen: AbstractChannel | None = None  # consumes this run's inbox
        self._asking: AbstractChannel | None = None  # asks the queue's length (the sampler, the healer's probe)
        self._fanout: AbstractExchange | None = None
        self._direct: AbstractExchange | None = None
        self._items: asyncio.Queue[AbstractIncomingMessage] = asyncio.Queue()

    async def _connect(self) -> None:
        self.conn = await aio_pika.connect_robust(
            self.cfg.url,
            timeout=5,
            reconnect_interval=1,
            # Named, so an operator (or a test) can tell this deployment's connections apart in rabbitmqctl.
            client_properties={"connection_name": f"chatd {self.ns} {self.node_id}"},
        )
        self.conn.close_callbacks.add(self._on_close)
        self.conn.reconnect_callbacks.add(self._on_reconnect)
        self._confirmed = await self.conn.channel(publisher_confirms=True)
        self._fast = await self.conn.channel(publisher_confirms=False)
        self._fanout = await self._fast.declare_exchange(f"{self.ns}.fanout", ExchangeType.FANOUT, durable=True)
        self._direct = await self._fast.declare_exchange(f"{self.ns}.direct", ExchangeType.DIRECT, durable=True)
        work = self._work = await self.conn.channel()
        # Enough unacked items in flight for two full batches; the rest waits in RabbitMQ, not in this process.
        await work.set_qos(prefetch_count=min(2 * 512, self.cfg.queue_max_messages))
        ingest = await work.declare_queue(self.queue_name, durable=True, arguments={"x-single-active-consumer": True})
        await ingest.consume(self._on_item)
        listen = self._listen = await self.conn.channel()
        await listen.set_qos(prefetch_count=1000)
        inbox = await listen.declare_queue(f"{self.ns}.node.{self.node_id}", exclusive=True, auto_delete=True)
        await inbox.bind(f"{self.ns}.fanout")
        await inbox.bind(f"{self.ns}.direct", routing_key=self.node_id)
        await inbox.consume(self._on_envelope, no_ack=True)

    async def _disconnect(self) -> None:
        if self.conn is not None:
            with contextlib.suppress(Exception):
                await self.conn.close()

    def _on_close(self, _: Any, exc: BaseException | None = None) -> None:
        if not self.closed:
            self.link(False, str(exc) if exc else "connection closed")

    def _on_reconnect(self, _: Any) -> None:
        self.link(True)

    async def _probe(self) -> bool:
        """Up again once the connection and every channel are open and a passive declare of the ingest queue
        round-trips: after a reconnect aio-pika has restored them, and after a hand-over that only timed out (the
        connection stayed up through a slow or blackholed patch) nothing needed restoring at all."""
        conn = self.conn
        if conn is None or conn.is_closed or not conn.connected.is_set():
            return False
        if any(ch is None or ch.is_closed for ch in (self._confirmed, self._fast, self._work, self._listen)):
            return False
        await self._queue_length()
        return True

    # --- ingest -------------------------------------------------------------------------------------------------

    async def _put(self, data: bytes) -> None:
        if self._confirmed is None:
            raise BrokerUnavailable("not connected")
        message = aio_pika.Message(data, delivery_mode=aio_pika.DeliveryMode.PERSISTENT)
        try:
            await self._confirmed.default_exchange.publish(message, routing_key=self.queue_name, timeout=10)
        except Exception as e:
            self.link(False, str(e) or type(e).__name__)
            raise BrokerUnavailable(str(e) or type(e).__name__) from e

    async def _on_item(self, message: AbstractIncomingMessage) -> None:
        self._items.put_nowait(message)

    @staticmethod
    def _stale(message: AbstractIncomingMessage) -> bool:
        """Delivered on a channel that has closed since: RabbitMQ redelivers it, and its tag means nothing now."""
        try:
            return bool(message.channel.is_closed)
        except ChannelInvalidStateError:  # aio-pika refuses to hand out a closed channel
            return True

    async def take(self, max_items: int) -> list[Taken]:
        while True:
            batch = [await self._items.get()]
            while len(batch) < max_items and not self._items.empty():
                batch.append(self._items.get_nowait())
            taken: list[Taken] = []
            for message in batch:
                if self._stale(message):
                    continue
                try:
                    items = decode_items(message.body)
                except Exception:  # noqa: BLE001 - a foreign message must not stop the queue
                    log.error("rabbitmq broker: rejecting an undecodable message in %s", self.queue_name)
                    with contextlib.suppress(Exception):
                        await message.reject(requeue=False)
                    continue
                taken += [Taken(item, message) for item in items]
            if taken:
                return taken

    async def _settle(self, receipts: list[object]) -> None:
        messages: list[AbstractIncomingMessage] = receipts  # type: ignore[assignment]
        current = [m for m in messages if not self._stale(m)]
        if not current:
            return
        # The worker settles in the order it took, so one cumulative ack covers the batch.
        await max(current, key=lambda m: m.delivery_tag or 0).ack(multiple=True)

    async def _queue_length(self) -> float:
        if self.conn is None:
            return 0.0
        if self._asking is None or self._asking.is_closed:
            # A channel of its own: a passive declare that fails closes the channel it ran on.
            self._asking = await self.conn.channel()
        queue = await self._asking.declare_queue(self.queue_name, passive=True)
        return float(queue.declaration_result.message_count or 0)

    # --- fan-out ------------------------------------------------------------------------------------------------

    async def _on_envelope(self, message: AbstractIncomingMessage) -> None:
        self.received_bytes(message.body)

    async def _send_all(self, data: bytes) -> None:
        if self._fanout is None:
            raise BrokerUnavailable("not connected")
        await self._fanout.publish(aio_pika.Message(data), routing_key="")
        self.published += 1

    async def _send_one(self, node_id: str, data: bytes) -> None:
        if self._direct is None:
            raise BrokerUnavailable("not connected")
        await self._direct.publish(aio_pika.Message(data), routing_key=node_id)
