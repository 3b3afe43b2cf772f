"""The persist worker: ingest queue → store (group commit) → acks and fan-out.

One worker task per node drains the broker's ingest queue. Whatever has queued up while the previous transaction
was committing becomes the next batch (up to ``store.batch_max``), so the commit rate adapts to load: one
transaction per message when idle, hundreds per transaction under a burst.

Order of effects for each batch: commit, then completions (acks) to the senders' nodes, then fan-out of the new
messages, then ``settle`` so the broker forgets the items. A crash anywhere before the commit loses nothing that
was acked (nothing was); a crash after it at worst re-takes items the store will recognise as duplicates.
"""

from __future__ import annotations

import asyncio
import logging
import time

from chatd.broker.base import Broker, Completion, Delivery, IngestItem
from chatd.errors import ChatError, Err
from chatd.metrics import Metrics
from chatd.protocol.frames import Message, encode
from chatd.store.base import Outcome, Store

log = logging.getLogger("chatd.worker")


class Worker:
    def __init__(self, broker: Broker, store: Store, metrics: Metrics, batch_max: int) -> None:
        self.broker = broker
        self.store = store
        self.metrics = metrics
        self.batch_max = batch_max
        self.busy = False
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="chatd-worker")

    def alive(self) -> bool:
        return self._task is not None and not self._task.done()

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            try:
                await self._task
            except asyncio.CancelledError:
                pass

    async def drained(self) -> None:
        """Wait until the ingest queue is empty and no batch is in flight."""
        while self.broker.depth() or self.busy:
            await asyncio.sleep(0.01)

    async def _run(self) -> None:
        while True:
            batch = await self.broker.take(self.batch_max)
            self.busy = True
            try:
                await self._process(batch)
            finally:
                self.busy = False

    async def _process(self, batch: list[IngestItem]) -> None:
        delay = 0.05
        while True:
            started = time.perf_counter()
            try:
                outcomes: list[Outcome | ChatError] = list(await self.store.append([i.msg for i in batch]))
                break
            except ChatError:
                # One bad item (say, its room vanished) must not sink its neighbours: store them one by one.
                outcomes = [await self._append_one(item) for item in batch]
                break
            except Exception:
                # The store is unwell (disk full, connection lost). Nothing in this batch has been acked, so hold
                # it and retry; the bounded ingest queue (and its spill) absorbs the wait.
                log.exception("store append failed for %d messages; retrying in %.2fs", len(batch), delay)
                await asyncio.sleep(delay)
                delay = min(delay * 2, 2.0)
        self.metrics.persist_seconds.observe(time.perf_counter() - started)
        self.metrics.persist_batch.observe(len(batch))
        completions: list[Completion] = []
        deliveries: list[Delivery] = []
        for item, out in zip(batch, outcomes, strict=True):
            m = item.msg
            if isinstance(out, ChatError):
                completions.append(
                    Completion(item.origin, item.ticket, m.room, m.client_id, error=out.err.code, message=out.message)
                )
                continue
            completions.append(
                Completion(item.origin, item.ticket, m.room, m.client_id, out.seq, out.ts, out.duplicate)
            )
            if out.duplicate:
                self.metrics.duplicates += 1
                continue
            self.metrics.messages_stored += 1
            text = encode(
                Message(
                    room=m.room,
                    seq=out.seq,
                    from_=m.sender,
                    body=m.body,
                    client_id=m.client_id,
                    ts=out.ts,
                    attachments=m.attachments,
                )
            )
            deliveries.append(Delivery(m.room, out.seq, text, item.origin))
        await self.broker.complete(completions)
        if deliveries:
            await self.broker.publish(deliveries)
        await self.broker.settle(batch)

    async def _append_one(self, item: IngestItem) -> Outcome | ChatError:
        try:
            return (await self.store.append([item.msg]))[0]
        except ChatError as e:
            return e
        except Exception as e:  # noqa: BLE001 - reported to the sender, who may resend with the same client_id
            log.exception("could not store message %s/%s", item.msg.room, item.msg.client_id)
            return ChatError(Err.INTERNAL, f"could not store the message: {type(e).__name__}")
