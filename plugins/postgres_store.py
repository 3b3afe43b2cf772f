"""The PostgreSQL store (``[store] backend = "postgres"``, ``pip install 'chatd[postgres]'``), through asyncpg.

The store for several nodes: every node of a deployment connects to the same database (``[store] dsn``) and any of
them may append to any room at the same moment. What keeps a room's seqs gapless and unique is the room's row:
``append`` locks the rows of the rooms in its batch (``SELECT … FOR UPDATE``, in name order so two batches never
deadlock), reads ``last_seq``, checks idempotency keys and membership, inserts, and moves ``last_seq`` on, all in
one transaction. A second node appending to the same room waits for the lock and then sees the first one's commit.
Message timestamps come from the database's clock, so they do not depend on which node stored a message.

Migrations are SQL, applied in order under a transaction-level advisory lock, so nodes starting together do not
race; each is recorded in ``_migrations``.

One node's fault must not stall the others. A node cut off from the database in the middle of ``append`` leaves
its transaction open, holding the locks of its rooms' rows, and every other node's append to those rooms waits on
them. So every pooled connection is opened with bounds (``[store]`` settings, see :func:`session_settings`): the
server ends a session idle in a transaction past ``idle_transaction_timeout`` (rolling it back, which releases
its locks), a lock wait past ``lock_timeout`` fails and the worker retries the batch, one statement runs at most
``statement_timeout``, and TCP keepalives on both ends notice a peer that vanished without a word.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import secrets
import socket
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from typing import Any, Self
from urllib.parse import urlsplit, urlunsplit

import asyncpg
import msgspec

from chatd.config import Config, StoreConfig
from chatd.errors import ChatError, Err
from chatd.failures import unreachable
from chatd.protocol.frames import Entry, Message
from chatd.rules.mentions import mentioned
from chatd.rules.search import MARK_END, MARK_START, Hit, search_too_slow, searches_busy, tsquery
from chatd.store import planner, room_events
from chatd.store.base import (
    EPOCH_BYTES,
    TOKEN_ID_LEN,
    UNREAD_MAX,
    WEBHOOKS_SQL,
    AdminRoom,
    HookRecord,
    InviteRecord,
    NewMessage,
    Outcome,
    ReadPosition,
    RoomRecord,
    Store,
    StoreRefused,
    StreamPosition,
    TokenRecord,
    UploadRecord,
    UserInfo,
    UserRecord,
    UserRef,
    Webhook,
    check_import,
    display_key,
    display_keys,
    export_row,
    import_value,
    prefix_range,
    webhook_of,
)
from chatd.store.legacy import LegacyDm, dm_renames, reaction_names, reaction_rows
from chatd.store.migrations import check_not_newer

log = logging.getLogger("chatd.store.postgres")

NOW_MS = "(extract(epoch FROM clock_timestamp()) * 1000)::bigint"
MIGRATE_LOCK = 0x63686174  # "chat": the advisory lock that serialises migrations
# SQLSTATE classes of faults worth retrying as is: connection, resources, operator intervention (which includes
# statement_timeout and terminated sessions), system, rollback; and lock_not_available (lock_timeout).
TRANSIENT_CLASSES = ("08", "53", "57", "58", "40")
TRANSIENT_STATES = ("55P03",)
KEEPALIVE_PROBES = 3
NEW_EPOCH_SQL = f"substr(md5(random()::text || clock_timestamp()::text), 1, {2 * EPOCH_BYTES})"


async def _drop_foreign_keys(c: asyncpg.Connection, table: str) -> list[tuple[str, str]]:
    """Drop the foreign keys that point at ``table``; returns each as (table, definition), to make again."""
    found = await c.fetch(
        "SELECT conrelid::regclass::text AS t, conname, pg_get_constraintdef(oid) AS def FROM pg_constraint "
        "WHERE confrelid = $1::regclass AND contype = 'f'",
        table,
    )
    for r in found:
        await c.execute(f'ALTER TABLE {r["t"]} DROP CONSTRAINT "{r["conname"]}"')
    return [(r["t"], r["def"]) for r in found]


async def _to_ids(c: asyncpg.Connection, table: str, old: str, new: str, *, keep_orphans: bool = False) -> None:
    """Replace the name column ``old`` of ``table`` by the id column ``new`` (the user of that exact spelling).
    Rows naming no user are dropped unless ``keep_orphans`` (the column is then nullable)."""
    await c.execute(f"ALTER TABLE {table} ADD COLUMN {new} BIGINT")
    await c.execute(f"UPDATE {table} t SET {new} = u.id FROM users u WHERE u.name = t.{old}")
    if not keep_orphans:
        await c.execute(f"DELETE FROM {table} WHERE {new} IS NULL")
    await c.execute(f"ALTER TABLE {table} DROP COLUMN {old}")  # its indexes and keys go with it
    if not keep_orphans:
        await c.execute(f"ALTER TABLE {table} ALTER COLUMN {new} SET NOT NULL")


async def m012_user_ids(c: asyncpg.Connection) -> None:
    """Users get an immutable id; everything a user owns is keyed by it; deleted users become tombstones;
    reactions become rows; direct rooms are named from their pair of ids (rules: ``chatd.store.legacy``, shared
    with the SQLite migration of the same name). Columns are added, filled and dropped, so columns added by
    migrations this one does not know survive."""
    old_reactions = await c.fetch(
        "SELECT room, seq, ts, reactions FROM messages WHERE reactions IS NOT NULL AND reactions <> ''"
    )
    named = {
        r[0]
        for r in await c.fetch(
            "SELECT sender FROM messages UNION SELECT created_by FROM rooms "
            "UNION SELECT used_by FROM invites UNION SELECT owner FROM uploads"
        )
        if r[0] is not None
    }
    for row in old_reactions:
        named |= reaction_names(row["reactions"])

    await _drop_foreign_keys(c, "users")
    await c.execute("ALTER TABLE users ADD COLUMN id BIGINT")
    await c.execute(
        "UPDATE users SET id = o.n FROM (SELECT name, row_number() OVER (ORDER BY created, name) AS n FROM users) o "
        "WHERE users.name = o.name"
    )
    pkey = await c.fetchval("SELECT conname FROM pg_constraint WHERE conrelid = 'users'::regclass AND contype = 'p'")
    await c.execute(f'ALTER TABLE users DROP CONSTRAINT "{pkey}"')
    await c.execute("ALTER TABLE users ALTER COLUMN id SET NOT NULL")
    await c.execute("ALTER TABLE users ALTER COLUMN id ADD GENERATED ALWAYS AS IDENTITY")
    await c.execute("SELECT setval(pg_get_serial_sequence('users', 'id'), COALESCE(MAX(id), 0) + 1, false) FROM users")
    await c.execute("ALTER TABLE users ADD PRIMARY KEY (id)")
    await c.execute("ALTER TABLE users ADD COLUMN deleted BOOLEAN NOT NULL DEFAULT false")
    await c.execute("CREATE INDEX users_name_exact ON users (name)")  # for the mapping below only
    known = {r[0] for r in await c.fetch("SELECT name FROM users")}
    await c.execute(
        "INSERT INTO users (name, created, deleted) SELECT n, 0, true FROM unnest($1::text[]) AS n",
        sorted(named - known),
    )

    # table, its new primary key, whether user_id is a foreign key, the index on user_id
    for table, key, foreign, index in (
        ("tokens", "", True, "tokens_user ON tokens (user_id)"),
        ("members", "room, user_id", True, "members_user ON members (user_id)"),
        ("reads", "user_id, room", False, ""),
        ("mentions", "user_id, room, seq", False, "mentions_recent ON mentions (user_id, ts)"),
    ):
        await _to_ids(c, table, "username", "user_id")
        if key:
            await c.execute(f"ALTER TABLE {table} ADD PRIMARY KEY ({key})")
        if foreign:
            await c.execute(f"ALTER TABLE {table} ADD FOREIGN KEY (user_id) REFERENCES users (id)")
        if index:
            await c.execute(f"CREATE INDEX {index}")
    await c.execute("ALTER TABLE messages RENAME COLUMN sender TO sender_name")
    await _to_ids(c, "messages", "sender_name", "sender")
    await c.execute("CREATE UNIQUE INDEX messages_idem ON messages (room, sender, client_id)")
    await c.execute("ALTER TABLE messages DROP COLUMN reactions, DROP COLUMN data")
    await c.execute("ALTER TABLE uploads RENAME COLUMN owner TO owner_name")
    await _to_ids(c, "uploads", "owner_name", "owner")
    await c.execute("CREATE INDEX uploads_owner ON uploads (owner)")
    for table, column in (("invites", "created_by"), ("invites", "used_by"), ("rooms", "created_by")):
        await c.execute(f"ALTER TABLE {table} RENAME COLUMN {column} TO {column}_name")
        await _to_ids(c, table, f"{column}_name", column, keep_orphans=True)

    await c.execute(
        "CREATE TABLE reactions (room TEXT NOT NULL, seq BIGINT NOT NULL, emoji TEXT NOT NULL, "
        "user_id BIGINT NOT NULL, ts BIGINT NOT NULL, event BIGINT NOT NULL, PRIMARY KEY (room, seq, emoji, user_id))"
    )
    ids = {r["name"]: r["id"] for r in await c.fetch("SELECT name, id FROM users")}
    await c.executemany(
        "INSERT INTO reactions (room, seq, emoji, user_id, ts, event) VALUES ($1, $2, $3, $4, $5, $6) "
        "ON CONFLICT DO NOTHING",
        [row for r in old_reactions for row in reaction_rows(r["room"], r["seq"], r["ts"], r["reactions"], ids)],
    )
    await c.execute("DROP INDEX users_name_exact")

    dms = {r["name"]: LegacyDm(r["name"]) for r in await c.fetch("SELECT name FROM rooms WHERE dm")}
    for r in await c.fetch(
        "SELECT room, user_id FROM members WHERE room IN (SELECT name FROM rooms WHERE dm) "
        "UNION SELECT DISTINCT room, sender FROM messages WHERE room IN (SELECT name FROM rooms WHERE dm)"
    ):
        dms[r[0]].users.add(r[1])
    by_lower: dict[str, list[int]] = {}
    for r in await c.fetch("SELECT id, name FROM users ORDER BY deleted, id"):
        by_lower.setdefault(r["name"].lower(), []).append(r["id"])
    await _rename_rooms(c, dm_renames(dms.values(), by_lower))


async def _rename_rooms(c: asyncpg.Connection, plan: dict[str, str]) -> None:
    """Rename rooms everywhere a room name is kept: ``rooms.name`` and every table's ``room`` column, through
    temporary names (a plan may swap names), with the foreign keys to rooms dropped meanwhile."""
    if not plan:
        return
    keys = await _drop_foreign_keys(c, "rooms")
    tables = [
        r[0]
        for r in await c.fetch(
            "SELECT table_name FROM information_schema.columns WHERE table_schema = current_schema() "
            "AND column_name = 'room'"
        )
    ]
    # "~" is in no room name (ROOM_PATTERN), so a temporary name meets no real one.
    steps = [{old: f"~{i}" for i, old in enumerate(plan)}, {f"~{i}": new for i, new in enumerate(plan.values())}]
    for step in steps:
        for old, new in step.items():
            await c.execute("UPDATE rooms SET name = $2 WHERE name = $1", old, new)
            for table in tables:
                await c.execute(f"UPDATE {table} SET room = $2 WHERE room = $1", old, new)
    for table, definition in keys:
        await c.execute(f"ALTER TABLE {table} ADD {definition}")


MIGRATIONS: list[tuple[str, str | Callable[[asyncpg.Connection], Awaitable[None]]]] = [
    (
        "001_initial",
        """
        CREATE TABLE users (
            name TEXT PRIMARY KEY,
            password_hash TEXT,
            admin BOOLEAN NOT NULL DEFAULT false,
            bot BOOLEAN NOT NULL DEFAULT false,
            created BIGINT NOT NULL
        );
        CREATE TABLE tokens (
            hash TEXT PRIMARY KEY,
            username TEXT NOT NULL REFERENCES users (name),
            created BIGINT NOT NULL
        );
        CREATE INDEX tokens_user ON tokens (username);
        CREATE TABLE rooms (
            name TEXT PRIMARY KEY,
            private BOOLEAN NOT NULL,
            created_by TEXT,
            created BIGINT NOT NULL,
            last_seq BIGINT NOT NULL DEFAULT 0
        );
        CREATE TABLE members (
            room TEXT NOT NULL REFERENCES rooms (name),
            username TEXT NOT NULL REFERENCES users (name),
            joined BIGINT NOT NULL,
            PRIMARY KEY (room, username)
        );
        CREATE INDEX members_user ON members (username);
        CREATE TABLE messages (
            room TEXT NOT NULL,
            seq BIGINT NOT NULL,
            sender TEXT NOT NULL,
            client_id TEXT NOT NULL,
            body TEXT NOT NULL,
            ts BIGINT NOT NULL,
            attachments TEXT,
            PRIMARY KEY (room, seq)
        );
        CREATE UNIQUE INDEX messages_idem ON messages (room, sender, client_id);
        CREATE TABLE uploads (
            id TEXT PRIMARY KEY,
            owner TEXT NOT NULL,
            room TEXT,
            content_type TEXT NOT NULL,
            size BIGINT NOT NULL,
            name TEXT,
            created BIGINT NOT NULL
        );
        """,
    ),
    (
        # User names are case-insensitive (the Store contract); the index is not UNIQUE so a database holding two
        # spellings from before keeps working; create_user keeps new names unique under its advisory lock.
        "002_nocase_users_and_upload_indexes",
        """
        CREATE INDEX users_name_lower ON users (lower(name));
        CREATE INDEX uploads_owner ON uploads (owner);
        CREATE INDEX uploads_unposted ON uploads (created) WHERE room IS NULL;
        """,
    ),
    (
        "003_deployment_key",
        "CREATE TABLE deployment (name TEXT PRIMARY KEY, value BYTEA NOT NULL);",
    ),
    (
        "004_operations",
        """
        ALTER TABLE users ADD COLUMN disabled BOOLEAN NOT NULL DEFAULT false;
        ALTER TABLE tokens ADD COLUMN last_used BIGINT;
        ALTER TABLE rooms ADD COLUMN archived BOOLEAN NOT NULL DEFAULT false;
        ALTER TABLE rooms ADD COLUMN purged_through BIGINT NOT NULL DEFAULT 0;
        CREATE TABLE invites (
            hash TEXT PRIMARY KEY,
            created_by TEXT NOT NULL,
            created BIGINT NOT NULL,
            expires BIGINT NOT NULL,
            used_by TEXT
        );
        """,
    ),
    (
        # Room changes are rows of messages with a kind (chatd.store.room_events); see the SQLite migration of the
        # same name.
        "005_room_events",
        """
        ALTER TABLE messages
            ADD COLUMN kind TEXT,
            ADD COLUMN target BIGINT,
            ADD COLUMN reply_to BIGINT,
            ADD COLUMN edited BIGINT,
            ADD COLUMN deleted BOOLEAN NOT NULL DEFAULT false,
            ADD COLUMN reactions TEXT,
            ADD COLUMN data TEXT;
        CREATE INDEX messages_edits ON messages (room, target) WHERE kind = 'edit';
        ALTER TABLE rooms ADD COLUMN topic TEXT;
        """,
    ),
    (
        "006_read_state",
        """
        CREATE TABLE reads (
            username TEXT NOT NULL,
            room TEXT NOT NULL,
            seq BIGINT NOT NULL,
            ts BIGINT NOT NULL,
            PRIMARY KEY (username, room)
        );
        """,
    ),
    (
        "007_mentions",
        """
        CREATE TABLE mentions (
            username TEXT NOT NULL,
            room TEXT NOT NULL,
            seq BIGINT NOT NULL,
            ts BIGINT NOT NULL,
            PRIMARY KEY (username, room, seq)
        );
        CREATE INDEX mentions_recent ON mentions (username, ts);
        """,
    ),
    ("008_direct_messages", "ALTER TABLE rooms ADD COLUMN dm BOOLEAN NOT NULL DEFAULT false;"),
    (
        # Full-text search: a stored generated column, so adding it indexes every existing message, and edits and
        # deletes (which rewrite the body) keep it current. 'simple': no stemming, like SQLite's unicode61.
        "009_search",
        """
        ALTER TABLE messages ADD COLUMN search tsvector
            GENERATED ALWAYS AS (to_tsvector('simple', body)) STORED;
        CREATE INDEX messages_search ON messages USING gin (search) WHERE kind IS NULL AND NOT deleted;
        """,
    ),
    (
        # Each room's stream gets an epoch (see the SQLite migration of the same name). A volatile default gives
        # every existing row its own, and every row inserted without one (an import) a fresh one.
        "011_room_epochs",
        f"ALTER TABLE rooms ADD COLUMN epoch TEXT NOT NULL DEFAULT {NEW_EPOCH_SQL};",
    ),
    ("012_user_ids", m012_user_ids),
    (
        # One-use credentials (WebSocket tickets, admin control requests) spent on any node: Store.claim_once.
        "013_used_once",
        """
        CREATE TABLE used_once (key TEXT PRIMARY KEY, expires BIGINT NOT NULL);
        CREATE INDEX used_once_expires ON used_once (expires);
        """,
    ),
    (
        # A delete releases the uploads only its message attached: finding another live message showing the same
        # upload looks at the room's messages with attachments only.
        "014_attached_messages",
        "CREATE INDEX messages_attached ON messages (room) WHERE attachments IS NOT NULL",
    ),
    (
        # Display names (see the SQLite migration of the same name): display_key is chatd's casefold() of it.
        "015_display_names",
        """
        ALTER TABLE users ADD COLUMN display_name TEXT NOT NULL DEFAULT '';
        ALTER TABLE users ADD COLUMN display_key TEXT NOT NULL DEFAULT '';
        CREATE INDEX users_directory ON users ((lower(name) COLLATE "C"), (name COLLATE "C")) WHERE NOT deleted;
        CREATE INDEX users_display_key ON users ((display_key COLLATE "C")) WHERE NOT deleted;
        """,
    ),
    (
        # Bot accounts and incoming webhooks (see the SQLite migration of the same name).
        "016_bots_hooks",
        """
        ALTER TABLE tokens ADD COLUMN scopes TEXT;
        ALTER TABLE messages ADD COLUMN via TEXT;
        CREATE TABLE hooks (
            id TEXT PRIMARY KEY,
            room TEXT NOT NULL REFERENCES rooms (name),
            bot_id BIGINT NOT NULL REFERENCES users (id),
            secret_hash TEXT NOT NULL,
            created_by BIGINT,
            created BIGINT NOT NULL
        );
        CREATE INDEX hooks_room ON hooks (room);
        CREATE INDEX hooks_bot ON hooks (bot_id);
        """,
    ),
    (
        # Outgoing webhooks (see the SQLite migration of the same name): the room's stream is the outbox.
        "017_webhooks",
        """
        CREATE TABLE webhooks (
            id BIGSERIAL PRIMARY KEY,
            room TEXT NOT NULL REFERENCES rooms (name) ON DELETE CASCADE,
            url TEXT NOT NULL,
            secret TEXT NOT NULL,
            events TEXT NOT NULL,
            created_by BIGINT,
            created BIGINT NOT NULL,
            cursor_seq BIGINT NOT NULL,
            failing BOOLEAN NOT NULL DEFAULT false,
            attempts INTEGER NOT NULL DEFAULT 0,
            next_attempt BIGINT NOT NULL DEFAULT 0,
            last_error TEXT NOT NULL DEFAULT '',
            last_attempt BIGINT NOT NULL DEFAULT 0,
            delivered BIGINT NOT NULL DEFAULT 0,
            lease_owner TEXT NOT NULL DEFAULT '',
            lease_until BIGINT NOT NULL DEFAULT 0
        );
        CREATE INDEX webhooks_room ON webhooks (room);
        """,
    ),
    (
        # Single sign-on: which user each (issuer, subject) of an OpenID provider signed in as (chatd.accounts.sso).
        "018_sso_links",
        """
        CREATE TABLE sso_links (
            issuer TEXT NOT NULL,
            subject TEXT NOT NULL,
            user_id BIGINT NOT NULL REFERENCES users (id),
            created BIGINT NOT NULL,
            PRIMARY KEY (issuer, subject)
        );
        CREATE INDEX sso_links_user ON sso_links (user_id);
        """,
    ),
]

LIVE_BY_NAME = "lower(name) = lower($1) AND NOT deleted"  # a live user by any spelling of the name
USER_COLS = "id, name, admin, bot, created, disabled, display_name"
# A room with its creator's current name: select ROOM_COLS FROM ROOM_FROM.
ROOM_COLS = "r.name, r.private, r.created_by, r.created, r.last_seq, r.topic, r.dm, cu.name AS creator, r.epoch"
ROOM_FROM = "rooms r LEFT JOIN users cu ON cu.id = r.created_by"
ENTRIES = f"SELECT {room_events.ENTRY_COLS} FROM {room_events.ENTRY_FROM}"
NAMES_LOCK = MIGRATE_LOCK + 1  # held while a name is taken (create_user, rename_user)
INVITE_REFUSED = "this invite code is unknown, used or expired; ask for a new one"


# The batch's keys that are already stored (a resend). LIMIT 1 keeps the lookup a subquery: flattened into a join,
# the prepared statement's generic plan read the whole messages table on every append (bench/experiments/
# pg_append_cost.py: 287 µs of PostgreSQL CPU per message in batches of 16, growing with the table; 98 µs after).
RESENT = (
    f"SELECT {room_events.ENTRY_COLS} "
    "FROM unnest($1::text[], $2::bigint[], $3::text[]) AS k(room, sender, client_id) "
    "CROSS JOIN LATERAL (SELECT * FROM messages WHERE room = k.room AND sender = k.sender "
    "AND client_id = k.client_id LIMIT 1) m "
    "JOIN users u ON u.id = m.sender"
)
# Room events among the entries a batch's replies quote (``planner.reply_targets``). LIMIT 1 keeps it a probe per
# pair, as in RESENT: flattened into a join, the generic plan read the whole messages table (test_pg_plans.py).
QUOTED_EVENTS = (
    "SELECT k.room, k.seq FROM unnest($1::text[], $2::bigint[]) AS k(room, seq) "
    "CROSS JOIN LATERAL (SELECT kind FROM messages WHERE room = k.room AND seq = k.seq LIMIT 1) m "
    "WHERE m.kind IS NOT NULL"
)


def _entry(r: asyncpg.Record) -> Entry:
    return room_events.entry(tuple(r))


async def _fill(c: asyncpg.Connection, entries: Sequence[Entry]) -> None:
    """``room_events.fill`` the entries' reactions from the store, in one query."""
    keys = room_events.reaction_keys(entries)
    if keys:
        rows = await c.fetch(
            "SELECT r.room, r.seq, r.emoji, r.user_id, u.name FROM unnest($1::text[], $2::bigint[]) AS k(room, seq) "
            "JOIN reactions r ON r.room = k.room AND r.seq = k.seq JOIN users u ON u.id = r.user_id ORDER BY r.event",
            [k[0] for k in keys],
            [k[1] for k in keys],
        )
        room_events.fill(entries, [tuple(r) for r in rows])


def _room(r: asyncpg.Record) -> RoomRecord:
    return RoomRecord(
        r["name"],
        r["private"],
        r["created_by"] or 0,
        r["created"],
        r["last_seq"],
        r["topic"] or "",
        r["dm"],
        r["creator"] or "",
        r["epoch"],
    )


HOOK_SELECT = (
    "SELECT h.id, h.room, h.bot_id, h.secret_hash, h.created_by, h.created, u.name "
    "FROM hooks h JOIN users u ON u.id = h.bot_id"
)


def _hook(r: asyncpg.Record) -> HookRecord:
    return HookRecord(r["id"], r["room"], r["bot_id"], r["secret_hash"], r["created_by"], r["created"], r["name"])


def _user(r: asyncpg.Record) -> UserRecord:
    return UserRecord(r["id"], r["name"], r["admin"], r["bot"], r["created"], r["disabled"], r["display_name"])


def _ms(seconds: float) -> str:
    return str(round(seconds * 1000))


def session_settings(cfg: StoreConfig) -> dict[str, str]:
    """The bounds every pooled session starts with (startup parameters, so ``RESET ALL`` keeps them)."""
    out = {
        "lock_timeout": _ms(cfg.lock_timeout),
        "idle_in_transaction_session_timeout": _ms(cfg.idle_transaction_timeout),
        "statement_timeout": _ms(cfg.statement_timeout),
    }
    if cfg.keepalive_idle:
        # The server's side: it drops a session whose node stopped answering, which rolls its transaction back.
        out["tcp_keepalives_idle"] = str(max(1, round(cfg.keepalive_idle)))
        out["tcp_keepalives_interval"] = str(max(1, round(cfg.keepalive_idle / 2)))
        out["tcp_keepalives_count"] = str(KEEPALIVE_PROBES)
        out["tcp_user_timeout"] = _ms(2 * cfg.keepalive_idle)  # unacknowledged data to a node that is gone
    return out


def keepalive(sock: socket.socket | None, idle: float) -> None:
    """The node's side of the keepalive: a server (or a path to it) gone without a word breaks the connection."""
    if sock is None or not idle or sock.family not in (socket.AF_INET, socket.AF_INET6):
        return
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE, 1)
    for name, value in (
        ("TCP_KEEPIDLE", max(1, round(idle))),
        ("TCP_KEEPINTVL", max(1, round(idle / 2))),
        ("TCP_KEEPCNT", KEEPALIVE_PROBES),
        ("TCP_USER_TIMEOUT", round(2 * idle * 1000)),
    ):
        if hasattr(socket, name):  # Linux names; other systems keep their defaults
            sock.setsockopt(socket.IPPROTO_TCP, getattr(socket, name), value)


UNBOUNDED = (
    "SET LOCAL lock_timeout = 0; SET LOCAL statement_timeout = 0; SET LOCAL idle_in_transaction_session_timeout = 0"
)


class PostgresStore(Store):
    networked = True

    @classmethod
    def from_config(cls, cfg: Config, server: bool = True) -> Self:
        return cls(cfg.store)  # several servers share it by design: nothing to hold for ``server``

    @classmethod
    async def schema_state(cls, cfg: Config) -> tuple[list[str], list[str]]:
        known = [name for name, _ in MIGRATIONS]
        try:
            conn = await asyncpg.connect(cfg.store.dsn, timeout=10)
        except (OSError, TimeoutError, asyncpg.PostgresError, asyncpg.InterfaceError) as e:
            raise StoreRefused(
                unreachable("PostgreSQL store", cfg.store.dsn, e, "[store] dsn (CHATD_STORE_DSN)")
            ) from e
        try:
            if not await conn.fetchval("SELECT to_regclass('_migrations') IS NOT NULL"):
                return [], known
            return [r["name"] for r in await conn.fetch("SELECT name FROM _migrations ORDER BY name")], known
        finally:
            await conn.close()

    @classmethod
    async def clock_skew(cls, cfg: Config) -> tuple[str, float] | None:
        conn = await asyncpg.connect(cfg.store.dsn, timeout=10)
        try:
            started = time.time()
            theirs = float(await conn.fetchval("SELECT extract(epoch FROM clock_timestamp())"))
            return "PostgreSQL", theirs - (started + time.time()) / 2
        finally:
            await conn.close()

    def __init__(self, cfg: StoreConfig) -> None:
        self.cfg = cfg
        self.pool: asyncpg.Pool | None = None
        self._snapshot: asyncpg.Connection | None = None
        self._claims = 0  # claim_once calls, to sweep expired claims now and then
        self._search_slots: asyncio.Semaphore | None = None  # made on first use, on the running loop

    # --- lifecycle ----------------------------------------------------------------------------------------------

    async def open(self) -> None:
        """Connect and migrate; a server that cannot be reached or refuses us raises StoreRefused naming it."""
        cfg = self.cfg
        idle = cfg.keepalive_idle

        async def init(c: asyncpg.Connection) -> None:
            # asyncpg has no keepalive option; its transport's socket is the one way to set it.
            transport = getattr(c, "_transport", None)
            keepalive(transport.get_extra_info("socket") if transport is not None else None, idle)

        try:
            self.pool = await asyncpg.create_pool(
                cfg.dsn,
                min_size=1,
                max_size=cfg.pool_size,
                timeout=10,
                # The node's own wait for an answer: a little past the server's bound, so the server's answer wins.
                command_timeout=cfg.statement_timeout + 5 if cfg.statement_timeout else None,
                server_settings=session_settings(cfg),
                init=init,
            )
        except (TimeoutError, OSError, asyncpg.PostgresError, asyncpg.InterfaceError) as e:
            raise StoreRefused(unreachable("PostgreSQL store", cfg.dsn, e, "[store] dsn (CHATD_STORE_DSN)")) from e
        async with self.pool.acquire() as c, c.transaction():
            # A migration may rewrite a large table, and waits for another node's migration: no bounds here.
            await c.execute(UNBOUNDED)
            await c.execute("SELECT pg_advisory_xact_lock($1)", MIGRATE_LOCK)
            await c.execute("CREATE TABLE IF NOT EXISTS _migrations (name TEXT PRIMARY KEY, applied BIGINT NOT NULL)")
            done = {r["name"] for r in await c.fetch("SELECT name FROM _migrations")}
            check_not_newer(sorted(done), [name for name, _ in MIGRATIONS])
            for name, step in MIGRATIONS:
                if name not in done:
                    if isinstance(step, str):
                        await c.execute(step)
                    else:
                        await step(c)
                    await c.execute(f"INSERT INTO _migrations (name, applied) VALUES ($1, {NOW_MS} / 1000)", name)
                    log.info("applied migration %s", name)

    async def close(self) -> None:
        if self.pool is not None:
            await self.pool.close()
            self.pool = None

    @property
    def _p(self) -> asyncpg.Pool:
        assert self.pool is not None, "store is not open"
        return self.pool

    async def ping(self) -> bool:
        if self.pool is None:
            return False
        try:
            async with asyncio.timeout(2):
                one: int | None = await self.pool.fetchval("SELECT 1")
                return one == 1
        except Exception:  # noqa: BLE001 - any failure means "not ready"
            return False

    def transient(self, exc: BaseException) -> bool:
        if isinstance(exc, asyncpg.PostgresError):
            state = exc.sqlstate or ""
            return state[:2] in TRANSIENT_CLASSES or state in TRANSIENT_STATES
        # Lost or refused connections, a closing pool, timeouts; and asyncpg's InternalClientError, which a pooled
        # connection raises when its session was terminated under it ("cannot switch to state ...; another
        # operation is in progress"), as does a statement cache made stale by another node's migration. The pool
        # replaces the broken connection, so the retry runs on a good one.
        return isinstance(
            exc, (OSError, asyncpg.InterfaceError, asyncpg.InternalClientError, asyncio.TimeoutError, ConnectionError)
        )

    # --- users and tokens ---------------------------------------------------------------------------------------

    async def deployment_key(self) -> bytes | None:
        await self._p.execute(
            "INSERT INTO deployment (name, value) VALUES ('ticket_key', $1) ON CONFLICT (name) DO NOTHING",
            secrets.token_bytes(32),
        )
        key: bytes | None = await self._p.fetchval("SELECT value FROM deployment WHERE name = 'ticket_key'")
        return key

    def describe(self) -> str:
        parts = urlsplit(self.cfg.dsn)
        if parts.password:  # never show the password
            host = parts.hostname or ""
            netloc = f"{parts.username}@{host}" + (f":{parts.port}" if parts.port else "")
            parts = parts._replace(netloc=netloc)
        return f"postgres {urlunsplit(parts)}"

    async def create_user(
        self,
        name: str,
        password_hash: str | None,
        bot: bool = False,
        *,
        admin: bool = False,
        admin_if_none: bool = False,
        invite: str | None = None,
        now: int = 0,
    ) -> UserRecord:
        async with self._p.acquire() as c, c.transaction():
            # "the name is free ignoring case" and "admin if none is" must be decided by one creation at a time.
            await c.execute("SELECT pg_advisory_xact_lock($1)", NAMES_LOCK)
            if invite is not None and not await c.fetchval(
                "SELECT 1 FROM invites WHERE hash = $1 AND used_by IS NULL AND expires > $2 FOR UPDATE", invite, now
            ):
                raise ChatError(Err.FORBIDDEN, INVITE_REFUSED)
            if await c.fetchval(f"SELECT 1 FROM users WHERE {LIVE_BY_NAME}", name):
                raise ChatError(Err.CONFLICT, f"user {name!r} already exists")
            r = await c.fetchrow(
                "INSERT INTO users (name, password_hash, admin, bot, created) VALUES ($1, $2, $4 OR "
                f"($5 AND NOT EXISTS (SELECT 1 FROM users WHERE admin AND NOT deleted)), $3, {NOW_MS}) "
                f"RETURNING {USER_COLS}",
                name,
                password_hash,
                bot,
                admin,
                admin_if_none,
            )
            if invite is not None:
                await c.execute("UPDATE invites SET used_by = $2 WHERE hash = $1", invite, r["id"])
        return _user(r)

    async def user_for_identity(self, issuer: str, subject: str) -> UserRecord | None:
        r = await self._p.fetchrow(
            f"SELECT {', '.join('u.' + c for c in USER_COLS.split(', '))} FROM sso_links l "
            "JOIN users u ON u.id = l.user_id WHERE l.issuer = $1 AND l.subject = $2 AND NOT u.deleted",
            issuer,
            subject,
        )
        return _user(r) if r else None

    async def create_identity_user(
        self, issuer: str, subject: str, names: Sequence[str], *, admin_if_none: bool = False
    ) -> UserRecord | None:
        async with self._p.acquire() as c, c.transaction():
            # The name lock orders this against every other taking of a name, and against a racing first sign-in
            # of the same identity on another node (which then finds the link made here).
            await c.execute("SELECT pg_advisory_xact_lock($1)", NAMES_LOCK)
            linked = await c.fetchrow(
                f"SELECT {USER_COLS}, deleted FROM users WHERE id = "
                "(SELECT user_id FROM sso_links WHERE issuer = $1 AND subject = $2)",
                issuer,
                subject,
            )
            if linked is not None:
                return None if linked["deleted"] else _user(linked)
            for name in names:
                if await c.fetchval(f"SELECT 1 FROM users WHERE {LIVE_BY_NAME}", name):
                    continue
                r = await c.fetchrow(
                    "INSERT INTO users (name, password_hash, admin, bot, created) VALUES ($1, NULL, "
                    f"$2 AND NOT EXISTS (SELECT 1 FROM users WHERE admin AND NOT deleted), false, {NOW_MS}) "
                    f"RETURNING {USER_COLS}",
                    name,
                    admin_if_none,
                )
                await c.execute(
                    f"INSERT INTO sso_links (issuer, subject, user_id, created) VALUES ($1, $2, $3, {NOW_MS})",
                    issuer,
                    subject,
                    r["id"],
                )
                return _user(r)
        raise ChatError(Err.CONFLICT, f"every name tried for this sign-in is taken ({', '.join(names)})")

    async def get_user(self, name: str) -> UserRecord | None:
        # An exact spelling wins, for databases made before names were case-insensitive.
        r = await self._p.fetchrow(
            f"SELECT {USER_COLS} FROM users WHERE {LIVE_BY_NAME} ORDER BY name = $1 DESC LIMIT 1", name
        )
        return _user(r) if r else None

    async def user_by_id(self, uid: int) -> UserRecord | None:
        r = await self._p.fetchrow(f"SELECT {USER_COLS} FROM users WHERE id = $1 AND NOT deleted", uid)
        return _user(r) if r else None

    async def user_names(self, ids: Sequence[int]) -> dict[int, str]:
        rows = await self._p.fetch("SELECT id, name FROM users WHERE id = ANY($1::bigint[])", list(set(ids)))
        return {r["id"]: r["name"] for r in rows}

    async def password_hash(self, uid: int) -> str | None:
        hashed: str | None = await self._p.fetchval(
            "SELECT password_hash FROM users WHERE id = $1 AND NOT deleted", uid
        )
        return hashed

    async def rename_user(self, uid: int, name: str) -> str:
        async with self._p.acquire() as c, c.transaction():
            await c.execute("SELECT pg_advisory_xact_lock($1)", NAMES_LOCK)
            old = await c.fetchval("SELECT name FROM users WHERE id = $1 AND NOT deleted FOR UPDATE", uid)
            if old is None:
                raise ChatError(Err.NOT_FOUND, f"no user with id {uid}")
            if await c.fetchval(f"SELECT 1 FROM users WHERE {LIVE_BY_NAME} AND id <> $2", name, uid):
                raise ChatError(Err.CONFLICT, f"user {name!r} already exists")
            await c.execute("UPDATE users SET name = $2 WHERE id = $1", uid, name)
        return str(old)

    async def set_display_name(self, uid: int, display_name: str) -> bool:
        done: str = await self._p.execute(
            "UPDATE users SET display_name = $2, display_key = $3 WHERE id = $1 AND NOT deleted",
            uid,
            display_name,
            display_key(display_name),
        )
        return done != "UPDATE 0"

    async def directory(
        self, prefix: str = "", *, after: str | None = None, limit: int = 50, disabled: bool = False
    ) -> list[UserRecord]:
        # COLLATE "C": byte order, as SQLite compares, whatever the database's locale.
        where, args, ranges = ["NOT deleted"], list[object](), list[str]()
        key = display_key(prefix)
        if not disabled:
            where.append("NOT disabled")
        for column, start in (('lower(name) COLLATE "C"', prefix.lower()), ('display_key COLLATE "C"', key)):
            if not prefix:
                break
            low, high = prefix_range(start)
            args.append(low)
            term = f"{column} >= ${len(args)}"
            if high is not None:
                args.append(high)
                term += f" AND {column} < ${len(args)}"
            ranges.append(f"({term})")
        if ranges:
            where.append(f"({' OR '.join(ranges)})")
        if after is not None:
            n = len(args) + 1
            where.append(
                f'(lower(name) COLLATE "C" > lower(${n}) OR (lower(name) = lower(${n}) AND name COLLATE "C" > ${n}))'
            )
            args.append(after)
        rows = await self._p.fetch(
            f"SELECT {USER_COLS} FROM users WHERE {' AND '.join(where)} "
            f'ORDER BY lower(name) COLLATE "C", name COLLATE "C" LIMIT ${len(args) + 1}',
            *args,
            limit,
        )
        return [_user(r) for r in rows]

    async def users_by_ids(self, ids: Sequence[int]) -> list[UserRecord]:
        rows = await self._p.fetch(
            f"SELECT {USER_COLS} FROM users WHERE NOT deleted AND id = ANY($1::bigint[]) ORDER BY id", list(set(ids))
        )
        return [_user(r) for r in rows]

    async def add_token(self, token_hash: str, user: int, scopes: str | None = None) -> None:
        await self._p.execute(
            f"INSERT INTO tokens (hash, user_id, created, scopes) VALUES ($1, $2, {NOW_MS}, $3)",
            token_hash,
            user,
            scopes,
        )

    async def token_scopes(self, token_hash: str) -> str | None:
        found: str | None = await self._p.fetchval("SELECT scopes FROM tokens WHERE hash = $1", token_hash)
        return found

    async def user_for_token(self, token_hash: str, issued_after: int = 0) -> UserRecord | None:
        r = await self._p.fetchrow(
            "SELECT u.id, u.name, u.admin, u.bot, u.created, u.disabled, u.display_name FROM tokens t "
            "JOIN users u ON u.id = t.user_id "
            "WHERE t.hash = $1 AND t.created > $2 AND NOT u.disabled AND NOT u.deleted",
            token_hash,
            issued_after,
        )
        return _user(r) if r else None

    async def claim_once(self, key: str, ttl: float) -> bool:
        # A key whose claim has expired may be claimed again; expired rows are swept now and then, not every time,
        # so a burst of claims does not queue on each other's deletes.
        now = int(time.time() * 1000)
        self._claims += 1
        if self._claims % 256 == 1:
            await self._p.execute("DELETE FROM used_once WHERE expires < $1", now)
        claimed = await self._p.fetchval(
            "INSERT INTO used_once (key, expires) VALUES ($1, $2) "
            "ON CONFLICT (key) DO UPDATE SET expires = EXCLUDED.expires WHERE used_once.expires < $3 RETURNING 1",
            key,
            now + int(ttl * 1000),
            now,
        )
        return claimed is not None

    async def token_created(self, token_hash: str) -> int | None:
        created = await self._p.fetchval("SELECT created FROM tokens WHERE hash = $1", token_hash)
        return int(created) if created is not None else None

    async def revoke_token(self, token_hash: str) -> bool:
        status: str = await self._p.execute("DELETE FROM tokens WHERE hash = $1", token_hash)
        return status != "DELETE 0"

    async def revoke_tokens(self, uid: int, *, keep: str | None = None) -> list[str]:
        rows = await self._p.fetch(
            "DELETE FROM tokens WHERE user_id = $1 AND hash IS DISTINCT FROM $2 RETURNING hash", uid, keep
        )
        return [r["hash"] for r in rows]

    # --- rooms and members --------------------------------------------------------------------------------------

    async def create_room(self, name: str, private: bool, created_by: int) -> RoomRecord:
        async with self._p.acquire() as c, c.transaction():
            try:
                created = await c.fetchval(
                    "INSERT INTO rooms (name, private, created_by, created, last_seq) "
                    f"VALUES ($1, $2, $3, {NOW_MS}, 0) RETURNING created",
                    name,
                    private,
                    created_by,
                )
            except asyncpg.UniqueViolationError:
                raise ChatError(Err.CONFLICT, f"room {name!r} already exists") from None
            await c.execute(
                "INSERT INTO members (room, user_id, joined) VALUES ($1, $2, $3)", name, created_by, created
            )
            r = await c.fetchrow(f"SELECT {ROOM_COLS} FROM {ROOM_FROM} WHERE r.name = $1", name)
        return _room(r)

    async def get_room(self, name: str) -> RoomRecord | None:
        r = await self._p.fetchrow(f"SELECT {ROOM_COLS} FROM {ROOM_FROM} WHERE r.name = $1", name)
        return _room(r) if r else None

    async def list_rooms(
        self, user: int, *, after: str | None = None, limit: int | None = None
    ) -> list[tuple[RoomRecord, bool]]:
        # COLLATE "C": byte order, as the contract says, whatever the database's collation.
        rows = await self._p.fetch(
            f"SELECT {ROOM_COLS}, m.user_id IS NOT NULL AS member "
            f"FROM {ROOM_FROM} LEFT JOIN members m ON m.room = r.name AND m.user_id = $1 "
            'WHERE (NOT r.private OR m.user_id IS NOT NULL) AND r.name COLLATE "C" > $2 '
            'ORDER BY r.name COLLATE "C" LIMIT $3',
            user,
            after or "",
            limit,
        )
        return [(_room(r), r["member"]) for r in rows]

    async def add_member(self, room: str, user: int) -> bool:
        try:
            status: str = await self._p.execute(
                f"INSERT INTO members (room, user_id, joined) SELECT $1, id, {NOW_MS} FROM users "
                "WHERE id = $2 AND NOT deleted ON CONFLICT DO NOTHING",
                room,
                user,
            )
        except asyncpg.ForeignKeyViolationError:
            raise ChatError(Err.NOT_FOUND, f"no room {room!r}") from None
        if status != "INSERT 0 0":
            return True
        if await self.user_by_id(user) is None:
            raise ChatError(Err.NOT_FOUND, f"no user with id {user}")
        return False

    async def remove_member(self, room: str, user: int) -> bool:
        status: str = await self._p.execute("DELETE FROM members WHERE room = $1 AND user_id = $2", room, user)
        return status != "DELETE 0"

    async def is_member(self, room: str, user: int) -> bool:
        one: int | None = await self._p.fetchval("SELECT 1 FROM members WHERE room = $1 AND user_id = $2", room, user)
        return one == 1

    async def members(self, room: str) -> list[UserRef]:
        rows = await self._p.fetch(
            "SELECT u.id, u.name, u.bot FROM members m JOIN users u ON u.id = m.user_id WHERE m.room = $1 "
            'ORDER BY u.name COLLATE "C", u.id',
            room,
        )
        return [UserRef(r["id"], r["name"], r["bot"]) for r in rows]

    # --- messages -----------------------------------------------------------------------------------------------

    async def append(self, batch: Sequence[NewMessage]) -> list[Outcome]:
        if not batch:
            return []
        async with self._p.acquire() as c, c.transaction():
            return await self._append_in_tx(c, batch)

    async def _append_in_tx(self, c: asyncpg.Connection, batch: Sequence[NewMessage]) -> list[Outcome]:
        """Lock the batch's rooms, read its facts, then write what the plan (``chatd.store.planner``) says."""
        plan = planner.AppendPlan(await self._facts(c, batch))
        cols: tuple[list[Any], ...] = ([], [], [], [], [], [], [], [], [])  # planner.MESSAGE_COLS

        async def flush() -> None:
            # A change reads its target, which may be a message earlier in this batch: those rows go in first.
            if cols[0]:
                await c.execute(
                    f"INSERT INTO messages ({planner.MESSAGE_COLS}) "
                    "SELECT * FROM unnest($1::text[], $2::bigint[], $3::bigint[], $4::text[], $5::text[], "
                    "$6::bigint[], $7::text[], $8::bigint[], $9::text[])",
                    *cols,
                )
                for col in cols:
                    col.clear()

        outcomes: list[Outcome] = []
        naming: list[int] = []  # outcomes of new messages with an @ in them, for one mentions query at the end
        for m in batch:
            step = plan.step(m)
            if type(step) is planner.Insert:
                for col, value in zip(cols, step.row, strict=True):
                    col.append(value)
                if "@" in m.body:
                    naming.append(len(outcomes))
                outcomes.append(step.outcome)
            elif type(step) is planner.Change:
                await flush()
                outcomes.append(await self._apply_change(c, plan, m, step))
            else:
                assert isinstance(step, Outcome)
                outcomes.append(step)
        await flush()
        if naming:
            await self._mention(c, batch, outcomes, naming, plan.facts.ts)
        if touched := plan.last_seqs():
            await c.execute(
                "UPDATE rooms SET last_seq = v.last FROM unnest($1::text[], $2::bigint[]) AS v(name, last) "
                "WHERE rooms.name = v.name",
                [n for n, _ in touched],
                [last for _, last in touched],
            )
        return outcomes

    @staticmethod
    async def _facts(c: asyncpg.Connection, batch: Sequence[NewMessage]) -> planner.Facts:
        """Lock the batch's rooms (by name, so two appends never wait on each other in a circle) and read what the
        plan of ``batch`` decides on."""
        locked = await c.fetch(
            f"SELECT name, last_seq, archived, private, {NOW_MS} AS now FROM rooms WHERE name = ANY($1::text[]) "
            "ORDER BY name FOR UPDATE",
            sorted({m.room for m in batch}),
        )
        last: dict[str, int] = {r["name"]: r["last_seq"] for r in locked}
        keys = list({(m.room, m.sender, m.client_id) for m in batch})
        # Read after taking the locks: a racing append to the same room has committed by now, and its rows show.
        stored = [
            _entry(r)
            for r in await c.fetch(
                RESENT,
                [k[0] for k in keys],
                [k[1] for k in keys],
                [k[2] for k in keys],
            )
        ]
        await _fill(c, stored)  # a resend is rare: no query when there is none
        pairs = list({(m.room, m.sender) for m in batch})
        facts = planner.Facts(
            ts=locked[0]["now"] if locked else 0,
            last=last,
            archived={r["name"] for r in locked if r["archived"]},
            private={r["name"] for r in locked if r["private"]},
            stored={(e.room, e.uid, e.client_id): Outcome(e.seq, e.ts, True, stored=e, name=e.from_) for e in stored},
            members={},
        )
        # Members with their current names: the name a new entry's frame shows is the one at the commit.
        for r in await c.fetch(
            "SELECT m.room, m.user_id, u.name, u.bot FROM unnest($1::text[], $2::bigint[]) AS k(room, user_id) "
            "JOIN members m USING (room, user_id) JOIN users u ON u.id = m.user_id",
            [p[0] for p in pairs],
            [p[1] for p in pairs],
        ):
            facts.members[(r["room"], r["user_id"])] = r["name"]
            if r["bot"]:
                facts.bots.add(r["user_id"])
        if quoted := planner.reply_targets(batch, last):  # replies are rare: no query when there is none
            rows = await c.fetch(QUOTED_EVENTS, [q[0] for q in quoted], [q[1] for q in quoted])
            facts.events.update((r["room"], r["seq"]) for r in rows)
        return facts

    async def _mention(
        self, c: asyncpg.Connection, batch: Sequence[NewMessage], outcomes: list[Outcome], at: list[int], ts: int
    ) -> None:
        """Record a mention for each member of a message's room it names (not its sender), for the new messages
        ``batch[i]`` (stored as ``outcomes[i]``) of every ``i`` in ``at`` at once: one round trip, not one per
        message, while the rooms are locked. The ids found go into those outcomes."""
        rows: tuple[list[Any], ...] = ([], [], [], [])
        for i in at:
            m = batch[i]
            for name in mentioned(m.body):
                for col, value in zip(rows, (m.room, outcomes[i].seq, m.sender, name), strict=True):
                    col.append(value)
        if not rows[0]:
            return
        named: dict[tuple[str, int], list[int]] = {}
        for r in await c.fetch(
            "INSERT INTO mentions (user_id, room, seq, ts) "
            "SELECT DISTINCT mb.user_id, v.room, v.seq, $5::bigint "
            "FROM unnest($1::text[], $2::bigint[], $3::bigint[], $4::text[]) AS v(room, seq, sender, name) "
            "JOIN members mb ON mb.room = v.room AND mb.user_id <> v.sender "
            "JOIN users u ON u.id = mb.user_id AND lower(u.name) = v.name "
            "ON CONFLICT DO NOTHING RETURNING user_id, room, seq",
            *rows,
            ts,
        ):
            named.setdefault((r["room"], r["seq"]), []).append(r["user_id"])
        for i in at:
            if found := named.get((batch[i].room, outcomes[i].seq)):
                outcomes[i] = msgspec.structs.replace(outcomes[i], mentions=found)

    async def _apply_change(
        self, c: asyncpg.Connection, plan: planner.AppendPlan, m: NewMessage, step: planner.Change
    ) -> Outcome:
        """Read what ``planner.plan_change`` decides ``m`` on, and write what it says."""
        target: room_events.Target | None = None
        if m.kind in room_events.TARGETED:
            row = await c.fetchrow(
                "SELECT sender, kind, deleted FROM messages WHERE room = $1 AND seq = $2 FOR UPDATE", m.room, m.target
            )
            if row is not None:
                target = room_events.Target(row["sender"], row["kind"], row["deleted"])
        admin = False
        if planner.asks_admin(m, target):
            admin = bool(await c.fetchval("SELECT admin FROM users WHERE id = $1", m.sender))
        tally: room_events.Tally | None = None
        if planner.asks_tally(m, target, admin):
            counts = await c.fetchrow(
                "SELECT COUNT(DISTINCT emoji) AS emoji, COALESCE(bool_or(emoji = $3), false) AS present, "
                "COUNT(*) FILTER (WHERE user_id = $4) AS mine, "
                "COALESCE(bool_or(emoji = $3 AND user_id = $4), false) AS again "
                "FROM reactions WHERE room = $1 AND seq = $2",
                m.room,
                m.target,
                m.body,
                m.sender,
            )
            tally = room_events.Tally(counts["emoji"], counts["present"], counts["mine"], counts["again"])
        write = planner.plan_change(m, step, target, self.reaction_limits, admin, tally)
        if isinstance(write, Outcome):
            return write
        reactors: list[tuple[int, str]] = []
        released: list[str] = []
        if write.edit:
            await c.execute(
                "UPDATE messages SET body = $1, edited = $2 WHERE room = $3 AND seq = $4",
                m.body,
                step.ts,
                m.room,
                m.target,
            )
        elif write.delete:
            released = await self._release_attachments(c, m.room, m.target)
            await c.execute(
                "UPDATE messages SET body = '', attachments = NULL, edited = NULL, deleted = true "
                "WHERE room = $1 AND seq = $2",
                m.room,
                m.target,
            )
            await c.execute(
                "UPDATE messages SET body = '' WHERE room = $1 AND target = $2 AND kind = 'edit'", m.room, m.target
            )
            await c.execute("DELETE FROM reactions WHERE room = $1 AND seq = $2", m.room, m.target)
        elif write.react is not None:
            if write.react:
                await c.execute(
                    "INSERT INTO reactions (room, seq, emoji, user_id, ts, event) VALUES ($1, $2, $3, $4, $5, $6) "
                    "ON CONFLICT DO NOTHING",
                    m.room,
                    m.target,
                    m.body,
                    m.sender,
                    step.ts,
                    step.seq,
                )
            else:
                await c.execute(
                    "DELETE FROM reactions WHERE room = $1 AND seq = $2 AND emoji = $3 AND user_id = $4",
                    m.room,
                    m.target,
                    m.body,
                    m.sender,
                )
            reactors = [
                (r["user_id"], r["name"])
                for r in await c.fetch(
                    "SELECT r.user_id, u.name FROM reactions r JOIN users u ON u.id = r.user_id "
                    "WHERE r.room = $1 AND r.seq = $2 AND r.emoji = $3 ORDER BY r.event",
                    m.room,
                    m.target,
                    m.body,
                )
            ]
        elif write.topic is not None:
            await c.execute("UPDATE rooms SET topic = $1 WHERE name = $2", write.topic, m.room)
        await c.execute(
            f"INSERT INTO messages ({planner.EVENT_COLS}) VALUES ($1, $2, $3, $4, $5, $6, $7, $8)", *write.row
        )
        return plan.changed(m, step, reactors, released)

    @staticmethod
    async def _release_attachments(c: asyncpg.Connection, room: str, seq: int) -> list[str]:
        """Delete the upload records message ``seq`` attaches that no other live message of the room does; returns
        their ids (``Outcome.released``)."""
        found = await c.fetchval("SELECT attachments FROM messages WHERE room = $1 AND seq = $2", room, seq)
        released = []
        for upload_id in room_events.attachment_ids(found):
            shown = await c.fetchval(
                "SELECT 1 FROM messages WHERE room = $1 AND attachments IS NOT NULL AND seq <> $2 AND NOT deleted "
                "AND strpos(attachments, $3) > 0 LIMIT 1",
                room,
                seq,
                room_events.attachment_needle(upload_id),
            )
            if (
                shown is None
                and await c.execute("DELETE FROM uploads WHERE id = $1 AND room = $2", upload_id, room) != "DELETE 0"
            ):
                released.append(upload_id)
        return released

    async def _entries(self, sql: str, *params: object) -> list[Entry]:
        """Entries (``ENTRY_COLS`` rows) with their reactions, on one connection."""
        async with self._p.acquire() as c:
            entries = [_entry(r) for r in await c.fetch(sql, *params)]
            await _fill(c, entries)
        return entries

    async def _messages(self, sql: str, *params: object) -> list[Message]:
        entries = await self._entries(sql, *params)
        assert all(type(e) is Message for e in entries), "the query selects messages only"
        return entries  # type: ignore[return-value]

    async def history(
        self, room: str, *, after: int | None = None, before: int | None = None, limit: int = 100
    ) -> list[Message]:
        # Change events are left out: their effect is already in the messages they changed.
        if after is not None:
            return await self._messages(
                f"{ENTRIES} WHERE m.room = $1 AND m.seq > $2 AND ($3::bigint IS NULL OR m.seq < $3) "
                "AND m.kind IS NULL ORDER BY m.seq LIMIT $4",
                room,
                after,
                before,
                limit,
            )
        newest = await self._messages(
            f"{ENTRIES} WHERE m.room = $1 AND ($2::bigint IS NULL OR m.seq < $2) AND m.kind IS NULL "
            "ORDER BY m.seq DESC LIMIT $3",
            room,
            before,
            limit,
        )
        return newest[::-1]

    async def position(self, room: str) -> StreamPosition | None:
        r = await self._p.fetchrow("SELECT epoch, last_seq FROM rooms WHERE name = $1", room)
        return StreamPosition(r["epoch"], r["last_seq"]) if r else None

    async def positions(self, rooms: Sequence[str]) -> dict[str, StreamPosition]:
        rows = await self._p.fetch("SELECT name, epoch, last_seq FROM rooms WHERE name = ANY($1::text[])", list(rooms))
        return {r["name"]: StreamPosition(r["epoch"], r["last_seq"]) for r in rows}

    async def renew_epochs(self) -> int:
        return int((await self._p.execute(f"UPDATE rooms SET epoch = {NEW_EPOCH_SQL}")).split()[-1])

    # --- removal ------------------------------------------------------------------------------------------------

    async def delete_room(self, name: str) -> list[str] | None:
        async with self._p.acquire() as c, c.transaction():
            # The row lock serialises this with appends, which lock the room's row to take a seq.
            if await c.fetchval("SELECT 1 FROM rooms WHERE name = $1 FOR UPDATE", name) is None:
                return None
            ids = [r["id"] for r in await c.fetch("SELECT id FROM uploads WHERE room = $1", name)]
            for sql in (
                "members WHERE room",
                "messages WHERE room",
                "reactions WHERE room",
                "uploads WHERE room",
                "reads WHERE room",
                "mentions WHERE room",
                "hooks WHERE room",
                "rooms WHERE name",
            ):
                await c.execute(f"DELETE FROM {sql} = $1", name)
        return ids

    async def delete_user(self, uid: int) -> list[str] | None:
        async with self._p.acquire() as c, c.transaction():
            if await c.fetchval("SELECT 1 FROM users WHERE id = $1 AND NOT deleted FOR UPDATE", uid) is None:
                return None
            ids = [r["id"] for r in await c.fetch("SELECT id FROM uploads WHERE owner = $1", uid)]
            for sql in (
                "tokens WHERE user_id",
                "members WHERE user_id",
                "uploads WHERE owner",
                "reads WHERE user_id",
                "mentions WHERE user_id",
                "hooks WHERE bot_id",
            ):
                await c.execute(f"DELETE FROM {sql} = $1", uid)
            # The tombstone: the id and the name stay for what they wrote; nothing can sign in as it.
            await c.execute("UPDATE users SET deleted = true, password_hash = NULL WHERE id = $1", uid)
        return ids

    # --- uploads ------------------------------------------------------------------------------------------------

    async def add_upload(self, record: UploadRecord, quota: int = 0) -> bool:
        async with self._p.acquire() as c, c.transaction():
            # One owner's uploads are added one at a time, so concurrent uploads cannot overshoot the quota.
            await c.execute(
                "SELECT pg_advisory_xact_lock($1, hashtext($2::bigint::text))", MIGRATE_LOCK + 2, record.owner
            )
            if quota:
                used = await c.fetchval("SELECT COALESCE(SUM(size), 0) FROM uploads WHERE owner = $1", record.owner)
                if used + record.size > quota:
                    return False
            await c.execute(
                "INSERT INTO uploads (id, owner, room, content_type, size, name, created) "
                "VALUES ($1, $2, $3, $4, $5, $6, $7)",
                record.id,
                record.owner,
                record.room,
                record.content_type,
                record.size,
                record.name,
                record.created,
            )
        return True

    async def upload_usage(self, owner: int) -> int:
        return int(await self._p.fetchval("SELECT COALESCE(SUM(size), 0) FROM uploads WHERE owner = $1", owner))

    async def get_upload(self, upload_id: str) -> UploadRecord | None:
        r = await self._p.fetchrow(
            "SELECT id, owner, content_type, size, name, created, room FROM uploads WHERE id = $1", upload_id
        )
        return UploadRecord(*r) if r else None

    async def delete_upload(self, upload_id: str, *, unposted_only: bool = False) -> bool:
        sql = "DELETE FROM uploads WHERE id = $1" + (" AND room IS NULL" if unposted_only else "")
        status: str = await self._p.execute(sql, upload_id)
        return status != "DELETE 0"

    async def uploads_before(self, created_before: int, limit: int, *, unposted_only: bool) -> list[UploadRecord]:
        rows = await self._p.fetch(
            "SELECT id, owner, content_type, size, name, created, room FROM uploads "
            "WHERE (room IS NULL OR NOT $3) AND created < $1 ORDER BY created LIMIT $2",
            created_before,
            limit,
            unposted_only,
        )
        return [UploadRecord(*r) for r in rows]

    async def attach_uploads(self, ids: Sequence[str], owner: int, room: str) -> list[str]:
        rows = await self._p.fetch(
            "UPDATE uploads SET room = $3 WHERE id = ANY($1::text[]) AND owner = $2 AND (room IS NULL OR room = $3) "
            "RETURNING id",
            list(ids),
            owner,
            room,
        )
        bound = {r["id"] for r in rows}
        return [i for i in ids if i in bound]

    # --- room streams -------------------------------------------------------------------------------------------

    async def stream(self, room: str, *, after: int, limit: int = 100) -> list[Entry]:
        return await self._entries(
            f"{ENTRIES} WHERE m.room = $1 AND m.seq > $2 ORDER BY m.seq LIMIT $3", room, after, limit
        )

    # --- read state ---------------------------------------------------------------------------------------------

    async def set_read(self, user: int, room: str, seq: int) -> int:
        stored = await self._p.fetchval(
            "INSERT INTO reads (user_id, room, seq, ts) "
            f"SELECT $1, name, LEAST($2, last_seq), {NOW_MS} FROM rooms WHERE name = $3 "
            "ON CONFLICT (user_id, room) DO UPDATE SET seq = GREATEST(reads.seq, excluded.seq), ts = excluded.ts "
            "RETURNING seq",
            user,
            seq,
            room,
        )
        return stored or 0

    async def read_positions(self, user: int, room: str | None = None) -> list[ReadPosition]:
        # Counting stops at UNREAD_MAX, so a long-unread room costs a bounded scan.
        rows = await self._p.fetch(
            "SELECT m.room, COALESCE(r.seq, 0) AS pos, rooms.last_seq, "
            "(SELECT COUNT(*) FROM (SELECT 1 FROM messages x WHERE x.room = m.room AND x.seq > COALESCE(r.seq, 0) "
            "AND x.kind IS NULL AND NOT x.deleted AND x.sender <> m.user_id LIMIT $3) AS u) AS unread "
            "FROM members m JOIN rooms ON rooms.name = m.room "
            "LEFT JOIN reads r ON r.user_id = m.user_id AND r.room = m.room "
            'WHERE m.user_id = $1 AND ($2::text IS NULL OR m.room = $2) ORDER BY m.room COLLATE "C"',
            user,
            room,
            UNREAD_MAX,
        )
        return [ReadPosition(r["room"], r["pos"], r["last_seq"], r["unread"]) for r in rows]

    # --- mentions -----------------------------------------------------------------------------------------------

    async def mentions(self, user: int, *, before: int | None = None, limit: int = 50) -> list[Message]:
        return await self._messages(
            f"SELECT {room_events.ENTRY_COLS} FROM mentions mn "
            "JOIN members mb ON mb.room = mn.room AND mb.user_id = mn.user_id "
            "JOIN messages m ON m.room = mn.room AND m.seq = mn.seq JOIN users u ON u.id = m.sender "
            "WHERE mn.user_id = $1 AND ($2::bigint IS NULL OR mn.ts < $2) AND NOT m.deleted "
            "ORDER BY mn.ts DESC, mn.room, mn.seq DESC LIMIT $3",
            user,
            before,
            limit,
        )

    # --- direct messages ----------------------------------------------------------------------------------------

    async def open_dm(self, name: str, a: int, b: int) -> tuple[RoomRecord, bool]:
        async with self._p.acquire() as c, c.transaction():
            made = await c.fetchval(
                "INSERT INTO rooms (name, private, created_by, created, last_seq, dm) "
                f"VALUES ($1, true, $2, {NOW_MS}, 0, true) ON CONFLICT (name) DO NOTHING RETURNING true",
                name,
                a,
            )
            r = await c.fetchrow(f"SELECT {ROOM_COLS} FROM {ROOM_FROM} WHERE r.name = $1", name)
            record = _room(r)
            if not record.dm:
                raise ChatError(Err.CONFLICT, f"{name!r} is a room, not a direct conversation")
            await c.execute(
                f"INSERT INTO members (room, user_id, joined) SELECT $1, u, {NOW_MS} FROM unnest($2::bigint[]) AS u "
                "ON CONFLICT DO NOTHING",
                name,
                [a, b],
            )
        return record, bool(made)

    # --- search -------------------------------------------------------------------------------------------------

    async def search(
        self, user: int, words: list[str], *, room: str | None = None, limit: int = 20, offset: int = 0
    ) -> list[Hit]:
        if not words:
            return []
        sql = (
            "SELECT m.room, m.seq, u.name, m.ts, ts_headline('simple', m.body, q, $6) AS snippet, m.sender "
            "FROM messages m JOIN users u ON u.id = m.sender JOIN rooms r ON r.name = m.room, "
            "to_tsquery('simple', $1) AS q "
            "WHERE m.search @@ q AND m.kind IS NULL AND NOT m.deleted AND ($2::text IS NULL OR m.room = $2) "
            "AND (NOT r.private OR EXISTS (SELECT 1 FROM members mb WHERE mb.room = m.room AND mb.user_id = $3)) "
            "ORDER BY ts_rank(m.search, q) DESC, m.ts DESC LIMIT $4 OFFSET $5"
        )
        timeout, slots = self.search_limits
        if self._search_slots is None:
            self._search_slots = asyncio.Semaphore(slots)
        try:
            # Searches hold at most ``slots`` of the pool, so token checks and history always find a connection.
            async with asyncio.timeout(timeout or None):
                await self._search_slots.acquire()
        except TimeoutError:
            raise searches_busy() from None
        try:
            async with self._p.acquire() as c, c.transaction():
                if timeout:
                    await c.execute(f"SET LOCAL statement_timeout = {max(1, round(timeout * 1000))}")
                rows = await c.fetch(
                    sql,
                    tsquery(words),
                    room,
                    user,
                    limit,
                    offset,
                    f'StartSel="{MARK_START}", StopSel="{MARK_END}", MaxWords=24, MinWords=8, ShortWord=0',
                )
        except asyncpg.QueryCanceledError:
            if not timeout:
                raise  # the store-wide store.statement_timeout: a fault like any other
            raise search_too_slow(timeout) from None
        finally:
            self._search_slots.release()
        return [Hit(*r) for r in rows]

    # --- operations: the admin CLI, export/import ----------------------------------------------------------------

    async def user_info(self, name: str | None = None) -> list[UserInfo]:
        sql = (
            "SELECT u.id, u.name, u.admin, u.bot, u.created, u.disabled, u.password_hash IS NOT NULL AS has_password, "
            "(SELECT COUNT(*) FROM tokens t WHERE t.user_id = u.id) AS tokens FROM users u WHERE NOT u.deleted "
        )
        if name is None:
            rows = await self._p.fetch(sql + 'ORDER BY u.name COLLATE "C", u.id')
        else:
            rows = await self._p.fetch(sql + "AND lower(u.name) = lower($1) ORDER BY u.name = $1 DESC LIMIT 1", name)
        return [UserInfo(*r) for r in rows]

    async def set_user(self, uid: int, *, disabled: bool | None = None, admin: bool | None = None) -> bool:
        status: str = await self._p.execute(
            "UPDATE users SET disabled = COALESCE($2, disabled), admin = COALESCE($3, admin) "
            "WHERE id = $1 AND NOT deleted",
            uid,
            disabled,
            admin,
        )
        return status != "UPDATE 0"

    async def set_password_hash(self, uid: int, password_hash: str | None) -> bool:
        status: str = await self._p.execute(
            "UPDATE users SET password_hash = $2 WHERE id = $1 AND NOT deleted", uid, password_hash
        )
        return status != "UPDATE 0"

    async def tokens(self, *, user: int | None = None, id_prefix: str | None = None) -> list[TokenRecord]:
        param: object
        if user is not None:
            where, param = "t.user_id = $1", user
        elif not id_prefix:
            return []
        else:
            where, param = "starts_with(t.hash, $1)", id_prefix
        rows = await self._p.fetch(
            "SELECT t.hash, t.user_id, t.created, t.last_used, u.name, t.scopes FROM tokens t "
            f"JOIN users u ON u.id = t.user_id WHERE {where} ORDER BY t.created, t.hash",
            param,
        )
        return [
            TokenRecord(
                r["hash"][:TOKEN_ID_LEN], r["user_id"], r["created"], r["last_used"], r["hash"], r["name"], r["scopes"]
            )
            for r in rows
        ]

    async def touch_token(self, token_hash: str, now: int, every: int) -> None:
        await self._p.execute(
            "UPDATE tokens SET last_used = $2 WHERE hash = $1 AND (last_used IS NULL OR last_used < $3)",
            token_hash,
            now,
            now - every,
        )

    async def admin_rooms(self) -> list[AdminRoom]:
        rows = await self._p.fetch(
            "SELECT r.name, r.private, COALESCE(cu.name, '') AS created_by, r.created, r.last_seq, r.archived, "
            f"(SELECT COUNT(*) FROM members m WHERE m.room = r.name) AS members FROM {ROOM_FROM} "
            'ORDER BY r.name COLLATE "C"'
        )
        return [AdminRoom(*r) for r in rows]

    async def set_room_archived(self, name: str, archived: bool) -> bool:
        status: str = await self._p.execute("UPDATE rooms SET archived = $2 WHERE name = $1", name, archived)
        return status != "UPDATE 0"

    async def is_empty(self) -> bool:
        return not await self._p.fetchval("SELECT EXISTS (SELECT 1 FROM users) OR EXISTS (SELECT 1 FROM rooms)")

    # Column names as every store exports them (PostgreSQL says "user_id" where SQLite says "user").
    _EXPORT_SQL = {
        "user": "SELECT id, name, password_hash, admin, bot, created, disabled, deleted, display_name FROM users "
        "ORDER BY id",
        "token": 'SELECT hash, user_id AS "user", created, last_used, scopes FROM tokens ORDER BY hash COLLATE "C"',
        "room": "SELECT name, private, created_by, created, last_seq, archived, purged_through, topic, dm FROM rooms "
        'ORDER BY name COLLATE "C"',
        "member": 'SELECT room, user_id AS "user", joined FROM members ORDER BY room COLLATE "C", user_id',
        "message": f'SELECT {room_events.EXPORT_COLS} FROM messages ORDER BY room COLLATE "C", seq',
        "reaction": 'SELECT room, seq, emoji, user_id AS "user", ts, event FROM reactions '
        'ORDER BY room COLLATE "C", seq, emoji COLLATE "C", user_id',
        "upload": 'SELECT id, owner, room, content_type, size, name, created FROM uploads ORDER BY id COLLATE "C"',
        "read": 'SELECT user_id AS "user", room, seq, ts FROM reads ORDER BY user_id, room COLLATE "C"',
        "mention": 'SELECT user_id AS "user", room, seq, ts FROM mentions ORDER BY user_id, room COLLATE "C", seq',
        "invite": 'SELECT hash, created_by, created, expires, used_by FROM invites ORDER BY hash COLLATE "C"',
        "sso_link": 'SELECT issuer, subject, user_id AS "user", created FROM sso_links '
        'ORDER BY issuer COLLATE "C", subject COLLATE "C"',
        "hook": 'SELECT id, room, bot_id, secret_hash, created_by, created FROM hooks ORDER BY id COLLATE "C"',
    }

    # --- incoming webhooks --------------------------------------------------------------------------------------

    async def add_hook(self, hook: HookRecord) -> None:
        try:
            await self._p.execute(
                "INSERT INTO hooks (id, room, bot_id, secret_hash, created_by, created) "
                "VALUES ($1, $2, $3, $4, $5, $6)",
                hook.id,
                hook.room,
                hook.bot,
                hook.secret_hash,
                hook.created_by,
                hook.created,
            )
        except asyncpg.ForeignKeyViolationError:
            raise ChatError(Err.NOT_FOUND, f"no room {hook.room!r} or no bot user {hook.bot}") from None

    async def get_hook(self, hook_id: str) -> HookRecord | None:
        r = await self._p.fetchrow(f"{HOOK_SELECT} WHERE h.id = $1", hook_id)
        return _hook(r) if r else None

    async def hooks(self, room: str | None = None) -> list[HookRecord]:
        if room is None:
            rows = await self._p.fetch(f"{HOOK_SELECT} ORDER BY h.created, h.id")
        else:
            rows = await self._p.fetch(f"{HOOK_SELECT} WHERE h.room = $1 ORDER BY h.created, h.id", room)
        return [_hook(r) for r in rows]

    async def delete_hook(self, hook_id: str) -> bool:
        return await self._p.fetchval("DELETE FROM hooks WHERE id = $1 RETURNING 1", hook_id) is not None

    @contextlib.asynccontextmanager
    async def snapshot(self) -> AsyncIterator[None]:
        async with self._p.acquire() as c, c.transaction(isolation="repeatable_read", readonly=True):
            await c.execute(UNBOUNDED)  # a backup reads for as long as it takes, idle while it writes its file
            self._snapshot = c
            try:
                yield
            finally:
                self._snapshot = None

    async def export_rows(self, kind: str) -> AsyncIterator[dict[str, Any]]:
        if self._snapshot is not None:
            async for r in self._snapshot.cursor(self._EXPORT_SQL[kind], prefetch=500):
                yield export_row(kind, dict(r.items()), set())
            return
        async with self._p.acquire() as c, c.transaction(readonly=True):
            await c.execute(UNBOUNDED)  # the reader may take its time between pages; it holds no row locks
            async for r in c.cursor(self._EXPORT_SQL[kind], prefetch=500):
                yield export_row(kind, dict(r.items()), set())

    async def import_rows(self, kind: str, rows: Sequence[dict[str, Any]]) -> None:
        if not rows:
            return
        cols = check_import(kind, rows)
        names = ", ".join({"user": "user_id", "change": "kind"}.get(c, c) for c in cols)
        marks = ", ".join(f"${i}" for i in range(1, len(cols) + 1))
        values = [tuple(import_value(c, row[c], sqlite=False) for c in cols) for row in rows]
        # Users keep their ids: the identity column takes them, and then continues after the highest.
        overriding = " OVERRIDING SYSTEM VALUE" if kind == "user" else ""
        async with self._p.acquire() as c, c.transaction():
            await c.executemany(f"INSERT INTO {kind}s ({names}){overriding} VALUES ({marks})", values)
            if kind == "user":
                await c.executemany("UPDATE users SET display_key = $1 WHERE id = $2", display_keys(rows))
                await c.execute(
                    "SELECT setval(pg_get_serial_sequence('users', 'id'), COALESCE(MAX(id), 0) + 1, false) FROM users"
                )

    async def add_invite(self, code_hash: str, created_by: int | None, expires: int) -> None:
        await self._p.execute(
            f"INSERT INTO invites (hash, created_by, created, expires) VALUES ($1, $2, {NOW_MS}, $3)",
            code_hash,
            created_by,
            expires,
        )

    async def invites(self) -> list[InviteRecord]:
        rows = await self._p.fetch(
            "SELECT i.hash, c.name AS created_by, i.created, i.expires, u.name AS used_by FROM invites i "
            "LEFT JOIN users c ON c.id = i.created_by LEFT JOIN users u ON u.id = i.used_by "
            'ORDER BY i.created, i.hash COLLATE "C"'
        )
        return [
            InviteRecord(r["hash"][:TOKEN_ID_LEN], r["created_by"], r["created"], r["expires"], r["used_by"], r["hash"])
            for r in rows
        ]

    async def purge_plan(self, before_ts: int) -> dict[str, int]:
        rows = await self._p.fetch(
            "SELECT r.name, p.through FROM rooms r JOIN "
            "(SELECT room, MAX(seq) AS through FROM messages WHERE ts < $1 GROUP BY room) p ON p.room = r.name "
            'WHERE p.through > r.purged_through ORDER BY r.name COLLATE "C"',
            before_ts,
        )
        return {r["name"]: r["through"] for r in rows}

    async def purge_prefix(self, room: str, through: int, limit: int) -> tuple[int, int]:
        async with self._p.acquire() as c, c.transaction():
            # The room's row lock orders this with appends to the room, for one chunk only.
            done = await c.fetchval("SELECT purged_through FROM rooms WHERE name = $1 FOR UPDATE", room)
            if done is None or done >= through:
                return 0, through if done is None else done
            upto = min(through, done + limit)
            status = await c.execute(
                "DELETE FROM messages WHERE room = $1 AND seq > $2 AND seq <= $3", room, done, upto
            )
            await c.execute("DELETE FROM reactions WHERE room = $1 AND seq > $2 AND seq <= $3", room, done, upto)
            await c.execute("UPDATE rooms SET purged_through = $2 WHERE name = $1", room, upto)
        return int(status.split()[-1]), upto

    async def purged_through(self, room: str) -> int:
        return int(await self._p.fetchval("SELECT purged_through FROM rooms WHERE name = $1", room) or 0)

    # --- outgoing webhooks --------------------------------------------------------------------------------------
    # Leases and retry times use the database's clock, so nodes whose clocks disagree still agree on who holds one.

    async def add_webhook(
        self, room: str, url: str, secret: str, events: Sequence[str], created_by: int | None, per_room_max: int = 0
    ) -> Webhook:
        async with self._p.acquire() as c, c.transaction():
            # The room's row lock orders this with appends (the cursor starts at a last seq no append is moving)
            # and with other additions to the room (the bound holds against a racing one).
            last = await c.fetchval("SELECT last_seq FROM rooms WHERE name = $1 FOR UPDATE", room)
            if last is None:
                raise ChatError(Err.NOT_FOUND, f"no room {room!r}")
            count = await c.fetchval("SELECT count(*) FROM webhooks WHERE room = $1", room)
            if per_room_max and count >= per_room_max:
                raise ChatError(Err.CONFLICT, f"{room!r} has {count} webhooks already (webhooks.per_room_max)")
            hook = await c.fetchval(
                "INSERT INTO webhooks (room, url, secret, events, created_by, created, cursor_seq) "
                f"VALUES ($1, $2, $3, $4, $5, {NOW_MS}, $6) RETURNING id",
                room,
                url,
                secret,
                ",".join(events),
                created_by,
                last,
            )
            row = await c.fetchrow(f"{WEBHOOKS_SQL} WHERE w.id = $1", hook)
        return webhook_of(tuple(row))

    async def webhooks(self, room: str | None = None) -> list[Webhook]:
        if room is None:
            rows = await self._p.fetch(f"{WEBHOOKS_SQL} ORDER BY w.id")
        else:
            rows = await self._p.fetch(f"{WEBHOOKS_SQL} WHERE w.room = $1 ORDER BY w.id", room)
        return [webhook_of(tuple(r)) for r in rows]

    async def get_webhook(self, hook: int) -> Webhook | None:
        row = await self._p.fetchrow(f"{WEBHOOKS_SQL} WHERE w.id = $1", hook)
        return webhook_of(tuple(row)) if row else None

    async def delete_webhook(self, hook: int) -> bool:
        status: str = await self._p.execute("DELETE FROM webhooks WHERE id = $1", hook)
        return status != "DELETE 0"

    async def enable_webhook(self, hook: int) -> bool:
        done: str = await self._p.execute(
            "UPDATE webhooks SET failing = false, attempts = 0, next_attempt = 0, last_error = '' WHERE id = $1", hook
        )
        return done != "UPDATE 0"

    async def lease_webhooks(self, owner: str, lease_ms: int, limit: int, busy: Sequence[int] = ()) -> list[Webhook]:
        async with self._p.acquire() as c, c.transaction():
            # SKIP LOCKED: two nodes leasing at once each take other rows instead of waiting for each other.
            ids = await c.fetch(
                f"WITH now AS (SELECT {NOW_MS} AS ms) "
                "UPDATE webhooks SET lease_owner = $1, lease_until = (SELECT ms FROM now) + $2 WHERE id IN ("
                "SELECT w.id FROM webhooks w JOIN rooms r ON r.name = w.room, now WHERE NOT w.failing "
                "AND w.next_attempt <= now.ms AND w.cursor_seq < r.last_seq "
                "AND (w.lease_until < now.ms OR w.lease_owner = $1) AND NOT (w.id = ANY($3::bigint[])) "
                "ORDER BY w.next_attempt, w.id LIMIT $4 FOR UPDATE OF w SKIP LOCKED) RETURNING id",
                owner,
                lease_ms,
                list(busy),
                limit,
            )
            if not ids:
                return []
            rows = await c.fetch(
                f"{WEBHOOKS_SQL} WHERE w.id = ANY($1::bigint[]) ORDER BY w.next_attempt, w.id", [r["id"] for r in ids]
            )
        return [webhook_of(tuple(r)) for r in rows]

    async def webhook_delivered(self, hook: int, owner: str, cursor: int, delivered: int, lease_ms: int) -> bool:
        done: str = await self._p.execute(
            "UPDATE webhooks SET cursor_seq = greatest(cursor_seq, $3), delivered = delivered + $4, "
            "attempts = CASE WHEN $4 > 0 THEN 0 ELSE attempts END, "
            "last_error = CASE WHEN $4 > 0 THEN '' ELSE last_error END, "
            f"last_attempt = CASE WHEN $4 > 0 THEN {NOW_MS} ELSE last_attempt END, "
            f"lease_until = {NOW_MS} + $5 WHERE id = $1 AND lease_owner = $2",
            hook,
            owner,
            cursor,
            delivered,
            lease_ms,
        )
        return done != "UPDATE 0"

    async def webhook_failed(self, hook: int, owner: str, error: str, retry_ms: int, max_attempts: int) -> int:
        attempts = await self._p.fetchval(
            f"UPDATE webhooks SET attempts = attempts + 1, last_error = $3, last_attempt = {NOW_MS}, "
            f"next_attempt = {NOW_MS} + $4, failing = (attempts + 1 >= $5), lease_owner = '', lease_until = 0 "
            "WHERE id = $1 AND lease_owner = $2 RETURNING attempts",
            hook,
            owner,
            error,
            retry_ms,
            max_attempts,
        )
        return int(attempts or 0)

    async def release_webhook(self, hook: int, owner: str) -> None:
        await self._p.execute(
            "UPDATE webhooks SET lease_owner = '', lease_until = 0 WHERE id = $1 AND lease_owner = $2", hook, owner
        )
