"""The store's roles: one interface per concern, each with the contract its callers rely on.

``chatd.store.base.Store`` is every role in one class, and each backend implements it; a caller names the narrowest
role (or the few roles) it uses, so a reader of the append path sees ``MessageStore`` and its contract, not the
whole store, and a new backend can be written and tested one role at a time.

The roles are ``typing.Protocol`` classes, not ABCs, for the callers: one that needs two roles names them as one
small protocol of its own (``chatd.core.feed.FeedStore``: ``MessageStore``, ``RoomStore`` and ``Lifecycle``), which
every ``Store`` matches without having to list it as a base, and a test can hand over a double with only those
methods. Backends still
subclass ``Store`` (and so every role) explicitly: they inherit the default methods below, and ``abc.abstractmethod``
keeps its runtime check (a Protocol's metaclass is an ``ABCMeta``), so a backend that misses a method cannot be made.

Rules for every role: a user is their id (see ``AccountStore``), so every method that takes a user takes the id;
reads see only committed data.
"""

from __future__ import annotations

import abc
import asyncio
import contextlib
import time
from collections import OrderedDict
from collections.abc import AsyncIterator, Sequence
from typing import Any, ClassVar, Protocol, Self

from chatd.config import Config
from chatd.protocol.frames import Entry, Message
from chatd.rules.search import Hit
from chatd.store.records import (
    PURGE_CHUNK,
    AdminRoom,
    HookRecord,
    InviteRecord,
    NewMessage,
    Outcome,
    ReadPosition,
    RoomRecord,
    StreamPosition,
    TokenRecord,
    UploadRecord,
    UserInfo,
    UserRecord,
    UserRef,
    Webhook,
)

ONCE_MAX = 100_000  # one-use claims a single-server store remembers in memory


class Backend(Protocol):
    """What a backend declares, so that the rest of chatd never asks its name (``[store] backend``), and what it
    reads before any store is open."""

    # A database server that several nodes share over the network (PostgreSQL): its one pool of connections is
    # shared by searches and every other read. False for a file on this machine that one server writes (SQLite):
    # searches get connections of their own, and the admin commands check the file and its directory.
    networked: ClassVar[bool]

    @classmethod
    @abc.abstractmethod
    def from_config(cls, cfg: Config, server: bool = True) -> Self:
        """The store ``cfg.store`` describes, not yet open. ``server=False`` for tools that only manage users while
        a server may be running."""

    @classmethod
    @abc.abstractmethod
    async def schema_state(cls, cfg: Config) -> tuple[list[str], list[str]]:
        """(migrations the database ``cfg.store`` describes has, migrations this chatd knows), read without changing
        anything (``chatd migrate --check``, ``chatd doctor``); StoreRefused when it cannot be reached."""

    @classmethod
    async def clock_skew(cls, cfg: Config) -> tuple[str, float] | None:
        """(what the database server is called, seconds its clock is ahead of this machine's), for ``chatd doctor``:
        token expiry and message times mix both clocks. None for a store with no clock but this machine's."""
        return None


class Lifecycle(Protocol):
    """Opening and closing the store, and what readiness asks of it. ``open`` comes before any call of another
    role (``exists`` and ``describe`` may come first); ``close`` finishes the writes it was given."""

    @abc.abstractmethod
    async def open(self) -> None:
        """Connect and apply migrations."""

    @abc.abstractmethod
    async def close(self) -> None:
        """Finish pending writes and disconnect."""

    @abc.abstractmethod
    async def ping(self) -> bool:
        """Whether the store answers a trivial query."""

    def describe(self) -> str:
        """Which store this is, for people reading a log line or a CLI message (e.g. ``sqlite /var/lib/chatd.db``).
        Never includes a password."""
        return type(self).__name__

    async def exists(self) -> bool:
        """Whether a chatd database is already there, checked before ``open`` (which creates one when missing).

        Tools other than ``serve`` call it to refuse to create a database by accident (run from the wrong
        directory, a mistyped path). SQLite: the file exists. A backend that cannot tell answers True."""
        return True

    def free_bytes(self) -> int | None:
        """Bytes free on the filesystem the store writes to, or None when that is not this process's business
        (a database server). Readiness turns false below ``store.min_free_bytes``. Must not block for long."""
        return None


class DeploymentStore(Protocol):
    """What every node of a deployment shares through the store, whatever the broker: the key that signs tickets
    and attachment keys, and the one-use claims that spend a credential once on the whole deployment."""

    async def deployment_key(self) -> bytes | None:
        """A random 32-byte key made once per deployment: the first caller creates it (atomically, so racing nodes
        agree) and every node using this store reads the same one. It signs WebSocket tickets and attachment keys
        when ``auth.secret`` is empty, so those work across nodes without configuration. None when the store keeps
        no such key (each node then uses a key of its own)."""
        return None

    async def claim_once(self, key: str, ttl: float) -> bool:
        """True the first time ``key`` is claimed within ``ttl`` seconds, on any node of the deployment; False for
        a repeat. Spends one-use credentials (WebSocket tickets, the admin CLI's control requests) for as long as
        they are valid, whatever the broker: the store is what every node of a deployment shares.

        This default remembers claims in this process (at most ``ONCE_MAX``, the oldest forgotten first), which is
        the whole deployment for a store only one server can open (SQLite); a store several nodes share keeps them
        in the database."""
        now = time.monotonic()
        claims: OrderedDict[str, float] = self.__dict__.setdefault("_claims", OrderedDict())
        while claims and next(iter(claims.values())) < now:
            claims.popitem(last=False)  # expired (entries go in with equal ttls in practice, so roughly in order)
        if key in claims and claims[key] >= now:
            return False
        claims[key] = now + ttl
        claims.move_to_end(key)
        if len(claims) > ONCE_MAX:
            claims.popitem(last=False)
        return True


class MessageStore(Protocol):
    """Room streams: messages and room changes, stored by ``append`` and read back in seq order (the worker's and
    the feeds' role).

    - ``append`` is the only way a message is stored. It runs in one transaction per batch and returns only after
      that transaction is durable to the configured level. Outcomes come back in batch order, one per message:
      - a new message gets the room's next ``seq`` (starting at 1, no gaps). The seq is taken from the room's row
        *inside the transaction*, under the database's own write lock, never from a counter in a process: several
        nodes may append to one room at once, and each room's seqs still come out gapless and unique;
      - a message whose (room, sender, client_id) already exists is not stored again; its outcome carries the
        original seq and ts with ``duplicate=True`` and the stored message as ``stored``;
      - a message to a room that does not exist, or from a sender who is not (or no longer) a member, is refused
        with ``error`` set to ``not_found`` or ``not_member``; membership is checked in the same transaction, so a
        member removed on one node cannot send through a stale cache on another. A message to an archived room is
        refused with ``archived``, checked the same way. A refusal does not affect the other messages of the batch.
    - An ``append`` that raises stored all of its batch or none of it (one transaction); sending the same batch
      again is safe either way, since what was stored comes back as duplicates. ``transient`` says whether that is
      worth trying.
    - Room changes (``NewMessage.kind``, see ``chatd.store.room_events``) go through ``append`` too: each takes the
      room's next seq like a message, is idempotent under the same key, is refused alone when not allowed
      (``not_found`` for a missing target, ``gone`` for a deleted one, ``forbidden`` for someone else's message),
      and rewrites its target to its current state in the same transaction. A delete leaves a tombstone: the body,
      attachments, reactions and the bodies of earlier edits are gone from the store. A message's ``reply_to`` must
      name an earlier seq.
    - A new message that names members of its room as ``@name`` records a mention for each (not the sender) in the
      same transaction and lists them in ``Outcome.mentions`` (read back through ``PersonalStore``).
    - **Reactions are rows** (room, message seq, emoji, user id): adding or removing one writes one row. A message
      has at most ``reaction_limits[0]`` distinct emoji and each user at most ``reaction_limits[1]`` reactions on
      it; a reaction past either is refused with ``too_many_reactions``.
    - Reads see only committed data. ``history`` returns messages oldest first, in their current state, without
      change events; ``stream`` returns every entry (messages and changes) in seq order, for replay and gap fills.
      Names in what they return are resolved from ids at read time, so they show a renamed user's new name.
    - **Each room's stream has an epoch**: a short random id of this incarnation of its history, made when the
      room's row is created (``create_room``, ``open_dm``, an import) and never changed by ``append``. A room
      deleted and made again, or a store restored from a backup, has new epochs, so a client's position (epoch,
      seq) from before cannot be mistaken for a position in the new history (``chatd.core.feed``). ``position``
      reads a room's (epoch, last seq) in one row read.
    - Retention (``RetentionStore``) deletes a prefix of a stream: what is left is a gapless tail starting after
      ``purged_through``.
    """

    # (distinct emoji per message, reactions per user per message): ``limits.reactions_per_message`` and
    # ``limits.reactions_per_user``, set by ``make_store``.
    reaction_limits: tuple[int, int] = (50, 20)

    @abc.abstractmethod
    async def append(self, batch: Sequence[NewMessage]) -> list[Outcome]:
        """Store a batch in one transaction; see the class docstring for the contract."""

    def transient(self, exc: BaseException) -> bool:
        """Whether a failed ``append`` is worth retrying as is (the connection or the disk, not the data)."""
        return True

    @abc.abstractmethod
    async def stream(self, room: str, *, after: int, limit: int = 100) -> list[Entry]:
        """Every entry of ``room`` with seq > ``after``, in seq order: messages in their current state and change
        events, as their frames. What ``join`` + ``since`` replays and gap fills read."""

    @abc.abstractmethod
    async def history(
        self, room: str, *, after: int | None = None, before: int | None = None, limit: int = 100
    ) -> list[Message]:
        """Messages of ``room`` oldest first. With ``before`` only, the newest ``limit`` before it."""

    @abc.abstractmethod
    async def position(self, room: str) -> StreamPosition | None:
        """The room's epoch and last seq, read together (one row); None if there is no such room."""

    @abc.abstractmethod
    async def positions(self, rooms: Sequence[str]) -> dict[str, StreamPosition]:
        """``position`` of each of ``rooms`` that exists, in one query."""

    async def last_seq(self, room: str) -> int:
        """The room's last seq (0 for no such room)."""
        pos = await self.position(room)
        return pos.seq if pos is not None else 0

    async def last_seqs(self, rooms: Sequence[str]) -> dict[str, int]:
        """The last seq of each of ``rooms`` that exists, in one query."""
        return {room: pos.seq for room, pos in (await self.positions(rooms)).items()}

    @abc.abstractmethod
    async def purged_through(self, room: str) -> int:
        """The last seq of ``room`` deleted by retention (0: none): clients are told history up to it is gone."""


class RetentionStore(Protocol):
    """Deleting old history: the oldest part of each room's stream, as a prefix, so what is left of a room is
    always a gapless tail and ``purged_through`` (``MessageStore``) says where it starts. Each step is one short
    transaction of a bounded number of entries, so sends waiting for the writer (or the room's row) never wait for
    a whole pass; a step that fails changes nothing, and the next pass plans again from what is stored."""

    @abc.abstractmethod
    async def purge_plan(self, before_ts: int) -> dict[str, int]:
        """Retention, what to do: for each room holding entries older than ``before_ts`` (Unix ms) past its
        ``purged_through``, the seq of the newest such entry. A read: it takes no write lock and no row lock."""

    @abc.abstractmethod
    async def purge_prefix(self, room: str, through: int, limit: int) -> tuple[int, int]:
        """Retention, one step: in one short transaction, delete ``room``'s entries from just past its
        ``purged_through`` up to at most ``limit`` seqs further, never past ``through``, and move
        ``purged_through`` there. At most ``limit`` entries are deleted and, on PostgreSQL, the room's row is locked
        only for them. Returns (entries deleted, ``purged_through`` now)."""

    async def purge_messages(self, before_ts: int, chunk: int = PURGE_CHUNK) -> int:
        """Retention: in every room, delete the entries up to the newest one older than ``before_ts`` (Unix ms), so
        what is left of a room is always a gapless tail, and move its ``purged_through`` there. It goes room by
        room, ``chunk`` entries per transaction, yielding to the event loop between transactions so appends waiting
        for the writer (or the room's row) go first. Returns how many entries were deleted."""
        deleted = 0
        for room, through in (await self.purge_plan(before_ts)).items():
            done = 0
            while done < through:
                n, done = await self.purge_prefix(room, through, chunk)
                deleted += n
                await asyncio.sleep(0)
        return deleted


class RoomStore(Protocol):
    """Rooms and their members, direct-message rooms included. Room and membership writes are visible to every
    node's reads once the call returns. Making a room gives its stream a new epoch (``MessageStore``); deleting one
    takes its members, entries, upload records and hooks with it in one transaction."""

    @abc.abstractmethod
    async def create_room(self, name: str, private: bool, created_by: int) -> RoomRecord:
        """Create a room with its creator as first member. Raises ChatError(CONFLICT) if it exists."""

    @abc.abstractmethod
    async def get_room(self, name: str) -> RoomRecord | None: ...

    @abc.abstractmethod
    async def list_rooms(
        self, user: int, *, after: str | None = None, limit: int | None = None
    ) -> list[tuple[RoomRecord, bool]]:
        """Public rooms and the private rooms ``user`` belongs to, each with whether ``user`` is a member, ordered
        by name (byte order). ``after``: only names greater than it (the cursor of the next page); ``limit``: at
        most that many (None: all)."""

    @abc.abstractmethod
    async def add_member(self, room: str, user: int) -> bool:
        """Add a member; False if already one. ChatError(NOT_FOUND) for no such room or live user."""

    @abc.abstractmethod
    async def remove_member(self, room: str, user: int) -> bool: ...

    @abc.abstractmethod
    async def is_member(self, room: str, user: int) -> bool: ...

    @abc.abstractmethod
    async def members(self, room: str) -> list[UserRef]:
        """The members of ``room``, by name (byte order), bots marked as bots."""

    @abc.abstractmethod
    async def open_dm(self, name: str, a: int, b: int) -> tuple[RoomRecord, bool]:
        """The direct-message room ``name`` of users ``a`` and ``b``: created private with both as members if it
        does not exist, and both made members again if one had left. Returns it and whether it was created.
        Atomic against a racing call for the same pair. Raises ChatError(CONFLICT) if ``name`` is a room that is
        not a direct-message room."""

    @abc.abstractmethod
    async def delete_room(self, name: str) -> list[str] | None:
        """Delete a room with its members, messages and upload records in one transaction; returns the ids of
        the uploads whose files the caller should delete, or None if there was no such room."""

    @abc.abstractmethod
    async def admin_rooms(self) -> list[AdminRoom]:
        """Every room, private ones included, by name (byte order)."""

    @abc.abstractmethod
    async def set_room_archived(self, name: str, archived: bool) -> bool:
        """Archive (read-only: ``append`` refuses new messages with ``archived``) or unarchive a room; False if
        there is no such room."""


class AccountStore(Protocol):
    """Users: their ids and names, the identities they sign in with (passwords, single sign-on), invites.

    - **A user is an immutable id; the name is an attribute.** ``create_user`` gives each user an integer ``id``
      that is never used again, whatever happens to the user later. Everything a user owns (tokens, memberships,
      messages, reactions, read positions, mentions, uploads, invites, rooms they created) is keyed by that id, and
      every method that takes a user takes the id. Names are for people: they are resolved from ids when a frame
      is built (at commit for a new entry, at read time for history, streams, mentions and search), so after
      ``rename_user`` everything shows the new name.
    - **User names are case-insensitive for identity, case-preserving for display,** among *live* users: two live
      users never have names whose ASCII ``lower()`` is equal (names are ASCII by ``USER_PATTERN``).
      ``create_user`` and ``rename_user`` refuse a name equal to a live user's ignoring case; ``get_user`` finds a
      live user by any spelling and answers with the stored one. (A store that existed before this rule may hold
      two spellings of one name; each is its own user, and a lookup prefers the exact spelling.)
    - **Deleting a user leaves a tombstone**: the id and name stay (``deleted``), so what they wrote still shows who
      wrote it, but a tombstone is found by no lookup by name (``get_user``, sign-in, invites, DMs, mentions), holds
      no token, membership, read position, mention or upload, and does not keep its name from a new user, who gets
      a new id and inherits nothing.
    - User writes are visible to every node's reads once the call returns.
    """

    @abc.abstractmethod
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
        """Create a user with a new id. Raises ChatError(CONFLICT) if a live user with the same name ignoring case
        exists; the check and the insert are one atomic step, so two racing creations of ``Alice`` and ``alice``
        cannot both win.

        The user is admin when ``admin`` is true, or when ``admin_if_none`` is true and no admin exists yet, decided
        in the same atomic step (two racing first registrations cannot both become admin).

        With ``invite`` (an invite code's hash), the code is spent on this user in the same transaction: unused and
        unexpired at ``now`` (Unix ms), or nothing is created and ChatError(FORBIDDEN) is raised. Two registrations
        racing with one code: one wins."""

    @abc.abstractmethod
    async def get_user(self, name: str) -> UserRecord | None:
        """The live user whose name equals ``name`` ignoring ASCII case, with the stored spelling; None if none
        (a deleted user's name finds nothing)."""

    @abc.abstractmethod
    async def user_by_id(self, uid: int) -> UserRecord | None:
        """The live user with this id; None for no such user, or a deleted one."""

    @abc.abstractmethod
    async def users_by_ids(self, ids: Sequence[int]) -> list[UserRecord]:
        """The live users among ``ids``, by id."""

    @abc.abstractmethod
    async def user_names(self, ids: Sequence[int]) -> dict[int, str]:
        """The current name of each of ``ids`` that exists, deleted users included (their last name)."""

    @abc.abstractmethod
    async def directory(
        self, prefix: str = "", *, after: str | None = None, limit: int = 50, disabled: bool = False
    ) -> list[UserRecord]:
        """A page of live users, ordered by their name lowercased, then by the name's bytes: those whose name starts
        with ``prefix`` ignoring ASCII case, or whose ``display_key`` starts with ``display_key(prefix)``, and come
        after the name ``after`` in that order (the last name of the previous page). Disabled users only with
        ``disabled`` (the admin's list); at most ``limit``."""

    @abc.abstractmethod
    async def user_info(self, name: str | None = None) -> list[UserInfo]:
        """Every live user by name (byte order), or the one ``get_user(name)`` finds (an empty list for none)."""

    @abc.abstractmethod
    async def password_hash(self, uid: int) -> str | None:
        """The password hash of a live user; None for no such user or a token-only one."""

    @abc.abstractmethod
    async def set_password_hash(self, uid: int, password_hash: str | None) -> bool:
        """Replace a live user's password hash (None: token-only); False if there is no such user."""

    @abc.abstractmethod
    async def rename_user(self, uid: int, name: str) -> str:
        """Give a live user a new name; returns the old one. Raises ChatError(NOT_FOUND) for no such live user and
        ChatError(CONFLICT) when another live user has the name ignoring case (checked and changed atomically, like
        ``create_user``). Changing only the case of one's own name is allowed. The caller checks the name's form."""

    @abc.abstractmethod
    async def set_display_name(self, uid: int, display_name: str) -> bool:
        """Set a live user's display name ("" clears it) and its search key (``display_key``); False if there is no
        such user. The caller checks its form."""

    @abc.abstractmethod
    async def set_user(self, uid: int, *, disabled: bool | None = None, admin: bool | None = None) -> bool:
        """Change a live user's flags (None: leave as is); False if there is no such user. A disabled user's tokens
        stop authenticating at once (``user_for_token`` skips them) and they cannot sign in."""

    @abc.abstractmethod
    async def delete_user(self, uid: int) -> list[str] | None:
        """Delete a live user in one transaction: their tokens, memberships, read positions, mentions and upload
        records go; the user stays as a tombstone (see the class docstring), so messages and reactions they left
        still show their name. Returns the ids of the uploads whose files the caller should delete, or None if there
        was no such live user."""

    # single sign-on: users keyed by their provider's (issuer, subject)
    @abc.abstractmethod
    async def user_for_identity(self, issuer: str, subject: str) -> UserRecord | None:
        """The live user that signed in as ``subject`` at ``issuer`` before, disabled or not; None if this identity
        is new, or its user was deleted. Never by name or e-mail: those change and get reused, (issuer, subject)
        does not (OpenID Connect Core, section 5.7)."""

    @abc.abstractmethod
    async def create_identity_user(
        self, issuer: str, subject: str, names: Sequence[str], *, admin_if_none: bool = False
    ) -> UserRecord | None:
        """A new password-less user for a first sign-in as (``issuer``, ``subject``), named by the first of ``names``
        no live user has (ignoring case), and linked to that identity, all in one step. When the identity is already
        linked (another node's sign-in won a race), nothing is made and its user comes back, or None if that user was
        deleted (a deleted account stays deleted; a new one would let its messages change hands). Raises
        ChatError(CONFLICT) when every name is taken. ``admin_if_none`` as in ``create_user``."""

    # invites: ``create_user`` spends them
    @abc.abstractmethod
    async def add_invite(self, code_hash: str, created_by: int | None, expires: int) -> None:
        """Store an invite code's hash, good until ``expires`` (Unix ms); ``created_by`` is a user id, or None for
        an operator's command. ``create_user`` spends it."""

    @abc.abstractmethod
    async def invites(self) -> list[InviteRecord]:
        """Every invite, oldest first."""


class TokenStore(Protocol):
    """Bearer tokens, stored only as hashes, each of one user: what every authenticated request checks. A token of a
    disabled or deleted user authenticates nobody."""

    @abc.abstractmethod
    async def add_token(self, token_hash: str, user: int, scopes: str | None = None) -> None:
        """Store a token's hash for ``user``; ``scopes``: a bot token's scope (JSON, ``chatd.rules.bots.Scope``)."""

    @abc.abstractmethod
    async def user_for_token(self, token_hash: str, issued_after: int = 0) -> UserRecord | None:
        """The user holding this token, if the token exists and was issued after ``issued_after`` (Unix ms; 0:
        any time). ``auth.token_ttl`` expires tokens through this bound."""

    @abc.abstractmethod
    async def token_scopes(self, token_hash: str) -> str | None:
        """The scope a token was issued with (one indexed read); None for an unscoped token or no such token."""

    async def token_created(self, token_hash: str) -> int | None:
        """When the token with this hash was issued (Unix ms), None if there is none: with ``auth.token_ttl`` a
        session opened with the token is closed when it expires. Stores answer this with one indexed read."""
        found = [t for t in await self.tokens(id_prefix=token_hash) if t.hash == token_hash]
        return found[0].created if found else None

    @abc.abstractmethod
    async def touch_token(self, token_hash: str, now: int, every: int) -> None:
        """Record that a token was used at ``now`` (Unix ms), unless that was already recorded within ``every``
        ms: last use is for people, and a write per request would cost more than it tells."""

    @abc.abstractmethod
    async def tokens(self, *, user: int | None = None, id_prefix: str | None = None) -> list[TokenRecord]:
        """Tokens of ``user``, or those whose hash starts with ``id_prefix`` (an empty prefix finds none), oldest
        first."""

    @abc.abstractmethod
    async def revoke_token(self, token_hash: str) -> bool: ...

    @abc.abstractmethod
    async def revoke_tokens(self, uid: int, *, keep: str | None = None) -> list[str]:
        """Revoke every token of ``uid`` except the one whose hash is ``keep``, in one step; returns the hashes
        revoked (for closing the sockets opened with them)."""


class PersonalStore(Protocol):
    """Per-user state: read positions and mentions, by user id, counted only in rooms the user is still a member
    of. ``append`` records mentions (``MessageStore``); this role reads them and moves read positions."""

    @abc.abstractmethod
    async def set_read(self, user: int, room: str, seq: int) -> int:
        """Move ``user``'s read position in ``room`` forward to ``seq`` (never back, never past the room's last
        seq; two devices marking at once converge on the higher). Returns the position now stored."""

    @abc.abstractmethod
    async def read_positions(self, user: int, room: str | None = None) -> list[ReadPosition]:
        """``user``'s read position in every room they are a member of (or in ``room`` only), by room name."""

    @abc.abstractmethod
    async def mentions(self, user: int, *, before: int | None = None, limit: int = 50) -> list[Message]:
        """Messages that mention ``user``, newest first, in their current state; only from rooms ``user`` is still
        a member of, never deleted ones. ``before``: only mentions recorded before that time (Unix ms)."""


class UploadStore(Protocol):
    """Upload records; the files are on disk (``chatd.features.uploads``). A record goes before its file: the caller
    deletes a file only after the store said its record is gone (``delete_upload``; ``delete_room`` and
    ``delete_user`` return the ids they released), so a crash between the two leaves a file no record names, never
    a record whose file is gone."""

    @abc.abstractmethod
    async def add_upload(self, record: UploadRecord, quota: int = 0) -> bool:
        """Store an upload's record unless it would take its owner's total size (``upload_usage``) past ``quota``
        bytes (0: no quota). Check and insert are one atomic step, so concurrent uploads cannot overshoot together.
        Returns whether it was stored."""

    @abc.abstractmethod
    async def upload_usage(self, owner: int) -> int:
        """Total size in bytes of the uploads ``owner`` has stored, posted or not."""

    @abc.abstractmethod
    async def get_upload(self, upload_id: str) -> UploadRecord | None: ...

    @abc.abstractmethod
    async def attach_uploads(self, ids: Sequence[str], owner: int, room: str) -> list[str]:
        """Bind the owner's not-yet-posted uploads to ``room``; returns the ids that were bound."""

    @abc.abstractmethod
    async def uploads_before(self, created_before: int, limit: int, *, unposted_only: bool) -> list[UploadRecord]:
        """Up to ``limit`` uploads created before ``created_before`` (Unix ms), oldest first; with
        ``unposted_only``, only those bound to no room."""

    @abc.abstractmethod
    async def delete_upload(self, upload_id: str, *, unposted_only: bool = False) -> bool:
        """Delete an upload's record; with ``unposted_only``, only while it is bound to no room (so an expiry
        sweep cannot race a message that attaches it: one of the two wins). Returns whether a record was deleted.
        The caller deletes the file after a True."""


class SearchStore(Protocol):
    """Full-text search over messages, bounded on each node so searches cannot take every connection."""

    # (seconds a search may run, searches running at once on this node): ``search.timeout`` (0: no limit) and
    # ``search.concurrency``, set by ``make_store``. Searches get their own connections (SQLite) or slots of the
    # pool (PostgreSQL), so however many run, other reads still find a connection.
    search_limits: tuple[float, int] = (0.0, 2)

    @abc.abstractmethod
    async def search(
        self, user: int, words: list[str], *, room: str | None = None, limit: int = 20, offset: int = 0
    ) -> list[Hit]:
        """Messages containing every one of ``words`` (the last also as a prefix; see ``chatd.rules.search``), best
        first, from rooms ``user`` may read (public rooms, and private rooms they are a member of), optionally only
        ``room``. Never a deleted message or a change event. The index covers history stored before it existed.

        Bounded by ``search_limits``: at most that many run at once on a node, the others wait; one that runs past
        the time limit is stopped and raises ``chatd.rules.search.search_too_slow`` (``search_timeout``), and one that
        waited that long for a slot raises ``chatd.rules.search.searches_busy`` (``rate_limited``)."""


class HookStore(Protocol):
    """Incoming webhooks (``chatd.features.hooks``): each posts into one room as its own bot user; only its
    secret's hash is stored."""

    @abc.abstractmethod
    async def add_hook(self, hook: HookRecord) -> None:
        """Store a hook. Its room and bot user must exist (ChatError(NOT_FOUND) otherwise)."""

    @abc.abstractmethod
    async def get_hook(self, hook_id: str) -> HookRecord | None:
        """The hook with this id, None if there is none (revoked, or its room or bot deleted). One indexed read:
        every hook request asks, so a revoke holds on every node at once."""

    @abc.abstractmethod
    async def hooks(self, room: str | None = None) -> list[HookRecord]:
        """Every hook (or those of ``room``), oldest first."""

    @abc.abstractmethod
    async def delete_hook(self, hook_id: str) -> bool:
        """Revoke a hook; False if there was none. ``delete_room`` and ``delete_user`` (of its bot) revoke a room's
        or bot's hooks in their own transaction."""


class WebhookStore(Protocol):
    """Outgoing webhooks (``chatd.features.outhooks``): URLs subscribed to a room's stream, and their delivery state.

    A webhook is delivered by one node at a time: the node holding its lease (``lease_webhooks``), which lasts
    ``lease_ms`` past the last call that renewed it. Every write a deliverer makes names it (``owner``) and changes
    nothing when the lease is no longer its own, so a node that stalled past its lease cannot move a cursor another
    node now owns. Times come from the database's clock where several nodes share it."""

    @abc.abstractmethod
    async def add_webhook(
        self, room: str, url: str, secret: str, events: Sequence[str], created_by: int | None, per_room_max: int = 0
    ) -> Webhook:
        """Subscribe ``url`` to ``room``'s entries from now on (``cursor`` = the room's last seq, read in the same
        transaction). ChatError(NOT_FOUND) for no such room; ChatError(CONFLICT) when the room already has
        ``per_room_max`` webhooks (0: no bound)."""

    @abc.abstractmethod
    async def webhooks(self, room: str | None = None) -> list[Webhook]:
        """Every webhook (or ``room``'s), by id."""

    async def get_webhook(self, hook: int) -> Webhook | None:
        found = [w for w in await self.webhooks() if w.id == hook]
        return found[0] if found else None

    @abc.abstractmethod
    async def delete_webhook(self, hook: int) -> bool:
        """Remove a webhook; False if there was none. Deleting its room removes it too."""

    @abc.abstractmethod
    async def enable_webhook(self, hook: int) -> bool:
        """Clear ``failing`` and the failed attempts, so delivery starts again at the event after ``cursor``; False
        if there is no such webhook."""

    @abc.abstractmethod
    async def lease_webhooks(self, owner: str, lease_ms: int, limit: int, busy: Sequence[int] = ()) -> list[Webhook]:
        """Take the lease of at most ``limit`` webhooks with work to do now: not failing, ``next_attempt`` passed,
        the room's last seq past ``cursor``, and the lease free, expired or already ``owner``'s, ignoring the ids
        in ``busy`` (those ``owner`` is working on). Atomic across nodes: two callers never get the same one."""

    @abc.abstractmethod
    async def webhook_delivered(self, hook: int, owner: str, cursor: int, delivered: int, lease_ms: int) -> bool:
        """Record that entries through seq ``cursor`` are handled, ``delivered`` of them POSTed (the cursor only
        moves forward; failed attempts are cleared when ``delivered`` > 0) and renew the lease. False, changing
        nothing, when ``owner`` does not hold the lease."""

    @abc.abstractmethod
    async def webhook_failed(self, hook: int, owner: str, error: str, retry_ms: int, max_attempts: int) -> int:
        """Record a failed attempt: ``last_error``, one more attempt, ``next_attempt`` ``retry_ms`` from now, and
        ``failing`` once the attempts reach ``max_attempts``; the lease is released. Returns the attempts now, 0
        (changing nothing) when ``owner`` does not hold the lease."""

    @abc.abstractmethod
    async def release_webhook(self, hook: int, owner: str) -> None:
        """Give up ``owner``'s lease now, so any node may take the webhook at once."""


class AdminStore(Protocol):
    """The store as a whole, for operators (issue 10): export and import (``chatd export``/``import``, the format
    in ``chatd.store.records``), a consistent snapshot to export from while nodes write, and new epochs after a
    restore by other means."""

    @abc.abstractmethod
    async def is_empty(self) -> bool:
        """Whether the store holds no users and no rooms (what ``import`` requires)."""

    @contextlib.asynccontextmanager
    async def snapshot(self) -> AsyncIterator[None]:
        """Inside it, ``export_rows`` of every kind reads one moment's data (a read transaction), so an export
        taken while nodes write is consistent: no member of a room the rooms do not list, no message past a
        room's ``last_seq``. The default gives no such promise."""
        yield

    @abc.abstractmethod
    def export_rows(self, kind: str) -> AsyncIterator[dict[str, Any]]:
        """Every row of ``kind`` (one of ``EXPORT_KINDS``) as a dict of plain values, in a stable order (primary
        key), with the same keys whichever store wrote it."""

    @abc.abstractmethod
    async def import_rows(self, kind: str, rows: Sequence[dict[str, Any]]) -> None:
        """Insert rows as ``export_rows`` gives them, keeping seqs, client_ids and timestamps; a room's
        ``last_seq`` comes in with the room."""

    @abc.abstractmethod
    async def renew_epochs(self) -> int:
        """Give every room a new epoch (the store was restored by other means than ``chatd restore``); returns how
        many rooms there are."""
