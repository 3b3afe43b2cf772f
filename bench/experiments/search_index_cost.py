"""SQLite CPU per appended message with search indexing three ways (issue 12's per-message cost).

    .venv/bin/python bench/experiments/search_index_cost.py

Appends 16,000 100-byte messages into 10 rooms in transactions of BATCH messages, on chatd's current schema, and
reports process CPU per message:
- none: no search index at all (the floor);
- trigger: every message indexed inside its append transaction (migration 009's insert trigger, put back here);
- deferred: what chatd does since migration 010, indexing in bulk every 2,000 messages (the bulk share is shown).
CPU time, not wall time, so another busy process on the machine skews it less.
"""

from __future__ import annotations

import sqlite3
import tempfile
import time
from pathlib import Path

import sqlite_utils

from chatd.store.migrations import SEARCH_INSERT_TRIGGER_009, migrate
from chatd.store.sqlite import _index_sync

N = 16_000
BODY = "hello world this is a message of about a hundred bytes lorem ipsum dolor sit amet consectetur"


def run(mode: str, batch: int) -> tuple[float, float]:
    path = Path(tempfile.mkdtemp()) / "t.db"
    migrate(sqlite_utils.Database(path))
    conn = sqlite3.connect(path, isolation_level=None)
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute("PRAGMA synchronous=NORMAL")
    rooms = [(f"r{r}",) for r in range(10)]
    conn.execute("INSERT INTO users (id, name, created) VALUES (1, 'u', 0)")
    conn.executemany("INSERT INTO rooms (name, private, created_by, created) VALUES (?, 0, 1, 0)", rooms)
    if mode == "trigger":
        conn.execute(SEARCH_INSERT_TRIGGER_009)
    seq = dict.fromkeys((f"r{r}" for r in range(10)), 0)
    indexing = 0.0
    started = time.process_time()
    for i in range(0, N, batch):
        conn.execute("BEGIN IMMEDIATE")
        rows = []
        for k in range(i, i + batch):
            room = f"r{k % 10}"
            seq[room] += 1
            rows.append((room, seq[room], 1, f"c{k}", f"{BODY} {k}", k))
        conn.executemany("INSERT INTO messages (room, seq, sender, client_id, body, ts) VALUES (?,?,?,?,?,?)", rows)
        conn.executemany("UPDATE rooms SET last_seq = ? WHERE name = ?", [(s, r) for r, s in seq.items()])
        conn.execute("COMMIT")
        if mode == "deferred" and (i + batch) % 2_000 < batch:
            t = time.process_time()
            while not _index_sync(conn, 1_000):
                pass
            indexing += time.process_time() - t
    total = time.process_time() - started
    return total / N * 1e6, indexing / N * 1e6


def main() -> None:
    for batch in (8, 32):
        for mode in ("none", "trigger", "deferred"):
            per, bulk = run(mode, batch)
            extra = f" (of which bulk indexing {bulk:.1f})" if mode == "deferred" else ""
            print(f"batch {batch:>2}, {mode:<8}: {per:6.1f} us of CPU per message{extra}")


if __name__ == "__main__":
    main()
