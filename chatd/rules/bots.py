"""Bot accounts: users marked as bots, holding tokens scoped to rooms and actions.

A bot is a user row with ``bot`` set, made once and never turned into a person (nothing changes the flag). It has no
password, so it cannot sign in; it works with API tokens that ``chatd bots token`` (or the admin REST API) issues.
A bot's token usually carries a :class:`Scope`: which rooms (or every room the bot is a member of) and which actions
(``send``, ``read``, ``react``) it may be used for. Everything else is refused with ``forbidden``, on REST and on the
WebSocket alike: a scope names what is allowed, so a route or frame added later is refused until it is named here.

The scope narrows what the bot itself may do; it never widens it. A bot's send is an ordinary send (its user's rate
limit, room membership checked in the store's transaction, idempotency by ``client_id``).

No I/O here: the gateway asks the store for a token's scope and calls :meth:`Scope.require`.
"""

from __future__ import annotations

from typing import Annotated

import msgspec

from chatd.errors import ChatError, Err
from chatd.protocol.frames import (
    BOT_ACTION_PATTERN,
    ROOM_MAX,
    ClientFrame,
    DeleteMessage,
    EditMessage,
    Join,
    Leave,
    MarkRead,
    Ping,
    Pong,
    React,
    Send,
    SetTopic,
    Typing,
)

SEND, READ, REACT = "send", "read", "react"
ACTIONS = (SEND, READ, REACT)
ALL_ROOMS = "*"
SCOPE_ROOMS_MAX = 100

Action = Annotated[str, msgspec.Meta(pattern=BOT_ACTION_PATTERN)]
ScopeRoom = Annotated[str, msgspec.Meta(min_length=1, max_length=ROOM_MAX)]


class Scope(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """What a bot's token may do: ``actions`` in ``rooms`` (``["*"]``: any room the bot is a member of)."""

    rooms: Annotated[list[ScopeRoom], msgspec.Meta(min_length=1, max_length=SCOPE_ROOMS_MAX)]
    actions: Annotated[list[Action], msgspec.Meta(min_length=1, max_length=len(ACTIONS))] = msgspec.field(
        default_factory=lambda: list(ACTIONS)
    )

    def allows(self, action: str, room: str | None) -> bool:
        """Whether ``action`` is in scope; ``room`` None: an action on no room (only ``read``-free basics call it
        so: who am I, a ticket)."""
        if action not in self.actions:
            return False
        return room is None or ALL_ROOMS in self.rooms or room in self.rooms

    def require(self, action: str, room: str | None, ref: str | None = None) -> None:
        if not self.allows(action, room):
            where = f" in {room!r}" if room is not None else ""
            raise ChatError(Err.FORBIDDEN, f"this bot token may not {action}{where} (its scope)", ref)

    def describe(self) -> str:
        """For a table: ``send,read @ ops,ci``."""
        return f"{','.join(self.actions)} @ {','.join(self.rooms)}"


_scope_decoder = msgspec.json.Decoder(Scope)


def encode_scope(scope: Scope) -> str:
    return msgspec.json.encode(scope).decode()


def decode_scope(text: str) -> Scope:
    return _scope_decoder.decode(text)


def make_scope(rooms: list[str], actions: list[str]) -> Scope:
    """A scope from a command line or a request; ChatError(INVALID) when it would allow nothing or names an unknown
    action."""
    try:
        return msgspec.convert(
            {"rooms": list(dict.fromkeys(rooms)), "actions": list(dict.fromkeys(actions or ACTIONS))}, Scope
        )
    except msgspec.ValidationError as e:
        raise ChatError(
            Err.INVALID, f"a bot token's scope needs rooms (or *) and actions from {', '.join(ACTIONS)}: {e}"
        ) from None


# What each client frame does, for a scoped token on the WebSocket. ``None``: allowed whatever the scope (it acts on
# nothing: leaving, keepalives). A frame type missing here is refused.
FRAME_ACTIONS: dict[type[msgspec.Struct], str | None] = {
    Send: SEND,
    EditMessage: SEND,
    DeleteMessage: SEND,
    SetTopic: SEND,
    Typing: SEND,
    React: REACT,
    Join: READ,
    MarkRead: READ,
    Leave: None,
    Ping: None,
    Pong: None,
}


def require_frame(scope: Scope, frame: ClientFrame) -> None:
    """Refuse a frame outside ``scope`` with ``forbidden``."""
    if type(frame) not in FRAME_ACTIONS:
        raise ChatError(Err.FORBIDDEN, f"a bot token may not send {type(frame).__name__.lower()} frames")
    action = FRAME_ACTIONS[type(frame)]
    if action is not None:
        scope.require(action, getattr(frame, "room", None), getattr(frame, "client_id", None))


# What each REST route does, by its handler's name, for a scoped token: (action, whether it names a room in its path).
# Routes not listed are refused. ``None`` as the action: allowed whatever the scope (who am I, signing out, a ticket for
# the WebSocket, where frames are checked one by one).
REST_ACTIONS: dict[str, str | None] = {
    "me": None,
    "logout": None,
    "ticket": None,
    "send_message": SEND,
    "edit_message": SEND,
    "delete_message": SEND,
    "upload": SEND,
    "react": REACT,
    "history": READ,
    "get_room": READ,
    "list_members": READ,
    "presence": READ,
    "mark_read": READ,
    "set_topic": SEND,
}


def require_route(scope: Scope, handler: str, room: str | None) -> None:
    """Refuse a REST call outside ``scope`` with ``forbidden``."""
    if handler not in REST_ACTIONS:
        raise ChatError(Err.FORBIDDEN, "a bot token may not use this route (its scope)")
    action = REST_ACTIONS[handler]
    if action is not None:
        scope.require(action, room)
