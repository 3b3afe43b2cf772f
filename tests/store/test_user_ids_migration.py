"""Migration 012_user_ids on a database made by the schema before it, with data, on SQLite and PostgreSQL.

The database is built the way an older chatd left it: every migration before 012 applied, then rows keyed by names,
including what only an old database can hold (two spellings of one name from before names were case-insensitive,
messages and reactions of deleted users, direct rooms named from names). After the migration the store keeps
working and everything belongs to the same people it belonged to.
"""

from __future__ import annotations

import sqlite3
import time
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
import sqlite_utils
from store_opening import Open, opening

from chatd.protocol.frames import Message
from chatd.registry import load
from chatd.store import migrations
from chatd.store.base import EXPORT_KINDS, NewMessage, UserRef
from chatd.store.sqlite import SQLiteStore

FIRST_NEW = "012_user_ids"

USERS = [  # name, password hash, admin, created
    ("Alice", "hash-A", True, 1),
    ("alice", "hash-a", False, 2),  # the legacy second spelling (see migration 002)
    ("bob", None, False, 3),
    ("carol", None, False, 4),
]
ROOMS = [  # name, private, created_by, last_seq, dm
    ("lobby", False, "Alice", 5, False),
    ("board", True, "dave", 1, False),  # made by a user deleted since
    ("dm:alice:bob", True, "alice", 2, True),
    ("dm:bob:carol", True, "bob", 0, True),  # carol left and never wrote: found from the name
    ("dm:bob:zed", True, "bob", 0, True),  # zed was deleted and never wrote: cannot be told
]
MEMBERS = [
    ("lobby", "Alice"),
    ("lobby", "alice"),
    ("lobby", "bob"),
    ("board", "bob"),
    ("dm:alice:bob", "alice"),
    ("dm:alice:bob", "bob"),
    ("dm:bob:carol", "bob"),
    ("dm:bob:zed", "bob"),
]
MESSAGES = [  # room, seq, sender, client_id, body, kind, target, reactions
    ("lobby", 1, "Alice", "c1", "hello @alice", None, None, '{"👍":["bob","dave","alice"],"🎉":["Alice"]}'),
    ("lobby", 2, "alice", "c1", "hi Alice", None, None, None),
    ("lobby", 3, "dave", "c1", "bye all", None, None, None),  # dave was deleted later
    ("lobby", 4, "bob", "r1", "👍", "react", 1, None),
    ("lobby", 5, "bob", "c2", "searchable words", None, None, None),
    ("board", 1, "dave", "c1", "board notes", None, None, None),
    ("dm:alice:bob", 1, "alice", "d1", "psst", None, None, None),
    ("dm:alice:bob", 2, "bob", "d2", "yes?", None, None, None),
]


def _rows() -> dict[str, list[tuple]]:
    return {
        "users": [(n, h, a, c) for n, h, a, c in USERS],
        "tokens": [("tok-A", "Alice", 10), ("tok-a", "alice", 10), ("tok-b", "bob", 10)],
        "rooms": ROOMS,
        "members": MEMBERS,
        "messages": MESSAGES,
        "reads": [("bob", "lobby", 2, 20)],
        "mentions": [("alice", "lobby", 1, 21)],
        "uploads": [("up1", "bob", "lobby", "image/png", 3, "a.png", 30)],
        "invites": [("inv1", "admin", 40, 2**50, "carol"), ("inv2", "Alice", 41, 2**50, None)],
    }


def build_sqlite(path: Path) -> None:
    """An SQLite database as a chatd from before user ids left it."""
    db = sqlite_utils.Database(path)
    db.table("_migrations").create({"name": str, "applied": int}, pk="name")
    for name, fn in migrations.MIGRATIONS:
        if name >= FIRST_NEW:
            break
        with db.conn:
            fn(db)
            db.table("_migrations").insert({"name": name, "applied": int(time.time())})
    rows = _rows()
    conn = db.conn
    with conn:
        conn.executemany("INSERT INTO users (name, password_hash, admin, created) VALUES (?, ?, ?, ?)", rows["users"])
        conn.executemany("INSERT INTO tokens (hash, user, created) VALUES (?, ?, ?)", rows["tokens"])
        conn.executemany(
            "INSERT INTO rooms (name, private, created_by, created, last_seq, dm) VALUES (?, ?, ?, 1, ?, ?)",
            rows["rooms"],
        )
        conn.executemany("INSERT INTO members (room, user, joined) VALUES (?, ?, 1)", rows["members"])
        conn.executemany(
            "INSERT INTO messages (room, seq, sender, client_id, body, ts, kind, target, reactions) "
            "VALUES (?, ?, ?, ?, ?, 100, ?, ?, ?)",
            rows["messages"],
        )
        conn.executemany("INSERT INTO reads (user, room, seq, ts) VALUES (?, ?, ?, ?)", rows["reads"])
        conn.executemany("INSERT INTO mentions (user, room, seq, ts) VALUES (?, ?, ?, ?)", rows["mentions"])
        conn.executemany(
            "INSERT INTO uploads (id, owner, room, content_type, size, name, created) VALUES (?, ?, ?, ?, ?, ?, ?)",
            rows["uploads"],
        )
        conn.executemany(
            "INSERT INTO invites (hash, created_by, created, expires, used_by) VALUES (?, ?, ?, ?, ?)", rows["invites"]
        )
    db.close()


async def build_postgres(dsn: str) -> None:
    """A PostgreSQL database as a chatd from before user ids left it."""
    import asyncpg

    pg = load("stores", "postgres")
    module = __import__(pg.__module__, fromlist=["MIGRATIONS"])
    rows = _rows()
    c = await asyncpg.connect(dsn)
    try:
        await c.execute("CREATE TABLE _migrations (name TEXT PRIMARY KEY, applied BIGINT NOT NULL)")
        for name, sql in module.MIGRATIONS:
            if name >= FIRST_NEW:
                break
            await c.execute(sql)
            await c.execute("INSERT INTO _migrations (name, applied) VALUES ($1, 0)", name)
        await c.executemany(
            "INSERT INTO users (name, password_hash, admin, created) VALUES ($1, $2, $3, $4)", rows["users"]
        )
        await c.executemany("INSERT INTO tokens (hash, username, created) VALUES ($1, $2, $3)", rows["tokens"])
        await c.executemany(
            "INSERT INTO rooms (name, private, created_by, created, last_seq, dm) VALUES ($1, $2, $3, 1, $4, $5)",
            rows["rooms"],
        )
        await c.executemany("INSERT INTO members (room, username, joined) VALUES ($1, $2, 1)", rows["members"])
        await c.executemany(
            "INSERT INTO messages (room, seq, sender, client_id, body, ts, kind, target, reactions) "
            "VALUES ($1, $2, $3, $4, $5, 100, $6, $7, $8)",
            rows["messages"],
        )
        await c.executemany("INSERT INTO reads (username, room, seq, ts) VALUES ($1, $2, $3, $4)", rows["reads"])
        await c.executemany("INSERT INTO mentions (username, room, seq, ts) VALUES ($1, $2, $3, $4)", rows["mentions"])
        await c.executemany(
            "INSERT INTO uploads (id, owner, room, content_type, size, name, created) "
            "VALUES ($1, $2, $3, $4, $5, $6, $7)",
            rows["uploads"],
        )
        await c.executemany(
            "INSERT INTO invites (hash, created_by, created, expires, used_by) VALUES ($1, $2, $3, $4, $5)",
            rows["invites"],
        )
    finally:
        await c.close()


@pytest.fixture(params=[pytest.param("sqlite", marks=pytest.mark.fast), "postgres"])
async def old_store(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Open]:
    """Builds the old database; calling the result opens it with this chatd, which migrates it."""
    async with opening(request, tmp_path / "old.db", build_sqlite, build_postgres) as open_it:
        yield open_it


async def test_an_old_database_migrates_to_user_ids_and_keeps_working(old_store: Open) -> None:
    store = await old_store()
    upper, lower = await store.get_user("Alice"), await store.get_user("alice")
    bob, carol = await store.get_user("bob"), await store.get_user("carol")
    assert upper and lower and bob and carol
    # Each stored spelling is its own user, with what its exact spelling owned; ids follow creation.
    assert [upper.id, lower.id, bob.id, carol.id] == sorted({upper.id, lower.id, bob.id, carol.id})
    assert (upper.name, upper.admin, lower.name, lower.admin) == ("Alice", True, "alice", False)
    assert await store.password_hash(upper.id) == "hash-A" and await store.password_hash(lower.id) == "hash-a"
    assert await store.user_for_token("tok-A") == upper and await store.user_for_token("tok-a") == lower
    # The deleted dave is a tombstone: his messages show his name, nobody can be him, his name is free.
    assert await store.get_user("dave") is None
    history = await store.history("lobby")
    assert [(m.seq, m.from_) for m in history] == [(1, "Alice"), (2, "alice"), (3, "dave"), (5, "bob")]
    dave = history[2].uid
    assert dave not in (upper.id, lower.id, bob.id, carol.id) and await store.user_names([dave]) == {dave: "dave"}
    # Reactions became rows, in their old order, with the right people (dave's included).
    assert history[0].reactions == {"👍": ["bob", "dave", "alice"], "🎉": ["Alice"]}
    assert history[0].reaction_uids == {"👍": [bob.id, dave, lower.id], "🎉": [upper.id]}
    board = await store.get_room("board")
    assert board is not None and (board.created_by, board.creator) == (dave, "dave")
    lobby = await store.get_room("lobby")
    assert lobby is not None and lobby.created_by == upper.id
    assert await store.members("lobby") == sorted(
        [UserRef(upper.id, "Alice"), UserRef(lower.id, "alice"), UserRef(bob.id, "bob")], key=lambda u: u.name
    )
    assert [(p.room, p.seq) for p in await store.read_positions(bob.id) if p.room == "lobby"] == [("lobby", 2)]
    assert [m.seq for m in await store.mentions(lower.id)] == [1] and await store.mentions(upper.id) == []
    assert await store.upload_usage(bob.id) == 3
    assert [(i.hash, i.created_by, i.used_by) for i in await store.invites()] == [
        ("inv1", None, "carol"),
        ("inv2", "Alice", None),
    ]
    # Direct rooms are named from their pair of ids, history and members moved along; one that cannot be told
    # keeps its name for its member.
    pair = sorted((lower.id, bob.id))
    ab = f"dm:{pair[0]}:{pair[1]}"
    assert [(m.from_, m.body) for m in await store.history(ab)] == [("alice", "psst"), ("bob", "yes?")]
    assert await store.get_room("dm:alice:bob") is None
    bc = "dm:{}:{}".format(*sorted((bob.id, carol.id)))
    assert [m.id for m in await store.members(bc)] == [bob.id]
    assert {r.name for r, member in await store.list_rooms(bob.id) if r.dm and member} == {ab, bc, "dm:bob:zed"}
    # And it keeps working: new messages, reactions after the old ones, search, a new user with a freed name.
    out = await store.append(
        [
            NewMessage("lobby", bob.id, "c3", "after the upgrade"),
            NewMessage("lobby", upper.id, "r9", "👍", kind="react", target=1),
            NewMessage("lobby", upper.id, "c1", "a resend of Alice's first message"),
        ]
    )
    assert [(o.seq, o.duplicate, o.error) for o in out] == [(6, False, ""), (7, False, ""), (1, True, "")]
    first = (await store.history("lobby", limit=1, before=2))[0]
    assert isinstance(first, Message) and first.reactions["👍"] == ["bob", "dave", "alice", "Alice"]
    assert [h.seq for h in await store.search(bob.id, ["searchable"])] == [5]
    new_dave = await store.create_user("dave", None)
    assert new_dave.id not in (dave, upper.id, lower.id, bob.id, carol.id)
    assert not await store.is_member("board", new_dave.id)
    with pytest.raises(Exception):  # noqa: B017, PT011 - either store's conflict
        await store.create_user("ALICE", None)


async def test_the_migration_keeps_columns_it_does_not_know(tmp_path: Path) -> None:
    """Another migration may have added columns (rooms.epoch does, in 011; these are others'): the tables this one
    rebuilds keep them."""
    path = tmp_path / "old.db"
    build_sqlite(path)
    conn = sqlite3.connect(path)
    conn.execute("ALTER TABLE rooms ADD COLUMN note TEXT NOT NULL DEFAULT 'e0'")
    conn.execute("ALTER TABLE messages ADD COLUMN extra INTEGER DEFAULT 7")
    conn.execute("ALTER TABLE users ADD COLUMN nickname TEXT")
    conn.execute("UPDATE users SET nickname = 'Al' WHERE name = 'Alice'")
    conn.commit()
    conn.close()
    store = SQLiteStore(path)
    await store.open()
    await store.close()
    conn = sqlite3.connect(path)
    try:
        assert conn.execute("SELECT note FROM rooms WHERE name = 'lobby'").fetchone() == ("e0",)
        assert conn.execute("SELECT COUNT(*) FROM messages WHERE extra = 7").fetchone() == (len(MESSAGES),)
        assert conn.execute("SELECT nickname FROM users WHERE name = 'Alice'").fetchone() == ("Al",)
    finally:
        conn.close()


def legacy_export(path: Path) -> bytes:
    """A format-1 export (names everywhere) of an old database, as ``chatd export`` of an older chatd wrote it."""
    import msgspec

    from chatd.admin.data import LEGACY_COLUMNS

    conn = sqlite3.connect(path)
    lines = [msgspec.json.encode({"kind": "chatd-export", "format": 1})]
    bools = {"admin", "bot", "disabled", "private", "archived", "dm", "deleted"}
    try:
        for kind, cols in LEGACY_COLUMNS.items():
            names = ", ".join("kind AS change" if c == "change" else c for c in cols)
            for row in conn.execute(f"SELECT {names} FROM {kind}s ORDER BY 1, 2"):
                out = {c: (bool(v) if c in bools else v) for c, v in zip(cols, row, strict=True)}
                if kind == "message":
                    out["attachments"] = msgspec.json.decode(out["attachments"]) if out["attachments"] else []
                lines.append(msgspec.json.encode({"kind": kind, **out}))
    finally:
        conn.close()
    return b"\n".join(lines) + b"\n"


async def test_an_export_from_before_user_ids_imports_with_ids(tmp_path: Path, old_store: Open) -> None:
    """``chatd import`` of a format-1 export gives the same people the same things as migrating the database."""
    import io

    from chatd.admin.data import read_import

    old = tmp_path / "for-export.db"
    build_sqlite(old)
    store = await old_store()  # a store to compare with: the same data, migrated in place
    migrated = {kind: [row async for row in store.export_rows(kind)] for kind in EXPORT_KINDS}
    target = SQLiteStore(tmp_path / "target.db")
    await target.open()
    try:
        counts = await read_import(target, io.BytesIO(legacy_export(old)))
        assert counts["user"] == len(USERS) + 1 and counts["reaction"] == 4  # dave's tombstone; JSON → rows
        imported = {kind: [row async for row in target.export_rows(kind)] for kind in EXPORT_KINDS}
        for kind in EXPORT_KINDS:
            # format 1 had no invites or sso links
            assert imported[kind] == (migrated[kind] if kind not in ("invite", "sso_link") else []), kind
        lower = await target.get_user("alice")
        assert lower is not None and await target.user_for_token("tok-a") == lower
        assert (await target.append([NewMessage("lobby", lower.id, "after", "hello")]))[0].seq == 6
    finally:
        await target.close()
