"""The persist worker: this node's ingest queue → store (group commit) → acks and fan-out.

One worker task per node drains the node's own ingest queue. Whatever has queued up while the previous transaction
was committing becomes the next batch (up to ``store.batch_max``), so the commit rate adapts to load: one
transaction per message when idle, hundreds per transaction under a burst. A store may take the next batch while
one commits (``Store.append_depth``; SQLite: 2), so its writer never idles while the loop acks and fans out the
last batch; batches are still committed, acked and fanned out in the order they were taken, and a batch that
fails holds the ones behind it (the store skips them) until it is stored.

Order of effects for each batch: commit, then completions (acks), then fan-out of the stored messages (to this
node's hub directly, to the other nodes through the broker), then ``settle`` so the broker forgets the items. A
crash anywhere before the commit loses nothing that was acked (nothing was); a crash after it at worst re-takes
items the store recognises as duplicates, whose stored message is fanned out again (hubs drop repeats by seq), so a
crash between commit and publish cannot leave other nodes without the message.

A store that fails (connection lost, disk full) holds the batch: it is retried with capped backoff, the node reports
not ready, and new sends wait in the bounded ingest queue. A message the store refuses outright (not a transient
fault) is answered ``internal`` on its own so it cannot block the ones behind it.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from chatd.broker.base import Broker, Completion, Delivery, Taken
from chatd.errors import Err
from chatd.metrics import Metrics
from chatd.protocol.frames import Message, encode
from chatd.store.base import AppendSkipped, NewMessage, Outcome, Store

log = logging.getLogger("chatd.worker")

RETRY_MAX = 2.0  # seconds between attempts while the store is down


@dataclass(slots=True)
class _InFlight:
    """A batch handed to the store, and its append."""

    batch: list[Taken]
    started: float
    task: asyncio.Task[list[Outcome]]


class Worker:
    def __init__(
        self,
        broker: Broker,
        store: Store,
        metrics: Metrics,
        batch_max: int,
        complete_local: Callable[[Completion], None],
        deliver_local: Callable[[list[Delivery]], None],
        on_mentions: Callable[[Message, list[str]], None] = lambda message, users: None,
    ) -> None:
        self.broker = broker
        self.store = store
        self.metrics = metrics
        self.batch_max = batch_max
        self.complete_local = complete_local
        self.deliver_local = deliver_local
        self.on_mentions = on_mentions
        self.store_ok = True
        self._inflight: deque[_InFlight] = deque()
        self._task: asyncio.Task[None] | None = None

    @property
    def busy(self) -> bool:
        """Whether batches are in the store or being acked and fanned out (a draining node waits for them)."""
        return bool(self._inflight)

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

    async def _run(self) -> None:
        depth = max(1, self.store.append_depth)
        inflight = self._inflight
        taking: asyncio.Task[list[Taken]] | None = None
        try:
            while True:
                if taking is None and len(inflight) < depth:
                    taking = asyncio.create_task(self._take())
                waits: set[asyncio.Future[Any]] = {taking} if taking is not None else set()
                if inflight:
                    waits.add(inflight[0].task)
                await asyncio.wait(waits, return_when=asyncio.FIRST_COMPLETED)
                if taking is not None and taking.done():
                    batch, taking = taking.result(), None
                    append = self.store.append([t.item.msg for t in batch])
                    inflight.append(_InFlight(batch, time.perf_counter(), asyncio.create_task(append)))
                while inflight and inflight[0].task.done():
                    head = inflight[0]
                    await self._process(head, await self._outcomes(head))
                    inflight.popleft()
        finally:
            for task in [t.task for t in inflight] + ([taking] if taking is not None else []):
                task.cancel()

    async def _take(self) -> list[Taken]:
        while True:
            try:
                return await self.broker.take(self.batch_max)
            except Exception:
                # A backend bug must not leave the node deaf while it keeps accepting sends: log, wait, go on.
                log.exception("taking from the ingest queue failed; retrying in 1s")
                await asyncio.sleep(1.0)

    async def _outcomes(self, head: _InFlight) -> list[Outcome]:
        try:
            return head.task.result()
        except Exception as e:  # noqa: BLE001 - retried or refused below
            failed = e
        # The store skips every append queued behind a failed one: let those end first, so that this retry reaches
        # the store alone and each of them is retried in its turn (its task holds AppendSkipped).
        behind = [b.task for b in self._inflight if b is not head]
        if behind:
            await asyncio.wait(behind)
        return await self._append([t.item.msg for t in head.batch], failed)

    async def _process(self, head: _InFlight, outcomes: list[Outcome]) -> None:
        batch = head.batch
        self.metrics.persist_seconds.observe(time.perf_counter() - head.started)
        self.metrics.persist_batch.observe(len(batch))
        node = self.broker.node_id
        remote: list[Completion] = []
        deliveries: list[Delivery] = []
        for taken, out in zip(batch, outcomes, strict=True):
            item = taken.item
            m = item.msg
            c = Completion(
                item.origin, item.ticket, m.room, m.client_id, out.seq, out.ts, out.duplicate, out.error, out.message
            )
            if c.origin == node:
                self.complete_local(c)
            else:
                remote.append(c)
            if out.error:
                continue
            if out.duplicate:
                self.metrics.duplicates += 1
                if out.stored is None:
                    continue
            else:
                self.metrics.messages_stored += 1
            # A duplicate carries the entry first stored, a new change the frame of what the store applied; a new
            # message is built here from what was sent.
            stored = out.stored or Message(
                room=m.room,
                seq=out.seq,
                from_=m.sender,
                body=m.body,
                client_id=m.client_id,
                ts=out.ts,
                attachments=m.attachments,
                reply_to=m.reply_to,
            )
            deliveries.append(Delivery(m.room, out.seq, encode(stored), item.origin))
            if out.mentions and isinstance(stored, Message):
                # Only the node that stored the message tells the people it names, once: a duplicate carries none.
                self.on_mentions(stored, out.mentions)
        if deliveries:
            self.deliver_local(deliveries)
        # Everything below is best effort: fan-out between nodes is at most once (hubs fill gaps from the store),
        # and an item left unsettled is taken again and recognised as a duplicate.
        try:
            if remote:
                await self.broker.complete(remote)
            if deliveries:
                await self.broker.publish(deliveries)
            await self.broker.settle(batch)
        except Exception as e:  # noqa: BLE001 - the broker reports its own link state; nothing acked is at risk
            log.warning("after storing %d messages, the broker failed: %s", len(batch), e)

    async def _append(self, msgs: Sequence[NewMessage], failed: Exception | None = None) -> list[Outcome]:
        """Store ``msgs``, retrying while the store is down; ``failed`` is the error of an attempt already made."""
        delay = 0.05
        while True:
            if failed is None:
                try:
                    outcomes = await self.store.append(msgs)
                except Exception as exc:  # noqa: BLE001 - sorted below
                    failed = exc
                else:
                    if not self.store_ok:
                        log.info("store append works again")
                        self.store_ok = True
                    return outcomes
            error, failed = failed, None
            if isinstance(error, AppendSkipped):
                continue  # never attempted: the batch ahead of it failed and has been retried
            if not self.store.transient(error):
                return await self._refused(msgs, error)
            if self.store_ok:
                log.error("store append failed (%s); holding %d messages and retrying", error, len(msgs))
                self.store_ok = False
            self.metrics.store_errors += 1
            await asyncio.sleep(delay)
            delay = min(delay * 2, RETRY_MAX)

    async def _refused(self, msgs: Sequence[NewMessage], e: Exception) -> list[Outcome]:
        """A batch the store refuses outright: find the message(s) at fault by storing one at a time."""
        if len(msgs) > 1:
            return [(await self._append([m]))[0] for m in msgs]
        m = msgs[0]
        log.error("the store refused message %s/%s: %s: %s", m.room, m.client_id, type(e).__name__, e)
        self.metrics.store_errors += 1
        return [Outcome(error=Err.INTERNAL.code, message=f"could not store the message: {type(e).__name__}")]
