"""Direct messages: one private two-person room per pair of users, found again by its name.

The name is derived from the pair (``dm:ann:bob``, lower-cased and sorted), so opening the conversation from either
side, on any node, at the same moment, lands in the same room; the store creates it atomically. Pairs whose names
are too long for a room name get a digest instead. Ordinary rooms cannot take a ``dm:`` name, and nobody can be
invited into a direct room, so it stays between the two.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable

from chatd.errors import ChatError, Err
from chatd.protocol.frames import ROOM_MAX, DirectRoom, encode
from chatd.store.base import RoomRecord, Store, UserRecord

DM_PREFIX = "dm:"


def dm_room(a: str, b: str) -> str:
    """The room name of the conversation between users ``a`` and ``b`` (either order, any case)."""
    first, second = sorted((a.lower(), b.lower()))
    name = f"{DM_PREFIX}{first}:{second}"
    if len(name) <= ROOM_MAX:
        return name
    return DM_PREFIX + hashlib.sha256(f"{first}:{second}".encode()).hexdigest()[:40]


def refuse_dm_name(room: str) -> None:
    """Ordinary rooms may not take a name that looks like a direct conversation."""
    if room.lower().startswith(DM_PREFIX):
        raise ChatError(Err.FORBIDDEN, f"names starting with {DM_PREFIX!r} are for direct messages (POST /api/dms)")


async def open_dm(
    store: Store, tell_user: Callable[[str, str], None], opener: UserRecord, other: str
) -> tuple[RoomRecord, str, bool]:
    """Open (or find) the conversation of ``opener`` with ``other`` (any spelling); both users' connections, on
    every node, are told with a ``dm`` frame (``tell_user``). Returns the room, the other's stored name and
    whether it is new."""
    found = await store.get_user(other)
    if found is None:
        raise ChatError(Err.NOT_FOUND, f"no user {other!r}")
    if found.name == opener.name:
        raise ChatError(Err.BAD_FRAME, "a direct conversation needs someone else")
    info = await store.user_info(found.name)
    if info and info[0].disabled:
        raise ChatError(Err.FORBIDDEN, f"{found.name!r} is disabled")  # they could not read it
    record, created = await store.open_dm(dm_room(opener.name, found.name), opener.name, found.name)
    tell_user(found.name, encode(DirectRoom(record.name, opener.name)))
    tell_user(opener.name, encode(DirectRoom(record.name, found.name)))
    return record, found.name, created
