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
# What this server does beyond the frames of the first v1 release, listed in ``hello`` so a client can offer only
# what works.
FEATURES = ("edit", "delete", "react", "reply", "topic", "read", "mentions", "dms", "search")

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
UPLOAD_ID_PATTERN = r"^[A-Za-z0-9_-]+$"
UploadId = Annotated[str, Meta(min_length=1, max_length=64, pattern=UPLOAD_ID_PATTERN)]
TargetSeq = Annotated[int, Meta(ge=1, le=SEQ_MAX)]
# A room stream's epoch, as ``joined`` gave it (``chatd.store.base.new_epoch``); clients echo it back.
EPOCH_PATTERN = r"^[A-Za-z0-9_-]+(?!\n)$"
Epoch = Annotated[str, Meta(min_length=1, max_length=32, pattern=EPOCH_PATTERN)]
# Text-direction controls: embeddings and overrides (U+202A-202E) and isolates (U+2066-2069) reorder the characters
# after them, so a short label could display as something else ("exe.png" for "gnp.exe"). User and room names
# cannot carry them (they are ASCII); reaction emoji and topics, shown beside names, refuse them too. Message bodies
# keep them, and the web page shows them as markers instead of applying them (``chatd/web/js/bidi.js``).
BIDI_CONTROLS = r"\u202a-\u202e\u2066-\u2069"  # regex escapes: no pattern or error text holds one
# An emoji can be several code points (skin tones, ZWJ sequences, flags); whitespace, control characters and
# text-direction controls are never part of one, and refusing them keeps a reaction from smuggling layout into a
# client.
EMOJI_PATTERN = rf"^[^\s\x00-\x1f\x7f{BIDI_CONTROLS}]+(?!\n)$"
Emoji = Annotated[str, Meta(min_length=1, max_length=32, pattern=EMOJI_PATTERN)]
NOT_BLANK = r"\S"
EditBody = Annotated[str, Meta(min_length=1, pattern=NOT_BLANK)]  # not blank: a message is deleted, not emptied
TOPIC_MAX = 300
TOPIC_PATTERN = rf"^[^{BIDI_CONTROLS}]*$"
# A webhook's address as signing.check_url accepts it: http(s), a host name or IPv4 address (no IPv6 literal), an
# optional port, no credentials. Where it points is checked when it is made and used.
WEBHOOK_URL_PATTERN = (
    r"^https?://[A-Za-z0-9]([A-Za-z0-9-]{0,62}[A-Za-z0-9])?(\.[A-Za-z0-9]([A-Za-z0-9-]{0,62}[A-Za-z0-9])?)*"
    r"(:([1-9][0-9]{0,3}|[1-5][0-9]{4}|6[0-4][0-9]{3}|65[0-4][0-9]{2}|655[0-2][0-9]|6553[0-5]))?"
    r"([/?#][^\s]*)?$"
)
BOT_ACTION_PATTERN = "^(send|read|react)$"
Topic = Annotated[str, Meta(max_length=TOPIC_MAX, pattern=TOPIC_PATTERN)]
# A display name sits beside a name on one line: no text-direction controls (as topics), and no control
# characters either (a newline or an escape would break the line it is on).
DISPLAY_MAX = 64
DISPLAY_PATTERN = rf"^[^\x00-\x1f\x7f{BIDI_CONTROLS}]*(?!\n)$"
DisplayName = Annotated[str, Meta(max_length=DISPLAY_MAX, pattern=DISPLAY_PATTERN)]


# --- client → server ------------------------------------------------------------------------------------------


class _ClientFrame(msgspec.Struct, tag_field="type", forbid_unknown_fields=True):
    pass


class Join(_ClientFrame, tag="join"):
    room: Room
    since: Seq | None = None
    epoch: Epoch | None = None  # the epoch ``since`` belongs to (from a ``joined``); a mismatch resets


class Leave(_ClientFrame, tag="leave"):
    room: Room


class Send(_ClientFrame, tag="send"):
    room: Room
    body: str
    client_id: ClientId
    attachments: Annotated[list[UploadId], Meta(max_length=ATTACHMENTS_MAX)] = []
    reply_to: TargetSeq | None = None


class EditMessage(_ClientFrame, tag="edit"):
    room: Room
    seq: TargetSeq
    body: EditBody
    client_id: ClientId


class DeleteMessage(_ClientFrame, tag="delete"):
    room: Room
    seq: TargetSeq
    client_id: ClientId


class React(_ClientFrame, tag="react"):
    room: Room
    seq: TargetSeq
    emoji: Emoji
    client_id: ClientId
    remove: bool = False


class SetTopic(_ClientFrame, tag="topic"):
    room: Room
    topic: Topic
    client_id: ClientId


class MarkRead(_ClientFrame, tag="read"):
    room: Room
    seq: Seq
    client_id: ClientId | None = None


class Typing(_ClientFrame, tag="typing"):
    room: Room


class Ping(_ClientFrame, tag="ping"):
    pass


class Pong(_ClientFrame, tag="pong"):
    """The answer to a server heartbeat ping. Any frame proves liveness; this one does nothing else."""


ClientFrame = Join | Leave | Send | Typing | Ping | Pong | EditMessage | DeleteMessage | React | SetTopic | MarkRead
CLIENT_TYPES = frozenset(
    ("join", "leave", "send", "typing", "ping", "pong", "edit", "delete", "react", "topic", "read")
)
# Room changes: stored as events in the room's ordered stream, acked like a send.
CHANGE_FRAMES = (EditMessage, DeleteMessage, React, SetTopic)


# --- server → client ------------------------------------------------------------------------------------------


class _ServerFrame(msgspec.Struct, tag_field="type", omit_defaults=True):
    pass


class Hello(_ServerFrame, tag="hello"):
    user: str
    protocol: int
    node: str = ""
    max_frame_bytes: int = 0
    heartbeat_interval: float = 0.0
    features: list[str] = []
    uid: int = 0  # the user's id: what identifies them, while ``user`` (the name) may change (``user`` frames)


class Joined(_ServerFrame, tag="joined"):
    room: str
    seq: int
    epoch: str = ""  # the room stream's epoch: a client's position is (epoch, seq)
    replay: int = 0
    capped: bool = False
    deleted_through: int = 0  # seqs up to this one were deleted by retention: not a gap, not coming
    # The join's position was from another epoch or past the room's end: nothing was replayed, live delivery
    # starts after ``seq`` as for a join without since, and the client drops what it had of the room and reloads.
    reset: bool = False


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
    reply_to: int = 0  # the seq this message answers
    edited: int = 0  # when it was last edited (ms), in its current state
    deleted: bool = False  # a tombstone: body and attachments are gone
    reactions: dict[str, list[str]] = {}  # emoji -> who reacted (names), in the order they did
    uid: int = 0  # the sender's user id (``from`` is their current name)
    reaction_uids: dict[str, list[int]] = {}  # emoji -> the ids of who reacted, in the same order as ``reactions``
    bot: bool = False  # the sender is a bot account (``chatd bots``): the page shows a badge
    via: str = ""  # posted through an incoming webhook under this name (its ``username``); ``from`` is the hook's bot


# Room events: changes to a room, each with its own seq in the room's stream, so they are ordered with messages,
# replayed by join + since and filled across nodes exactly like messages. ``target`` is the seq of the message
# changed. Applying one twice has the same effect as once (each carries the resulting state, not a delta).


class Edited(_ServerFrame, tag="edit"):
    room: str
    seq: int
    from_: str = msgspec.field(name="from")
    target: int
    body: str
    client_id: str
    ts: int
    uid: int = 0


class Deleted(_ServerFrame, tag="delete"):
    room: str
    seq: int
    from_: str = msgspec.field(name="from")
    target: int
    client_id: str
    ts: int
    uid: int = 0


class Reaction(_ServerFrame, tag="reaction"):
    room: str
    seq: int
    from_: str = msgspec.field(name="from")
    target: int
    emoji: str
    on: bool  # whether ``from`` added (true) or removed (false) it
    users: list[str]  # everyone who has this emoji on the target now (names)
    client_id: str
    ts: int
    uid: int = 0
    uids: list[int] = []  # the ids of ``users``, in the same order


class TopicChanged(_ServerFrame, tag="topic"):
    room: str
    seq: int
    from_: str = msgspec.field(name="from")
    topic: str
    client_id: str
    ts: int
    uid: int = 0


# One entry of a room's stream: what replay, gap fill and fan-out carry.
Entry = Message | Edited | Deleted | Reaction | TopicChanged


class ReadState(_ServerFrame, tag="read"):
    """Where a user has read up to in a room, sent to every connection of that user when it moves."""

    room: str
    seq: int
    unread: int
    client_id: str = ""


class Mention(_ServerFrame, tag="mention"):
    """Someone wrote ``@you`` in a room you are a member of; sent to every connection you have."""

    room: str
    seq: int
    from_: str = msgspec.field(name="from")
    body: str
    ts: int
    uid: int = 0  # the sender's id


class DirectRoom(_ServerFrame, tag="dm"):
    """A direct-message room with ``with`` was opened (or reopened); sent to every connection of both people."""

    room: str
    with_: str = msgspec.field(name="with")
    uid: int = 0  # the other person's id (``with`` is their current name)


class TypingNotice(_ServerFrame, tag="typing"):
    room: str
    user: str
    uid: int = 0


class Presence(_ServerFrame, tag="presence"):
    room: str
    user: str
    online: bool
    uid: int = 0


class UserRenamed(_ServerFrame, tag="user"):
    """A user's name changed (``chatd users rename``, ``PATCH /api/admin/users/{user}``), or their display name
    (``PATCH /api/me``); sent to every connection. The user is the same (``uid``): a client shows ``name`` wherever
    it showed ``was`` for that id (the two are equal when only the display name changed). ``display_name`` is there
    when it changed ("": removed), absent when it did not."""

    uid: int
    name: str
    was: str
    display_name: str | None = None


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
