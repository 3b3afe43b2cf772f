"""The in-process broker: a bounded in-memory ingest queue that spills to SQLite, and direct local fan-out.

Overflow policy (``spill``): while the memory queue is under both bounds (``broker.queue_max_messages`` and
``broker.queue_max_bytes``) a send is queued in memory. At either bound it is staged for the spill file instead, and
from then on *every* new send goes to the spill until the spill is empty again, so arrival order is kept: the
worker drains memory (all older) first, then the spill in file order. Sends are never refused and never wait in
memory beyond the bounds: if the spill writer itself falls a full ``queue_max_bytes`` behind, ``submit`` waits for
it, which stops reading from that client's socket (TCP backpressure) rather than growing memory.

There are no other nodes: ``publish``, ``broadcast`` and ``complete`` have no one to reach (the worker hands
this node's own deliveries and acks over directly), and the link is always up.
"""

from __future__ import annotations

import asyncio
import logging
import sqlite3
from collections import deque
from typing import Self

from chatd.broker.base import (
    Broker,
    BrokerEvents,
    BrokerUnavailable,
    Completion,
    Control,
    Delivery,
    IngestItem,
    Taken,
    item_size,
)
from chatd.broker.spill import SpillFile
from chatd.config import Config
from chatd.failures import path_problem

log = logging.getLogger("chatd.broker")


class MemoryBroker(Broker):
    cluster_wide = False  # this process is the whole deployment

    @classmethod
    def from_config(cls, cfg: Config, node_id: str, node_name: str) -> Self:
        # Beside the store's file unless broker.spill_path places it.
        spill = cfg.broker.spill_path or f"{cfg.store.path}.spill"
        return cls(node_id, cfg.broker.queue_max_messages, cfg.broker.queue_max_bytes, spill, node_name)

    def __init__(self, node_id: str, max_messages: int, max_bytes: int, spill_path: str, node_name: str = "") -> None:
        self.node_id = node_id
        self.node_name = node_name or node_id
        self.max_messages = max_messages
        self.max_bytes = max_bytes
        self._mem: deque[tuple[IngestItem, int]] = deque()  # with each item's size, measured once
        self._mem_bytes = 0
        self._spill = SpillFile(spill_path)
        self._spilling = False
        self._staged: list[IngestItem] = []
        self._staged_bytes = 0
        self._writing = 0  # items the spill writer is appending right now
        self._spill_unread = 0
        self._cursor = 0
        self._has_work = asyncio.Event()
        self._stage_ready = asyncio.Event()
        self._staged_room = asyncio.Condition()
        self._writer: asyncio.Task[None] | None = None
        self._closed = False
        self._spill_ok = True
        self.spilled_total = 0

    async def start(self, events: BrokerEvents) -> None:
        try:
            await self._spill.open()
        except (OSError, sqlite3.OperationalError) as e:
            path = e.filename if isinstance(e, OSError) and e.filename else self._spill.path
            problem = path_problem(e, path, "the spill file") if isinstance(e, OSError) else f"{path}: {e}"
            raise BrokerUnavailable(f"{problem} (broker.spill_path)") from e
        if self._spill.rows:
            log.warning("replaying %d spilled sends left by a previous run", self._spill.rows)
            self._spilling = True
            self._spill_unread = self._spill.rows
            self._has_work.set()
        self._writer = asyncio.create_task(self._spill_writer(), name="chatd-spill-writer")

    async def close(self) -> None:
        self._closed = True
        if self._writer is not None:
            self._stage_ready.set()
            await self._writer
        await self._spill.close()

    # --- ingest -------------------------------------------------------------------------------------------------

    async def submit(self, item: IngestItem) -> None:
        size = item_size(item)
        if not self._spilling and len(self._mem) < self.max_messages and self._mem_bytes + size <= self.max_bytes:
            self._mem.append((item, size))
            self._mem_bytes += size
            self._has_work.set()
            return
        if not self._spilling:
            log.info(
                "ingest queue full (%d items, %d bytes): spilling to %s",
                len(self._mem),
                self._mem_bytes,
                self._spill.path,
            )
        self._spilling = True
        if self._staged_bytes >= self.max_bytes:
            async with self._staged_room:
                await self._staged_room.wait_for(lambda: self._staged_bytes < self.max_bytes)
        self._staged.append(item)
        self._staged_bytes += size
        self.spilled_total += 1
        self._stage_ready.set()

    async def _spill_writer(self) -> None:
        while True:
            if not self._staged:
                if self._closed:
                    return
                await self._stage_ready.wait()
                self._stage_ready.clear()
                continue
            batch, self._staged = self._staged, []
            self._writing = len(batch)
            try:
                await self._spill.append(batch)
            except Exception:
                # Put them back in front and retry: losing them would lose sends, and they are not acked yet.
                if self._spill_ok:
                    log.exception("spill append failed; not ready until it works again, retrying")
                self._spill_ok = False
                self._staged[:0] = batch
                self._writing = 0
                await asyncio.sleep(0.5)
                self._stage_ready.set()
                continue
            if not self._spill_ok:
                log.info("spill append works again")
                self._spill_ok = True
            self._writing = 0
            self._spill_unread += len(batch)
            self._staged_bytes -= sum(item_size(i) for i in batch)
            async with self._staged_room:
                self._staged_room.notify_all()
            self._has_work.set()

    async def take(self, max_items: int) -> list[Taken]:
        while True:
            if self._mem:
                n = min(max_items, len(self._mem))
                pairs = [self._mem.popleft() for _ in range(n)]
                self._mem_bytes -= sum(size for _, size in pairs)
                return [Taken(item) for item, _ in pairs]
            if self._spilling:
                if self._spill_unread:
                    rows = await self._spill.read_after(self._cursor, max_items)
                    if rows:
                        self._cursor = rows[-1][0]
                        self._spill_unread -= len(rows)
                        return [Taken(item, rowid) for rowid, item in rows]
                    # The writer committed more rows while we read; read again.
                    continue
                if not self._staged and not self._writing:
                    self._spilling = False
                    log.info("spill drained; back to the memory queue")
                    continue
            self._has_work.clear()
            await self._has_work.wait()

    async def settle(self, taken: list[Taken]) -> None:
        # Memory items need nothing. Spill rows are taken and settled in id order, so one delete covers a batch.
        last = max((t.receipt for t in taken if t.receipt is not None), default=None)
        if last is not None:
            await self._spill.drop_through(last)

    # --- fan-out and completions --------------------------------------------------------------------------------

    async def publish(self, deliveries: list[Delivery]) -> None:
        pass

    async def broadcast(self, event: Control) -> None:
        pass

    async def complete(self, completions: list[Completion]) -> None:
        pass  # addressed to an earlier run of this node (a replayed spill): no one is waiting

    def depth(self) -> int:
        return len(self._mem) + len(self._staged) + self._writing + self._spill_unread

    def ready(self) -> bool:
        return not self._closed and self._spill_ok and self._writer is not None and not self._writer.done()

    def stats(self) -> dict[str, float]:
        return {
            "chatd_ingest_memory_items": len(self._mem),
            "chatd_ingest_memory_bytes": self._mem_bytes,
            "chatd_ingest_spill_items": self._spill.rows,
            "chatd_ingest_spilled_total": self.spilled_total,
        }
