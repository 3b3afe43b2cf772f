"""Rooms and membership rules, shared by the WebSocket and REST paths.

- Joining a room that does not exist creates it as a public room when ``rooms.auto_create`` is on.
- Joining a public room makes the user a member.
- A private room needs prior membership (the creator, or someone invited); anyone else gets ``not_found``, the
  answer a missing room gets, so strangers cannot tell which private rooms (or direct conversations) exist.
- Sending needs membership (``not_member``).
- Adding someone else: to a private room, any member (or an admin); to a public room, only its creator or an admin
  (anyone can join a public room themselves, so the only use of adding others there is pushing rooms on people).
- A public room's topic is set by its creator or an admin; a private room's by any member.
- Creating rooms, explicitly or by joining a new name, is limited to ``rooms.create_per_hour`` per user (through
  the node's limiter: across nodes where the broker shares limits).

Members are user ids, never names: a renamed user keeps their rooms, and a new account with a freed name gets none.

Membership is checked on every send, so positive answers are cached per node, by (room, user id). The cache is only
a fast path: the store checks membership again in the transaction that stores a send, so a member removed on
another node is refused even before that node's ``member-`` event (``chatd.core.cluster``) clears the entry here. Every
event that can end a membership clears what it touches on every node: ``member-`` (a member removed), ``room-deleted``
and ``room-archived`` (the room's entries), ``user-`` (a user deleted or disabled: the user's entries), and a broker
link that comes back (everything). Joins of private rooms always ask the store.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass

from chatd.accounts.throttle import refuse
from chatd.errors import ChatError, Err
from chatd.features.uploads import delete_files
from chatd.limiter import Limiter
from chatd.protocol.frames import ROOM_MAX, ROOM_PATTERN, Message
from chatd.rules.dms import refuse_dm_name
from chatd.store.base import AdminRoom, RoomRecord, Store, UserRecord, UserRef

_room_re = re.compile(ROOM_PATTERN)
_CACHE_MAX = 200_000


def check_room_name(name: str) -> None:
    """A name someone may give a new room (by creating it, joining it first, or from the CLI)."""
    if not (0 < len(name) <= ROOM_MAX and _room_re.match(name)):
        raise ChatError(
            Err.BAD_FRAME,
            f"room names are 1-{ROOM_MAX} characters of A-Z a-z 0-9 _ . : @ - and start with a letter or digit",
        )
    refuse_dm_name(name)  # dm:… names are made by open_dm only


class Rooms:
    def __init__(self, store: Store, limiter: Limiter, auto_create: bool, create_per_hour: float = 0.0) -> None:
        self.store = store
        self.limiter = limiter
        self.auto_create = auto_create
        self.create_per_hour = create_per_hour
        self._members: set[tuple[str, int]] = set()
        # Told (change, room, id of the user it concerns, name of who did it) after a room is created or someone is
        # added to one, so the node can push the change to the sessions that should see it.
        self.listener: Callable[[str, RoomRecord, int, str], None] | None = None

    def _changed(self, change: str, record: RoomRecord, user: int, by: str) -> None:
        if self.listener is not None:
            self.listener(change, record, user, by)

    async def _may_create(self, user: int) -> None:
        wait = await self.limiter.take(f"room:{user}", self.create_per_hour / 3600, self.create_per_hour)
        if wait:
            raise refuse("new rooms (rooms.create_per_hour)", wait)

    def _remember(self, room: str, user: int) -> None:
        if len(self._members) >= _CACHE_MAX:
            self._members.clear()
        self._members.add((room, user))

    def forget(self, room: str, user: int) -> None:
        self._members.discard((room, user))

    def forget_room(self, room: str) -> None:
        self._members = {m for m in self._members if m[0] != room}

    def forget_user(self, user: int) -> None:
        """A user was deleted or disabled: none of their cached memberships may answer for them again."""
        self._members = {m for m in self._members if m[1] != user}

    def forget_all(self) -> None:
        self._members.clear()

    def cached(self) -> int:
        """Cached memberships (for tests and metrics)."""
        return len(self._members)

    async def is_member(self, room: str, user: int) -> bool:
        if (room, user) in self._members:
            return True
        if await self.store.is_member(room, user):
            self._remember(room, user)
            return True
        return False

    async def require_member(self, room: str, user: int) -> None:
        if not await self.is_member(room, user):
            record = await self.store.get_room(room)
            if record is None or record.private:
                raise ChatError(Err.NOT_FOUND, f"no room {room!r}")  # a private room's outsider: as if missing
            raise ChatError(Err.NOT_MEMBER, f"you are not a member of {room!r}")

    async def get_visible(self, room: str, user: int) -> RoomRecord:
        """The room, if ``user`` may see it (public, or private and a member). Anyone else is told there is no such
        room, in the same words as for a name nobody uses: a different answer would tell strangers which private
        rooms exist, and a direct conversation's name says who talks to whom."""
        record = await self.store.get_room(room)
        if record is None or (record.private and not await self.is_member(room, user)):
            raise ChatError(Err.NOT_FOUND, f"no room {room!r}")
        return record

    async def join(self, room: str, user: int, name: str) -> RoomRecord:
        """Apply the join rules for the user ``user`` (called ``name``); returns the room. Raises not_found (a
        private room ``user`` is not in gets the answer a missing room would) or forbidden."""
        record = await self.store.get_room(room)
        hidden = record is not None and record.private and not await self.store.is_member(room, user)
        if record is None or hidden:
            if not self.auto_create:
                raise ChatError(Err.NOT_FOUND, f"no room {room!r} (rooms.auto_create is off)")
            check_room_name(room)  # a dm: name is refused here whether that conversation exists or not
            if hidden:
                # A free name would make a new room; a taken one cannot be (as POST /api/rooms answers conflict).
                # The name shows as taken, never who is in the room or what is said there.
                raise ChatError(Err.NOT_FOUND, f"no room {room!r}")
            await self._may_create(user)
            try:
                record = await self.store.create_room(room, private=False, created_by=user)
                self._changed("created", record, user, name)
            except ChatError:
                record = await self.store.get_room(room)  # created by a racing join
                assert record is not None
        if record.private:
            if not await self.store.is_member(room, user):  # one a racing creation just made private
                raise ChatError(Err.NOT_FOUND, f"no room {room!r}")
            return record
        if (room, user) not in self._members:
            await self.store.add_member(room, user)
            self._remember(room, user)
        return record

    async def require_topic_setter(self, room: str, user: int) -> None:
        """Anyone can join a public room, so its topic is its creator's or an admin's to set; in a private room
        (direct conversations included) every member was let in by a member, and any member may set it."""
        record = await self.store.get_room(room)
        if record is None or record.private or record.created_by == user:
            return
        found = await self.store.user_by_id(user)
        if found is None or not found.admin:
            raise ChatError(Err.FORBIDDEN, f"only the creator of {room!r} or an admin sets its topic")

    async def create(self, room: str, private: bool, user: UserRecord) -> RoomRecord:
        check_room_name(room)
        if await self.store.get_room(room) is not None:
            raise ChatError(Err.CONFLICT, f"room {room!r} already exists")  # a taken name spends no creation
        await self._may_create(user.id)
        record = await self.store.create_room(room, private, user.id)
        self._remember(room, user.id)
        self._changed("created", record, user.id, user.name)
        return record

    async def invite(self, room: str, inviter: UserRecord, invitee: str) -> tuple[bool, UserRecord]:
        """Add the live user named ``invitee`` (any spelling) to ``room``; returns whether they were added and who
        they are."""
        record = await self.get_visible(room, inviter.id)
        target = await self.store.get_user(invitee)
        if target is None:
            raise ChatError(Err.NOT_FOUND, f"no user {invitee!r}")
        if record.dm:
            raise ChatError(Err.FORBIDDEN, "a direct conversation is between two people; start a private room")
        if record.private:
            if not (inviter.admin or await self.is_member(room, inviter.id)):
                raise ChatError(Err.FORBIDDEN, "only members can invite to a private room")
        elif target.id != inviter.id and not (inviter.admin or record.created_by == inviter.id):
            raise ChatError(
                Err.FORBIDDEN, "only the room's creator or an admin adds others to a public room; they can join it"
            )
        added = await self.store.add_member(room, target.id)
        self._remember(room, target.id)
        if added and target.id != inviter.id:
            self._changed("invited", record, target.id, inviter.name)
        return added, target

    async def remove(self, room: str, actor: UserRecord, target: str) -> tuple[bool, UserRecord | None]:
        """Remove the live user named ``target`` (any spelling) from ``room``; returns whether they were a member and
        who they are (None: no such user, nothing removed)."""
        record = await self.get_visible(room, actor.id)
        found = await self.store.get_user(target)
        if (found is None or found.id != actor.id) and not (actor.admin or record.created_by == actor.id):
            raise ChatError(Err.FORBIDDEN, "only the room's creator or an admin can remove other members")
        if found is None:
            return False, None
        self._members.discard((room, found.id))
        return await self.store.remove_member(room, found.id), found

    # --- reads the gateway answers with (it checks who may see the room first: ``get_visible``) ----------------

    async def page_for(self, user: int, after: str | None, limit: int) -> list[tuple[RoomRecord, bool]]:
        """Up to ``limit`` rooms named after ``after`` that the user may see, each with whether they are in it."""
        return await self.store.list_rooms(user, after=after, limit=limit)

    async def members(self, room: str) -> list[UserRef]:
        return await self.store.members(room)

    async def history(self, room: str, after: int | None, before: int | None, limit: int) -> list[Message]:
        """Messages oldest first, in their current state (``Store.history``)."""
        return await self.store.history(room, after=after, before=before, limit=limit)

    async def deleted_through(self, room: str) -> int:
        """The last seq retention deleted in ``room`` (0: none), so a client can tell deleted from lost."""
        return await self.store.purged_through(room)

    async def all_rooms(self) -> list[AdminRoom]:
        """Every room, private ones included, as an admin sees them."""
        return await self.store.admin_rooms()

    async def set_archived(self, room: str, archived: bool) -> bool:
        """Archive or unarchive ``room``; False when there is no such room. The node tells every node."""
        return await self.store.set_room_archived(room, archived)


@dataclass(frozen=True, slots=True)
class Purged:
    """What deleting a room took: its record, who belonged to it, how many attachments went with it."""

    record: RoomRecord
    members: list[UserRef]
    uploads: int


async def purge_room(store: Store, uploads_dir: str, name: str) -> Purged | None:
    """Delete a room from the store with its history, then its attachment files; None if there was no such room.
    Sockets are not told here: ``Node.room_deleted`` does that (the admin CLI asks a node to)."""
    record = await store.get_room(name)
    members = await store.members(name)
    upload_ids = await store.delete_room(name)
    if record is None or upload_ids is None:
        return None
    await delete_files(uploads_dir, upload_ids)
    return Purged(record, members, len(upload_ids))
