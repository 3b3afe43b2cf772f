"""One way to run a SQLite transaction, shared by the SQLite store and the spill file.

Connections are opened in autocommit mode (``isolation_level=None``), so every multi-statement write is an explicit
``BEGIN`` … ``COMMIT``. Whatever goes wrong inside, the transaction is rolled back before the error propagates: a
connection left inside a failed transaction refuses every later ``BEGIN`` ("cannot start a transaction within a
transaction"), which would turn one I/O error into a permanent one.

``transaction`` is the one place that says so; it runs on a connection's own thread (``chatd.store.sqlite_thread``),
inside a function handed to it. ``async_transaction`` is the same transaction held open across awaits, for code
that decides between statements on the event loop: it enters and leaves ``transaction`` on the thread.
"""

from __future__ import annotations

import contextlib
import sqlite3
from collections.abc import AsyncIterator, Iterator

from chatd.store.sqlite_thread import ConnectionThread


@contextlib.contextmanager
def transaction(conn: sqlite3.Connection, mode: str = "IMMEDIATE") -> Iterator[sqlite3.Connection]:
    """``BEGIN <mode>`` … ``COMMIT``, or ``ROLLBACK`` on any exception (cancellation included), on ``conn``'s
    thread."""
    conn.execute(f"BEGIN {mode}")
    try:
        yield conn
        conn.execute("COMMIT")
    except BaseException:
        if conn.in_transaction:
            with contextlib.suppress(Exception):  # the error that got us here is the one to report
                conn.execute("ROLLBACK")
        raise


@contextlib.asynccontextmanager
async def async_transaction(db: ConnectionThread, mode: str = "IMMEDIATE") -> AsyncIterator[ConnectionThread]:
    """``transaction`` on ``db``'s thread, held open while the block awaits statements on ``db``."""
    held = contextlib.ExitStack()
    try:
        await db.run(lambda conn: held.enter_context(transaction(conn, mode)))
        yield db
    except BaseException as e:
        # Queued after the BEGIN even when a cancellation interrupted the wait for it, so it always finds the
        # transaction begun (or never begun: then there is nothing to leave).
        await db.run(_leave, held, e)
        raise
    await db.run(_leave, held, None)


def _leave(conn: sqlite3.Connection, held: contextlib.ExitStack, error: BaseException | None) -> None:
    """Leave the held ``transaction``: COMMIT, or ROLLBACK when the block raised ``error``."""
    if error is None:
        held.close()
    else:
        held.__exit__(type(error), error, error.__traceback__)
