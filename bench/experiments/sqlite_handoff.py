"""What a batch of appends costs through each way of reaching a SQLite connection on another thread.

    python bench/experiments/sqlite_handoff.py [--rounds 30] [--batches 200]

Three ways, each committing the same batches (``--sizes``) of message-like rows in ``BEGIN IMMEDIATE`` … ``COMMIT``
on a WAL file with ``synchronous=NORMAL`` (chatd's default durability):

- ``thread``: chatd's ``ConnectionThread.run``: the whole batch is one function handed to the connection's thread;
- ``aiosqlite``: aiosqlite's public API, as a store without private calls would have to use it: one hand-off per
  statement (BEGIN, an ``executemany`` per table, COMMIT);
- ``aiosqlite-private``: aiosqlite's private ``_execute(fn, _conn)``, which the SQLite store used before: one
  hand-off per batch.

The ways run in interleaved rounds (thread, aiosqlite, private, thread, …) so that a busy machine moves all three
alike; the report gives each way's median µs per batch and its ratio to ``thread``. Needs aiosqlite (the ``peers``
extra).
"""

from __future__ import annotations

import argparse
import asyncio
import sqlite3
import statistics
import tempfile
import time
from collections.abc import Awaitable, Callable
from pathlib import Path

import aiosqlite

from chatd.store.sqlite_thread import ConnectionThread
from chatd.store.sqltx import transaction

SCHEMA = """
CREATE TABLE IF NOT EXISTS messages (room TEXT, seq INTEGER, sender INTEGER, client_id TEXT, body TEXT, ts INTEGER,
                                     PRIMARY KEY (room, seq));
CREATE TABLE IF NOT EXISTS idem (room TEXT, sender INTEGER, client_id TEXT, seq INTEGER,
                                 PRIMARY KEY (room, sender, client_id));
"""
INSERT_MESSAGE = "INSERT INTO messages VALUES (?, ?, ?, ?, ?, ?)"
INSERT_IDEM = "INSERT INTO idem VALUES (?, ?, ?, ?)"
Rows = tuple[list[tuple[object, ...]], list[tuple[object, ...]]]


def prepare(path: Path) -> None:
    conn = sqlite3.connect(path, isolation_level=None)
    conn.execute("PRAGMA journal_mode=WAL")
    conn.executescript(SCHEMA)
    conn.close()


def batch_rows(way: str, n: int, size: int) -> Rows:
    room = f"{way}-{n % 50}"
    messages = [(room, n * size + i, 7, f"{way}{n}-{i}", "hello there", 1) for i in range(size)]
    return messages, [(m[0], m[2], m[3], m[1]) for m in messages]


def _append(conn: sqlite3.Connection, rows: Rows) -> None:
    with transaction(conn):
        conn.executemany(INSERT_MESSAGE, rows[0])
        conn.executemany(INSERT_IDEM, rows[1])


async def timed(batches: int, size: int, way: str, commit: Callable[[Rows], Awaitable[None]], start: int) -> float:
    """µs per batch of ``size`` over ``batches`` batches."""
    began = time.perf_counter()
    for n in range(start, start + batches):
        await commit(batch_rows(way, n, size))
    return (time.perf_counter() - began) / batches * 1e6


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=30)
    parser.add_argument("--batches", type=int, default=200, help="batches per way per round")
    parser.add_argument("--sizes", default="1,16,64", help="rows per batch, comma-separated")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "handoff.db"
        prepare(path)
        thread = await ConnectionThread.open(str(path))
        await thread.execute("PRAGMA synchronous=NORMAL")
        public = await aiosqlite.connect(path, isolation_level=None)
        await public.execute("PRAGMA synchronous=NORMAL")

        async def via_thread(rows: Rows) -> None:
            await thread.run(_append, rows)

        async def via_public(rows: Rows) -> None:
            await public.execute("BEGIN IMMEDIATE")
            await public.executemany(INSERT_MESSAGE, rows[0])
            await public.executemany(INSERT_IDEM, rows[1])
            await public.execute("COMMIT")

        async def via_private(rows: Rows) -> None:
            await public._execute(_append, public._conn, rows)

        ways = {"thread": via_thread, "aiosqlite": via_public, "aiosqlite-private": via_private}
        print(f"{args.rounds} interleaved rounds of {args.batches} batches per way; µs per batch (median)")
        print(f"{'rows/batch':>10} " + " ".join(f"{w:>18}" for w in ways) + "   ratio to thread")
        start = 0
        for size in (int(s) for s in args.sizes.split(",")):
            samples: dict[str, list[float]] = {w: [] for w in ways}
            for _ in range(args.rounds):
                for way, commit in ways.items():
                    samples[way].append(await timed(args.batches, size, way, commit, start))
                start += args.batches
            med = {w: statistics.median(s) for w, s in samples.items()}
            ratios = " ".join(f"{w} {med[w] / med['thread']:.2f}" for w in ways if w != "thread")
            print(f"{size:>10} " + " ".join(f"{med[w]:>18.1f}" for w in ways) + f"   {ratios}")
        await thread.close()
        await public.close()


if __name__ == "__main__":
    asyncio.run(main())
