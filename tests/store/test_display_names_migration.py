"""Migration 015_display_names on a database that already has the later ones (016-018) but not 015.

Display names got the lower number while bots, webhooks and single sign-on were released first, so a database a
chatd with those left behind has 016, 017 and 018 and not 015. The stores apply every migration not yet recorded,
by name, so such a database gets 015 when this chatd opens it, and keeps what the later ones stored.
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
import sqlite_utils
from store_opening import Open, opening

from chatd.registry import load
from chatd.store import migrations

SKIPPED = "015_display_names"


def build_sqlite(path: Path) -> None:
    """An SQLite database as a chatd with bots and webhooks but without display names left it."""
    db = sqlite_utils.Database(path)
    db.table("_migrations").create({"name": str, "applied": int}, pk="name")
    for name, fn in migrations.MIGRATIONS:
        if name != SKIPPED:
            with db.conn:
                fn(db)
                db.table("_migrations").insert({"name": name, "applied": int(time.time())})
    with db.conn:
        db.conn.execute("INSERT INTO users (name, admin, bot, created) VALUES ('ann', 0, 0, 1), ('ci', 0, 1, 2)")
        db.conn.execute("INSERT INTO tokens (hash, user, created, scopes) VALUES ('h', 2, 3, '{\"rooms\":[]}')")
    db.close()


async def build_postgres(dsn: str) -> None:
    import asyncpg

    module = __import__(load("stores", "postgres").__module__, fromlist=["MIGRATIONS"])
    c = await asyncpg.connect(dsn)
    try:
        await c.execute("CREATE TABLE _migrations (name TEXT PRIMARY KEY, applied BIGINT NOT NULL)")
        for name, step in module.MIGRATIONS:
            if name == SKIPPED:
                continue
            if isinstance(step, str):
                await c.execute(step)
            else:
                await step(c)
            await c.execute("INSERT INTO _migrations (name, applied) VALUES ($1, 0)", name)
        await c.execute("INSERT INTO users (name, admin, bot, created) VALUES ('ann', false, false, 1)")
        await c.execute("INSERT INTO users (name, admin, bot, created) VALUES ('ci', false, true, 2)")
        await c.execute(
            "INSERT INTO tokens (hash, user_id, created, scopes) "
            "SELECT 'h', id, 3, '{\"rooms\":[]}' FROM users WHERE name = 'ci'"
        )
    finally:
        await c.close()


@pytest.fixture(params=[pytest.param("sqlite", marks=pytest.mark.fast), "postgres"])
async def later_store(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Open]:
    async with opening(request, tmp_path / "later.db", build_sqlite, build_postgres) as open_it:
        yield open_it


async def test_a_database_with_the_later_migrations_but_not_015_gets_it_and_keeps_their_data(
    later_store: Open,
) -> None:
    store = await later_store()
    ann = await store.get_user("ann")
    ci = await store.get_user("ci")
    assert ann is not None and ci is not None and ci.bot and not ann.bot
    assert await store.token_scopes("h") == '{"rooms":[]}'  # what 016 stored is still there
    assert await store.set_display_name(ann.id, "Ann Lée")
    assert [(u.name, u.display_name, u.bot) for u in await store.directory()] == [
        ("ann", "Ann Lée", False),
        ("ci", "", True),
    ]
    assert [u.name for u in await store.directory("ann l")] == ["ann"]
    await store.close()
    again = await later_store()  # nothing left to apply: opening once more changes nothing
    assert (await again.user_by_id(ann.id)).display_name == "Ann Lée"  # type: ignore[union-attr]
