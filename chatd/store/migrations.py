"""SQLite schema, as an ordered list of migrations applied with sqlite-utils.

Each migration runs once, in order, and is recorded in ``_migrations``. Never edit a released migration; add a
new one.
"""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Callable

import sqlite_utils

from chatd.store.base import EPOCH_BYTES, StoreRefused
from chatd.store.legacy import LegacyDm, dm_renames, reaction_names, reaction_rows

Migration = Callable[[sqlite_utils.Database], None]
# A fresh random epoch (``Store`` docstring), made by SQLite itself: evaluated once per row of an UPDATE.
NEW_EPOCH_SQL = f"lower(hex(randomblob({EPOCH_BYTES})))"


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
    """Room changes are rows of ``messages`` with a ``kind`` (chatd.store.room_events), so they share the room's seqs,
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


def _rebuild(
    conn: sqlite3.Connection,
    table: str,
    columns: dict[str, tuple[str | None, str]],
    *,
    head: str = "",
    tail: str = "",
    keep: str = "",
    order: str = "",
    without_rowid: bool = False,
) -> None:
    """Make ``table`` again with the columns ``columns`` changes (name → (declaration, or None to drop it; the value
    from an old row)), every other column copied as it is declared (including ones added by migrations this one does
    not know), and its indexes and triggers made again. ``head``/``tail``: more declarations before and after the
    columns (new columns, keys); ``keep``: rows to keep, over the new columns; ``order``: insertion order."""
    infos = conn.execute(f"PRAGMA table_info({table})").fetchall()
    extras = [
        r[0]
        for r in conn.execute(
            "SELECT sql FROM sqlite_master WHERE tbl_name = ? AND type IN ('index', 'trigger') AND sql IS NOT NULL",
            (table,),
        )
    ]
    decls, names, values = [], [], []
    if "PRIMARY KEY" not in head + tail:  # the old key, unless the caller gives a new one
        key = [f'"{c[1]}"' for c in sorted(infos, key=lambda c: c[5]) if c[5]]
        tail = ", ".join(part for part in (tail, f"PRIMARY KEY ({', '.join(key)})" if key else "") if part)
    for _, name, typ, notnull, default, _ in infos:
        if name in columns:
            decl, value = columns[name]
            if decl is None:
                continue
        else:
            decl = f'"{name}" {typ}' + (" NOT NULL" if notnull else "") + (f" DEFAULT {default}" if default else "")
            value = f'"{name}"'
        decls.append(decl)
        names.append(f'"{name}"')
        values.append(f'{value} AS "{name}"')
    body = ", ".join(part for part in (head, *decls, tail) if part)
    conn.execute(f"CREATE TABLE _new_{table} ({body}){' WITHOUT ROWID' if without_rowid else ''}")
    conn.execute(
        f"INSERT INTO _new_{table} ({', '.join(names)}) SELECT * FROM (SELECT {', '.join(values)} FROM {table} "
        f"{'ORDER BY ' + order if order else ''}) {'WHERE ' + keep if keep else ''}"
    )
    conn.execute(f"DROP TABLE {table}")
    conn.execute(f"ALTER TABLE _new_{table} RENAME TO {table}")
    for sql in extras:
        conn.execute(sql)


def _id_of(column: str) -> str:
    """The id of the user a name column names (its exact spelling)."""
    return f"(SELECT id FROM users WHERE name = {column})"


def _rename_rooms(conn: sqlite3.Connection, plan: dict[str, str]) -> None:
    """Rename rooms everywhere a room name is kept: ``rooms.name`` and every table's ``room`` column (whichever
    migrations added them). Through temporary names, so a plan may swap names."""
    if not plan:
        return
    tables = [r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")]
    with_room = [t for t in tables if any(c[1] == "room" for c in conn.execute(f"PRAGMA table_info({t})"))]
    # "~" is in no room name (ROOM_PATTERN), so a temporary name meets no real one.
    steps = [{old: f"~{i}" for i, old in enumerate(plan)}, {f"~{i}": new for i, new in enumerate(plan.values())}]
    for step in steps:
        for old, new in step.items():
            conn.execute("UPDATE rooms SET name = ? WHERE name = ?", (new, old))
            for table in with_room:
                conn.execute(f"UPDATE {table} SET room = ? WHERE room = ?", (new, old))


def m012_user_ids(db: sqlite_utils.Database) -> None:
    """Users get an immutable integer id, and everything a user owns is keyed by it instead of by the name; deleted
    users become tombstones; reactions become rows; direct rooms are named from their pair of ids (see
    ``chatd.store.legacy`` for the rules). Tables are rebuilt with every column they have, so columns added by
    migrations this one does not know survive; ``rooms`` is only altered."""
    conn = db.conn
    old_reactions = conn.execute(
        "SELECT room, seq, ts, reactions FROM messages WHERE reactions IS NOT NULL AND reactions != ''"
    ).fetchall()
    named = {
        r[0]
        for r in conn.execute(
            "SELECT sender FROM messages UNION SELECT created_by FROM rooms "
            "UNION SELECT used_by FROM invites UNION SELECT owner FROM uploads"
        )
        if r[0] is not None
    }
    for row in old_reactions:
        named |= reaction_names(row[3])

    _rebuild(
        conn,
        "users",
        {"name": ("name TEXT NOT NULL", "name")},
        head="id INTEGER PRIMARY KEY AUTOINCREMENT",
        tail="deleted INTEGER NOT NULL DEFAULT 0",
        order="created, name",
    )
    conn.execute("CREATE INDEX _users_exact ON users (name)")  # for the mapping below only
    known = {r[0] for r in conn.execute("SELECT name FROM users")}
    conn.executemany(
        "INSERT INTO users (name, created, deleted) VALUES (?, 0, 1)", [(n,) for n in sorted(named - known)]
    )

    uid = "INTEGER NOT NULL REFERENCES users (id)"
    _rebuild(conn, "tokens", {"user": (f'"user" {uid}', _id_of('"user"'))}, keep='"user" IS NOT NULL')
    _rebuild(
        conn,
        "members",
        {
            "room": ('"room" TEXT NOT NULL REFERENCES rooms (name)', '"room"'),
            "user": (f'"user" {uid}', _id_of('"user"')),
        },
        tail='PRIMARY KEY ("room", "user")',
        keep='"user" IS NOT NULL',
    )
    for table, key in (("reads", '"user", "room"'), ("mentions", '"user", "room", "seq"')):
        _rebuild(
            conn,
            table,
            {"user": ('"user" INTEGER NOT NULL', _id_of('"user"'))},
            tail=f"PRIMARY KEY ({key})",
            keep='"user" IS NOT NULL',
            without_rowid=True,
        )
    _rebuild(
        conn,
        "messages",
        {
            "sender": ("sender INTEGER NOT NULL", _id_of("sender")),
            "reactions": (None, ""),
            "data": (None, ""),
        },
        tail="PRIMARY KEY (room, seq)",
        without_rowid=True,
    )
    _rebuild(conn, "uploads", {"owner": ("owner INTEGER NOT NULL", _id_of("owner"))})
    _rebuild(
        conn,
        "invites",
        {"created_by": ("created_by INTEGER", _id_of("created_by")), "used_by": ("used_by INTEGER", _id_of("used_by"))},
    )
    conn.execute("ALTER TABLE rooms ADD COLUMN creator INTEGER")
    conn.execute(f"UPDATE rooms SET creator = {_id_of('created_by')}")
    conn.execute("ALTER TABLE rooms DROP COLUMN created_by")
    conn.execute("ALTER TABLE rooms RENAME COLUMN creator TO created_by")

    conn.execute(
        "CREATE TABLE reactions (room TEXT NOT NULL, seq INTEGER NOT NULL, emoji TEXT NOT NULL, user INTEGER NOT NULL, "
        "ts INTEGER NOT NULL, event INTEGER NOT NULL, PRIMARY KEY (room, seq, emoji, user)) WITHOUT ROWID"
    )
    ids = dict(conn.execute("SELECT name, id FROM users ORDER BY deleted DESC, id DESC"))  # a live user wins a name
    conn.executemany(
        "INSERT OR IGNORE INTO reactions (room, seq, emoji, user, ts, event) VALUES (?, ?, ?, ?, ?, ?)",
        [row for r in old_reactions for row in reaction_rows(r[0], r[1], r[2], r[3], ids)],
    )
    conn.execute("DROP INDEX _users_exact")

    dms = {r[0]: LegacyDm(r[0]) for r in conn.execute("SELECT name FROM rooms WHERE dm")}
    for room, user in conn.execute(
        "SELECT room, user FROM members WHERE room IN (SELECT name FROM rooms WHERE dm) "
        "UNION SELECT DISTINCT room, sender FROM messages WHERE room IN (SELECT name FROM rooms WHERE dm)"
    ):
        dms[room].users.add(user)
    by_lower: dict[str, list[int]] = {}
    for user_id, name in conn.execute("SELECT id, name FROM users ORDER BY deleted, id"):
        by_lower.setdefault(name.lower(), []).append(user_id)
    _rename_rooms(conn, dm_renames(dms.values(), by_lower))


def m011_room_epochs(db: sqlite_utils.Database) -> None:
    """Each room's stream gets an epoch: a random id of this incarnation of its history (``Store`` docstring). A
    room made again gets a new one, so does every room after ``chatd restore`` and ``chatd import``; a client that
    resumes with a position from another epoch is told to reload instead of silently skipping (``chatd.core.feed``).
    Existing rooms get one each here: clients that knew them before this migration have no epoch to compare."""
    db.execute("ALTER TABLE rooms ADD COLUMN epoch TEXT NOT NULL DEFAULT ''")
    db.execute(f"UPDATE rooms SET epoch = {NEW_EPOCH_SQL}")


def m014_attached_messages(db: sqlite_utils.Database) -> None:
    """The messages of a room that carry attachments, so deleting one finds at once whether another live message
    still shows the same upload (``Store`` docstring: a delete releases the uploads only it attached)."""
    db.execute(f"CREATE INDEX {ATTACHED_INDEX} ON messages (room) WHERE attachments IS NOT NULL")


ATTACHED_INDEX = "messages_attached"


def m015_display_names(db: sqlite_utils.Database) -> None:
    """A display name a user sets for themselves, shown beside their stable name; ``display_key`` is its
    ``casefold()``, computed by chatd, so the directory's prefix search matches the same way on every store."""
    db.execute("ALTER TABLE users ADD COLUMN display_name TEXT NOT NULL DEFAULT ''")
    db.execute("ALTER TABLE users ADD COLUMN display_key TEXT NOT NULL DEFAULT ''")
    # The directory's order and its prefix ranges, read from indexes instead of sorting every user.
    db.execute("CREATE INDEX users_directory ON users (lower(name), name) WHERE NOT deleted")
    db.execute("CREATE INDEX users_display_key ON users (display_key) WHERE NOT deleted")


def m016_bots_hooks(db: sqlite_utils.Database) -> None:
    """Bot accounts and incoming webhooks: a token may carry a scope (rooms and actions, ``chatd.rules.bots``); a
    message may say which name a webhook posted it under (``via``); a room's hooks, each posting as its own bot
    user, with only the hash of the secret in its URL."""
    db.execute("ALTER TABLE tokens ADD COLUMN scopes TEXT")
    db.execute("ALTER TABLE messages ADD COLUMN via TEXT")
    db.execute(
        """
        CREATE TABLE hooks (
            id TEXT PRIMARY KEY,
            room TEXT NOT NULL REFERENCES rooms (name),
            bot_id INTEGER NOT NULL REFERENCES users (id),
            secret_hash TEXT NOT NULL,
            created_by INTEGER,
            created INTEGER NOT NULL
        )
        """
    )
    db.execute("CREATE INDEX hooks_room ON hooks (room)")
    db.execute("CREATE INDEX hooks_bot ON hooks (bot_id)")


def m017_webhooks(db: sqlite_utils.Database) -> None:
    """Outgoing webhooks (``chatd.features.outhooks``): a URL per row with its cursor in the room's stream, its failures
    and its lease. The room's own stored log is the outbox, so nothing is added to the send path. They go with their
    room (ON DELETE CASCADE)."""
    db.execute(
        """
        CREATE TABLE webhooks (
            id INTEGER PRIMARY KEY AUTOINCREMENT,
            room TEXT NOT NULL REFERENCES rooms (name) ON DELETE CASCADE,
            url TEXT NOT NULL,
            secret TEXT NOT NULL,
            events TEXT NOT NULL,
            created_by INTEGER,
            created INTEGER NOT NULL,
            cursor_seq INTEGER NOT NULL,
            failing INTEGER NOT NULL DEFAULT 0,
            attempts INTEGER NOT NULL DEFAULT 0,
            next_attempt INTEGER NOT NULL DEFAULT 0,
            last_error TEXT NOT NULL DEFAULT '',
            last_attempt INTEGER NOT NULL DEFAULT 0,
            delivered INTEGER NOT NULL DEFAULT 0,
            lease_owner TEXT NOT NULL DEFAULT '',
            lease_until INTEGER NOT NULL DEFAULT 0
        )
        """
    )
    db.execute("CREATE INDEX webhooks_room ON webhooks (room)")


def m018_sso_links(db: sqlite_utils.Database) -> None:
    """Single sign-on: which user each (issuer, subject) of an OpenID provider signed in as (``chatd.accounts.sso``)."""
    db.execute(
        "CREATE TABLE sso_links (issuer TEXT NOT NULL, subject TEXT NOT NULL, "
        '"user" INTEGER NOT NULL REFERENCES users (id), created INTEGER NOT NULL, PRIMARY KEY (issuer, subject))'
    )
    db.execute('CREATE INDEX sso_links_user ON sso_links ("user")')


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
    ("011_room_epochs", m011_room_epochs),
    ("012_user_ids", m012_user_ids),
    ("014_attached_messages", m014_attached_messages),
    ("015_display_names", m015_display_names),
    ("016_bots_hooks", m016_bots_hooks),
    ("017_webhooks", m017_webhooks),
    ("018_sso_links", m018_sso_links),
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
