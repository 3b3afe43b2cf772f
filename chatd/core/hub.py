"""Local fan-out: this node's connections, their subscriptions to rooms, and a bounded outbox per connection.

The hub keeps three things and nothing else:

- **connections**, by id and by user;
- **subscriptions**: which of this node's connections follow which room (a :class:`Sub` per connection and room),
  kept per room and per user (by id), so subscribing, unsubscribing and "does this user still follow the room
  here?" cost O(1) in the number of the room's subscribers;
- **outboxes**: one bounded queue of encoded frames per connection, drained by that connection's writer task (in
  the gateway).

Order, gap fills, the replay seam and epochs belong to the room's feed (``chatd.core.feed``): it calls :meth:`Hub.fan`
with each stored frame of a room, in seq order, once, and :meth:`Hub.fan_ephemeral` with typing and presence.
Nothing here awaits, so one slow socket can never hold up a delivery to the others.

Outbox bound (``limits.outbound_queue_bytes``), policy ``shed-then-close``: when a push would take an outbox past
the bound, queued ephemeral frames (typing, presence, ping) are dropped first; if that is not enough, the connection
is closed with 4008 (slow consumer). A stored message is never silently dropped: the client resumes with ``join`` +
``since`` and gets everything it missed. A frame bigger than half the bound (an *oversized* frame: a long body full
of characters JSON escapes, a message with many reactions) counts as half the bound, so it never closes a reader
that keeps up: it is queued whenever what is queued ahead of it, after shedding, fits in the other half. An outbox
therefore holds at most the bound plus two oversized frames.

A subscription starts *holding* (:meth:`Hub.subscribe`): live frames are kept, not sent, until the feed releases
it after its replay (:meth:`Hub.release`), which sends the held frames that come after the replay. Frames held
count against the same bound as the outbox.
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import Callable, Iterable

from chatd.broker.base import Delivery
from chatd.errors import Close
from chatd.metrics import Metrics


class Outbox:
    """A byte-bounded FIFO of encoded frames for one connection (see the module docstring for the policy)."""

    shed_total = 0  # ephemeral frames dropped by every outbox of this process (a /metrics counter)

    __slots__ = ("frames", "size", "limit", "overflowed", "ephemeral_count", "_space", "_waiter")

    def __init__(self, limit: int) -> None:
        self.frames: deque[tuple[str, bool]] = deque()
        self.size = 0  # bytes charged against the bound (a frame's length + 1, at most half the bound)
        self.limit = limit
        self._waiter: asyncio.Future[None] | None = None
        self.overflowed = False
        self.ephemeral_count = 0
        self._space: asyncio.Event | None = None

    def charge(self, n: int) -> int:
        """What a frame of ``n`` characters counts against the bound: its length and separator, at most half the
        bound (an oversized frame cannot close a reader that keeps up on its own)."""
        return min(n + 1, max(1, self.limit // 2))

    async def ready(self) -> None:
        """Wait until a frame is queued (the writer's wake-up: one bare future, cheaper per wake than an Event)."""
        while not self.frames:
            self._waiter = asyncio.get_running_loop().create_future()
            await self._waiter

    async def space_for(self, n: int) -> None:
        """Wait until a frame of ``n`` characters fits under half the bound (or the outbox is empty).

        For producers that can wait, such as a replay: they fill the outbox at the pace the client reads instead
        of tripping the slow-consumer bound.
        """
        want = self.charge(n)
        while self.size and self.size + want > self.limit // 2 and not self.overflowed:
            if self._space is None:
                self._space = asyncio.Event()
            await self._space.wait()

    def push(self, text: str, ephemeral: bool = False) -> bool:
        """Queue a frame. Returns False when the bound was hit and the connection must be closed."""
        if self.overflowed:
            return True  # already being closed; the close is on its way
        n = self.charge(len(text))
        if self.size + n > self.limit:
            if ephemeral:
                Outbox.shed_total += 1
                return True  # shed the newcomer itself
            self._shed_ephemeral()
            if self.size + n > self.limit:
                self.overflowed = True
                return False
        self.frames.append((text, ephemeral))
        self.size += n
        if ephemeral:
            self.ephemeral_count += 1
        waiter = self._waiter
        if waiter is not None:
            self._waiter = None
            if not waiter.done():
                waiter.set_result(None)
        return True

    def _shed_ephemeral(self) -> None:
        if not self.ephemeral_count:
            return
        kept: deque[tuple[str, bool]] = deque()
        for text, eph in self.frames:
            if eph:
                self.size -= self.charge(len(text))
            else:
                kept.append((text, eph))
        self.frames = kept
        Outbox.shed_total += self.ephemeral_count
        self.ephemeral_count = 0

    def pack(self, max_bytes: int) -> str:
        """Take queued frames (at least one, then up to ``max_bytes``) as one ``\\n``-separated text."""
        frames = self.frames
        out: list[str] = []
        taken = freed = 0
        while frames and (not out or taken + len(frames[0][0]) <= max_bytes):
            text, eph = frames.popleft()
            if eph:
                self.ephemeral_count -= 1
            out.append(text)
            taken += len(text) + 1
            freed += self.charge(len(text))
        self.size -= freed
        if self._space is not None and self.size <= self.limit // 2:
            self._space.set()
            self._space = None
        return out[0] if len(out) == 1 else "\n".join(out)


class Sub:
    """One connection's subscription to one room.

    ``last`` is the last seq passed on to it. ``held`` is a list while it holds live frames (from
    :meth:`Hub.subscribe` until :meth:`Hub.release`); ``live`` once it was released; ``answered`` once the client
    was sent ``joined`` for it; ``dropped`` names why it was taken away (``chatd.core.feed``), so a join still working
    on it stops.
    """

    __slots__ = ("last", "held", "held_bytes", "live", "answered", "dropped")

    def __init__(self) -> None:
        self.last = 0
        self.held: list[tuple[int, str]] | None = []
        self.held_bytes = 0
        self.live = False
        self.answered = False
        self.dropped = ""


class Conn:
    """What the hub knows of one local connection: whose it is (``uid``, the user's id; ``user``, their name now,
    kept current by renames), what it follows, and its outbox."""

    __slots__ = ("id", "uid", "user", "token_hash", "outbox", "subs", "kick", "last_heard")

    def __init__(
        self,
        conn_id: int,
        uid: int,
        user: str,
        token_hash: str | None,
        outbox_limit: int,
        kick: Callable[[Close], None],
        now: float,
    ) -> None:
        self.id = conn_id
        self.last_heard = now
        self.uid = uid
        self.user = user
        self.token_hash = token_hash
        self.outbox = Outbox(outbox_limit)
        self.subs: dict[str, Sub] = {}
        self.kick = kick

    def send(self, text: str, ephemeral: bool = False) -> None:
        if not self.outbox.push(text, ephemeral):
            self.kick(Close.SLOW_CONSUMER)


def _unindex(index: dict[int, dict[int, Conn]], conn: Conn) -> None:
    """Take ``conn`` out of a by-user index, and its user once they have no connection left in it."""
    mine = index.get(conn.uid)
    if mine is not None:
        mine.pop(conn.id, None)
        if not mine:
            del index[conn.uid]


class Followers:
    """This node's connections subscribed to one room, also grouped by user id."""

    __slots__ = ("conns", "by_user")

    def __init__(self) -> None:
        self.conns: dict[int, Conn] = {}
        self.by_user: dict[int, dict[int, Conn]] = {}


class Hub:
    """Connections, subscriptions and outboxes. ``on_empty(room)`` is called when a room loses its last
    subscription on this node."""

    def __init__(self, node_id: str, metrics: Metrics) -> None:
        self.node_id = node_id
        self.rooms: dict[str, Followers] = {}
        self.conns: dict[int, Conn] = {}
        self.by_user: dict[int, dict[int, Conn]] = {}  # user id -> that user's connections here, by connection id
        self.metrics = metrics
        self.on_empty: Callable[[str], None] = lambda room: None
        self._next_id = 0

    def next_id(self) -> int:
        self._next_id += 1
        return self._next_id

    # --- connections --------------------------------------------------------------------------------------------

    def register(self, conn: Conn) -> None:
        self.conns[conn.id] = conn
        self.by_user.setdefault(conn.uid, {})[conn.id] = conn

    def unregister(self, conn: Conn) -> None:
        """Forget a connection (its feeds unsubscribe it first: ``Feeds.disconnected``)."""
        for room in list(conn.subs):
            self.unsubscribe(conn, room)
        self.conns.pop(conn.id, None)
        _unindex(self.by_user, conn)

    def user_connections(self, user: int) -> int:
        return len(self.by_user.get(user, ()))

    def connections_of(self, user: int) -> Iterable[Conn]:
        return list(self.by_user.get(user, {}).values())

    def rename(self, user: int, name: str) -> None:
        """The user with this id is now called ``name``: their sessions here say so from now on."""
        for conn in self.by_user.get(user, {}).values():
            conn.user = name

    # --- subscriptions ------------------------------------------------------------------------------------------

    def subscribe(self, conn: Conn, room: str) -> Sub:
        """Subscribe ``conn`` to ``room``, holding live frames until :meth:`release`. Subscribing again on the same
        connection keeps the subscription (and what it has passed on) and holds for a new replay."""
        sub = conn.subs.get(room)
        if sub is not None:
            sub.held, sub.held_bytes = [], 0
            return sub
        followers = self.rooms.get(room)
        if followers is None:
            followers = self.rooms[room] = Followers()
        followers.conns[conn.id] = conn
        followers.by_user.setdefault(conn.uid, {})[conn.id] = conn
        sub = conn.subs[room] = Sub()
        return sub

    def unsubscribe(self, conn: Conn, room: str, sub: Sub | None = None) -> Sub | None:
        """End ``conn``'s subscription to ``room`` (only if it is ``sub``, when given); returns the one ended."""
        current = conn.subs.get(room)
        if current is None or (sub is not None and current is not sub):
            return None
        del conn.subs[room]
        followers = self.rooms.get(room)
        if followers is not None:
            followers.conns.pop(conn.id, None)
            _unindex(followers.by_user, conn)
            if not followers.conns:
                del self.rooms[room]
                self.on_empty(room)
        return current

    def release(self, conn: Conn, sub: Sub, replayed_through: int) -> None:
        """End the replay seam: pass on held frames newer than the replay, then go live."""
        held, sub.held = sub.held, None
        sub.held_bytes = 0
        sub.live = True
        if held is None:
            return
        sub.last = max(sub.last, replayed_through)
        released = 0
        for seq, text in held:
            if seq > sub.last:
                sub.last = seq
                conn.send(text)
                released += 1
        self.metrics.deliveries += released
        self.metrics.messages_out += released

    def followers(self, room: str, user: int | None = None) -> list[Conn]:
        """The connections subscribed to ``room`` (only those of the user with id ``user``, when given)."""
        followers = self.rooms.get(room)
        if followers is None:
            return []
        found = followers.conns if user is None else followers.by_user.get(user, {})
        return list(found.values())

    def users(self, room: str) -> list[int]:
        """The ids of the users with a subscription to ``room`` on this node."""
        followers = self.rooms.get(room)
        return list(followers.by_user) if followers else []

    def live_elsewhere(self, room: str, conn: Conn) -> bool:
        """Whether another connection of ``conn``'s user follows ``room`` live here (a presence question: costs
        the user's connections in the room, never the room's size)."""
        followers = self.rooms.get(room)
        if followers is None:
            return False
        return any(c is not conn and c.subs[room].live for c in followers.by_user.get(conn.uid, {}).values())

    def present(self, room: str) -> list[int]:
        """The ids of the users following ``room`` live on this node."""
        followers = self.rooms.get(room)
        if followers is None:
            return []
        return sorted(u for u, conns in followers.by_user.items() if any(c.subs[room].live for c in conns.values()))

    # --- fan-out ------------------------------------------------------------------------------------------------

    def fan(self, room: str, seq: int, text: str) -> None:
        """Pass stored frame ``seq`` of ``room`` to its subscribers: held during a replay, sent once otherwise. The
        room's feed calls this in seq order."""
        followers = self.rooms.get(room)
        if followers is None:
            return
        pushed = 0
        # No copy of the member list: Conn.send may kick, but a kick only schedules the close.
        for conn in followers.conns.values():
            sub = conn.subs[room]
            if sub.held is not None:
                sub.held.append((seq, text))
                sub.held_bytes += conn.outbox.charge(len(text))
                # Frames held during a replay count against the same bound as the outbox.
                if sub.held_bytes > conn.outbox.limit:
                    conn.kick(Close.SLOW_CONSUMER)
                continue
            if seq <= sub.last:
                continue
            sub.last = seq
            conn.send(text)
            pushed += 1
        self.metrics.deliveries += pushed
        self.metrics.messages_out += pushed

    def fan_ephemeral(self, d: Delivery) -> None:
        """Pass a typing or presence frame to the room's subscribers (not the typist's own connection)."""
        followers = self.rooms.get(d.room)
        if followers is None:
            return
        skip = d.skip if d.origin == self.node_id else 0
        pushed = 0
        for conn in followers.conns.values():
            if conn.id != skip:
                conn.send(d.payload, ephemeral=True)
                pushed += 1
        self.metrics.deliveries += pushed
