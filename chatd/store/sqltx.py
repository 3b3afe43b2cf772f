"""One way to run an aiosqlite transaction, shared by the SQLite store and the spill file.

Connections are opened with ``isolation_level=None`` (autocommit), so every multi-statement write is an explicit
``BEGIN`` … ``COMMIT``. Whatever goes wrong inside, the transaction is rolled back before the error propagates: a
connection left inside a failed transaction refuses every later ``BEGIN`` ("cannot start a transaction within a
transaction"), which would turn one I/O error into a permanent one.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator

import aiosqlite


@contextlib.asynccontextmanager
async def transaction(conn: aiosqlite.Connection, mode: str = "IMMEDIATE") -> AsyncIterator[aiosqlite.Connection]:
    """``BEGIN <mode>`` … ``COMMIT``, or ``ROLLBACK`` on any exception (cancellation included)."""
    await conn.execute(f"BEGIN {mode}")
    try:
        yield conn
        await conn.execute("COMMIT")
    except BaseException:
        if conn.in_transaction:
            with contextlib.suppress(Exception):
                await conn.execute("ROLLBACK")
        raise
