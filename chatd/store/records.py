"""What crosses the store interface (``chatd.store.roles``): the records its methods take and give, the export
format, and the few helpers both stores share (epochs, display-name keys, the webhook row)."""

from __future__ import annotations

import secrets
from collections.abc import Sequence
from typing import Any

import msgspec

from chatd.errors import Err
from chatd.protocol.frames import Entry


class StoreRefused(Exception):
    """The store cannot be opened by this process (another server holds it, it cannot be reached): start-up stops
    with this message."""


class UserRecord(msgspec.Struct, frozen=True):
    id: int  # the user's identity: assigned at creation, never changed, never given to anyone else
    name: str  # the current name (``rename_user`` changes it)
    admin: bool = False
    bot: bool = False
    created: int = 0
    disabled: bool = False  # cannot sign in; its tokens do not authenticate (so ``user_for_token`` never gives one)
    display_name: str = ""  # what the user calls themselves, shown beside ``name`` ("": none); anyone may see it


class UserRef(msgspec.Struct, frozen=True):
    """A user as a list shows them: the id and the current name."""

    id: int
    name: str
    bot: bool = False  # a bot account (``members`` says so; other lists leave it false)


class RoomRecord(msgspec.Struct, frozen=True):
    name: str
    private: bool
    created_by: int  # the creator's user id (0: unknown)
    created: int
    last_seq: int = 0
    topic: str = ""
    dm: bool = False  # a direct-message room: private, exactly two members, opened by ``open_dm``
    creator: str = ""  # the creator's current name
    epoch: str = ""  # this incarnation of the room's stream (see ``MessageStore``)


class StreamPosition(msgspec.Struct, frozen=True):
    """A place in a room's stream: its epoch and a seq in it (the room's last seq, when read from the store)."""

    epoch: str
    seq: int


EPOCH_BYTES = 6  # 12 hex characters: enough that a room never meets its own earlier epoch


def display_key(text: str) -> str:
    """What the directory matches a display name by: case-folded by chatd, not by the database, so SQLite and
    PostgreSQL (whatever its locale) find the same users."""
    return text.casefold()


def prefix_range(prefix: str) -> tuple[str, str | None]:
    """The range of strings that start with ``prefix``, in code point order (SQLite's and PostgreSQL's "C"
    collation): ``low <= s < high``, so an index on the column answers a prefix search; ``high`` is None when the
    last character has no successor."""
    last = ord(prefix[-1])
    return prefix, (prefix[:-1] + chr(last + 1) if last < 0x10FFFF else None)


def display_keys(rows: Sequence[dict[str, Any]]) -> list[tuple[str, int]]:
    """``(display_key, id)`` of the imported user rows that have a display name, for the stores' import."""
    return [(display_key(r["display_name"]), r["id"]) for r in rows if r.get("display_name")]


def new_epoch() -> str:
    """A fresh epoch for a room's stream."""
    return secrets.token_hex(EPOCH_BYTES)


class UserInfo(msgspec.Struct, frozen=True):
    """A user as an operator sees it (``chatd users list``)."""

    id: int
    name: str
    admin: bool
    bot: bool
    created: int
    disabled: bool
    has_password: bool
    tokens: int = 0


class TokenRecord(msgspec.Struct, frozen=True):
    """A token as an operator sees it. ``id`` is the start of its hash: enough to name it, useless to sign in."""

    id: str
    user: int
    created: int
    last_used: int | None
    hash: str
    name: str = ""  # the holder's current name
    scopes: str | None = None  # a bot token's scope as JSON (``chatd.rules.bots.Scope``); None: the user's full rights


class AdminRoom(msgspec.Struct, frozen=True):
    """A room as an operator sees it (``chatd rooms list``), private ones included."""

    name: str
    private: bool
    created_by: str  # the creator's current name
    created: int
    last_seq: int
    archived: bool
    members: int


TOKEN_ID_LEN = 12
PURGE_CHUNK = 1000  # retention: entries deleted per transaction
# What export/import move, in the order an import must insert them (foreign keys point backwards). Every "user",
# "sender", "owner", "created_by" and "used_by" value is a user id (export format 2; format 1 had names).
EXPORT_KINDS = (
    "user",
    "token",
    "room",
    "member",
    "message",
    "reaction",
    "upload",
    "read",
    "mention",
    "invite",
    "sso_link",
    "hook",
)
EXPORT_COLUMNS: dict[str, tuple[str, ...]] = {
    "user": ("id", "name", "password_hash", "admin", "bot", "created", "disabled", "deleted", "display_name"),
    "token": ("hash", "user", "created", "last_used", "scopes"),
    "room": ("name", "private", "created_by", "created", "last_seq", "archived", "purged_through", "topic", "dm"),
    "member": ("room", "user", "joined"),
    # A row with a ``change`` is a room change (chatd.store.room_events), kept so an import replays the same stream.
    "message": (
        "room",
        "seq",
        "sender",
        "client_id",
        "body",
        "ts",
        "attachments",
        "change",  # the row's ``kind`` column, renamed: an export line's "kind" says which table it is
        "target",
        "reply_to",
        "edited",
        "deleted",
        "via",  # the name an incoming webhook posted under (chatd.features.hooks); null for everything else
    ),
    # ``event``: the seq of the reaction event that added it, which orders a message's reactors.
    "reaction": ("room", "seq", "emoji", "user", "ts", "event"),
    "upload": ("id", "owner", "room", "content_type", "size", "name", "created"),
    # Read positions and mentions: import stores messages directly, not through append, which records mentions.
    "read": ("user", "room", "seq", "ts"),
    "mention": ("user", "room", "seq", "ts"),
    "invite": ("hash", "created_by", "created", "expires", "used_by"),
    "sso_link": ("issuer", "subject", "user", "created"),
    "hook": ("id", "room", "bot_id", "secret_hash", "created_by", "created"),
}
# Columns added after export format 2 was defined, with what an export from before them means by them: an unscoped
# token was all tokens could be then, no message came through a hook, nobody had a display name.
LATER_COLUMNS: dict[str, dict[str, Any]] = {
    "token": {"scopes": None},
    "message": {"via": None},
    "user": {"display_name": ""},
}


class InviteRecord(msgspec.Struct, frozen=True):
    """An invite code (only its hash is stored) and who used it, by their current names."""

    id: str
    created_by: str | None  # None: made by an operator's command, not by a user
    created: int
    expires: int
    used_by: str | None
    hash: str


class UploadRecord(msgspec.Struct, frozen=True):
    id: str
    owner: int  # a user id
    content_type: str
    size: int
    name: str
    created: int
    room: str | None = None


class HookRecord(msgspec.Struct, frozen=True):
    """An incoming webhook (``chatd.features.hooks``): it posts into ``room`` as its own bot user ``bot``. Only the
    hash of its secret is stored."""

    id: str
    room: str
    bot: int  # the bot user it posts as
    secret_hash: str
    created_by: int | None  # the room admin's user id; None: made by an operator's command
    created: int
    name: str = ""  # the bot's current name


class ReadPosition(msgspec.Struct, frozen=True):
    """Where a user has read up to in one room they are a member of."""

    room: str
    seq: int  # the last seq the user has read (0: nothing yet)
    last_seq: int  # the room's last seq now
    unread: int  # messages after ``seq`` from others, not deleted; counted up to UNREAD_MAX


UNREAD_MAX = 1000


class NewMessage(msgspec.Struct, frozen=True, array_like=True):
    """What ``append`` needs to store one message."""

    room: str
    sender: int  # the sender's user id
    client_id: str
    body: str
    attachments: list[str] = []
    # A room change (chatd.store.room_events): "edit", "delete", "react", "unreact" or "topic"; "" for a message.
    # ``body`` carries the change's text (new body, emoji, topic) and ``target`` the seq of the message changed.
    kind: str = ""
    target: int = 0
    reply_to: int = 0
    via: str = ""  # posted through an incoming webhook under this name (chatd.features.hooks); stored with the message


class Webhook(msgspec.Struct, frozen=True):
    """An outgoing webhook: a URL subscribed to a room's stream (``chatd.features.outhooks``), with its delivery state.

    ``cursor`` is the last seq of the room handled (delivered, or not of a kind it subscribed to): delivery goes on
    from the stream past it, so the room's stored log is the outbox and nothing is written on the send path."""

    id: int
    room: str
    url: str
    secret: str  # the HMAC key; shown once when made, never listed
    events: list[str]  # the entry types it gets (``chatd.features.outhooks.KINDS``)
    created_by: int | None  # a user id; None: an operator's command
    created: int  # Unix ms
    cursor: int
    failing: bool = False  # stopped after ``webhooks.max_attempts`` failed attempts, until enabled again
    attempts: int = 0  # failed attempts at the event after ``cursor`` since the last success
    next_attempt: int = 0  # Unix ms: not tried again before
    last_error: str = ""
    last_attempt: int = 0  # Unix ms of the last POST, successful or not
    delivered: int = 0  # events delivered so far
    epoch: str = ""  # the room's epoch now (read with the webhook)


# Webhook rows as every store reads them (the room's epoch with each), for ``webhook_of``; add WHERE/ORDER BY.
WEBHOOKS_SQL = (
    "SELECT w.id, w.room, w.url, w.secret, w.events, w.created_by, w.created, w.cursor_seq, w.failing, w.attempts, "
    "w.next_attempt, w.last_error, w.last_attempt, w.delivered, r.epoch FROM webhooks w JOIN rooms r ON r.name = w.room"
)


def webhook_of(row: Sequence[Any]) -> Webhook:
    """A ``WEBHOOKS_SQL`` row as a Webhook."""
    return Webhook(
        id=row[0],
        room=row[1],
        url=row[2],
        secret=row[3],
        events=row[4].split(","),
        created_by=row[5],
        created=row[6],
        cursor=row[7],
        failing=bool(row[8]),
        attempts=row[9],
        next_attempt=row[10],
        last_error=row[11],
        last_attempt=row[12],
        delivered=row[13],
        epoch=row[14],
    )


class Outcome(msgspec.Struct, frozen=True, array_like=True):
    """The result of appending one message (see ``MessageStore.append``)."""

    seq: int = 0
    ts: int = 0
    duplicate: bool = False
    error: str = ""  # an error code from chatd.errors when the message was refused
    message: str = ""
    stored: Entry | None = None  # the entry as first stored, for a duplicate; for a new change, its frame
    mentions: list[int] = []  # ids of the members a new message names with @name (chatd.rules.mentions)
    name: str = ""  # the sender's name at the commit, for the frame of a new message
    bot: bool = False  # whether the sender is a bot, for the frame of a new message
    # Ids of the uploads a new delete released: their records went in its transaction (so they are no longer served
    # nor count against their owner's quota); the caller removes their files after the commit.
    released: list[str] = []


def missing_room(room: str) -> Outcome:
    """The answer to a send or change into a room that does not exist."""
    return Outcome(error=Err.NOT_FOUND.code, message=f"room {room!r} does not exist")


def outsider(room: str, private: bool) -> Outcome:
    """The answer to a send or change by someone not in ``room``: in a private room, the one a missing room gets, so
    it does not tell an outsider the room exists (issue 20)."""
    if private:
        return missing_room(room)
    return Outcome(error=Err.NOT_MEMBER.code, message=f"you are not a member of {room!r}")


def export_row(kind: str, row: dict[str, Any], bools: set[str]) -> dict[str, Any]:
    """One exported row in the form every store writes: booleans as booleans, attachments as a list."""
    out = {k: (bool(v) if k in bools else v) for k, v in row.items()}
    if kind == "message":
        out["attachments"] = msgspec.json.decode(row["attachments"]) if row["attachments"] else []
    return out


def check_import(kind: str, rows: Sequence[dict[str, Any]]) -> tuple[str, ...]:
    """The columns of ``kind``, after checking every row has exactly them (the names go into SQL). A column added
    to the format later (``LATER_COLUMNS``) takes its default in a row from an export made before it."""
    cols = EXPORT_COLUMNS.get(kind)
    if cols is None:
        raise ValueError(f"unknown kind of row {kind!r}; known: {', '.join(EXPORT_KINDS)}")
    later = LATER_COLUMNS.get(kind, {})
    for row in rows:
        for column, default in later.items():
            row.setdefault(column, default)
        if set(row) != set(cols):
            raise ValueError(f"a {kind} row must have exactly the keys {', '.join(cols)}; got {', '.join(row)}")
    return cols


def import_value(column: str, value: Any, sqlite: bool) -> Any:
    """A value of an exported row as the store keeps it."""
    if column == "attachments":
        return msgspec.json.encode(value).decode() if value else None
    if sqlite and isinstance(value, bool):
        return int(value)
    return value
