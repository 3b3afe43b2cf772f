"""The SQLite store: one writer connection, pools of reader connections, WAL mode.

Every write goes through the single writer connection under an asyncio lock, so transactions never interleave
and SQLite never sees two writers (no ``database is locked``). Reads take a connection from a pool
(``chatd.store.sqlite_pool``), which in WAL mode sees the last committed state without waiting for the writer or
for another read; searches have a pool of their own, and each runs under a time limit.

``append`` takes each room's next seq from the room's row inside its ``BEGIN IMMEDIATE`` transaction, like every
store: no counter in this process decides a seq. The file is still held by one server (``<path>.lock``), because
one writer connection is what keeps SQLite fast and free of ``database is locked``.
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import os
import secrets
import sqlite3
import time
from collections.abc import AsyncIterator, Sequence
from pathlib import Path
from typing import Any, Self

import msgspec
import sqlite_utils

from chatd.config import Config
from chatd.errors import ChatError, Err
from chatd.failures import path_problem
from chatd.protocol.frames import Entry, Message
from chatd.rules.mentions import mentioned
from chatd.rules.search import MARK_END, MARK_START, Hit, fts5_query, search_too_slow, searches_busy
from chatd.store import planner, room_events
from chatd.store.base import (
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
    new_epoch,
    prefix_range,
    webhook_of,
)
from chatd.store.migrations import ATTACHED_INDEX, MIGRATIONS, NEW_EPOCH_SQL, applied, migrate
from chatd.store.sqlite_pool import PoolBusy, ReadPool, ReadTimeout
from chatd.store.sqlite_thread import ConnectionThread
from chatd.store.sqltx import async_transaction, transaction

INVITE_REFUSED = "this invite code is unknown, used or expired; ask for a new one"


def now_ms() -> int:
    return time.time_ns() // 1_000_000


def _room(row: sqlite3.Row | tuple[Any, ...]) -> RoomRecord:
    return RoomRecord(
        name=row[0],
        private=bool(row[1]),
        created_by=row[2] or 0,
        created=row[3],
        last_seq=row[4],
        topic=row[5] or "",
        dm=bool(row[6]),
        creator=row[7] or "",
        epoch=row[8],
    )


INDEX_AFTER = 2_000  # appended messages that start a background catch-up of the search index
INDEX_CHUNK = 250  # messages indexed per transaction: about 1.5 ms of the writer, which appends wait out
_INDEX_ROOMS = 256  # rooms looked at per index transaction
# A room with its creator's current name: select _ROOM_COLS FROM _ROOM_FROM.
_ROOM_COLS = "r.name, r.private, r.created_by, r.created, r.last_seq, r.topic, r.dm, cu.name, r.epoch"
_ROOM_FROM = "rooms r LEFT JOIN users cu ON cu.id = r.created_by"
_ENTRIES = f"SELECT {room_events.ENTRY_COLS} FROM {room_events.ENTRY_FROM}"
_LIVE_BY_NAME = "name = ? COLLATE NOCASE AND NOT deleted"  # a live user by any spelling of the name


def _marks(rows: int, width: int = 1) -> str:
    """Placeholders for ``rows`` values of ``width`` columns: ``?,?`` or ``(?,?),(?,?)``."""
    if width == 1:
        return ",".join("?" * rows)
    one = "(" + ",".join("?" * width) + ")"
    return ",".join([one] * rows)


_KEYS_CHUNK = 300  # (room, seq) pairs per reactors query


def _reactors_sql(n: int) -> str:
    """The reactor rows (``room_events.REACTION_COLS``) of ``n`` (room, seq) pairs, oldest first."""
    return (
        f"WITH k(room, seq) AS (VALUES {_marks(n, 2)}) SELECT {room_events.REACTION_COLS} FROM k "
        "JOIN reactions r ON r.room = k.room AND r.seq = k.seq JOIN users u ON u.id = r.user ORDER BY r.event"
    )


def _fill_sync(conn: sqlite3.Connection, entries: Sequence[Entry]) -> None:
    """``room_events.fill`` the entries from the store, on a connection's own thread."""
    keys = room_events.reaction_keys(entries)
    rows: list[tuple[Any, ...]] = []
    for i in range(0, len(keys), _KEYS_CHUNK):
        chunk = keys[i : i + _KEYS_CHUNK]
        rows += conn.execute(_reactors_sql(len(chunk)), [v for key in chunk for v in key]).fetchall()
    room_events.fill(entries, rows)


def _append_sync(conn: sqlite3.Connection, batch: Sequence[NewMessage], limits: tuple[int, int]) -> list[Outcome]:
    """One append transaction, run on the writer connection's own thread (see ``Store.append``)."""
    with transaction(conn):
        return _append_rows(conn, batch, limits)


def _index_sync(conn: sqlite3.Connection, max_rows: int) -> bool:
    """Index for search up to about ``max_rows`` messages past the rooms' ``search_seq``, in one transaction, on
    the writer's thread. Returns whether that was everything pending when the transaction began."""
    with transaction(conn):
        covered = 0
        pending = conn.execute(
            f"SELECT name, search_seq, last_seq FROM rooms WHERE last_seq > search_seq LIMIT {_INDEX_ROOMS}"
        ).fetchall()
        for room, done, last in pending:
            upto = min(last, done + max_rows - covered)
            conn.execute(
                "INSERT OR IGNORE INTO search_ids (room, seq) SELECT room, seq FROM messages "
                "WHERE room = ? AND seq > ? AND seq <= ? AND kind IS NULL AND body != '' AND deleted = 0",
                (room, done, upto),
            )
            conn.execute(
                "INSERT INTO message_search (rowid, body) SELECT s.id, m.body FROM search_ids s "
                "JOIN messages m ON m.room = s.room AND m.seq = s.seq WHERE s.room = ? AND s.seq > ? AND s.seq <= ?",
                (room, done, upto),
            )
            conn.execute("UPDATE rooms SET search_seq = ? WHERE name = ?", (upto, room))
            covered += upto - done
            if covered >= max_rows:
                break
    return covered < max_rows and len(pending) < _INDEX_ROOMS


def _append_rows(conn: sqlite3.Connection, batch: Sequence[NewMessage], limits: tuple[int, int]) -> list[Outcome]:
    """Read the batch's facts, then write what the plan (``chatd.store.planner``) says, entry by entry."""
    plan = planner.AppendPlan(_facts(conn, batch))
    rows: list[tuple[Any, ...]] = []
    outcomes: list[Outcome] = []

    def flush() -> None:
        # A change reads its target, which may be a message earlier in this batch: those rows go in first.
        if rows:
            conn.executemany(f"INSERT INTO messages ({planner.MESSAGE_COLS}) VALUES ({_marks(9)})", rows)
            rows.clear()

    for m in batch:
        step = plan.step(m)
        if type(step) is planner.Insert:
            rows.append(step.row)
            out = step.outcome
            if "@" in m.body:
                out = msgspec.structs.replace(out, mentions=_mention(conn, m, out.seq, out.ts))
            outcomes.append(out)
        elif type(step) is planner.Change:
            flush()
            outcomes.append(_apply_change(conn, plan, m, step, limits))
        else:
            assert isinstance(step, Outcome)
            outcomes.append(step)
    flush()
    if touched := plan.last_seqs():
        conn.executemany("UPDATE rooms SET last_seq = ? WHERE name = ?", [(last, n) for n, last in touched])
    return outcomes


def _facts(conn: sqlite3.Connection, batch: Sequence[NewMessage]) -> planner.Facts:
    """What the plan of ``batch`` decides on, read in the append transaction."""
    keys = {(m.room, m.sender, m.client_id) for m in batch}
    stored = [
        room_events.entry(r)
        for r in conn.execute(
            f"WITH k(room, sender, client_id) AS (VALUES {_marks(len(keys), 3)}) "
            f"SELECT {room_events.ENTRY_COLS} FROM k JOIN messages m "
            "ON m.room = k.room AND m.sender = k.sender AND m.client_id = k.client_id JOIN users u ON u.id = m.sender",
            [v for key in keys for v in key],
        )
    ]
    _fill_sync(conn, stored)  # a resend is rare: no query when there is none
    names = list({m.room for m in batch})
    last: dict[str, int] = {}
    archived: set[str] = set()
    private: set[str] = set()
    for name, last_seq, is_archived, is_private in conn.execute(
        f"SELECT name, last_seq, archived, private FROM rooms WHERE name IN ({_marks(len(names))})", names
    ):
        last[name] = last_seq
        if is_archived:
            archived.add(name)
        if is_private:
            private.add(name)
    pairs = list({(m.room, m.sender) for m in batch})
    facts = planner.Facts(
        ts=now_ms(),
        last=last,
        archived=archived,
        private=private,
        stored={(e.room, e.uid, e.client_id): Outcome(e.seq, e.ts, True, stored=e, name=e.from_) for e in stored},
        members={},
    )
    # Members with their current names: the name a new entry's frame shows is the one at the commit.
    for r in conn.execute(
        f"SELECT mb.room, mb.user, u.name, u.bot FROM members mb JOIN users u ON u.id = mb.user "
        f"WHERE (mb.room, mb.user) IN (VALUES {_marks(len(pairs), 2)})",
        [v for pair in pairs for v in pair],
    ):
        facts.members[(r[0], r[1])] = r[2]
        if r[3]:
            facts.bots.add(r[1])
    if quoted := planner.reply_targets(batch, last):  # replies are rare: no query when there is none
        facts.events.update(
            (r[0], r[1])
            for r in conn.execute(
                f"WITH k(room, seq) AS (VALUES {_marks(len(quoted), 2)}) SELECT m.room, m.seq FROM k "
                "JOIN messages m ON m.room = k.room AND m.seq = k.seq WHERE m.kind IS NOT NULL",
                [v for key in quoted for v in key],
            )
        )
    return facts


def _apply_change(
    conn: sqlite3.Connection, plan: planner.AppendPlan, m: NewMessage, step: planner.Change, limits: tuple[int, int]
) -> Outcome:
    """Read what ``planner.plan_change`` decides ``m`` on, and write what it says."""
    target: room_events.Target | None = None
    if m.kind in room_events.TARGETED:
        row = conn.execute(
            "SELECT sender, kind, deleted FROM messages WHERE room = ? AND seq = ?", (m.room, m.target)
        ).fetchone()
        if row is not None:
            target = room_events.Target(row[0], row[1], bool(row[2]))
    admin = False
    if planner.asks_admin(m, target):
        found = conn.execute("SELECT admin FROM users WHERE id = ?", (m.sender,)).fetchone()
        admin = bool(found and found[0])
    tally: room_events.Tally | None = None
    if planner.asks_tally(m, target, admin):
        counts = conn.execute(
            "SELECT COUNT(DISTINCT emoji), COALESCE(MAX(emoji = ?), 0), COALESCE(SUM(user = ?), 0), "
            "COALESCE(MAX(emoji = ? AND user = ?), 0) FROM reactions WHERE room = ? AND seq = ?",
            (m.body, m.sender, m.body, m.sender, m.room, m.target),
        ).fetchone()
        tally = room_events.Tally(counts[0], bool(counts[1]), counts[2], bool(counts[3]))
    write = planner.plan_change(m, step, target, limits, admin, tally)
    if isinstance(write, Outcome):
        return write
    reactors: list[tuple[int, str]] = []
    released: list[str] = []
    if write.edit:
        conn.execute(
            "UPDATE messages SET body = ?, edited = ? WHERE room = ? AND seq = ?", (m.body, step.ts, m.room, m.target)
        )
    elif write.delete:
        released = _release_attachments(conn, m.room, m.target)
        conn.execute(
            "UPDATE messages SET body = '', attachments = NULL, edited = NULL, deleted = 1 WHERE room = ? AND seq = ?",
            (m.room, m.target),
        )
        conn.execute(
            "UPDATE messages SET body = '' WHERE room = ? AND target = ? AND kind = 'edit'", (m.room, m.target)
        )
        conn.execute("DELETE FROM reactions WHERE room = ? AND seq = ?", (m.room, m.target))
    elif write.react is not None:
        if write.react:
            conn.execute(
                "INSERT OR IGNORE INTO reactions (room, seq, emoji, user, ts, event) VALUES (?, ?, ?, ?, ?, ?)",
                (m.room, m.target, m.body, m.sender, step.ts, step.seq),
            )
        else:
            conn.execute(
                "DELETE FROM reactions WHERE room = ? AND seq = ? AND emoji = ? AND user = ?",
                (m.room, m.target, m.body, m.sender),
            )
        reactors = [
            (r[0], r[1])
            for r in conn.execute(
                "SELECT r.user, u.name FROM reactions r JOIN users u ON u.id = r.user "
                "WHERE r.room = ? AND r.seq = ? AND r.emoji = ? ORDER BY r.event",
                (m.room, m.target, m.body),
            )
        ]
    elif write.topic is not None:
        conn.execute("UPDATE rooms SET topic = ? WHERE name = ?", (write.topic, m.room))
    conn.execute(f"INSERT INTO messages ({planner.EVENT_COLS}) VALUES ({_marks(8)})", write.row)
    return plan.changed(m, step, reactors, released)


def _release_attachments(conn: sqlite3.Connection, room: str, seq: int) -> list[str]:
    """Delete the upload records message ``seq`` attaches that no other live message of the room does; returns
    their ids (``Outcome.released``)."""
    row = conn.execute("SELECT attachments FROM messages WHERE room = ? AND seq = ?", (room, seq)).fetchone()
    released = []
    for upload_id in room_events.attachment_ids(row[0] if row else None):
        shown = conn.execute(
            f"SELECT 1 FROM messages INDEXED BY {ATTACHED_INDEX} WHERE room = ? AND attachments IS NOT NULL "
            "AND seq != ? AND deleted = 0 AND instr(attachments, ?) > 0 LIMIT 1",
            (room, seq, room_events.attachment_needle(upload_id)),
        ).fetchone()
        if shown is None and conn.execute("DELETE FROM uploads WHERE id = ? AND room = ?", (upload_id, room)).rowcount:
            released.append(upload_id)
    return released


def _mention(conn: sqlite3.Connection, m: NewMessage, seq: int, ts: int) -> list[int]:
    """Record a mention for each member of the room the message names (not its sender); returns their ids."""
    names = mentioned(m.body)
    if not names:
        return []
    users = [
        r[0]
        for r in conn.execute(
            f"SELECT mb.user FROM members mb JOIN users u ON u.id = mb.user "
            f"WHERE mb.room = ? AND lower(u.name) IN ({_marks(len(names))}) AND mb.user != ?",
            (m.room, *names, m.sender),
        )
    ]
    conn.executemany(
        "INSERT OR IGNORE INTO mentions (user, room, seq, ts) VALUES (?, ?, ?, ?)",
        [(u, m.room, seq, ts) for u in users],
    )
    return users


# A match's weight from its own row alone: BM25's term-frequency part with a fixed average length (in characters)
# and no inverse document frequency. bm25() takes both from the whole index, private rooms included, so the order
# of two public results moved when someone wrote in a private room (issue 20): the ranking leaked private text.
_K1, _B, _AVG_CHARS = 1.2, 0.75, 80.0
# How often the words occur in a row: highlight() adds one mark character before each match.
_MATCHES = "(length(highlight(message_search, 0, char(1), '')) - length(message_search.body))"
_SEARCH_FROM = (
    "FROM message_search JOIN search_ids s ON s.id = message_search.rowid "
    "JOIN messages m ON m.room = s.room AND m.seq = s.seq JOIN rooms r ON r.name = s.room "
    "WHERE message_search MATCH ? AND m.deleted = 0 AND (? IS NULL OR s.room = ?) "
    "AND (r.private = 0 OR EXISTS (SELECT 1 FROM members mb WHERE mb.room = s.room AND mb.user = ?))"
)


def _search_sync(
    conn: sqlite3.Connection, query: str, user: int, room: str | None, limit: int, offset: int
) -> list[Hit]:
    """A page of search results, ranked by each row's own words (see ``_MATCHES``), on a search connection's
    thread. Snippets are made for the page's rows only, in a second statement."""
    ranked = conn.execute(
        f"SELECT id FROM (SELECT s.id, m.ts, {_MATCHES} AS tf, length(message_search.body) AS len {_SEARCH_FROM}) "
        f"ORDER BY tf / (tf + {_K1} * (1 - {_B} + {_B} * len / {_AVG_CHARS})) DESC, ts DESC LIMIT ? OFFSET ?",
        (query, room, room, user, limit, offset),
    ).fetchall()
    ids = [r[0] for r in ranked]
    if not ids:
        return []
    found = {
        r[0]: Hit(r[1], r[2], r[3], r[4], r[5], r[6])
        for r in conn.execute(
            "SELECT s.id, s.room, s.seq, u.name, m.ts, snippet(message_search, 0, ?, ?, '…', 16), m.sender "
            "FROM message_search JOIN search_ids s ON s.id = message_search.rowid "
            "JOIN messages m ON m.room = s.room AND m.seq = s.seq JOIN users u ON u.id = m.sender "
            f"WHERE message_search MATCH ? AND message_search.rowid IN ({_marks(len(ids))})",
            (MARK_START, MARK_END, query, *ids),
        )
    }
    return [found[i] for i in ids if i in found]


class StoreLocked(StoreRefused):
    """Another chatd server already writes this SQLite file."""


class SQLiteStore(Store):
    networked = False

    @classmethod
    def from_config(cls, cfg: Config, server: bool = True) -> Self:
        return cls(cfg.store.path, cfg.store.synchronous, exclusive=server, readers=cfg.store.pool_size)

    @classmethod
    async def schema_state(cls, cfg: Config) -> tuple[list[str], list[str]]:
        known = [name for name, _ in MIGRATIONS]
        if not Path(cfg.store.path).exists():
            return [], known
        conn = sqlite3.connect(f"file:{cfg.store.path}?mode=ro", uri=True)
        try:
            return applied(sqlite_utils.Database(conn)), known
        finally:
            conn.close()

    def __init__(self, path: str | Path, synchronous: str = "NORMAL", exclusive: bool = True, readers: int = 4) -> None:
        self.path = str(path)
        self.synchronous = synchronous
        # One server per file: it holds an exclusive lock on ``<path>.lock`` for its lifetime. Tools that only
        # touch users (chatd users add) skip it.
        self.exclusive = exclusive
        self._lock_fd: int | None = None
        self._writer: ConnectionThread | None = None
        self.readers = readers
        self._readers: ReadPool | None = None
        self._searchers: ReadPool | None = None
        self._write_lock = asyncio.Lock()
        # Messages appended since the search index last caught up; unknown (so assumed some) until the first
        # catch-up after opening, since an earlier run may have left some unindexed.
        self._unindexed = 1
        self._indexing: asyncio.Task[None] | None = None

    # --- lifecycle ----------------------------------------------------------------------------------------------

    async def open(self) -> None:
        """Create (private), lock and migrate the file; a path that cannot be used raises StoreRefused naming it."""
        try:
            await self._open()
        except OSError as e:
            await self.close()
            raise StoreRefused(path_problem(e, e.filename or self.path, "the SQLite store")) from e
        except sqlite3.OperationalError as e:
            await self.close()
            if not any(words in str(e) for words in ("unable to open", "readonly", "disk I/O")):
                raise
            raise StoreRefused(
                f"the SQLite store at {self.path}: {e}: the user chatd runs as must be able to write the file and "
                "its directory (the -wal and -shm files go there)"
            ) from e

    async def _open(self) -> None:
        if self.path != ":memory:":
            # Private by default: the database holds password hashes and every message. SQLite gives the -wal and
            # -shm files the database file's mode, so creating the file 0600 first covers them too.
            Path(self.path).parent.mkdir(parents=True, exist_ok=True, mode=0o700)
            os.close(os.open(self.path, os.O_RDWR | os.O_CREAT, 0o600))
            if self.exclusive:
                self._lock()
        db = sqlite_utils.Database(self.path)
        try:
            db.execute("PRAGMA journal_mode=WAL")
            migrate(db)
        finally:
            db.close()
        self._writer = await self._connect()
        self._readers = await ReadPool.open(self.readers, self._connect)
        self._searchers = await ReadPool.open(self.search_limits[1], self._connect)

    def _lock(self) -> None:
        fd = os.open(f"{self.path}.lock", os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            raise StoreLocked(
                f"another chatd server is using {self.path} (it holds {self.path}.lock); "
                "one SQLite store has one server"
            ) from None
        self._lock_fd = fd

    async def _connect(self) -> ConnectionThread:
        conn = await ConnectionThread.open(self.path)
        await conn.execute("PRAGMA journal_mode=WAL")
        await conn.execute(f"PRAGMA synchronous={self.synchronous}")
        await conn.execute("PRAGMA busy_timeout=5000")
        await conn.execute("PRAGMA foreign_keys=ON")
        return conn

    async def close(self) -> None:
        if self._indexing is not None:
            self._indexing.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._indexing
        async with self._write_lock:
            for pool in (self._readers, self._searchers):
                if pool is not None:
                    await pool.close()
            if self._writer is not None:
                await self._writer.close()
            self._readers = self._searchers = self._writer = None
        if self._lock_fd is not None:
            os.close(self._lock_fd)  # closing the descriptor releases the lock
            self._lock_fd = None

    async def ping(self) -> bool:
        if self._readers is None:
            return False
        try:
            await self._readers.fetchall("SELECT 1")
            return True
        except sqlite3.Error:
            return False

    def describe(self) -> str:
        return f"sqlite {os.path.abspath(self.path) if self.path != ':memory:' else self.path}"

    async def exists(self) -> bool:
        return self.path == ":memory:" or Path(self.path).exists()

    async def deployment_key(self) -> bytes | None:
        await self._write(
            "INSERT OR IGNORE INTO deployment (name, value) VALUES ('ticket_key', ?)", (secrets.token_bytes(32),)
        )
        row = await self._one("SELECT value FROM deployment WHERE name = 'ticket_key'")
        return bytes(row[0]) if row else None

    def free_bytes(self) -> int | None:
        if self.path == ":memory:":
            return None
        st = os.statvfs(Path(self.path).parent)
        return st.f_bavail * st.f_frsize

    @property
    def _w(self) -> ConnectionThread:
        assert self._writer is not None, "store is not open"
        return self._writer

    @property
    def _r(self) -> ReadPool:
        assert self._readers is not None, "store is not open"
        return self._readers

    async def _write(self, sql: str, params: Sequence[object] = ()) -> int:
        """One statement in its own transaction; returns the rows it changed."""
        async with self._write_lock:
            cur = await self._w.execute(sql, params)
            return cur.rowcount

    async def _one(self, sql: str, params: Sequence[object] = ()) -> tuple[Any, ...] | None:
        rows = await self._r.fetchall(sql, params)
        return rows[0] if rows else None

    # --- users and tokens ---------------------------------------------------------------------------------------

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
        created = now_ms()
        async with self._write_lock, async_transaction(self._w) as w:
            # One writer: the checks and the insert below are one atomic step for every process using the file
            # (chatd users add included), so two racing creations cannot both pass either rule.
            if invite is not None and not await w.fetchall(
                "SELECT 1 FROM invites WHERE hash = ? AND used_by IS NULL AND expires > ?", (invite, now)
            ):
                raise ChatError(Err.FORBIDDEN, INVITE_REFUSED)
            cur = await w.execute(
                "INSERT INTO users (name, password_hash, admin, bot, created) "
                "SELECT ?, ?, ? OR (? AND NOT EXISTS (SELECT 1 FROM users WHERE admin AND NOT deleted)), ?, ? "
                f"WHERE NOT EXISTS (SELECT 1 FROM users WHERE {_LIVE_BY_NAME})",
                (name, password_hash, int(admin), int(admin_if_none), int(bot), created, name),
            )
            if cur.rowcount == 0:
                raise ChatError(Err.CONFLICT, f"user {name!r} already exists")
            uid = cur.lastrowid
            rows = await w.fetchall("SELECT admin FROM users WHERE id = ?", (uid,))
            if invite is not None:
                await w.execute("UPDATE invites SET used_by = ? WHERE hash = ?", (uid, invite))
        assert uid is not None
        return UserRecord(uid, name, admin=bool(rows[0][0]), bot=bot, created=created)

    _USER_COLS = "id, name, admin, bot, created, disabled, display_name"

    async def user_for_identity(self, issuer: str, subject: str) -> UserRecord | None:
        cols = ", ".join("u." + c for c in self._USER_COLS.split(", "))
        return self._user(
            await self._one(
                f"SELECT {cols} FROM sso_links l JOIN users u ON u.id = l.user "
                "WHERE l.issuer = ? AND l.subject = ? AND NOT u.deleted",
                (issuer, subject),
            )
        )

    async def create_identity_user(
        self, issuer: str, subject: str, names: Sequence[str], *, admin_if_none: bool = False
    ) -> UserRecord | None:
        created = now_ms()
        async with self._write_lock, async_transaction(self._w) as w:
            linked = await w.fetchall(
                f"SELECT {self._USER_COLS}, deleted FROM users WHERE id = "
                "(SELECT user FROM sso_links WHERE issuer = ? AND subject = ?)",
                (issuer, subject),
            )
            if linked:
                return None if linked[0][-1] else self._user(linked[0])  # deleted: the last column
            for name in names:
                cur = await w.execute(
                    "INSERT INTO users (name, password_hash, admin, bot, created) "
                    "SELECT ?, NULL, ? AND NOT EXISTS (SELECT 1 FROM users WHERE admin AND NOT deleted), 0, ? "
                    f"WHERE NOT EXISTS (SELECT 1 FROM users WHERE {_LIVE_BY_NAME})",
                    (name, int(admin_if_none), created, name),
                )
                if cur.rowcount:
                    uid = cur.lastrowid
                    await w.execute(
                        "INSERT INTO sso_links (issuer, subject, user, created) VALUES (?, ?, ?, ?)",
                        (issuer, subject, uid, created),
                    )
                    rows = await w.fetchall(f"SELECT {self._USER_COLS} FROM users WHERE id = ?", (uid,))
                    return self._user(rows[0])
        raise ChatError(Err.CONFLICT, f"every name tried for this sign-in is taken ({', '.join(names)})")

    @staticmethod
    def _user(row: tuple[Any, ...] | None) -> UserRecord | None:
        return UserRecord(row[0], row[1], bool(row[2]), bool(row[3]), row[4], bool(row[5]), row[6]) if row else None

    async def get_user(self, name: str) -> UserRecord | None:
        # An exact spelling wins, for databases made before names were case-insensitive (see migration 002).
        return self._user(
            await self._one(
                f"SELECT {self._USER_COLS} FROM users WHERE {_LIVE_BY_NAME} ORDER BY name = ? DESC LIMIT 1",
                (name, name),
            )
        )

    async def user_by_id(self, uid: int) -> UserRecord | None:
        return self._user(await self._one(f"SELECT {self._USER_COLS} FROM users WHERE id = ? AND NOT deleted", (uid,)))

    async def user_names(self, ids: Sequence[int]) -> dict[int, str]:
        return await self._pairs("SELECT id, name FROM users WHERE id IN ({})", list(set(ids)))

    async def _rows_in(self, sql: str, keys: list[Any]) -> list[tuple[Any, ...]]:
        """The rows of ``sql`` (its ``{}`` an IN list of ``keys``), 500 keys per query."""
        found: list[tuple[Any, ...]] = []
        for i in range(0, len(keys), 500):
            chunk = keys[i : i + 500]
            found += await self._r.fetchall(sql.format(_marks(len(chunk))), chunk)
        return found

    async def _pairs(self, sql: str, keys: list[Any]) -> dict[Any, Any]:
        """The two columns of ``sql`` (its ``{}`` an IN list of ``keys``) as a dict, 500 keys per query."""
        return {r[0]: r[1] for r in await self._rows_in(sql, keys)}

    async def password_hash(self, uid: int) -> str | None:
        row = await self._one("SELECT password_hash FROM users WHERE id = ? AND NOT deleted", (uid,))
        return row[0] if row else None

    async def rename_user(self, uid: int, name: str) -> str:
        async with self._write_lock, async_transaction(self._w) as w:
            rows = await w.fetchall("SELECT name FROM users WHERE id = ? AND NOT deleted", (uid,))
            if not rows:
                raise ChatError(Err.NOT_FOUND, f"no user with id {uid}")
            if await w.fetchall(f"SELECT 1 FROM users WHERE {_LIVE_BY_NAME} AND id != ?", (name, uid)):
                raise ChatError(Err.CONFLICT, f"user {name!r} already exists")
            await w.execute("UPDATE users SET name = ? WHERE id = ?", (name, uid))
        return str(rows[0][0])

    async def set_display_name(self, uid: int, display_name: str) -> bool:
        return (
            await self._write(
                "UPDATE users SET display_name = ?, display_key = ? WHERE id = ? AND NOT deleted",
                (display_name, display_key(display_name), uid),
            )
            > 0
        )

    async def directory(
        self, prefix: str = "", *, after: str | None = None, limit: int = 50, disabled: bool = False
    ) -> list[UserRecord]:
        where, args, ranges = ["NOT deleted"], list[object](), list[str]()
        if not disabled:
            where.append("NOT disabled")
        for column, start in (("lower(name)", prefix.lower()), ("display_key", display_key(prefix))):
            if not prefix:
                break
            low, high = prefix_range(start)
            upper = f" AND {column} < ?" if high is not None else ""
            ranges.append(f"SELECT id FROM users WHERE NOT deleted AND {column} >= ?{upper}")
            args += [low] if high is None else [low, high]
        # A search reads each of its two ranges from its index (SQLite does not combine indexes for an OR here: it
        # would scan every user) and sorts only what matched, as the unary + asks; the full list is read in index
        # order.
        order = "lower(name), name"
        if ranges:
            where.append(f"id IN ({' UNION ALL '.join(ranges)})")
            order = "+lower(name), name"
        if after is not None:
            where.append("(lower(name) > lower(?) OR (lower(name) = lower(?) AND name > ?))")
            args += [after, after, after]
        rows = await self._r.fetchall(
            f"SELECT {self._USER_COLS} FROM users WHERE {' AND '.join(where)} ORDER BY {order} LIMIT ?",
            (*args, limit),
        )
        return [u for r in rows if (u := self._user(r)) is not None]

    async def users_by_ids(self, ids: Sequence[int]) -> list[UserRecord]:
        rows = await self._rows_in(
            f"SELECT {self._USER_COLS} FROM users WHERE NOT deleted AND id IN ({{}})", list(set(ids))
        )
        return sorted((u for r in rows if (u := self._user(r)) is not None), key=lambda u: u.id)

    async def add_token(self, token_hash: str, user: int, scopes: str | None = None) -> None:
        await self._write(
            "INSERT INTO tokens (hash, user, created, scopes) VALUES (?, ?, ?, ?)", (token_hash, user, now_ms(), scopes)
        )

    async def token_scopes(self, token_hash: str) -> str | None:
        row = await self._one("SELECT scopes FROM tokens WHERE hash = ?", (token_hash,))
        return str(row[0]) if row and row[0] is not None else None

    async def user_for_token(self, token_hash: str, issued_after: int = 0) -> UserRecord | None:
        return self._user(
            await self._one(
                f"SELECT {', '.join('u.' + c for c in self._USER_COLS.split(', '))} FROM tokens t "
                "JOIN users u ON u.id = t.user WHERE t.hash = ? AND t.created > ? AND NOT u.disabled AND NOT u.deleted",
                (token_hash, issued_after),
            )
        )

    async def token_created(self, token_hash: str) -> int | None:
        row = await self._one("SELECT created FROM tokens WHERE hash = ?", (token_hash,))
        return int(row[0]) if row else None

    async def revoke_token(self, token_hash: str) -> bool:
        return await self._write("DELETE FROM tokens WHERE hash = ?", (token_hash,)) > 0

    async def revoke_tokens(self, uid: int, *, keep: str | None = None) -> list[str]:
        async with self._write_lock, async_transaction(self._w) as w:
            rows = await w.fetchall("SELECT hash FROM tokens WHERE user = ? AND hash IS NOT ?", (uid, keep))
            await w.execute("DELETE FROM tokens WHERE user = ? AND hash IS NOT ?", (uid, keep))
        return [r[0] for r in rows]

    # --- rooms and members --------------------------------------------------------------------------------------

    async def create_room(self, name: str, private: bool, created_by: int) -> RoomRecord:
        created = now_ms()
        epoch = new_epoch()
        async with self._write_lock:
            try:
                async with async_transaction(self._w) as w:
                    await w.execute(
                        "INSERT INTO rooms (name, private, created_by, created, last_seq, epoch) "
                        "VALUES (?, ?, ?, ?, 0, ?)",
                        (name, int(private), created_by, created, epoch),
                    )
                    await w.execute(
                        "INSERT INTO members (room, user, joined) VALUES (?, ?, ?)", (name, created_by, created)
                    )
                    rows = await w.fetchall(f"SELECT {_ROOM_COLS} FROM {_ROOM_FROM} WHERE r.name = ?", (name,))
            except sqlite3.IntegrityError:
                raise ChatError(Err.CONFLICT, f"room {name!r} already exists") from None
        return _room(rows[0])

    async def get_room(self, name: str) -> RoomRecord | None:
        row = await self._one(f"SELECT {_ROOM_COLS} FROM {_ROOM_FROM} WHERE r.name = ?", (name,))
        return _room(row) if row else None

    async def list_rooms(
        self, user: int, *, after: str | None = None, limit: int | None = None
    ) -> list[tuple[RoomRecord, bool]]:
        rows = await self._r.fetchall(
            f"SELECT {_ROOM_COLS}, m.user IS NOT NULL "
            f"FROM {_ROOM_FROM} LEFT JOIN members m ON m.room = r.name AND m.user = ? "
            "WHERE (r.private = 0 OR m.user IS NOT NULL) AND r.name > ? ORDER BY r.name LIMIT ?",
            (user, after or "", -1 if limit is None else limit),
        )
        return [(_room(row), bool(row[9])) for row in rows]

    async def add_member(self, room: str, user: int) -> bool:
        async with self._write_lock:
            try:
                cur = await self._w.execute(
                    "INSERT OR IGNORE INTO members (room, user, joined) SELECT ?, id, ? FROM users "
                    "WHERE id = ? AND NOT deleted",
                    (room, now_ms(), user),
                )
            except sqlite3.IntegrityError:
                raise ChatError(Err.NOT_FOUND, f"no room {room!r}") from None
            if cur.rowcount > 0:
                return True
            if not await self._w.fetchall("SELECT 1 FROM users WHERE id = ? AND NOT deleted", (user,)):
                raise ChatError(Err.NOT_FOUND, f"no user with id {user}")
            return False

    async def remove_member(self, room: str, user: int) -> bool:
        return await self._write("DELETE FROM members WHERE room = ? AND user = ?", (room, user)) > 0

    async def is_member(self, room: str, user: int) -> bool:
        return await self._one("SELECT 1 FROM members WHERE room = ? AND user = ?", (room, user)) is not None

    async def members(self, room: str) -> list[UserRef]:
        rows = await self._r.fetchall(
            "SELECT u.id, u.name, u.bot FROM members m JOIN users u ON u.id = m.user WHERE m.room = ? "
            "ORDER BY u.name, u.id",
            (room,),
        )
        return [UserRef(r[0], r[1], bool(r[2])) for r in rows]

    # --- messages -----------------------------------------------------------------------------------------------

    async def append(self, batch: Sequence[NewMessage]) -> list[Outcome]:
        if not batch:
            return []
        async with self._write_lock:
            # The whole transaction is one call on the writer's thread: one hand-off per batch instead of one per
            # statement (each hand-off is a queue put, a thread wake-up and a future back on the loop).
            outcomes: list[Outcome] = await self._w.run(_append_sync, batch, self.reaction_limits)
        self._unindexed += len(batch)
        if self._unindexed >= INDEX_AFTER and (self._indexing is None or self._indexing.done()):
            self._indexing = asyncio.create_task(self._index_pending(), name="chatd-search-index")
        return outcomes

    async def _index_pending(self) -> None:
        """Bring the search index up to everything committed before this call, a chunk per transaction so appends
        wait at most one chunk.

        It stops at the first chunk that found less than a full chunk pending rather than at an empty one: under
        steady sends there is always a little more, and chasing it took one transaction per few messages (at
        7,000 DM msgs/s, 2,782 index transactions for 161,000 messages and 24 µs of CPU per message)."""
        self._unindexed = 0
        while True:
            async with self._write_lock:
                if self._writer is None:
                    return
                exhausted = await self._w.run(_index_sync, INDEX_CHUNK)
            if exhausted:
                return

    async def _entries(self, sql: str, params: Sequence[object]) -> list[Entry]:
        """Entries (``ENTRY_COLS`` rows) with their reactions, read in one trip to the reader's thread."""

        def read(conn: sqlite3.Connection) -> list[Entry]:
            entries = [room_events.entry(r) for r in conn.execute(sql, params)]
            _fill_sync(conn, entries)
            return entries

        entries: list[Entry] = await self._r.run(read)
        return entries

    async def _messages(self, sql: str, params: Sequence[object]) -> list[Message]:
        entries = await self._entries(sql, params)
        assert all(type(e) is Message for e in entries), "the query selects messages only"
        return entries  # type: ignore[return-value]

    async def history(
        self, room: str, *, after: int | None = None, before: int | None = None, limit: int = 100
    ) -> list[Message]:
        # Change events are left out: their effect is already in the messages they changed.
        where = "m.room = ? AND m.kind IS NULL"
        params: list[object] = [room]
        if before is not None:
            where += " AND m.seq < ?"
            params.append(before)
        if after is not None:
            where += " AND m.seq > ?"
            params.append(after)
            return await self._messages(f"{_ENTRIES} WHERE {where} ORDER BY m.seq LIMIT ?", (*params, limit))
        newest = await self._messages(f"{_ENTRIES} WHERE {where} ORDER BY m.seq DESC LIMIT ?", (*params, limit))
        return newest[::-1]

    async def position(self, room: str) -> StreamPosition | None:
        row = await self._one("SELECT epoch, last_seq FROM rooms WHERE name = ?", (room,))
        return StreamPosition(row[0], row[1]) if row else None

    async def last_seqs(self, rooms: Sequence[str]) -> dict[str, int]:
        return await self._pairs("SELECT name, last_seq FROM rooms WHERE name IN ({})", list(rooms))

    async def positions(self, rooms: Sequence[str]) -> dict[str, StreamPosition]:
        rows = await self._rows_in("SELECT name, epoch, last_seq FROM rooms WHERE name IN ({})", list(rooms))
        return {r[0]: StreamPosition(r[1], r[2]) for r in rows}

    async def renew_epochs(self) -> int:
        return await self._write(f"UPDATE rooms SET epoch = {NEW_EPOCH_SQL}")

    def transient(self, exc: BaseException) -> bool:
        # Disk full, I/O errors and a busy database pass; a constraint or a value SQLite refuses does not.
        return isinstance(exc, (sqlite3.OperationalError, OSError))

    # --- removal ------------------------------------------------------------------------------------------------

    async def delete_room(self, name: str) -> list[str] | None:
        async with self._write_lock, async_transaction(self._w) as w:
            if not await w.fetchall("SELECT 1 FROM rooms WHERE name = ?", (name,)):
                return None
            ids = [r[0] for r in await w.fetchall("SELECT id FROM uploads WHERE room = ?", (name,))]
            # Members first: they refer to the room (foreign keys are on).
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
                await w.execute(f"DELETE FROM {sql} = ?", (name,))
        return ids

    async def delete_user(self, uid: int) -> list[str] | None:
        async with self._write_lock, async_transaction(self._w) as w:
            if not await w.fetchall("SELECT 1 FROM users WHERE id = ? AND NOT deleted", (uid,)):
                return None
            ids = [r[0] for r in await w.fetchall("SELECT id FROM uploads WHERE owner = ?", (uid,))]
            for sql in (
                "tokens WHERE user",
                "members WHERE user",
                "uploads WHERE owner",
                "reads WHERE user",
                "mentions WHERE user",
                "hooks WHERE bot_id",
            ):
                await w.execute(f"DELETE FROM {sql} = ?", (uid,))
            # The tombstone: the id and the name stay for what they wrote; nothing can sign in as it.
            await w.execute("UPDATE users SET deleted = 1, password_hash = NULL WHERE id = ?", (uid,))
        return ids

    # --- uploads ------------------------------------------------------------------------------------------------

    async def add_upload(self, record: UploadRecord, quota: int = 0) -> bool:
        return (
            await self._write(
                "INSERT INTO uploads (id, owner, room, content_type, size, name, created) "
                "SELECT ?, ?, ?, ?, ?, ?, ? "
                "WHERE ? = 0 OR (SELECT COALESCE(SUM(size), 0) FROM uploads WHERE owner = ?) + ? <= ?",
                (
                    record.id,
                    record.owner,
                    record.room,
                    record.content_type,
                    record.size,
                    record.name,
                    record.created,
                    quota,
                    record.owner,
                    record.size,
                    quota,
                ),
            )
            > 0
        )

    async def upload_usage(self, owner: int) -> int:
        row = await self._one("SELECT COALESCE(SUM(size), 0) FROM uploads WHERE owner = ?", (owner,))
        return int(row[0]) if row else 0

    _UPLOAD_COLS = "id, owner, content_type, size, name, created, room"

    async def get_upload(self, upload_id: str) -> UploadRecord | None:
        row = await self._one(f"SELECT {self._UPLOAD_COLS} FROM uploads WHERE id = ?", (upload_id,))
        return UploadRecord(*row) if row else None

    async def delete_upload(self, upload_id: str, *, unposted_only: bool = False) -> bool:
        sql = "DELETE FROM uploads WHERE id = ?" + (" AND room IS NULL" if unposted_only else "")
        return await self._write(sql, (upload_id,)) > 0

    async def uploads_before(self, created_before: int, limit: int, *, unposted_only: bool) -> list[UploadRecord]:
        rows = await self._r.fetchall(
            f"SELECT {self._UPLOAD_COLS} FROM uploads WHERE (room IS NULL OR NOT ?) AND created < ? "
            "ORDER BY created LIMIT ?",
            (unposted_only, created_before, limit),
        )
        return [UploadRecord(*r) for r in rows]

    async def attach_uploads(self, ids: Sequence[str], owner: int, room: str) -> list[str]:
        bound = []
        async with self._write_lock:
            for upload_id in ids:
                cur = await self._w.execute(
                    "UPDATE uploads SET room = ? WHERE id = ? AND owner = ? AND (room IS NULL OR room = ?)",
                    (room, upload_id, owner, room),
                )
                if cur.rowcount:
                    bound.append(upload_id)
        return bound

    # --- room streams -------------------------------------------------------------------------------------------

    async def stream(self, room: str, *, after: int, limit: int = 100) -> list[Entry]:
        return await self._entries(
            f"{_ENTRIES} WHERE m.room = ? AND m.seq > ? ORDER BY m.seq LIMIT ?", (room, after, limit)
        )

    # --- read state ---------------------------------------------------------------------------------------------

    async def set_read(self, user: int, room: str, seq: int) -> int:
        async with self._write_lock:
            await self._w.execute(
                "INSERT INTO reads (user, room, seq, ts) "
                "SELECT ?, name, min(?, last_seq), ? FROM rooms WHERE name = ? "
                "ON CONFLICT (user, room) DO UPDATE SET seq = max(seq, excluded.seq), ts = excluded.ts",
                (user, seq, now_ms(), room),
            )
            rows = await self._w.fetchall("SELECT seq FROM reads WHERE user = ? AND room = ?", (user, room))
        return rows[0][0] if rows else 0

    async def read_positions(self, user: int, room: str | None = None) -> list[ReadPosition]:
        # Counting stops at UNREAD_MAX, so a long-unread room costs a bounded scan.
        rows = await self._r.fetchall(
            "SELECT m.room, COALESCE(r.seq, 0) AS pos, rooms.last_seq, "
            "(SELECT COUNT(*) FROM (SELECT 1 FROM messages x WHERE x.room = m.room AND x.seq > COALESCE(r.seq, 0) "
            "AND x.kind IS NULL AND x.deleted = 0 AND x.sender != m.user LIMIT ?)) "
            "FROM members m JOIN rooms ON rooms.name = m.room "
            "LEFT JOIN reads r ON r.user = m.user AND r.room = m.room "
            "WHERE m.user = ? AND (? IS NULL OR m.room = ?) ORDER BY m.room",
            (UNREAD_MAX, user, room, room),
        )
        return [ReadPosition(r[0], r[1], r[2], r[3]) for r in rows]

    # --- mentions -----------------------------------------------------------------------------------------------

    async def mentions(self, user: int, *, before: int | None = None, limit: int = 50) -> list[Message]:
        return await self._messages(
            f"SELECT {room_events.ENTRY_COLS} FROM mentions mn "
            "JOIN members mb ON mb.room = mn.room AND mb.user = mn.user "
            "JOIN messages m ON m.room = mn.room AND m.seq = mn.seq JOIN users u ON u.id = m.sender "
            "WHERE mn.user = ? AND mn.ts < ? AND m.deleted = 0 ORDER BY mn.ts DESC, mn.room, mn.seq DESC LIMIT ?",
            (user, before if before is not None else 2**62, limit),
        )

    # --- direct messages ----------------------------------------------------------------------------------------

    async def open_dm(self, name: str, a: int, b: int) -> tuple[RoomRecord, bool]:
        created = now_ms()
        async with self._write_lock, async_transaction(self._w) as w:
            cur = await w.execute(
                "INSERT OR IGNORE INTO rooms (name, private, created_by, created, last_seq, dm, epoch) "
                "VALUES (?, 1, ?, ?, 0, 1, ?)",
                (name, a, created, new_epoch()),
            )
            made = cur.rowcount > 0
            rows = await w.fetchall(f"SELECT {_ROOM_COLS} FROM {_ROOM_FROM} WHERE r.name = ?", (name,))
            record = _room(rows[0])
            if not record.dm:
                raise ChatError(Err.CONFLICT, f"{name!r} is a room, not a direct conversation")
            await w.executemany(
                "INSERT OR IGNORE INTO members (room, user, joined) VALUES (?, ?, ?)",
                [(name, a, created), (name, b, created)],
            )
        return record, made

    # --- search -------------------------------------------------------------------------------------------------

    async def search(
        self, user: int, words: list[str], *, room: str | None = None, limit: int = 20, offset: int = 0
    ) -> list[Hit]:
        if not words:
            return []
        if self._unindexed:
            await self._index_pending()  # a search sees every stored message
        assert self._searchers is not None, "store is not open"
        query = fts5_query(words)
        timeout, _ = self.search_limits
        try:
            return await self._searchers.run(
                lambda conn: _search_sync(conn, query, user, room, limit, offset), timeout=timeout, wait=timeout or None
            )
        except PoolBusy:
            raise searches_busy() from None
        except ReadTimeout:
            raise search_too_slow(timeout) from None

    # --- operations: the admin CLI, export/import ----------------------------------------------------------------

    async def user_info(self, name: str | None = None) -> list[UserInfo]:
        sql = (
            "SELECT u.id, u.name, u.admin, u.bot, u.created, u.disabled, u.password_hash IS NOT NULL, "
            "(SELECT COUNT(*) FROM tokens t WHERE t.user = u.id) FROM users u WHERE NOT u.deleted "
        )
        if name is None:
            rows = await self._r.fetchall(sql + "ORDER BY u.name, u.id")
        else:
            rows = await self._r.fetchall(
                sql + "AND u.name = ? COLLATE NOCASE ORDER BY u.name = ? DESC LIMIT 1", (name, name)
            )
        return [UserInfo(r[0], r[1], bool(r[2]), bool(r[3]), r[4], bool(r[5]), bool(r[6]), r[7]) for r in rows]

    async def set_user(self, uid: int, *, disabled: bool | None = None, admin: bool | None = None) -> bool:
        flags = {k: int(v) for k, v in (("disabled", disabled), ("admin", admin)) if v is not None}
        if not flags:
            return await self.user_by_id(uid) is not None
        sets = ", ".join(f"{k} = ?" for k in flags)
        return await self._write(f"UPDATE users SET {sets} WHERE id = ? AND NOT deleted", (*flags.values(), uid)) > 0

    async def set_password_hash(self, uid: int, password_hash: str | None) -> bool:
        return (
            await self._write("UPDATE users SET password_hash = ? WHERE id = ? AND NOT deleted", (password_hash, uid))
            > 0
        )

    async def tokens(self, *, user: int | None = None, id_prefix: str | None = None) -> list[TokenRecord]:
        param: object
        if user is not None:
            where, param = "t.user = ?", user
        else:
            prefix = id_prefix or ""
            if not prefix or any(c not in "0123456789abcdef" for c in prefix):
                return []  # token hashes are lowercase hex; anything else (a LIKE wildcard) matches none
            where, param = "t.hash LIKE ?", prefix + "%"
        rows = await self._r.fetchall(
            "SELECT t.hash, t.user, t.created, t.last_used, u.name, t.scopes FROM tokens t "
            f"JOIN users u ON u.id = t.user WHERE {where} ORDER BY t.created, t.hash",
            (param,),
        )
        return [TokenRecord(r[0][:TOKEN_ID_LEN], r[1], r[2], r[3], r[0], r[4], r[5]) for r in rows]

    async def touch_token(self, token_hash: str, now: int, every: int) -> None:
        await self._write(
            "UPDATE tokens SET last_used = ? WHERE hash = ? AND (last_used IS NULL OR last_used < ?)",
            (now, token_hash, now - every),
        )

    async def admin_rooms(self) -> list[AdminRoom]:
        rows = await self._r.fetchall(
            f"SELECT r.name, r.private, cu.name, r.created, r.last_seq, r.archived, "
            f"(SELECT COUNT(*) FROM members m WHERE m.room = r.name) FROM {_ROOM_FROM} ORDER BY r.name"
        )
        return [AdminRoom(r[0], bool(r[1]), r[2] or "", r[3], r[4], bool(r[5]), r[6]) for r in rows]

    async def set_room_archived(self, name: str, archived: bool) -> bool:
        return await self._write("UPDATE rooms SET archived = ? WHERE name = ?", (int(archived), name)) > 0

    async def is_empty(self) -> bool:
        row = await self._one("SELECT (SELECT COUNT(*) FROM users) + (SELECT COUNT(*) FROM rooms)")
        return not row or row[0] == 0

    _EXPORT_SQL = {
        "user": "SELECT id, name, password_hash, admin, bot, created, disabled, deleted, display_name FROM users "
        "ORDER BY id",
        "token": "SELECT hash, user, created, last_used, scopes FROM tokens ORDER BY hash",
        "room": "SELECT name, private, created_by, created, last_seq, archived, purged_through, topic, dm FROM rooms "
        "ORDER BY name",
        "member": "SELECT room, user, joined FROM members ORDER BY room, user",
        "message": f"SELECT {room_events.EXPORT_COLS} FROM messages ORDER BY room, seq",
        "reaction": "SELECT room, seq, emoji, user, ts, event FROM reactions ORDER BY room, seq, emoji, user",
        "upload": "SELECT id, owner, room, content_type, size, name, created FROM uploads ORDER BY id",
        "read": "SELECT user, room, seq, ts FROM reads ORDER BY user, room",
        "mention": "SELECT user, room, seq, ts FROM mentions ORDER BY user, room, seq",
        "invite": "SELECT hash, created_by, created, expires, used_by FROM invites ORDER BY hash",
        "sso_link": "SELECT issuer, subject, user, created FROM sso_links ORDER BY issuer, subject",
        "hook": "SELECT id, room, bot_id, secret_hash, created_by, created FROM hooks ORDER BY id",
    }
    _BOOLS = {"admin", "bot", "disabled", "private", "archived", "dm", "deleted"}

    @contextlib.asynccontextmanager
    async def snapshot(self) -> AsyncIterator[None]:
        # WAL: a read transaction sees one commit's state for its whole length; this task's reads use its connection.
        async with self._r.pinned() as conn, async_transaction(conn, "DEFERRED"):
            yield

    async def export_rows(self, kind: str) -> AsyncIterator[dict[str, Any]]:
        async with self._r.connection() as conn:
            async for row in conn.dicts(self._EXPORT_SQL[kind]):
                yield export_row(kind, row, self._BOOLS)

    async def import_rows(self, kind: str, rows: Sequence[dict[str, Any]]) -> None:
        if not rows:
            return
        cols = check_import(kind, rows)
        values = [tuple(import_value(c, row[c], sqlite=True) for c in cols) for row in rows]
        async with self._write_lock, async_transaction(self._w) as w:
            names = ", ".join("kind" if c == "change" else c for c in cols)
            await w.executemany(f"INSERT INTO {kind}s ({names}) VALUES ({_marks(len(cols))})", values)
            if kind == "user":
                await w.executemany("UPDATE users SET display_key = ? WHERE id = ?", display_keys(rows))
            if kind == "room":
                # An import is a new incarnation of each room's history (the export may be older than what clients
                # saw): new epochs, so clients reload instead of resuming into it.
                await w.execute(f"UPDATE rooms SET epoch = {NEW_EPOCH_SQL} WHERE epoch = ''")

    async def add_invite(self, code_hash: str, created_by: int | None, expires: int) -> None:
        await self._write(
            "INSERT INTO invites (hash, created_by, created, expires) VALUES (?, ?, ?, ?)",
            (code_hash, created_by, now_ms(), expires),
        )

    async def invites(self) -> list[InviteRecord]:
        rows = await self._r.fetchall(
            "SELECT i.hash, c.name, i.created, i.expires, u.name FROM invites i "
            "LEFT JOIN users c ON c.id = i.created_by LEFT JOIN users u ON u.id = i.used_by ORDER BY i.created, i.hash"
        )
        return [InviteRecord(r[0][:TOKEN_ID_LEN], r[1], r[2], r[3], r[4], r[0]) for r in rows]

    # --- incoming webhooks --------------------------------------------------------------------------------------

    _HOOKS = (
        "SELECT h.id, h.room, h.bot_id, h.secret_hash, h.created_by, h.created, u.name "
        "FROM hooks h JOIN users u ON u.id = h.bot_id"
    )

    async def add_hook(self, hook: HookRecord) -> None:
        try:
            await self._write(
                "INSERT INTO hooks (id, room, bot_id, secret_hash, created_by, created) VALUES (?, ?, ?, ?, ?, ?)",
                (hook.id, hook.room, hook.bot, hook.secret_hash, hook.created_by, hook.created),
            )
        except sqlite3.IntegrityError:
            raise ChatError(Err.NOT_FOUND, f"no room {hook.room!r} or no bot user {hook.bot}") from None

    async def get_hook(self, hook_id: str) -> HookRecord | None:
        row = await self._one(f"{self._HOOKS} WHERE h.id = ?", (hook_id,))
        return HookRecord(*row) if row else None

    async def hooks(self, room: str | None = None) -> list[HookRecord]:
        if room is None:
            rows = await self._r.fetchall(f"{self._HOOKS} ORDER BY h.created, h.id")
        else:
            rows = await self._r.fetchall(f"{self._HOOKS} WHERE h.room = ? ORDER BY h.created, h.id", (room,))
        return [HookRecord(*r) for r in rows]

    async def delete_hook(self, hook_id: str) -> bool:
        return await self._write("DELETE FROM hooks WHERE id = ?", (hook_id,)) > 0

    async def purge_plan(self, before_ts: int) -> dict[str, int]:
        rows = await self._r.fetchall(
            "SELECT name, through FROM (SELECT name, purged_through, "
            "(SELECT MAX(seq) FROM messages m WHERE m.room = rooms.name AND m.ts < ?) AS through FROM rooms) "
            "WHERE through > purged_through ORDER BY name",
            (before_ts,),
        )
        return {r[0]: r[1] for r in rows}

    async def purge_prefix(self, room: str, through: int, limit: int) -> tuple[int, int]:
        async with self._write_lock, async_transaction(self._w) as w:
            rows = await w.fetchall("SELECT purged_through FROM rooms WHERE name = ?", (room,))
            if not rows or rows[0][0] >= through:
                return 0, rows[0][0] if rows else through
            done = rows[0][0]
            upto = min(through, done + limit)
            cur = await w.execute("DELETE FROM messages WHERE room = ? AND seq > ? AND seq <= ?", (room, done, upto))
            await w.execute("DELETE FROM reactions WHERE room = ? AND seq > ? AND seq <= ?", (room, done, upto))
            await w.execute("UPDATE rooms SET purged_through = ? WHERE name = ?", (upto, room))
            return cur.rowcount, upto

    async def purged_through(self, room: str) -> int:
        row = await self._one("SELECT purged_through FROM rooms WHERE name = ?", (room,))
        return int(row[0]) if row else 0

    # --- outgoing webhooks --------------------------------------------------------------------------------------
    # One server holds the file, so its clock is the only one; leases still work as on PostgreSQL, so the
    # deliverer has one shape.

    async def add_webhook(
        self, room: str, url: str, secret: str, events: Sequence[str], created_by: int | None, per_room_max: int = 0
    ) -> Webhook:
        async with self._write_lock, async_transaction(self._w) as w:
            found = await w.fetchall("SELECT last_seq FROM rooms WHERE name = ?", (room,))
            if not found:
                raise ChatError(Err.NOT_FOUND, f"no room {room!r}")
            count = (await w.fetchall("SELECT count(*) FROM webhooks WHERE room = ?", (room,)))[0][0]
            if per_room_max and count >= per_room_max:
                raise ChatError(Err.CONFLICT, f"{room!r} has {count} webhooks already (webhooks.per_room_max)")
            cur = await w.execute(
                "INSERT INTO webhooks (room, url, secret, events, created_by, created, cursor_seq) "
                "VALUES (?, ?, ?, ?, ?, ?, ?)",
                (room, url, secret, ",".join(events), created_by, now_ms(), found[0][0]),
            )
            hook = cur.lastrowid
        made = await self.get_webhook(int(hook or 0))
        assert made is not None
        return made

    async def webhooks(self, room: str | None = None) -> list[Webhook]:
        where, params = ("WHERE w.room = ?", (room,)) if room is not None else ("", ())
        rows = await self._r.fetchall(f"{WEBHOOKS_SQL} {where} ORDER BY w.id", params)
        return [webhook_of(r) for r in rows]

    async def get_webhook(self, hook: int) -> Webhook | None:
        row = await self._one(f"{WEBHOOKS_SQL} WHERE w.id = ?", (hook,))
        return webhook_of(row) if row else None

    async def delete_webhook(self, hook: int) -> bool:
        return await self._write("DELETE FROM webhooks WHERE id = ?", (hook,)) > 0

    async def enable_webhook(self, hook: int) -> bool:
        return (
            await self._write(
                "UPDATE webhooks SET failing = 0, attempts = 0, next_attempt = 0, last_error = '' WHERE id = ?", (hook,)
            )
            > 0
        )

    async def lease_webhooks(self, owner: str, lease_ms: int, limit: int, busy: Sequence[int] = ()) -> list[Webhook]:
        now = now_ms()
        due = (
            "SELECT w.id FROM webhooks w JOIN rooms r ON r.name = w.room WHERE NOT w.failing "
            "AND w.next_attempt <= ? AND w.cursor_seq < r.last_seq AND (w.lease_until < ? OR w.lease_owner = ?) "
            f"AND w.id NOT IN ({_marks(len(busy))}) ORDER BY w.next_attempt, w.id LIMIT ?"
        )
        params = (now, now, owner, *busy, limit)
        # Every node polls this each webhooks.poll_interval: the reader answers "nothing to do" without the writer.
        if not await self._r.fetchall(due, params):
            return []
        async with self._write_lock, async_transaction(self._w) as w:
            rows = await w.fetchall(due, params)
            ids = [r[0] for r in rows]
            if not ids:
                return []
            await w.execute(
                f"UPDATE webhooks SET lease_owner = ?, lease_until = ? WHERE id IN ({_marks(len(ids))})",
                (owner, now + lease_ms, *ids),
            )
            found = await w.fetchall(
                f"{WEBHOOKS_SQL} WHERE w.id IN ({_marks(len(ids))}) ORDER BY w.next_attempt, w.id",
                ids,
            )
        return [webhook_of(r) for r in found]

    async def webhook_delivered(self, hook: int, owner: str, cursor: int, delivered: int, lease_ms: int) -> bool:
        now = now_ms()
        changed = await self._write(
            "UPDATE webhooks SET cursor_seq = max(cursor_seq, ?1), delivered = delivered + ?2, "
            "attempts = CASE WHEN ?2 > 0 THEN 0 ELSE attempts END, "
            "last_error = CASE WHEN ?2 > 0 THEN '' ELSE last_error END, "
            "last_attempt = CASE WHEN ?2 > 0 THEN ?3 ELSE last_attempt END, lease_until = ?4 "
            "WHERE id = ?5 AND lease_owner = ?6",
            (cursor, delivered, now, now + lease_ms, hook, owner),
        )
        return changed > 0

    async def webhook_failed(self, hook: int, owner: str, error: str, retry_ms: int, max_attempts: int) -> int:
        now = now_ms()
        async with self._write_lock, async_transaction(self._w) as w:
            cur = await w.execute(
                "UPDATE webhooks SET attempts = attempts + 1, last_error = ?, last_attempt = ?, next_attempt = ?, "
                "failing = (attempts + 1 >= ?), lease_owner = '', lease_until = 0 WHERE id = ? AND lease_owner = ?",
                (error, now, now + retry_ms, max_attempts, hook, owner),
            )
            if not cur.rowcount:
                return 0
            rows = await w.fetchall("SELECT attempts FROM webhooks WHERE id = ?", (hook,))
        return int(rows[0][0])

    async def release_webhook(self, hook: int, owner: str) -> None:
        await self._write(
            "UPDATE webhooks SET lease_owner = '', lease_until = 0 WHERE id = ? AND lease_owner = ?", (hook, owner)
        )
