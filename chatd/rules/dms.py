"""Direct messages: one private two-person room per pair of users, found again by its name.

The name is derived from the pair of user ids (``dm:7:12``, lower id first), so opening the conversation from either
side, on any node, at the same moment, lands in the same room; the store creates it atomically. Ids never change and
are never given to anyone else, so a renamed user keeps their conversations and a new account with a freed name
finds none of its predecessor's. Ordinary rooms cannot take a ``dm:`` name, and nobody can be invited into a direct
room, so it stays between the two. Clients never read the name: room lists and ``dm`` frames carry the other person
(``with``, ``with_uid``).
"""

from __future__ import annotations

import re

from chatd.errors import ChatError, Err
from chatd.store.records import RoomRecord

DM_PREFIX = "dm:"
_PAIR = re.compile(r"^dm:([0-9]+):([0-9]+)$")


def dm_room(a: int, b: int) -> str:
    """The room name of the conversation between users ``a`` and ``b`` (ids, either order)."""
    first, second = sorted((a, b))
    return f"{DM_PREFIX}{first}:{second}"


def dm_pair(room: str) -> tuple[int, int] | None:
    """The two user ids of a direct room's name (None for a name ``dm_room`` does not make)."""
    found = _PAIR.match(room)
    return (int(found.group(1)), int(found.group(2))) if found else None


def dm_other(room: RoomRecord, me: int) -> int | None:
    """The other person of a direct room ``me`` belongs to (None for any other room)."""
    pair = dm_pair(room.name) if room.dm else None
    if pair is None or me not in pair:
        return None
    return pair[1] if pair[0] == me else pair[0]


def refuse_dm_name(room: str) -> None:
    """Ordinary rooms may not take a name that looks like a direct conversation."""
    if room.lower().startswith(DM_PREFIX):
        raise ChatError(Err.FORBIDDEN, f"names starting with {DM_PREFIX!r} are for direct messages (POST /api/dms)")
