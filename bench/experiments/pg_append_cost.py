"""PostgreSQL's CPU per appended message (issue 23's "PostgreSQL CPU per stored message").

    .venv/bin/python bench/experiments/pg_append_cost.py [--messages 20000] [--batch 16] [--no-search]

Starts a PostgreSQL instance of its own (``initdb`` + ``pg_ctl`` in a temporary directory, on a free port, with
``pg_stat_statements``), so nothing else on the machine is counted. Runs chatd's own ``PostgresStore.append`` for
direct messages (50 rooms of two, 14-word bodies) in batches of ``--batch`` and reports the CPU of every PostgreSQL
process per message (from ``/proc``), and the server's own time per statement. ``--no-search`` drops the generated
``tsvector`` column first, to show what the search index costs. ``--history N`` stores N messages and runs
``ANALYZE`` first, as in a deployment whose statistics are fresh; without it the table grows from empty during the
run, as in a benchmark on a new database. CPU time, unlike wall time, barely moves when
something else is running, but compare runs made back to back all the same.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import random
import shutil
import socket
import subprocess
import tempfile
import time
from pathlib import Path

import asyncpg

from chatd.config import StoreConfig
from chatd.registry import load
from chatd.store.base import NewMessage

WORDS = "the deploy failed again on staging because redis was down and the build took forever after lunch".split()
ROOMS = 50
TICK = os.sysconf("SC_CLK_TCK")


def pg_bin() -> Path:
    found = sorted(Path("/usr/lib/postgresql").glob("*/bin/initdb"))
    if not found:
        raise SystemExit("no PostgreSQL server binaries under /usr/lib/postgresql")
    return found[-1].parent


def cpu_seconds(postmaster: int) -> float:
    """User + system CPU of the postmaster and its children (backends, WAL writer, checkpointer, ...)."""
    total = 0
    for p in Path("/proc").iterdir():
        if not p.name.isdigit():
            continue
        try:
            fields = (p / "stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(p.name) == postmaster or int(fields[1]) == postmaster:
            total += int(fields[11]) + int(fields[12])
    return total / TICK


async def measure(dsn: str, postmaster: int, args: argparse.Namespace) -> None:
    store = load("stores", "postgres")(StoreConfig(backend="postgres", dsn=dsn, pool_size=2))
    await store.open()
    admin = await asyncpg.connect(dsn)
    if args.no_search:
        await admin.execute("ALTER TABLE messages DROP COLUMN search")
    users = [(await store.create_user(f"u{i}", None)).id for i in range(2 * ROOMS)]
    for r in range(ROOMS):
        await store.create_room(f"dm{r}", False, users[2 * r])
        await store.add_member(f"dm{r}", users[2 * r])
        await store.add_member(f"dm{r}", users[2 * r + 1])
    if args.history:
        # A room with a past, analyzed: the planner's statistics are fresh, as in a long-running deployment.
        await admin.execute(
            "INSERT INTO messages (room, seq, sender, client_id, body, ts) "
            "SELECT 'dm0', n, $1, 'h' || n, 'old news', 0 FROM generate_series(1, $2) AS n",
            users[0],
            args.history,
        )
        await admin.execute("UPDATE rooms SET last_seq = $1 WHERE name = 'dm0'", args.history)
        await admin.execute("ANALYZE")
    rnd = random.Random(1)
    batches = [
        [
            NewMessage(f"dm{i % ROOMS}", users[2 * (i % ROOMS) + i % 2], f"c{i}", " ".join(rnd.choices(WORDS, k=14)))
            for i in range(start, start + args.batch)
        ]
        for start in range(0, args.messages, args.batch)
    ]
    await store.append(batches.pop(0))  # prepares the statements
    await admin.execute("CREATE EXTENSION IF NOT EXISTS pg_stat_statements")
    await admin.execute("SELECT pg_stat_statements_reset()")
    cpu, wall = cpu_seconds(postmaster), time.perf_counter()
    for batch in batches:
        await store.append(batch)
    cpu, wall = cpu_seconds(postmaster) - cpu, time.perf_counter() - wall
    sent = sum(len(b) for b in batches)
    variant = " without the search column" if args.no_search else ""
    print(
        f"{sent} messages in batches of {args.batch} after {args.history} stored{variant}: "
        f"PostgreSQL CPU {cpu:.2f} s = {cpu / sent * 1e6:.1f} µs per message (wall {wall:.1f} s)"
    )
    print("server time per message, by statement:")
    for r in await admin.fetch(
        "SELECT calls, total_exec_time + total_plan_time AS ms, regexp_replace(query, '\\s+', ' ', 'g') AS q "
        "FROM pg_stat_statements WHERE calls > 0 AND query NOT LIKE '%pg_stat_statements%' ORDER BY 2 DESC LIMIT 8"
    ):
        print(f"  {r['ms'] * 1000 / sent:7.1f} µs  {r['q'][:100]}")
    await admin.close()
    await store.close()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--messages", type=int, default=20_000)
    ap.add_argument("--batch", type=int, default=16)
    ap.add_argument("--no-search", action="store_true")
    ap.add_argument("--history", type=int, default=0, help="messages stored (and analyzed) before the run")
    args = ap.parse_args()
    bin_dir = pg_bin()
    # initdb refuses to run as root; the Debian packages' postgres user owns the instance then.
    user = "postgres" if os.getuid() == 0 else None
    with tempfile.TemporaryDirectory() as data:
        if user:
            shutil.chown(data, user)
        subprocess.run(
            [bin_dir / "initdb", "-D", data, "-U", "postgres", "-A", "trust"],
            check=True,
            capture_output=True,
            user=user,
        )
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
        opts = f"-p {port} -k {data} -c listen_addresses=127.0.0.1 -c shared_preload_libraries=pg_stat_statements"
        subprocess.run(
            [bin_dir / "pg_ctl", "-D", data, "-o", opts, "-w", "-l", f"{data}/log", "start"],
            check=True,
            capture_output=True,
            user=user,
        )
        try:
            postmaster = int(Path(data, "postmaster.pid").read_text().split()[0])
            asyncio.run(measure(f"postgresql://postgres@127.0.0.1:{port}/postgres", postmaster, args))
        finally:
            subprocess.run([bin_dir / "pg_ctl", "-D", data, "-m", "fast", "stop"], capture_output=True, user=user)


if __name__ == "__main__":
    main()
