"""Read connections for the SQLite store: small bounded pools of WAL readers, apart from the one writer.

WAL lets any number of readers run beside the writer, each seeing the last commit. One shared reader made every
read queue behind the slowest one (a deep search held a token check for seconds, issue 20), so reads take a
connection of their own from a pool:

- ``ReadPool(size)``: ``size`` connections, each on its own thread (``chatd.store.sqlite_thread``: ``sqlite3``
  lets go of the GIL while a query runs, so they do run side by side). A caller waits for a free one in arrival
  order; the wait is bounded by the number of callers, never by a queue of statements.
- The store keeps two pools: one for ordinary reads (token checks, history, room lists) and one for searches, so
  a burst of searches waits for search connections and never for the ones authentication needs.

Connections are ``query_only``: a read path cannot write by mistake, and the writer stays the only one.
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import sqlite3
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from typing import Any, TypeVar

from chatd.store.sqlite_thread import ConnectionThread

T = TypeVar("T")

# A connection this task holds for a consistent read (``SQLiteStore.snapshot``): its reads use that one.
_pinned: contextvars.ContextVar[ConnectionThread | None] = contextvars.ContextVar("chatd_sqlite_pinned")


class ReadTimeout(Exception):
    """A read ran past its time limit, and SQLite interrupted it."""


class PoolBusy(Exception):
    """No connection of the pool came free within the wait allowed."""


class ReadPool:
    """``size`` read-only connections to one database file (see the module docstring)."""

    def __init__(self, connections: Sequence[ConnectionThread]) -> None:
        self._all = list(connections)
        self._idle: asyncio.Queue[ConnectionThread] = asyncio.Queue()
        for conn in self._all:
            self._idle.put_nowait(conn)

    @classmethod
    async def open(cls, size: int, connect: Callable[[], Awaitable[ConnectionThread]]) -> ReadPool:
        conns: list[ConnectionThread] = []
        try:
            for _ in range(size):
                conn = await connect()
                await conn.execute("PRAGMA query_only=1")
                conns.append(conn)
        except BaseException:
            for conn in conns:
                await conn.close()
            raise
        return cls(conns)

    @property
    def size(self) -> int:
        return len(self._all)

    def busy(self) -> int:
        """Connections in use now (for metrics and tests)."""
        return len(self._all) - self._idle.qsize()

    async def close(self) -> None:
        for conn in self._all:
            await conn.close()
        self._all.clear()

    @contextlib.asynccontextmanager
    async def connection(self, wait: float | None = None) -> AsyncIterator[ConnectionThread]:
        """A connection for this task alone until the block ends; ``wait``: at most so many seconds for one to come
        free (PoolBusy past that)."""
        pinned = _pinned.get(None)
        if pinned is not None:
            yield pinned
            return
        try:
            conn = await asyncio.wait_for(self._idle.get(), wait) if wait is not None else await self._idle.get()
        except TimeoutError:
            raise PoolBusy(f"no read connection came free within {wait:g} s") from None
        try:
            yield conn
        finally:
            self._idle.put_nowait(conn)

    @contextlib.asynccontextmanager
    async def pinned(self) -> AsyncIterator[ConnectionThread]:
        """Hold one connection for this task's reads until the block ends (for a read transaction)."""
        async with self.connection() as conn:
            token = _pinned.set(conn)
            try:
                yield conn
            finally:
                _pinned.reset(token)

    async def fetchall(self, sql: str, params: Sequence[object] = ()) -> list[tuple[Any, ...]]:
        async with self.connection() as conn:
            return await conn.fetchall(sql, params)

    async def run(self, fn: Callable[[sqlite3.Connection], T], *, timeout: float = 0.0, wait: float | None = None) -> T:
        """``fn(conn)`` on a free connection's own thread, in one hand-off. ``timeout`` > 0: SQLite interrupts it
        after that many seconds and ReadTimeout is raised; ``wait``: see :meth:`connection`."""
        async with self.connection(wait) as conn:
            if timeout <= 0:
                return await conn.run(fn)
            return await conn.run(_bounded, fn, timeout)


# SQLite calls the progress handler every this many virtual-machine steps: often enough that a query stops within
# a few milliseconds of its deadline, rarely enough that the check costs nothing measurable.
PROGRESS_STEPS = 10_000


def _bounded(conn: sqlite3.Connection, fn: Callable[[sqlite3.Connection], T], timeout: float) -> T:
    """``fn(conn)``, interrupted once ``timeout`` seconds have passed (on the connection's thread)."""
    deadline = time.monotonic() + timeout
    conn.set_progress_handler(lambda: time.monotonic() > deadline, PROGRESS_STEPS)
    try:
        return fn(conn)
    except sqlite3.OperationalError as e:
        if "interrupted" in str(e):
            raise ReadTimeout(f"the query ran past {timeout:g} s") from None
        raise
    finally:
        conn.set_progress_handler(None, 0)
