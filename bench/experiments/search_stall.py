"""Another user's GET /api/me while 40 users each run one deep search (issue 20, finding 1).

    .venv/bin/python bench/experiments/search_stall.py [--messages 100000] [--searches 40] [--unbounded]

Seeds a SQLite store with MESSAGES messages of ten random words in one public room (through the store's own API,
so it runs against any commit), starts ``chatd serve`` in token mode on its defaults, warms the search index, and
then, for each kind of search below: starts SEARCHES concurrent searches, one per user (so the per-user search rate
never refuses one), and meanwhile sends another user's GET /api/me one after the other until every search has
answered. It prints /api/me's latencies while the searches ran (the first one waited behind them, if anything
did), and the searches' answers and their slowest time.

The server runs with the interpreter that runs this script, so ``/path/to/other/.venv/bin/python`` measures that
checkout's chatd.
"""

from __future__ import annotations

import argparse
import asyncio
import random
import statistics
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

import httpx

from chatd.accounts.users import new_token, token_hash
from chatd.deploy.local import NodeProcess, free_port
from chatd.store.base import NewMessage
from chatd.store.sqlite import SQLiteStore

KINDS = {
    "q=a offset=10000 (the issue's probe)": {"q": "a", "offset": 10_000, "limit": 20},
    "q=al offset=1000 (the costliest search the defaults let through)": {"q": "al", "offset": 1_000, "limit": 20},
}

UNBOUNDED = {
    "CHATD_SEARCH_PREFIX_MIN": "1",
    "CHATD_SEARCH_OFFSET_MAX": "10000",
    "CHATD_SEARCH_TIMEOUT": "0",
    "CHATD_SEARCH_RATE": "0",
}


def words(n: int, rng: random.Random) -> list[str]:
    letters = "abcdefghijklmnopqrstuvwxyz"
    return ["".join(rng.choice(letters) for _ in range(rng.randint(2, 8))) for _ in range(n)]


async def seed(path: Path, messages: int, users: int) -> list[str]:
    rng = random.Random(20)
    vocab = words(5_000, rng)
    store = SQLiteStore(path)
    await store.open()
    tokens = []
    try:
        ids = []
        for i in range(users):
            user = await store.create_user(f"u{i}", None)
            token = new_token()
            await store.add_token(token_hash(token), user.id)
            ids.append(user.id)
            tokens.append(token)
        await store.create_room("big", private=False, created_by=ids[0])
        for start in range(0, messages, 1_000):
            batch = [
                NewMessage("big", ids[0], f"c{k}", " ".join(rng.choice(vocab) for _ in range(10)))
                for k in range(start, min(start + 1_000, messages))
            ]
            await store.append(batch)
    finally:
        await store.close()
    return tokens


async def run(base: str, tokens: list[str], params: dict[str, object]) -> None:
    me, searchers = tokens[0], tokens[1:]
    async with httpx.AsyncClient(base_url=base, timeout=300, limits=httpx.Limits(max_connections=200)) as c:

        async def one(token: str) -> tuple[int, float]:
            t0 = time.perf_counter()
            r = await c.get("/api/search", params=params, headers={"Authorization": f"Bearer {token}"})
            return r.status_code, time.perf_counter() - t0

        tasks = [asyncio.create_task(one(t)) for t in searchers]
        await asyncio.sleep(0.05)  # the searches reach the server first
        lat = []
        while not all(t.done() for t in tasks):
            t0 = time.perf_counter()
            r = await c.get("/api/me", headers={"Authorization": f"Bearer {me}"})
            assert r.status_code == 200, r.text
            lat.append((time.perf_counter() - t0) * 1000)
        answers = [await t for t in tasks]
    codes = Counter(code for code, _ in answers)
    slowest = max(s for _, s in answers)
    print(
        f"  /api/me during the searches: n={len(lat)} first={lat[0]:.0f} ms median={statistics.median(lat):.0f} ms "
        f"max={max(lat):.0f} ms"
        if lat
        else "  /api/me: every search answered before the first /api/me"
    )
    print(f"  searches: {dict(codes)}, slowest answered after {slowest * 1000:.0f} ms")


async def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--messages", type=int, default=100_000)
    ap.add_argument("--searches", type=int, default=40)
    ap.add_argument(
        "--unbounded",
        action="store_true",
        help="lift the search cost bounds (prefix, offset, time limit, rate) to measure the separate connections alone",
    )
    args = ap.parse_args()
    work = Path(tempfile.mkdtemp(prefix="search-stall-"))
    tokens = await seed(work / "chatd.db", args.messages, args.searches + 1)
    port = free_port()
    node = NodeProcess(
        work,
        {
            "server": {"host": "127.0.0.1", "port": port},
            "store": {"path": str(work / "chatd.db")},
            "uploads": {"dir": str(work / "uploads")},
        },
        UNBOUNDED if args.unbounded else None,
    )
    node.start()
    try:
        async with httpx.AsyncClient(base_url=node.http, timeout=300) as c:
            # The first search brings the index up to date; the later ones measure searching alone.
            warm = await c.get("/api/search", params={"q": "zzzz"}, headers={"Authorization": f"Bearer {tokens[0]}"})
            assert warm.status_code == 200, warm.text
            t0 = time.perf_counter()
            for _ in range(20):
                await c.get("/api/me", headers={"Authorization": f"Bearer {tokens[0]}"})
            idle = (time.perf_counter() - t0) / 20 * 1000
        print(f"python {sys.executable}; {args.messages} messages, {args.searches} searchers")
        print(f"idle /api/me: {idle:.1f} ms")
        for label, params in KINDS.items():
            print(label)
            await run(node.http, tokens, params)
    finally:
        node.stop()


if __name__ == "__main__":
    asyncio.run(main())
