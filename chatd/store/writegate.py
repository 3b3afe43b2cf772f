"""Who may write on the SQLite store's one writer connection, and when: appends back to back, everything else alone.

aiosqlite runs a connection's calls one after another on its own thread, in the order they were queued. A write
that takes several calls (``BEGIN`` … ``COMMIT``) must have the thread to itself, so it holds the gate exclusively.
An append is different: its whole transaction is one call (``_append_sync``), so appends can never interleave with
each other's statements, and they may be queued on the thread back to back. That is what the worker does: it hands
over the next batch while the previous one commits, and the thread goes from one commit to the next without waiting
for the event loop in between (at 7,000 direct messages a second that wait was as long as the commit itself).

- Order: appends are queued on the thread in the order ``append`` was called, so they commit in that order.
- Failure: an append queued behind one that failed is not attempted; it raises
  :class:`~chatd.store.base.AppendSkipped`. The caller retries both, in order, so one sender's messages are never
  stored out of the order they were sent.
- Fairness: while any other write waits for the gate, a new append does not join the appends already queued; it
  waits for them to finish and queues for the gate behind the waiting write, so a steady stream of sends cannot
  starve joins, read marks or the search index.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Callable
from typing import Any, TypeVar

import aiosqlite

from chatd.store.base import AppendSkipped

T = TypeVar("T")


class WriteGate:
    def __init__(self) -> None:
        self._lock = asyncio.Lock()
        self._waiting = 0  # exclusive writers waiting for the lock
        self._entry = asyncio.Lock()  # appends join the lane one at a time, in call order
        self._lane = 0  # appends queued on the thread under the lock the lane holds
        self._idle = asyncio.Event()
        self._idle.set()
        self._broken = False  # set on the thread by a failed append, read there by the ones queued behind it

    @contextlib.asynccontextmanager
    async def exclusive(self) -> AsyncIterator[None]:
        """Hold the writer for a multi-call write (no append runs until it is done)."""
        self._waiting += 1
        try:
            await self._lock.acquire()
        finally:
            self._waiting -= 1
        try:
            yield
        finally:
            self._lock.release()

    async def append(self, conn: aiosqlite.Connection, fn: Callable[..., T], *args: Any) -> T:
        """Run ``fn(*args)``, one whole transaction, on ``conn``'s thread, queued behind the appends in flight."""
        async with self._entry:
            if not self._lane or self._waiting:
                await self._idle.wait()
                await self._lock.acquire()
                self._broken = False  # nothing of ours is queued on the thread any more
                self._idle.clear()
            self._lane += 1
            # The call is queued on the thread when this task first runs, and tasks start in creation order.
            job = asyncio.ensure_future(conn._execute(self._guarded, fn, *args))
        try:
            return await job
        finally:
            self._lane -= 1
            if not self._lane:
                self._lock.release()
                self._idle.set()

    def _guarded(self, fn: Callable[..., T], *args: Any) -> T:
        # On the writer's thread.
        if self._broken:
            raise AppendSkipped("an earlier append queued before this one failed")
        try:
            return fn(*args)
        except BaseException:
            self._broken = True
            raise
