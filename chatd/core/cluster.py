"""Actions that must happen on every node: the control events nodes send each other.

When a member is removed, a token revoked or a user disabled on one node, the sockets that must react may be on
any node. Each such action is applied on the node where it happened at once and broadcast to the others as a
:class:`~chatd.broker.base.Control` event, which every node applies the same way. Users are named by their id
(``user`` below: the decimal id), never by their name:

================== ========================== ===============================================================
kind               args                       what every node does
================== ========================== ===============================================================
``member-``        room, user, private        forget the cached membership; in a private room, unsubscribe the
                                              user's sockets and tell them ``left`` with reason ``removed``
``member+``        room, user                 nothing to undo; a hook for pushes (the user's sockets are told
                                              by ``tell-user``)
``room-deleted``   room, private, by, users…  forget the room's cached memberships; unsubscribe its sockets;
                                              tell its members (a private room) or everyone
``room-archived``  room                       forget the room's cached memberships
``user-``          user                       the user was deleted or disabled: forget every cached fact about
                                              them (memberships) and close their sockets (4401); rate buckets
                                              are keyed by id, so nobody else can ever draw on theirs
``user~``          user, name, was[, display] the user was renamed (or, with ``display``, set a display name):
                                              their sessions and presence take the new name, and every socket
                                              is told with a ``user`` frame
``kick-user``      user, close code           close every socket of the user
``kick-token``     user, token hash, code     close every socket opened with that token
``tell-user``      user (payload: frame)      push the frame to every socket of the user
``tell-all``       (payload: frame)           push the frame to every socket
================== ========================== ===============================================================

Presence reports travel the same way (``chatd.core.presence``).

Delivery is at most once, so nothing depends on an event alone: sends are checked against the store's
membership in the same transaction that stores them, and a node whose link comes back re-checks every private
room it serves against the store (``Feeds.resync``).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable

from chatd.broker.base import Broker, Control
from chatd.core.feed import DELETED, REMOVED, Feeds
from chatd.core.hub import Hub
from chatd.core.presence import KINDS as PRESENCE_KINDS
from chatd.core.presence import Presence
from chatd.errors import Close
from chatd.features.rooms import Rooms
from chatd.metrics import Metrics
from chatd.protocol.frames import RoomChange, UserRenamed, encode

log = logging.getLogger("chatd.core.cluster")

MEMBER_REMOVED, MEMBER_ADDED = "member-", "member+"
KICK_USER, KICK_TOKEN = "kick-user", "kick-token"
TELL_USER, TELL_ALL = "tell-user", "tell-all"
ROOM_DELETED, ROOM_ARCHIVED = "room-deleted", "room-archived"
USER_GONE, USER_RENAMED = "user-", "user~"
QUEUE_MAX = 10_000


class Cluster:
    def __init__(
        self,
        node_id: str,
        hub: Hub,
        feeds: Feeds,
        rooms: Rooms,
        broker: Broker,
        presence: Presence,
        metrics: Metrics,
    ) -> None:
        self.node_id = node_id
        self.hub = hub
        self.feeds = feeds
        self.rooms = rooms
        self.broker = broker
        self.presence = presence
        self.metrics = metrics
        self._outgoing: asyncio.Queue[Control] = asyncio.Queue(maxsize=QUEUE_MAX)
        self._handlers: dict[str, Callable[[Control], None]] = {
            MEMBER_REMOVED: self._member_removed,
            MEMBER_ADDED: lambda e: None,
            KICK_USER: self._kick_user,
            KICK_TOKEN: self._kick_token,
            TELL_USER: self._tell_user,
            TELL_ALL: self._tell_all,
            ROOM_DELETED: self._room_deleted,
            ROOM_ARCHIVED: lambda e: self.rooms.forget_room(e.args[0]),
            USER_GONE: self._user_gone,
            USER_RENAMED: self._user_renamed,
        }

    async def emit(self, kind: str, args: list[str], payload: str = "") -> None:
        """Apply here, then send to every other node before returning (for REST calls that promise it)."""
        event = Control(kind, args, payload, self.node_id)
        self.apply(event)
        try:
            await self.broker.broadcast(event)
        except Exception as e:  # noqa: BLE001 - at most once; the other nodes resync when their link is back
            self.metrics.control_dropped += 1
            log.warning("control event %s not sent to other nodes: %s", kind, e)

    def emit_soon(self, kind: str, args: list[str], payload: str = "") -> None:
        """Apply here now, and send to the other nodes in the background (for callers that cannot await)."""
        event = Control(kind, args, payload, self.node_id)
        self.apply(event)
        try:
            self._outgoing.put_nowait(event)
        except asyncio.QueueFull:
            self.metrics.control_dropped += 1  # policy at the bound: drop, as the link itself may

    async def run(self) -> None:
        """Sends queued events for the life of the node."""
        while True:
            event = await self._outgoing.get()
            try:
                await self.broker.broadcast(event)
            except Exception as e:  # noqa: BLE001
                self.metrics.control_dropped += 1
                log.debug("control event %s not sent: %s", event.kind, e)

    def apply(self, event: Control) -> None:
        """Apply an event from any node (this one included)."""
        if event.kind in PRESENCE_KINDS:
            self.presence.apply(event)
            return
        handler = self._handlers.get(event.kind)
        if handler is None:
            log.warning("ignoring an unknown control event %r from %s (a newer node?)", event.kind, event.origin)
            return
        self.metrics.control_applied += 1
        try:
            handler(event)
        except (ValueError, IndexError):
            log.warning("ignoring a malformed control event %r from %s", event.kind, event.origin)

    # --- handlers -----------------------------------------------------------------------------------------------

    def _member_removed(self, e: Control) -> None:
        room, user, private = e.args[0], int(e.args[1]), e.args[2] == "private"
        self.rooms.forget(room, user)
        if private:
            self.feeds.drop(room, user, REMOVED)

    def _room_deleted(self, e: Control) -> None:
        """args: room, "private" or "public", who deleted it (a name, to show), then (private rooms) its members'
        ids, who alone are told; everyone is told of a public room. One event for the whole room, however many
        members it had."""
        room, private, by, members = e.args[0], e.args[1] == "private", e.args[2], {int(u) for u in e.args[3:]}
        self.rooms.forget_room(room)
        self.feeds.drop(room, None, DELETED)
        change = encode(RoomChange(room, "deleted", private, by))
        told = [c for user in members for c in self.hub.connections_of(user)] if private else self.hub.conns.values()
        for conn in list(told):
            conn.send(change)

    def _user_gone(self, e: Control) -> None:
        user = int(e.args[0])
        self.rooms.forget_user(user)
        for conn in self.hub.connections_of(user):
            conn.kick(Close.UNAUTHORIZED)

    def _user_renamed(self, e: Control) -> None:
        user, name, was = int(e.args[0]), e.args[1], e.args[2]
        display = e.args[3] if len(e.args) > 3 else None  # absent: unchanged (a rename, or a node before it)
        self.hub.rename(user, name)
        self.presence.rename(user, name)
        frame = encode(UserRenamed(user, name, was, display))
        for conn in list(self.hub.conns.values()):
            conn.send(frame)

    def _kick_user(self, e: Control) -> None:
        user, code = int(e.args[0]), Close(int(e.args[1]))
        for conn in self.hub.connections_of(user):
            conn.kick(code)

    def _kick_token(self, e: Control) -> None:
        user, token_hash, code = int(e.args[0]), e.args[1], Close(int(e.args[2]))
        for conn in self.hub.connections_of(user):
            if conn.token_hash == token_hash:
                conn.kick(code)

    def _tell_user(self, e: Control) -> None:
        for conn in self.hub.connections_of(int(e.args[0])):
            conn.send(e.payload)

    def _tell_all(self, e: Control) -> None:
        for conn in list(self.hub.conns.values()):
            conn.send(e.payload)
