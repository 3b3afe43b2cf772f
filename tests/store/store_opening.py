"""Opening a database built by a test as an older chatd left it, on either store, with this chatd (which migrates
it). Shared by the migration tests."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path

import pytest

from chatd.config import StoreConfig
from chatd.registry import load
from chatd.store.base import Store
from chatd.store.sqlite import SQLiteStore

Open = Callable[[], Awaitable[Store]]


@contextlib.asynccontextmanager
async def opening(
    request: pytest.FixtureRequest,
    path: Path,
    build_sqlite: Callable[[Path], None],
    build_postgres: Callable[[str], Awaitable[None]],
) -> AsyncIterator[Open]:
    """Build the old database on ``request.param``'s store; the result opens it (as often as asked), and every
    store it opened is closed at the end."""
    opened: list[Store] = []
    if request.param == "sqlite":
        build_sqlite(path)

        def make() -> Store:
            return SQLiteStore(path)
    else:
        dsn = request.getfixturevalue("pg_dsn")
        await build_postgres(dsn)

        def make() -> Store:
            return load("stores", "postgres")(StoreConfig(backend="postgres", dsn=dsn, pool_size=2))

    async def open_it() -> Store:
        store = make()
        await store.open()
        opened.append(store)
        return store

    try:
        yield open_it
    finally:
        for store in opened:
            await store.close()
