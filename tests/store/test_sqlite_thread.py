"""A connection on its own thread (chatd.store.sqlite_thread) and the one transaction helper (chatd.store.sqltx)."""

from __future__ import annotations

import asyncio
import contextlib
import sqlite3
import threading
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from chatd.store.sqlite_thread import ConnectionThread
from chatd.store.sqltx import async_transaction, transaction

pytestmark = pytest.mark.fast  # in-process: ./scripts/test --fast runs it


@pytest.fixture
async def db(tmp_path: Path) -> AsyncIterator[ConnectionThread]:
    db = await ConnectionThread.open(str(tmp_path / "t.db"))
    await db.execute("CREATE TABLE t (n INTEGER PRIMARY KEY)")
    yield db
    await db.close()


@contextlib.asynccontextmanager
async def thread_held(db: ConnectionThread) -> AsyncIterator[None]:
    """Keep the connection's thread busy until the block ends: what is handed over meanwhile waits in its queue."""
    gate = threading.Event()
    blocked = asyncio.create_task(db.run(lambda conn: gate.wait(5)))
    try:
        yield
    finally:
        gate.set()
        await blocked


async def test_run_calls_the_function_on_the_connections_own_thread_and_returns_its_result(
    db: ConnectionThread,
) -> None:
    def insert(conn: sqlite3.Connection, n: int) -> tuple[str, int]:
        conn.execute("INSERT INTO t (n) VALUES (?)", (n,))
        return threading.current_thread().name, conn.total_changes

    name, changes = await db.run(insert, 7)
    assert name != threading.current_thread().name and changes == 1
    assert await db.fetchall("SELECT n FROM t") == [(7,)]
    assert (await db.execute("DELETE FROM t")).rowcount == 1
    await db.close()
    with pytest.raises(sqlite3.ProgrammingError, match="closed"):
        await db.fetchall("SELECT 1")


async def test_a_function_handed_over_runs_even_when_its_waiter_is_cancelled(db: ConnectionThread) -> None:
    """What was queued on the thread is never dropped, so a BEGIN is always followed by what was queued after it."""
    async with thread_held(db):
        queued = asyncio.create_task(db.execute("INSERT INTO t (n) VALUES (1)"))
        await asyncio.sleep(0.01)
        queued.cancel()
    assert await db.fetchall("SELECT n FROM t") == [(1,)]


async def test_a_transaction_that_raises_is_rolled_back_and_the_connection_stays_usable(db: ConnectionThread) -> None:
    with pytest.raises(ZeroDivisionError):
        async with async_transaction(db) as w:
            await w.execute("INSERT INTO t (n) VALUES (1)")
            raise ZeroDivisionError

    def fails(conn: sqlite3.Connection) -> None:
        with transaction(conn):
            conn.execute("INSERT INTO t (n) VALUES (2)")
            conn.execute("INSERT INTO t (n) VALUES (2)")  # the primary key refuses it

    with pytest.raises(sqlite3.IntegrityError):
        await db.run(fails)
    async with async_transaction(db) as w:
        await w.execute("INSERT INTO t (n) VALUES (3)")
    assert await db.fetchall("SELECT n FROM t") == [(3,)]


async def test_a_transaction_cancelled_while_its_begin_waits_is_rolled_back(db: ConnectionThread) -> None:
    """The BEGIN still runs on the thread after the cancellation; the ROLLBACK queued behind it must end it, or
    every later BEGIN fails with "cannot start a transaction within a transaction"."""

    async def write() -> None:
        async with async_transaction(db) as w:
            await w.execute("INSERT INTO t (n) VALUES (1)")

    async with thread_held(db):
        task = asyncio.create_task(write())
        await asyncio.sleep(0.01)  # its BEGIN is queued behind the held thread
        task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert not await db.run(lambda conn: conn.in_transaction)
    async with async_transaction(db) as w:
        await w.execute("INSERT INTO t (n) VALUES (2)")
    assert await db.fetchall("SELECT n FROM t") == [(2,)]


async def test_dicts_reads_a_table_in_chunks(db: ConnectionThread) -> None:
    await db.executemany("INSERT INTO t (n) VALUES (?)", [(n,) for n in range(10)])
    assert [row async for row in db.dicts("SELECT n FROM t ORDER BY n", chunk=3)] == [{"n": n} for n in range(10)]
