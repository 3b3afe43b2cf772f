"""Who is connected to which room, across the deployment.

Each node knows its own facts: a user is present in a room on this node from their first connection joined there
to their last one leaving. :class:`Presence` combines those facts into the deployment-wide view that
``GET /api/rooms/{room}/presence`` answers and that presence frames announce:

- a user is present while at least one node reports them;
- every node reports changes of its own facts at once, and all of them again every ``interval`` seconds;
- a node that stops reporting (it died, or its link is down) is forgotten ``timeout`` seconds after its last
  report, which takes its users' presence with it;
- a change of the deployment-wide view for (room, user) is reported on every node through ``on_change``, so
  each node announces it to its own subscribers; nothing about presence is stored.

Users are their ids; each fact carries the user's name too, for the frames and lists people read, and a rename
(``rename``, applied on every node by the ``user~`` control event) changes it wherever it is held.

:class:`LocalPresence` is the one-node case. :class:`GossipPresence` carries the facts as control events over the
broker, so it works the same over every backend. Both are per-process state by design: the shared truth is
rebuilt from reports, never read from one node's memory.
"""

from __future__ import annotations

import abc
import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable

import msgspec

from chatd.broker.base import Control
from chatd.store.base import UserRef

log = logging.getLogger("chatd.core.presence")

# (room, user id, the user's name, online)
OnChange = Callable[[str, int, str, bool], None]

JOINED, LEFT, SNAPSHOT = "presence+", "presence-", "presence="
KINDS = frozenset((JOINED, LEFT, SNAPSHOT))

_snap_enc = msgspec.json.Encoder()
_snap_dec = msgspec.json.Decoder(dict[str, list[tuple[int, str]]])

Present = dict[str, dict[int, str]]  # room -> user id -> name


class Presence(abc.ABC):
    """The deployment-wide view of presence. See the module docstring for the contract."""

    def __init__(self, on_change: OnChange) -> None:
        self.on_change = on_change
        self.local: Present = {}  # this node's facts

    def joined(self, room: str, user: int, name: str) -> None:
        """The first connection on this node of the user ``user`` (called ``name``) joined ``room``."""
        was = self.online(room, user)
        self.local.setdefault(room, {})[user] = name
        self._report(JOINED, room, user, name)
        if not was:
            self.on_change(room, user, name, True)

    def left(self, room: str, user: int) -> None:
        """The last connection on this node of the user ``user`` left ``room``."""
        users = self.local.get(room)
        if users is None or user not in users:
            return
        name = users.pop(user)
        if not users:
            del self.local[room]
        self._report(LEFT, room, user, name)
        if not self.online(room, user):
            self.on_change(room, user, name, False)

    def rename(self, user: int, name: str) -> None:
        """The user with this id is now called ``name`` (on every node: the ``user~`` control event)."""
        for present in self._views():
            for users in present.values():
                if user in users:
                    users[user] = name

    def _views(self) -> list[Present]:
        return [self.local]

    def users(self, room: str) -> list[UserRef]:
        """Who is present in ``room`` on any node, by name."""
        found: dict[int, str] = {}
        for present in self._live_views():
            found.update(present.get(room, {}))
        return sorted((UserRef(uid, name) for uid, name in found.items()), key=lambda u: (u.name, u.id))

    def _live_views(self) -> list[Present]:
        return [self.local]

    @abc.abstractmethod
    def online(self, room: str, user: int) -> bool: ...

    @abc.abstractmethod
    def _report(self, kind: str, room: str, user: int, name: str) -> None:
        """Tell the other nodes of a change of this node's facts."""

    @abc.abstractmethod
    def apply(self, event: Control) -> None:
        """A report from another node."""

    @abc.abstractmethod
    async def run(self) -> None:
        """Background duty for the life of the node (periodic reports, expiry)."""

    def count(self) -> int:
        """Users present on this node, counted once per room."""
        return sum(len(users) for users in self.local.values())


class LocalPresence(Presence):
    """One node: its own facts are the whole truth."""

    def online(self, room: str, user: int) -> bool:
        return user in self.local.get(room, ())

    def _report(self, kind: str, room: str, user: int, name: str) -> None:
        return None  # no one else to tell

    def apply(self, event: Control) -> None:
        return None  # no other node reports

    async def run(self) -> None:
        return None


class _Peer:
    __slots__ = ("rooms", "expires")

    def __init__(self) -> None:
        self.rooms: Present = {}
        self.expires = 0.0


class GossipPresence(Presence):
    """Presence carried as control events: deltas at once, a full snapshot every ``interval`` seconds."""

    def __init__(
        self,
        on_change: OnChange,
        send: Callable[[Control], Awaitable[None]],
        node_id: str,
        interval: float = 10.0,
        timeout: float = 30.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        super().__init__(on_change)
        self.send = send
        self.node_id = node_id
        self.interval = interval
        self.timeout = timeout
        self.clock = clock
        self.peers: dict[str, _Peer] = {}
        self._outgoing: asyncio.Queue[Control] | None = None
        self._kick = asyncio.Event()

    def online(self, room: str, user: int) -> bool:
        if user in self.local.get(room, ()):
            return True
        now = self.clock()
        return any(p.expires > now and user in p.rooms.get(room, ()) for p in self.peers.values())

    def _views(self) -> list[Present]:
        return [self.local, *(p.rooms for p in self.peers.values())]

    def _live_views(self) -> list[Present]:
        now = self.clock()
        return [self.local, *(p.rooms for p in self.peers.values() if p.expires > now)]

    def _report(self, kind: str, room: str, user: int, name: str) -> None:
        self._queue(Control(kind, [room, str(user), name], origin=self.node_id))

    def _queue(self, event: Control) -> None:
        if self._outgoing is None:
            return  # not running (tests of the view alone)
        try:
            self._outgoing.put_nowait(event)
        except asyncio.QueueFull:
            # Policy at the bound: drop the delta; the next snapshot (within ``interval``) carries the truth.
            pass

    def snapshot(self) -> Control:
        rooms = {room: sorted(users.items()) for room, users in self.local.items()}
        return Control(SNAPSHOT, payload=_snap_enc.encode(rooms).decode(), origin=self.node_id)

    def report_all_now(self) -> None:
        """Send a full snapshot at once (after the link comes back)."""
        self._kick.set()

    def apply(self, event: Control) -> None:
        if event.origin == self.node_id:
            return
        peer = self.peers.get(event.origin)
        if peer is None:
            peer = self.peers[event.origin] = _Peer()
        alive = peer.expires > self.clock()
        if event.kind == SNAPSHOT:
            self._replace(peer, alive, event)
        else:
            self._change(peer, alive, event)

    def _replace(self, peer: _Peer, alive: bool, event: Control) -> None:
        """A peer's whole report: whatever differs from what it said before is announced."""
        try:
            new = {room: dict(users) for room, users in _snap_dec.decode(event.payload).items()}
        except (msgspec.DecodeError, msgspec.ValidationError):
            log.warning("ignoring a malformed presence snapshot from %s", event.origin)
            return
        old = peer.rooms if alive else {}
        keys = {(r, u): n for r, us in old.items() for u, n in us.items()}
        fresh = {(r, u): n for r, us in new.items() for u, n in us.items()}
        was = {key: (self.online(*key), fresh.get(key) or keys[key]) for key in keys.keys() ^ fresh.keys()}
        peer.rooms = new
        peer.expires = self.clock() + self.timeout
        self._announce(was)

    def _change(self, peer: _Peer, alive: bool, event: Control) -> None:
        """One user joined or left a room on a peer (a delta between snapshots)."""
        if len(event.args) != 3 or not event.args[1].isdigit():
            return
        room, user, name = event.args[0], int(event.args[1]), event.args[2]
        if not alive:
            peer.rooms = {}
        peer.expires = self.clock() + self.timeout
        was_online = self.online(room, user)
        if event.kind == JOINED:
            peer.rooms.setdefault(room, {})[user] = name
        elif event.kind == LEFT:
            users = peer.rooms.get(room)
            if users is not None:
                users.pop(user, None)
                if not users:
                    del peer.rooms[room]
        now_online = self.online(room, user)
        if now_online != was_online:
            self.on_change(room, user, name, now_online)

    def _announce(self, was: dict[tuple[str, int], tuple[bool, str]]) -> None:
        for (room, user), (before, name) in was.items():
            after = self.online(room, user)
            if after != before:
                self.on_change(room, user, name, after)

    def expire(self) -> None:
        """Forget peers whose last report is older than ``timeout``, announcing their users gone."""
        now = self.clock()
        for node_id, peer in list(self.peers.items()):
            if peer.expires > now:
                continue
            if peer.rooms:
                keys = {(r, u): n for r, us in peer.rooms.items() for u, n in us.items()}
                peer.expires = now + self.timeout  # still counted while we take the "before" view
                was = {key: (self.online(*key), name) for key, name in keys.items()}
                peer.expires = 0.0
                peer.rooms = {}
                log.info("presence: node %s stopped reporting; its %d room presences expire", node_id, len(keys))
                self._announce(was)
            del self.peers[node_id]

    async def run(self) -> None:
        self._outgoing = asyncio.Queue(maxsize=10_000)
        sender = asyncio.create_task(self._send_loop(), name="chatd-presence-send")
        try:
            while True:
                self._queue(self.snapshot())
                try:
                    await asyncio.wait_for(self._kick.wait(), self.interval)
                except TimeoutError:
                    pass
                self._kick.clear()
                self.expire()
                if sender.done():
                    sender.result()  # the sender died: its exception is this task's (the supervisor restarts both)
        finally:
            sender.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await sender

    async def _send_loop(self) -> None:
        assert self._outgoing is not None
        while True:
            event = await self._outgoing.get()
            try:
                await self.send(event)
            except Exception as e:  # noqa: BLE001 - at most once; the next snapshot repairs the view
                log.debug("presence report not sent: %s", e)
