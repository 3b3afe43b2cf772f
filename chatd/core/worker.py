"""The persist worker: this node's ingest queue → store (group commit) → acks and fan-out.

One worker task per node drains the node's own ingest queue. Whatever has queued up while the previous transaction
was committing becomes the next batch (up to ``store.batch_max``), so the commit rate adapts to load: one
transaction per message when idle, hundreds per transaction under a burst.

Order of effects for each batch: commit, then completions (acks), then fan-out of the stored messages (to this
node's hub directly, to the other nodes through the broker), then ``settle`` so the broker forgets the items. A
crash anywhere before the commit loses nothing that was acked (nothing was); a crash after it at worst re-takes
items the store recognises as duplicates, whose stored message is fanned out again (hubs drop repeats by seq), so a
crash between commit and publish cannot leave other nodes without the message.

A store that fails (connection lost, disk full) holds the batch: it is retried with capped backoff, the node reports
not ready, and new sends wait in the bounded ingest queue. A message the store refuses outright (not a transient
fault) is answered ``internal`` on its own so it cannot block the ones behind it.

No transaction holds more than ``store.batch_max`` items: a broker's ``take`` may hand over more (a Redis stream
entry or AMQP message carries a whole group submit), and such a batch is stored in chunks, each committed, answered
and fanned out before the next; the batch is settled once all its chunks are.

Any other exception while a batch is processed (a bug, anywhere from the append to the fan-out) is logged with its
traceback and counted (``chatd_batches_failed_total``); every item of the batch not yet answered is answered
``internal`` (it may or may not be stored: a resend with the same client_id is safe), the batch is settled, and
the worker goes on with the next. The worker runs under the node's supervisor, which restarts it should anything
escape even that.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable, Sequence

from chatd.broker.base import Broker, Completion, Delivery, Taken
from chatd.errors import Err, internal_message, log_fault
from chatd.metrics import Metrics
from chatd.protocol.frames import Message, encode
from chatd.store.base import NewMessage, Outcome
from chatd.store.roles import MessageStore

log = logging.getLogger("chatd.core.worker")

RETRY_MAX = 2.0  # seconds between attempts while the store is down


class Worker:
    def __init__(
        self,
        broker: Broker,
        store: MessageStore,  # append and transient: the worker's whole use of the store
        metrics: Metrics,
        batch_max: int,
        complete_local: Callable[[Completion], None],
        deliver_local: Callable[[list[Delivery]], None],
        on_mentions: Callable[[Message, list[int]], None] = lambda message, users: None,
        on_released: Callable[[list[str]], Awaitable[None]] | None = None,
    ) -> None:
        self.broker = broker
        self.store = store
        self.metrics = metrics
        self.batch_max = batch_max
        self.complete_local = complete_local
        self.deliver_local = deliver_local
        self.on_mentions = on_mentions
        # Removes the files of uploads that deletes released (their records went with the delete's transaction).
        self.on_released = on_released
        self.busy = False
        self.store_ok = True

    async def run(self) -> None:
        """Take batches and store them, for the life of the node (run under the node's supervisor)."""
        while True:
            try:
                batch = await self.broker.take(self.batch_max)
            except Exception:
                # A backend bug must not leave the node deaf while it keeps accepting sends: log, wait, go on.
                log.exception("taking from the ingest queue failed; retrying in 1s")
                await asyncio.sleep(1.0)
                continue
            self.busy = True
            answered: set[int] = set()
            try:
                for start in range(0, len(batch), self.batch_max):
                    await self._process(batch[start : start + self.batch_max], answered, start)
            except Exception:  # noqa: BLE001 - the batch's senders are answered below; the writer goes on
                await self._failed(batch, answered)
            finally:
                self.busy = False
            await self._settle(batch)

    async def _failed(self, batch: list[Taken], answered: set[int]) -> None:
        """A batch failed unexpectedly: answer each item not answered yet ``internal``, so no sender waits on it."""
        incident = log_fault(log, f"storing a batch of {len(batch)} sends")
        self.metrics.batches_failed += 1
        text = f"{internal_message(incident)}; the message may not be stored: resend it with the same client_id"
        remote: list[Completion] = []
        for i, taken in enumerate(batch):
            if i in answered:
                continue
            item = taken.item
            c = Completion(
                item.origin, item.ticket, item.msg.room, item.msg.client_id, error=Err.INTERNAL.code, message=text
            )
            if c.origin == self.broker.node_id:
                self.complete_local(c)
            else:
                remote.append(c)
        if remote:
            try:
                await self.broker.complete(remote)
            except Exception as e:  # noqa: BLE001 - at most once: those senders resend with the same client_id
                log.warning("could not answer %d sends of other nodes: %s", len(remote), e)

    async def _settle(self, batch: list[Taken]) -> None:
        # Best effort: an item left unsettled is taken again and recognised as a duplicate.
        try:
            await self.broker.settle(batch)
        except Exception as e:  # noqa: BLE001 - the broker reports its own link state; nothing acked is at risk
            log.warning("after storing %d messages, the broker failed to settle them: %s", len(batch), e)

    async def _process(self, batch: list[Taken], answered: set[int], offset: int) -> None:
        """Store one chunk (at most batch_max items) in one transaction, answer its senders, fan it out. Each item
        answered is added to ``answered`` (by its index in the whole batch: the chunk starts at ``offset``)."""
        started = time.perf_counter()
        outcomes = await self._append([t.item.msg for t in batch])
        self.metrics.persist_seconds.observe(time.perf_counter() - started)
        self.metrics.persist_batch.observe(len(batch))
        node = self.broker.node_id
        remote: list[Completion] = []
        deliveries: list[Delivery] = []
        released = [upload_id for out in outcomes if not out.duplicate for upload_id in out.released]
        for i, (taken, out) in enumerate(zip(batch, outcomes, strict=True)):
            item = taken.item
            m = item.msg
            c = Completion(
                item.origin, item.ticket, m.room, m.client_id, out.seq, out.ts, out.duplicate, out.error, out.message
            )
            if c.origin == node:
                self.complete_local(c)
            else:
                remote.append(c)
            answered.add(offset + i)
            delivery = self._delivery(item.origin, m, out)
            if delivery is not None:
                deliveries.append(delivery)
        if deliveries:
            self.deliver_local(deliveries)
        if released and self.on_released is not None:
            try:
                await self.on_released(released)
            except OSError as e:  # the records are gone, so nothing serves or counts them; the files stay behind
                log.warning("could not remove the files of %d deleted attachments: %s", len(released), e)
        # Everything below is best effort: fan-out between nodes is at most once (feeds fill gaps from the store),
        # and a remote sender that hears nothing resends with the same client_id.
        try:
            if remote:
                await self.broker.complete(remote)
            if deliveries:
                await self.broker.publish(deliveries)
        except Exception as e:  # noqa: BLE001 - the broker reports its own link state; nothing acked is at risk
            log.warning("after storing %d messages, the broker failed: %s", len(batch), e)

    def _delivery(self, origin: str, m: NewMessage, out: Outcome) -> Delivery | None:
        """What one stored item fans out, counted (None for a refusal, or a duplicate with nothing to show); a new
        message's mentions are told here."""
        if out.error:
            return None
        if out.duplicate:
            self.metrics.duplicates += 1
            if out.stored is None:
                return None
        else:
            self.metrics.messages_stored += 1
        # A duplicate carries the entry first stored, a new change the frame of what the store applied; a new
        # message is built here from what was sent, with the sender's name the store had at the commit.
        stored = out.stored or Message(
            room=m.room,
            seq=out.seq,
            from_=out.name,
            body=m.body,
            client_id=m.client_id,
            ts=out.ts,
            attachments=m.attachments,
            reply_to=m.reply_to,
            uid=m.sender,
            bot=out.bot,
            via=m.via,
        )
        if out.mentions and isinstance(stored, Message):
            # Only the node that stored the message tells the people it names, once: a duplicate carries none.
            self.on_mentions(stored, out.mentions)
        return Delivery(m.room, out.seq, encode(stored), origin)

    async def _append(self, msgs: Sequence[NewMessage]) -> list[Outcome]:
        delay = 0.05
        while True:
            try:
                outcomes = await self.store.append(msgs)
            except Exception as e:
                if not self.store.transient(e):
                    return await self._refused(msgs, e)
                if self.store_ok:
                    log.error("store append failed (%s); holding %d messages and retrying", e, len(msgs))
                    self.store_ok = False
                self.metrics.store_errors += 1
                await asyncio.sleep(delay)
                delay = min(delay * 2, RETRY_MAX)
                continue
            if not self.store_ok:
                log.info("store append works again")
                self.store_ok = True
            return outcomes

    async def _refused(self, msgs: Sequence[NewMessage], e: Exception) -> list[Outcome]:
        """A batch the store refuses outright: find the message(s) at fault by storing one at a time."""
        if len(msgs) > 1:
            return [(await self._append([m]))[0] for m in msgs]
        m = msgs[0]
        log.error("the store refused message %s/%s: %s: %s", m.room, m.client_id, type(e).__name__, e)
        self.metrics.store_errors += 1
        return [Outcome(error=Err.INTERNAL.code, message=f"could not store the message: {type(e).__name__}")]
