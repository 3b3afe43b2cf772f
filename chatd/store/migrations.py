"""SQLite schema, as an ordered list of migrations applied with sqlite-utils.

Each migration runs once, in order, and is recorded in ``_migrations``. Never edit a released migration; add a
new one.
"""

from __future__ import annotations

import time
from collections.abc import Callable

import sqlite_utils

from chatd.store.base import StoreRefused

Migration = Callable[[sqlite_utils.Database], None]


def m001_initial(db: sqlite_utils.Database) -> None:
    db.table("users").create(
        {"name": str, "password_hash": str, "admin": int, "bot": int, "created": int},
        pk="name",
        not_null={"admin", "bot", "created"},
        defaults={"admin": 0, "bot": 0},
    )
    db.table("tokens").create(
        {"hash": str, "user": str, "created": int},
        pk="hash",
        foreign_keys=[("user", "users", "name")],
        not_null={"user", "created"},
    )
    db.table("tokens").create_index(["user"])
    db.table("rooms").create(
        {"name": str, "private": int, "created_by": str, "created": int, "last_seq": int},
        pk="name",
        not_null={"private", "created", "last_seq"},
        defaults={"last_seq": 0},
    )
    db.table("members").create(
        {"room": str, "user": str, "joined": int},
        pk=("room", "user"),
        foreign_keys=[("room", "rooms", "name"), ("user", "users", "name")],
    )
    db.table("members").create_index(["user"])
    # (room, seq) is the primary key, so history reads are a range scan; WITHOUT ROWID keeps rows in that order.
    db.execute(
        """
        CREATE TABLE messages (
            room TEXT NOT NULL,
            seq INTEGER NOT NULL,
            sender TEXT NOT NULL,
            client_id TEXT NOT NULL,
            body TEXT NOT NULL,
            ts INTEGER NOT NULL,
            attachments TEXT,
            PRIMARY KEY (room, seq)
        ) WITHOUT ROWID
        """
    )
    db.table("messages").create_index(["room", "sender", "client_id"], unique=True, index_name="messages_idem")
    db.table("uploads").create(
        {"id": str, "owner": str, "room": str, "content_type": str, "size": int, "name": str, "created": int},
        pk="id",
        not_null={"owner", "content_type", "size", "created"},
    )


def m002_nocase_users_and_upload_indexes(db: sqlite_utils.Database) -> None:
    """User names are looked up case-insensitively (ASCII ``lower()``, SQLite's NOCASE); uploads are summed per
    owner for the quota and swept by age while unposted.

    The name index is not UNIQUE: a database from before this migration may hold ``Alice`` and ``alice`` as two
    users, and they keep working (an exact spelling wins a lookup). New names are kept unique by ``create_user``,
    which inserts only when no name equal ignoring case exists, in the same statement.
    """
    db.execute("CREATE INDEX users_name_nocase ON users (name COLLATE NOCASE)")
    db.execute("CREATE INDEX uploads_owner ON uploads (owner)")
    db.execute("CREATE INDEX uploads_unposted ON uploads (created) WHERE room IS NULL")


def m003_deployment_key(db: sqlite_utils.Database) -> None:
    """One row per deployment-wide value; the first is the key that signs tickets (``Store.deployment_key``)."""
    db.execute("CREATE TABLE deployment (name TEXT PRIMARY KEY, value BLOB NOT NULL)")


def m004_operations(db: sqlite_utils.Database) -> None:
    """What running a deployment needs: disabled users, token last use, archived rooms, invite codes, and how far
    retention has deleted a room's history (so clients are told "deleted", not shown a gap)."""
    db.execute("ALTER TABLE users ADD COLUMN disabled INTEGER NOT NULL DEFAULT 0")
    db.execute("ALTER TABLE tokens ADD COLUMN last_used INTEGER")
    db.execute("ALTER TABLE rooms ADD COLUMN archived INTEGER NOT NULL DEFAULT 0")
    db.execute("ALTER TABLE rooms ADD COLUMN purged_through INTEGER NOT NULL DEFAULT 0")
    db.execute(
        "CREATE TABLE invites (hash TEXT PRIMARY KEY, created_by TEXT NOT NULL, created INTEGER NOT NULL, "
        "expires INTEGER NOT NULL, used_by TEXT)"
    )


MIGRATIONS: list[tuple[str, Migration]] = [
    ("001_initial", m001_initial),
    ("002_nocase_users_and_upload_indexes", m002_nocase_users_and_upload_indexes),
    ("003_deployment_key", m003_deployment_key),
    ("004_operations", m004_operations),
]


class SchemaTooNew(StoreRefused):
    """The database was migrated by a newer chatd than this one."""


def applied(db: sqlite_utils.Database) -> list[str]:
    """Names of the migrations this database has had, oldest first (empty for a new database)."""
    if not db.table("_migrations").exists():
        return []
    return [row["name"] for row in db.query("SELECT name FROM _migrations ORDER BY name")]


def check_not_newer(done: list[str], known: list[str]) -> None:
    """Refuse a database that has migrations this code does not know: a newer chatd wrote it, and this one would
    misread what it does not expect."""
    unknown = sorted(set(done) - set(known))
    if unknown:
        raise SchemaTooNew(
            f"the database has schema migrations this chatd does not know ({', '.join(unknown)}): it was upgraded "
            "by a newer chatd. Run that version, or restore a backup taken before the upgrade"
        )


def migrate(db: sqlite_utils.Database, apply: bool = True) -> list[str]:
    """Apply pending migrations; returns the names applied (with ``apply=False``: the names pending). Raises
    SchemaTooNew for a database from a newer chatd."""
    check_not_newer(applied(db), [name for name, _ in MIGRATIONS])
    table = db.table("_migrations")
    if not table.exists():
        if not apply:
            return [name for name, _ in MIGRATIONS]
        db.table("_migrations").create({"name": str, "applied": int}, pk="name")
    done = {row["name"] for row in db.table("_migrations").rows}
    if not apply:
        return [name for name, _ in MIGRATIONS if name not in done]
    now_applied = []
    for name, fn in MIGRATIONS:
        if name in done:
            continue
        with db.conn:
            fn(db)
            db.table("_migrations").insert({"name": name, "applied": int(time.time())})
        now_applied.append(name)
    return now_applied
