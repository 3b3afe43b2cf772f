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

:class:`LocalPresence` is the one-node case. :class:`GossipPresence` carries the facts as control events over the
broker, so it works the same over every backend. Both are per-process state by design: the shared truth is
rebuilt from reports, never read from one node's memory.
"""

from __future__ import annotations

import abc
import asyncio
import logging
import time
from collections.abc import Awaitable, Callable

import msgspec

from chatd.broker.base import Control

log = logging.getLogger("chatd.presence")

OnChange = Callable[[str, str, bool], None]

JOINED, LEFT, SNAPSHOT = "presence+", "presence-", "presence="
KINDS = frozenset((JOINED, LEFT, SNAPSHOT))

_snap_enc = msgspec.json.Encoder()
_snap_dec = msgspec.json.Decoder(dict[str, list[str]])


class Presence(abc.ABC):
    """The deployment-wide view of presence. See the module docstring for the contract."""

    def __init__(self, on_change: OnChange) -> None:
        self.on_change = on_change
        self.local: dict[str, set[str]] = {}  # this node's facts: room -> users

    def joined(self, room: str, user: str) -> None:
        """``user``'s first connection on this node joined ``room``."""
        was = self.online(room, user)
        self.local.setdefault(room, set()).add(user)
        self._report(JOINED, room, user)
        if not was:
            self.on_change(room, user, True)

    def left(self, room: str, user: str) -> None:
        """``user``'s last connection on this node left ``room``."""
        users = self.local.get(room)
        if users is None or user not in users:
            return
        users.discard(user)
        if not users:
            del self.local[room]
        self._report(LEFT, room, user)
        if not self.online(room, user):
            self.on_change(room, user, False)

    @abc.abstractmethod
    def online(self, room: str, user: str) -> bool: ...

    @abc.abstractmethod
    def users(self, room: str) -> list[str]: ...

    @abc.abstractmethod
    def _report(self, kind: str, room: str, user: str) -> None:
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

    def online(self, room: str, user: str) -> bool:
        return user in self.local.get(room, ())

    def users(self, room: str) -> list[str]:
        return sorted(self.local.get(room, ()))

    def _report(self, kind: str, room: str, user: str) -> None:
        return None  # no one else to tell

    def apply(self, event: Control) -> None:
        return None  # no other node reports

    async def run(self) -> None:
        return None


class _Peer:
    __slots__ = ("rooms", "expires")

    def __init__(self) -> None:
        self.rooms: dict[str, set[str]] = {}
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

    def online(self, room: str, user: str) -> bool:
        if user in self.local.get(room, ()):
            return True
        now = self.clock()
        return any(p.expires > now and user in p.rooms.get(room, ()) for p in self.peers.values())

    def users(self, room: str) -> list[str]:
        now = self.clock()
        found = set(self.local.get(room, ()))
        for p in self.peers.values():
            if p.expires > now:
                found |= p.rooms.get(room, set())
        return sorted(found)

    def _report(self, kind: str, room: str, user: str) -> None:
        self._queue(Control(kind, [room, user], origin=self.node_id))

    def _queue(self, event: Control) -> None:
        if self._outgoing is None:
            return  # not running (tests of the view alone)
        try:
            self._outgoing.put_nowait(event)
        except asyncio.QueueFull:
            # Policy at the bound: drop the delta; the next snapshot (within ``interval``) carries the truth.
            pass

    def snapshot(self) -> Control:
        rooms = {room: sorted(users) for room, users in self.local.items()}
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
        before_alive = peer.expires > self.clock()
        if event.kind == SNAPSHOT:
            try:
                new = {room: set(users) for room, users in _snap_dec.decode(event.payload).items()}
            except msgspec.DecodeError:
                log.warning("ignoring a malformed presence snapshot from %s", event.origin)
                return
            old = peer.rooms if before_alive else {}
            changed = {(r, u) for r, us in old.items() for u in us} ^ {(r, u) for r, us in new.items() for u in us}
            was = {key: self.online(*key) for key in changed}
            peer.rooms = new
            peer.expires = self.clock() + self.timeout
            self._announce(was)
            return
        if len(event.args) != 2:
            return
        room, user = event.args
        if not before_alive:
            peer.rooms = {}
        peer.expires = self.clock() + self.timeout
        was_online = self.online(room, user)
        if event.kind == JOINED:
            peer.rooms.setdefault(room, set()).add(user)
        elif event.kind == LEFT:
            users = peer.rooms.get(room)
            if users is not None:
                users.discard(user)
                if not users:
                    del peer.rooms[room]
        now_online = self.online(room, user)
        if now_online != was_online:
            self.on_change(room, user, now_online)

    def _announce(self, was: dict[tuple[str, str], bool]) -> None:
        for (room, user), before in was.items():
            after = self.online(room, user)
            if after != before:
                self.on_change(room, user, after)

    def expire(self) -> None:
        """Forget peers whose last report is older than ``timeout``, announcing their users gone."""
        now = self.clock()
        for node_id, peer in list(self.peers.items()):
            if peer.expires > now:
                continue
            if peer.rooms:
                keys = [(r, u) for r, us in peer.rooms.items() for u in us]
                peer.expires = now + self.timeout  # still counted while we take the "before" view
                was = {key: self.online(*key) for key in keys}
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
        finally:
            sender.cancel()

    async def _send_loop(self) -> None:
        assert self._outgoing is not None
        while True:
            event = await self._outgoing.get()
            try:
                await self.send(event)
            except Exception as e:  # noqa: BLE001 - at most once; the next snapshot repairs the view
                log.debug("presence report not sent: %s", e)
