"""Protocol v1 frame types.

Client frames are one JSON object per WebSocket message, tagged by ``"type"``. Server messages carry one or more
JSON objects separated by ``\\n``. Names and shapes here are a public contract: tools outside this project speak
them. Fields may be added; none may be renamed or removed.
"""

from __future__ import annotations

from typing import Annotated

import msgspec
from msgspec import Meta

PROTOCOL_VERSION = 1

# ``(?!\n)$`` rather than ``$``: Python's ``$`` (which msgspec's pattern check uses) also matches before a trailing
# newline, so ``alice\n`` passed as ``alice``. The lookahead means "the very end" in Python and in JSON Schema's
# ECMAScript regexes alike, so the OpenAPI document carries the same rule.
ROOM_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_.:@-]*(?!\n)$"
ROOM_MAX = 64
USER_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_.-]*(?!\n)$"
USER_MAX = 32
CLIENT_ID_MAX = 64
ATTACHMENTS_MAX = 10
SEQ_MAX = 2**53 - 1  # what a JavaScript client can hold exactly

Room = Annotated[str, Meta(min_length=1, max_length=ROOM_MAX, pattern=ROOM_PATTERN)]
UserName = Annotated[str, Meta(min_length=1, max_length=USER_MAX, pattern=USER_PATTERN)]
ClientId = Annotated[str, Meta(min_length=1, max_length=CLIENT_ID_MAX)]
Seq = Annotated[int, Meta(ge=0, le=SEQ_MAX)]
UploadId = Annotated[str, Meta(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9_-]+$")]


# --- client → server ------------------------------------------------------------------------------------------


class _ClientFrame(msgspec.Struct, tag_field="type", forbid_unknown_fields=True):
    pass


class Join(_ClientFrame, tag="join"):
    room: Room
    since: Seq | None = None


class Leave(_ClientFrame, tag="leave"):
    room: Room


class Send(_ClientFrame, tag="send"):
    room: Room
    body: str
    client_id: ClientId
    attachments: Annotated[list[UploadId], Meta(max_length=ATTACHMENTS_MAX)] = []


class Typing(_ClientFrame, tag="typing"):
    room: Room


class Ping(_ClientFrame, tag="ping"):
    pass


class Pong(_ClientFrame, tag="pong"):
    """The answer to a server heartbeat ping. Any frame proves liveness; this one does nothing else."""


ClientFrame = Join | Leave | Send | Typing | Ping | Pong
CLIENT_TYPES = frozenset(("join", "leave", "send", "typing", "ping", "pong"))


# --- server → client ------------------------------------------------------------------------------------------


class _ServerFrame(msgspec.Struct, tag_field="type", omit_defaults=True):
    pass


class Hello(_ServerFrame, tag="hello"):
    user: str
    protocol: int
    node: str = ""
    max_frame_bytes: int = 0
    heartbeat_interval: float = 0.0


class Joined(_ServerFrame, tag="joined"):
    room: str
    seq: int
    replay: int = 0
    capped: bool = False
    deleted_through: int = 0  # seqs up to this one were deleted by retention: not a gap, not coming


class Left(_ServerFrame, tag="left"):
    room: str
    reason: str = ""  # "removed" when a member was removed from a private room


class Ack(_ServerFrame, tag="ack"):
    client_id: str
    room: str
    seq: int
    ts: int
    duplicate: bool = False


class Message(_ServerFrame, tag="message"):
    """A stored message. ``ts`` is Unix time in milliseconds, set by the server when the message was committed."""

    room: str
    seq: int
    from_: str = msgspec.field(name="from")
    body: str
    client_id: str
    ts: int
    attachments: list[str] = []


class TypingNotice(_ServerFrame, tag="typing"):
    room: str
    user: str


class Presence(_ServerFrame, tag="presence"):
    room: str
    user: str
    online: bool


class RoomChange(_ServerFrame, tag="room"):
    """Pushed to the user a change is about, on every node, so room lists need no polling."""

    room: str
    change: str  # ROOM_CHANGES
    private: bool = False
    by: str = ""  # who did it


# created: a public room anyone can join (to everyone), or your own private room (to your other sessions);
# invited: you were added to the room; removed: someone removed you; left: you removed yourself (another session);
# deleted: an admin deleted the room (to everyone for a public room, to its members for a private one).
ROOM_CHANGES = ("created", "invited", "removed", "left", "deleted")


class PongReply(_ServerFrame, tag="pong"):
    pass


class PingRequest(_ServerFrame, tag="ping"):
    pass


_encoder = msgspec.json.Encoder()


def encode(frame: _ServerFrame) -> str:
    """Encode one server frame to the text that goes on the wire."""
    return _encoder.encode(frame).decode()


def encode_error(code: str, message: str, ref: str | None, room: str | None = None) -> str:
    """An error frame. ``ref`` is always present (null when unknown); ``room`` is added when the refused frame
    named a room, so a client can tell which of several joins failed."""
    # Built by hand because omit_defaults would drop a null ``ref``, and the contract says it is always there.
    frame: dict[str, str | None] = {"type": "error", "code": code, "message": message, "ref": ref}
    if room is not None:
        frame["room"] = room
    return _encoder.encode(frame).decode()


PONG = encode(PongReply())
PING = encode(PingRequest())
