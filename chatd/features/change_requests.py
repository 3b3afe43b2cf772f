"""Client frames that change a room (edit, delete, react, topic) turned into store changes.

Both the WebSocket and the REST paths go through :func:`change_of`, so the two accept the same changes; the store
decides whether each is allowed, in the transaction that stores it (``chatd.store.room_events``).
"""

from __future__ import annotations

from chatd.errors import ChatError, Err
from chatd.protocol.frames import DeleteMessage, EditMessage, React, SetTopic
from chatd.store import room_events
from chatd.store.base import NewMessage

Change = EditMessage | DeleteMessage | React | SetTopic


def change_of(user: int, frame: Change) -> NewMessage:
    """The store change a client frame asks for, on behalf of the user with id ``user``."""
    if isinstance(frame, EditMessage):
        if not frame.body.strip():
            raise ChatError(Err.BAD_FRAME, "an edit needs a body; delete the message instead", frame.client_id)
        return NewMessage(frame.room, user, frame.client_id, frame.body, kind=room_events.EDIT, target=frame.seq)
    if isinstance(frame, DeleteMessage):
        return NewMessage(frame.room, user, frame.client_id, "", kind=room_events.DELETE, target=frame.seq)
    if isinstance(frame, React):
        kind = room_events.UNREACT if frame.remove else room_events.REACT
        return NewMessage(frame.room, user, frame.client_id, frame.emoji, kind=kind, target=frame.seq)
    return NewMessage(frame.room, user, frame.client_id, frame.topic.strip(), kind=room_events.TOPIC)
