"""Per-user state that follows a user across devices and nodes: read positions (and mentions).

None of it is a room event: it belongs to one user, so it is stored per user and pushed on the user-addressed path
(``Node.tell_user``, a ``tell-user`` control event), which reaches every connection of that user on every node.
"""

from __future__ import annotations

from collections.abc import Callable

from chatd.features.rooms import Rooms
from chatd.protocol.frames import Mention, Message, ReadState, encode
from chatd.store.base import ReadPosition
from chatd.store.roles import PersonalStore


class Personal:
    def __init__(self, store: PersonalStore, rooms: Rooms, tell_user: Callable[[int, str], None]) -> None:
        self.store = store
        self.rooms = rooms
        self.tell_user = tell_user

    async def mark_read(self, user: int, room: str, seq: int, client_id: str = "") -> ReadState:
        """Move ``user``'s read position in ``room`` forward and tell all their connections, once it is stored."""
        await self.rooms.require_member(room, user)
        await self.store.set_read(user, room, seq)
        positions = await self.store.read_positions(user, room)
        # The position stored may be ahead of ``seq`` (another device read further): every device gets the truth.
        pos = positions[0] if positions else ReadPosition(room, 0, 0, 0)
        frame = ReadState(room, pos.seq, pos.unread, client_id)
        self.tell_user(user, encode(frame))
        return frame

    async def positions(self, user: int) -> list[ReadPosition]:
        return await self.store.read_positions(user)

    def mentioned(self, message: Message, users: list[int]) -> None:
        """Tell each user (by id) named in a just-stored message, on every connection they have, whatever room they
        are looking at."""
        text = encode(Mention(message.room, message.seq, message.from_, message.body, message.ts, message.uid))
        for user in users:
            self.tell_user(user, text)

    async def mentions(self, user: int, before: int | None, limit: int) -> list[Message]:
        return await self.store.mentions(user, before=before, limit=limit)
