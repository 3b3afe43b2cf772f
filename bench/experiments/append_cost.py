"""Where the SQLite store's CPU per appended message goes, statement by statement (issue 12's per-message cost).

    .venv/bin/python bench/experiments/append_cost.py

Runs chatd's own append transaction (``_append_sync``) on its current schema, alone in this process, for direct
messages (50 rooms of two, 100-byte bodies) in batches of 4, 16 and 64, and reports the CPU per message of the whole
transaction and of each statement in it. This is the floor: inside a busy server the same transaction costs more
(the writer's thread shares two cores and the GIL with the event loop and granian).
"""

from __future__ import annotations

import collections
import sqlite3
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import sqlite_utils

from chatd.store.base import NewMessage
from chatd.store.migrations import migrate
from chatd.store.sqlite import _append_sync

ROOMS = 50
MESSAGES = 32_000
BODY = "x" * 100


class TimedConnection:
    """A sqlite3 connection that charges the CPU of each statement (results read in full) to its first words."""

    def __init__(self, conn: sqlite3.Connection, cpu: collections.Counter[str]) -> None:
        self.conn = conn
        self.cpu = cpu

    @property
    def in_transaction(self) -> bool:
        return self.conn.in_transaction

    def execute(self, sql: str, params: Sequence[Any] = ()) -> Any:
        started = time.process_time()
        rows = self.conn.execute(sql, params).fetchall()
        self.cpu[_label(sql)] += time.process_time() - started
        return _Rows(rows)

    def executemany(self, sql: str, params: Sequence[Sequence[Any]]) -> None:
        started = time.process_time()
        self.conn.executemany(sql, params)
        self.cpu[_label(sql) + " (executemany)"] += time.process_time() - started


class _Rows(list[Any]):
    def fetchall(self) -> list[Any]:
        return list(self)

    def fetchone(self) -> Any:
        return self[0] if self else None


def _label(sql: str) -> str:
    if sql.startswith("WITH k"):
        return "SELECT earlier sends with these keys"
    return " ".join(sql.split()[:5])[:40]


def setup() -> sqlite3.Connection:
    path = Path(tempfile.mkdtemp()) / "append.db"
    migrate(sqlite_utils.Database(path))
    conn = sqlite3.connect(path, isolation_level=None)
    for pragma in ("journal_mode=WAL", "synchronous=NORMAL", "foreign_keys=ON"):
        conn.execute(f"PRAGMA {pragma}")
    # users u0, u1, … get ids 1, 2, …
    users = [(i + 1, f"u{i}") for i in range(2 * ROOMS)]
    conn.executemany("INSERT INTO users (id, name, password_hash, created) VALUES (?, ?, '', 0)", users)
    for r in range(ROOMS):
        conn.execute("INSERT INTO rooms (name, private, created_by, created) VALUES (?, 1, ?, 0)", (f"dm{r}", r + 1))
        conn.executemany(
            "INSERT INTO members (room, user) VALUES (?, ?)", [(f"dm{r}", 2 * r + 1), (f"dm{r}", 2 * r + 2)]
        )
    return conn


def run(batch: int) -> tuple[float, collections.Counter[str]]:
    conn = setup()
    cpu: collections.Counter[str] = collections.Counter()
    timed = TimedConnection(conn, cpu)
    msgs = [NewMessage(f"dm{i % ROOMS}", 2 * (i % ROOMS) + 1, f"c{i}", BODY) for i in range(MESSAGES)]
    started = time.process_time()
    for i in range(0, MESSAGES, batch):
        outcomes = _append_sync(timed, msgs[i : i + batch], (50, 20))  # type: ignore[arg-type]
        assert not any(o.error for o in outcomes), outcomes
    total = time.process_time() - started
    conn.close()
    return total, cpu


def main() -> None:
    for batch in (4, 16, 64):
        total, cpu = run(batch)
        print(f"batch {batch:3d}: {total / MESSAGES * 1e6:5.1f} µs of CPU per message")
        for label, seconds in cpu.most_common():
            print(f"    {label:50s} {seconds / MESSAGES * 1e6:5.1f} µs")


if __name__ == "__main__":
    main()
