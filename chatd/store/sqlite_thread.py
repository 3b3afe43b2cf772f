"""A SQLite connection on a thread of its own, which asyncio code hands whole functions to.

``sqlite3`` blocks, so each connection lives on one thread and the event loop hands it work:
``await db.run(fn, *args)`` calls ``fn(conn, *args)`` on that thread and gives back what it returns. A function can
be a whole transaction (an append batch, ``chatd.store.sqlite``), so a batch costs one hand-off however many
statements it runs; ``execute``, ``fetchall`` and friends are the one-statement cases.

Every store connection and the spill file use this instead of aiosqlite: aiosqlite offers no public way to run a
function on its thread (only its private ``_execute``), and one hand-off per statement instead of per batch cost
the append path (BENCHMARKS.md, "The SQLite connection threads").

A function handed over always runs, in the order it was handed over, even if the task that awaits it is
cancelled: a ``BEGIN`` is always followed by the ``COMMIT`` or ``ROLLBACK`` queued after it, and nothing half-done
is left on the connection. Only the thread touches the connection (``sqlite3``'s ``check_same_thread`` holds).
"""

from __future__ import annotations

import asyncio
import sqlite3
import threading
from collections.abc import AsyncIterator, Callable, Sequence
from queue import SimpleQueue
from typing import Any, Concatenate, NamedTuple, ParamSpec, TypeVar

T = TypeVar("T")
P = ParamSpec("P")

# A job: the future to settle (on its own loop) and the call to make on the thread.
_Job = tuple[asyncio.Future[Any], Callable[[], Any]]


class Changed(NamedTuple):
    """What a write statement did: the rows it changed and the rowid of the last row it inserted."""

    rowcount: int
    lastrowid: int | None


def _settle(future: asyncio.Future[Any], ok: bool, value: Any) -> None:
    if not future.done():  # a cancelled waiter: the job ran all the same, and nobody wants its result
        if ok:
            future.set_result(value)
        else:
            future.set_exception(value)


class ConnectionThread:
    """One ``sqlite3`` connection (autocommit: ``isolation_level=None``) and the one thread that uses it."""

    def __init__(self, path: str) -> None:
        self.path = path
        self._jobs: SimpleQueue[_Job | None] = SimpleQueue()
        self._conn: sqlite3.Connection | None = None  # set, used and closed on the thread only
        self._open = False
        # A daemon: a connection someone forgot to close must not keep the process alive at exit.
        self._thread = threading.Thread(target=self._serve, name=f"chatd-sqlite {path}", daemon=True)

    @classmethod
    async def open(cls, path: str) -> ConnectionThread:
        db = cls(path)
        db._thread.start()
        try:
            await db._call(db._connect)
        except BaseException:
            db._jobs.put(None)
            raise
        db._open = True
        return db

    def _connect(self) -> None:
        self._conn = sqlite3.connect(self.path, isolation_level=None)

    def _serve(self) -> None:
        while (job := self._jobs.get()) is not None:
            future, call = job
            try:
                result, ok = call(), True
            except BaseException as e:
                result, ok = e, False
            try:
                future.get_loop().call_soon_threadsafe(_settle, future, ok, result)
            except RuntimeError:
                pass  # the loop is closed: nobody is waiting

    async def _call(self, call: Callable[[], T]) -> T:
        future: asyncio.Future[T] = asyncio.get_running_loop().create_future()
        self._jobs.put((future, call))
        return await future

    async def run(self, fn: Callable[Concatenate[sqlite3.Connection, P], T], *args: P.args, **kwargs: P.kwargs) -> T:
        """``fn(conn, *args, **kwargs)`` on the connection's thread, in one hand-off."""
        if not self._open:
            raise sqlite3.ProgrammingError(f"the connection to {self.path} is closed")
        return await self._call(lambda: fn(self._connection(), *args, **kwargs))

    def _connection(self) -> sqlite3.Connection:
        assert self._conn is not None, "the connection is closed"
        return self._conn

    async def close(self) -> None:
        """Run what was handed over, close the connection and end the thread."""
        if not self._open:
            return
        self._open = False
        try:
            await self._call(self._close)
        finally:
            self._jobs.put(None)

    def _close(self) -> None:
        if self._conn is not None:
            self._conn.close()
            self._conn = None

    # --- one statement ------------------------------------------------------------------------------------------

    async def execute(self, sql: str, params: Sequence[object] = ()) -> Changed:
        return await self.run(_execute, sql, params)

    async def executemany(self, sql: str, rows: Sequence[Sequence[object]]) -> Changed:
        return await self.run(_executemany, sql, rows)

    async def fetchall(self, sql: str, params: Sequence[object] = ()) -> list[tuple[Any, ...]]:
        return await self.run(_fetchall, sql, params)

    async def dicts(self, sql: str, params: Sequence[object] = (), chunk: int = 256) -> AsyncIterator[dict[str, Any]]:
        """The rows of ``sql`` as ``{column: value}``, fetched ``chunk`` rows per hand-off (for tables too big to
        hold at once)."""
        cur = await self.run(lambda conn: conn.execute(sql, params))
        try:
            cols = [d[0] for d in cur.description]
            while rows := await self.run(lambda _: cur.fetchmany(chunk)):
                for row in rows:
                    yield dict(zip(cols, row, strict=True))
        finally:
            # An open statement holds its read transaction (and the WAL behind it) until it is closed.
            await self.run(lambda _: cur.close())


def _execute(conn: sqlite3.Connection, sql: str, params: Sequence[object]) -> Changed:
    cur = conn.execute(sql, params)
    return Changed(cur.rowcount, cur.lastrowid)


def _executemany(conn: sqlite3.Connection, sql: str, rows: Sequence[Sequence[object]]) -> Changed:
    cur = conn.executemany(sql, rows)
    return Changed(cur.rowcount, cur.lastrowid)


def _fetchall(conn: sqlite3.Connection, sql: str, params: Sequence[object]) -> list[tuple[Any, ...]]:
    return conn.execute(sql, params).fetchall()
