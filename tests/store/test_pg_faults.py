"""PostgreSQL faults that pass are told apart from refusals: what a pooled connection raises after its session was
terminated, or after its link was cut, is transient (``PostgresStore.transient``), so the worker retries the batch
instead of answering ``internal``. Real PostgreSQL, the test's own database; the link cut goes through the test's
own fault proxy."""

from __future__ import annotations

import asyncio
import collections
import itertools
from urllib.parse import urlsplit, urlunsplit

import asyncpg
import pytest

from chatd.bench.faultproxy import FaultProxy
from chatd.config import StoreConfig
from chatd.registry import load
from chatd.store.base import NewMessage, Store

WORKERS = 8


async def terminate_all(dsn: str) -> None:
    """``pg_terminate_backend`` on every session of this test's database (and nothing else)."""
    parts = urlsplit(dsn)
    conn = await asyncpg.connect(urlunsplit(parts._replace(path="/postgres")), timeout=5)
    try:
        await conn.execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = $1 AND pid <> pg_backend_pid()",
            parts.path.lstrip("/"),
        )
    finally:
        await conn.close()


async def errors_under(store: Store, fault: collections.abc.Callable[[], collections.abc.Awaitable[None]]) -> dict:
    """Run appends and reads from several tasks while ``fault`` strikes 40 times; every exception by type."""
    seen: collections.Counter[tuple[str, bool]] = collections.Counter()
    examples: dict[tuple[str, bool], str] = {}
    stop = asyncio.Event()
    counter = itertools.count()

    async def work(i: int) -> None:
        while not stop.is_set():
            n = next(counter)
            try:
                await store.append([NewMessage(room, 1, f"{i}-{n}", "x") for room in ("a", "b", "c")])
                await store.last_seqs(["a", "b", "c"])
            except Exception as e:  # noqa: BLE001 - collected and judged below
                key = (type(e).__name__, store.transient(e))
                seen[key] += 1
                examples.setdefault(key, str(e)[:200])

    tasks = [asyncio.create_task(work(i)) for i in range(WORKERS)]
    for _ in range(40):
        await asyncio.sleep(0.05)
        await fault()
    stop.set()
    await asyncio.gather(*tasks)
    return {key: (count, examples[key]) for key, count in seen.items()}


@pytest.fixture
async def store(pg_dsn: str) -> collections.abc.AsyncIterator[Store]:
    s = load("stores", "postgres")(StoreConfig(backend="postgres", dsn=pg_dsn, pool_size=4))
    await s.open()
    yield s
    await s.close()


async def test_what_a_terminated_session_raises_is_transient(store: Store, pg_dsn: str) -> None:
    seen = await errors_under(store, lambda: terminate_all(pg_dsn))
    assert seen, "the terminations raised nothing: the test did not test"
    refused = {key: v for key, v in seen.items() if not key[1]}
    assert not refused, f"answered as refusals ('internal') instead of retried: {refused}"


async def test_what_a_cut_link_raises_is_transient(pg_dsn: str) -> None:
    parts = urlsplit(pg_dsn)
    assert parts.hostname and parts.port
    proxy = await FaultProxy(parts.hostname, parts.port).start()
    dsn = urlunsplit(parts._replace(netloc=f"{parts.username}@{proxy.host}:{proxy.port}"))
    s = load("stores", "postgres")(StoreConfig(backend="postgres", dsn=dsn, pool_size=4))
    await s.open()

    async def cut() -> None:
        proxy.set("cut")
        await asyncio.sleep(0.01)
        proxy.set("pass")

    try:
        seen = await errors_under(s, cut)
    finally:
        await s.close()
        await proxy.close()
    assert seen, "the cuts raised nothing: the test did not test"
    refused = {key: v for key, v in seen.items() if not key[1]}
    assert not refused, f"answered as refusals ('internal') instead of retried: {refused}"
