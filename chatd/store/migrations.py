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


def m005_room_events(db: sqlite_utils.Database) -> None:
    """Room changes are rows of ``messages`` with a ``kind`` (chatd.store.changes), so they share the room's seqs,
    the idempotency index and the replay path; a message row keeps its current state (edited, deleted, reactions,
    the seq it replies to). ``data`` holds a change's extra result (a reaction's users)."""
    for column in (
        "kind TEXT",
        "target INTEGER",
        "reply_to INTEGER",
        "edited INTEGER",
        "deleted INTEGER NOT NULL DEFAULT 0",
        "reactions TEXT",
        "data TEXT",
    ):
        db.execute(f"ALTER TABLE messages ADD COLUMN {column}")
    # A delete clears the bodies of the target's earlier edits; this finds them without scanning the room.
    db.execute("CREATE INDEX messages_edits ON messages (room, target) WHERE kind = 'edit'")
    db.execute("ALTER TABLE rooms ADD COLUMN topic TEXT")


def m006_read_state(db: sqlite_utils.Database) -> None:
    """Each user's last-read seq per room, kept on the server so every device of theirs agrees."""
    db.execute(
        "CREATE TABLE reads (user TEXT NOT NULL, room TEXT NOT NULL, seq INTEGER NOT NULL, ts INTEGER NOT NULL, "
        "PRIMARY KEY (user, room)) WITHOUT ROWID"
    )


def m007_mentions(db: sqlite_utils.Database) -> None:
    """Who was named in which message, recorded by ``append``; listed per user newest first."""
    db.execute(
        "CREATE TABLE mentions (user TEXT NOT NULL, room TEXT NOT NULL, seq INTEGER NOT NULL, ts INTEGER NOT NULL, "
        "PRIMARY KEY (user, room, seq)) WITHOUT ROWID"
    )
    db.execute("CREATE INDEX mentions_recent ON mentions (user, ts)")


def m008_direct_messages(db: sqlite_utils.Database) -> None:
    """Direct-message rooms are private rooms marked as such, so clients can list them apart and nobody can
    invite a third person into one."""
    db.execute("ALTER TABLE rooms ADD COLUMN dm INTEGER NOT NULL DEFAULT 0")


# Migration 009's per-message indexing, kept by name so bench/experiments/search_index_cost.py can measure it.
SEARCH_INSERT_TRIGGER_009 = """
CREATE TRIGGER messages_search_insert AFTER INSERT ON messages
WHEN new.kind IS NULL AND new.body != '' AND new.deleted = 0
BEGIN
    INSERT OR IGNORE INTO search_ids (room, seq) VALUES (new.room, new.seq);
    INSERT INTO message_search (rowid, body)
        VALUES ((SELECT id FROM search_ids WHERE room = new.room AND seq = new.seq), new.body);
END
"""


def _search_update_trigger(when: str) -> str:
    """An edit or delete of an indexed message re-indexes it: out with the old body, in with the new unless gone."""
    return f"""
    CREATE TRIGGER messages_search_update AFTER UPDATE OF body, deleted ON messages
    WHEN {when}
    BEGIN
        DELETE FROM message_search
            WHERE rowid = (SELECT id FROM search_ids WHERE room = old.room AND seq = old.seq);
        INSERT OR IGNORE INTO search_ids (room, seq)
            SELECT new.room, new.seq WHERE new.body != '' AND new.deleted = 0;
        INSERT INTO message_search (rowid, body)
            SELECT id, new.body FROM search_ids
            WHERE room = new.room AND seq = new.seq AND new.body != '' AND new.deleted = 0;
    END
    """


def m009_search(db: sqlite_utils.Database) -> None:
    """Full-text search (FTS5) over message bodies, kept current by triggers and filled from existing history.

    ``messages`` has no rowid (WITHOUT ROWID), so ``search_ids`` gives each searchable message one for the FTS
    table. An edit re-indexes the body; a delete (body emptied, ``deleted`` set) takes it out of the index, content
    and all. Change events are never indexed.
    """
    db.execute(
        "CREATE TABLE search_ids (id INTEGER PRIMARY KEY, room TEXT NOT NULL, seq INTEGER NOT NULL, UNIQUE (room, seq))"
    )
    db.execute("CREATE VIRTUAL TABLE message_search USING fts5(body, tokenize = 'unicode61 remove_diacritics 2')")
    db.execute(SEARCH_INSERT_TRIGGER_009)
    db.execute(_search_update_trigger("new.kind IS NULL"))
    # Rows deleted outright (retention, a deleted room) leave the index with their text.
    db.execute(
        """
        CREATE TRIGGER messages_search_delete AFTER DELETE ON messages
        WHEN old.kind IS NULL
        BEGIN
            DELETE FROM message_search
                WHERE rowid = (SELECT id FROM search_ids WHERE room = old.room AND seq = old.seq);
            DELETE FROM search_ids WHERE room = old.room AND seq = old.seq;
        END
        """
    )
    db.execute(
        "INSERT INTO search_ids (room, seq) SELECT room, seq FROM messages "
        "WHERE kind IS NULL AND body != '' AND deleted = 0 ORDER BY room, seq"
    )
    db.execute(
        "INSERT INTO message_search (rowid, body) "
        "SELECT s.id, m.body FROM search_ids s JOIN messages m ON m.room = s.room AND m.seq = s.seq"
    )


def m010_search_deferred(db: sqlite_utils.Database) -> None:
    """Index new messages for search in bulk, off the append transaction.

    Indexing each message in the append transaction (009's insert trigger) cost about 60 µs of SQLite CPU per
    message, more than the rest of the append together, because FTS5 writes a segment per small transaction. Now
    ``rooms.search_seq`` says how far each room is indexed, and the store indexes what lies past it in bulk (a few
    µs per message) before each search and after every few thousand appends. Edits and deletes of messages that are
    already indexed still re-index at once (the update trigger); later ones are indexed in their current state.
    History indexed by 009 stays indexed.
    """
    db.execute("DROP TRIGGER messages_search_insert")
    db.execute("DROP TRIGGER messages_search_update")
    db.execute("ALTER TABLE rooms ADD COLUMN search_seq INTEGER NOT NULL DEFAULT 0")
    db.execute("UPDATE rooms SET search_seq = last_seq")
    db.execute(
        _search_update_trigger("new.kind IS NULL AND new.seq <= (SELECT search_seq FROM rooms WHERE name = new.room)")
    )


MIGRATIONS: list[tuple[str, Migration]] = [
    ("001_initial", m001_initial),
    ("002_nocase_users_and_upload_indexes", m002_nocase_users_and_upload_indexes),
    ("003_deployment_key", m003_deployment_key),
    ("004_operations", m004_operations),
    ("005_room_events", m005_room_events),
    ("006_read_state", m006_read_state),
    ("007_mentions", m007_mentions),
    ("008_direct_messages", m008_direct_messages),
    ("009_search", m009_search),
    ("010_search_deferred", m010_search_deferred),
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


def migrate(db: sqlite_utils.Database) -> list[str]:
    """Apply pending migrations; returns the names applied. Raises SchemaTooNew for a database from a newer
    chatd."""
    check_not_newer(applied(db), [name for name, _ in MIGRATIONS])
    table = db.table("_migrations")
    if not table.exists():
        db.table("_migrations").create({"name": str, "applied": int}, pk="name")
    done = {row["name"] for row in db.table("_migrations").rows}
    now_applied = []
    for name, fn in MIGRATIONS:
        if name in done:
            continue
        with db.conn:
            fn(db)
            db.table("_migrations").insert({"name": name, "applied": int(time.time())})
        now_applied.append(name)
    return now_applied
