"""The spill file: an append-only SQLite table that takes the ingest overflow.

Rows are appended in arrival order and removed only after the worker has stored them, so a spill that survives a
crash is replayed at the next start; the store's idempotency key keeps that replay from storing anything twice.
"""

from __future__ import annotations

import sqlite3
from pathlib import Path

import msgspec

from chatd.broker.base import IngestItem
from chatd.store.sqlite_thread import ConnectionThread
from chatd.store.sqltx import transaction

_enc = msgspec.msgpack.Encoder()
_dec = msgspec.msgpack.Decoder(IngestItem)


class SpillFile:
    def __init__(self, path: str | Path) -> None:
        self.path = str(path)
        self._conn: ConnectionThread | None = None
        self.rows = 0  # rows in the file, read or not
        self.appended_total = 0

    async def open(self) -> None:
        Path(self.path).parent.mkdir(parents=True, exist_ok=True)
        conn = await ConnectionThread.open(self.path)
        await conn.execute("PRAGMA journal_mode=WAL")
        # NORMAL survives a process crash, which is what the replay promise is about; items here were never acked.
        await conn.execute("PRAGMA synchronous=NORMAL")
        await conn.execute(
            "CREATE TABLE IF NOT EXISTS spill (id INTEGER PRIMARY KEY AUTOINCREMENT, item BLOB NOT NULL)"
        )
        self.rows = (await conn.fetchall("SELECT COUNT(*) FROM spill"))[0][0]
        self._conn = conn

    async def close(self) -> None:
        if self._conn is not None:
            await self._conn.close()
            self._conn = None

    async def append(self, items: list[IngestItem]) -> None:
        assert self._conn is not None
        await self._conn.run(_append, [(_enc.encode(i),) for i in items])
        self.rows += len(items)
        self.appended_total += len(items)

    async def read_after(self, cursor: int, limit: int) -> list[tuple[int, IngestItem]]:
        assert self._conn is not None
        rows = await self._conn.fetchall("SELECT id, item FROM spill WHERE id > ? ORDER BY id LIMIT ?", (cursor, limit))
        return [(row[0], _dec.decode(row[1])) for row in rows]

    async def drop_through(self, last_id: int) -> None:
        assert self._conn is not None
        cur = await self._conn.execute("DELETE FROM spill WHERE id <= ?", (last_id,))
        self.rows -= cur.rowcount


def _append(conn: sqlite3.Connection, rows: list[tuple[bytes]]) -> None:
    with transaction(conn):
        conn.executemany("INSERT INTO spill (item) VALUES (?)", rows)
