"""Local fan-out: which of this node's connections are in which room, and a bounded outbox per connection.

The broker hands every delivery to :meth:`Hub.deliver`, which pushes the already-encoded text into the outbox of
each local connection joined to the room. Nothing here awaits, so one slow socket can never hold up a delivery to
the others: each outbox is drained by its own writer task (in the gateway) and is bounded in bytes.

Outbox overflow policy (``shed-then-close``): when a push would take an outbox past
``limits.outbound_queue_bytes``, queued ephemeral frames (typing, presence) are dropped first; if that is not
enough, the connection is closed with 4008 (slow consumer). A stored message is never silently dropped: the client
resumes with ``join`` + ``since`` and gets everything it missed.

Order: each room this node follows has a :class:`Feed` that passes stored messages on strictly in seq order, each
once. Messages reach a node from its own worker and from other nodes' workers (through the broker, at most once),
so they can arrive out of order or not at all: a frame that skips a seq waits (bounded) while the node fills the
gap from the store (``on_gap``), and repeats are dropped by seq.

Replay seam: a join with ``since`` registers the subscription *holding* live frames, then reads history, then
calls :meth:`Hub.release`, which sends held frames whose seq is past the replay. Every subscription remembers the
last seq it passed on, so nothing is delivered twice and nothing falls in the gap.
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import Callable, Iterable

from chatd.broker.base import Delivery
from chatd.errors import Close
from chatd.metrics import Metrics


class Outbox:
    """A byte-bounded FIFO of encoded frames for one connection."""

    shed_total = 0  # ephemeral frames dropped by every outbox of this process (a /metrics counter)

    __slots__ = ("frames", "size", "limit", "overflowed", "ephemeral_count", "_space", "_waiter")

    def __init__(self, limit: int) -> None:
        self.frames: deque[tuple[str, bool]] = deque()
        self.size = 0
        self.limit = limit
        self._waiter: asyncio.Future[None] | None = None
        self.overflowed = False
        self.ephemeral_count = 0
        self._space: asyncio.Event | None = None

    async def ready(self) -> None:
        """Wait until a frame is queued (the writer's wake-up: one bare future, cheaper per wake than an Event)."""
        while not self.frames:
            self._waiter = asyncio.get_running_loop().create_future()
            await self._waiter

    async def space_for(self, n: int) -> None:
        """Wait until ``n`` more bytes fit under half the bound (or the outbox is empty).

        For producers that can wait, such as a replay: they fill the outbox at the pace the client reads instead
        of tripping the slow-consumer bound.
        """
        while self.size and self.size + n > self.limit // 2 and not self.overflowed:
            if self._space is None:
                self._space = asyncio.Event()
            await self._space.wait()

    def push(self, text: str, ephemeral: bool = False) -> bool:
        """Queue a frame. Returns False when the bound was hit and the connection must be closed."""
        if self.overflowed:
            return True  # already being closed; the close is on its way
        n = len(text) + 1
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
                self.size -= len(text) + 1
            else:
                kept.append((text, eph))
        self.frames = kept
        Outbox.shed_total += self.ephemeral_count
        self.ephemeral_count = 0

    def pack(self, max_bytes: int) -> str:
        """Take queued frames (at least one, then up to ``max_bytes``) as one ``\\n``-separated text."""
        frames = self.frames
        out: list[str] = []
        taken = 0
        while frames and (not out or taken + len(frames[0][0]) <= max_bytes):
            text, eph = frames.popleft()
            if eph:
                self.ephemeral_count -= 1
            out.append(text)
            taken += len(text) + 1
        self.size -= taken
        if self._space is not None and self.size <= self.limit // 2:
            self._space.set()
            self._space = None
        return out[0] if len(out) == 1 else "\n".join(out)


class Sub:
    """One connection's subscription to one room."""

    __slots__ = ("last", "held", "held_bytes")

    def __init__(self, last: int, hold: bool) -> None:
        self.last = last
        self.held: list[tuple[int, str]] | None = [] if hold else None
        self.held_bytes = 0


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


class Feed:
    """This node's ordered view of one room: its local subscribers and the last seq passed on to them.

    ``last`` is None until the first join anchors it at the store's last seq. Frames that arrive ahead of a gap
    wait in ``early`` (bounded) until the gap is filled, from the broker or from the store.
    """

    __slots__ = ("members", "last", "early", "early_bytes", "overflowed")

    def __init__(self) -> None:
        self.members: dict[int, Conn] = {}
        self.last: int | None = None
        self.early: dict[int, str] = {}
        self.early_bytes = 0
        self.overflowed = False  # early frames were dropped: only the store can fill the gap now

    def gap(self) -> bool:
        return self.last is not None and (bool(self.early) or self.overflowed)


class Hub:
    """Local fan-out. ``on_gap(room)`` is called when a room's feed is missing seqs that the store must fill."""

    def __init__(self, node_id: str, metrics: Metrics, early_max_bytes: int = 4 * 1024 * 1024) -> None:
        self.node_id = node_id
        self.rooms: dict[str, Feed] = {}
        self.conns: dict[int, Conn] = {}
        self.by_user: dict[int, dict[int, Conn]] = {}  # user id -> that user's connections here, by connection id
        self.metrics = metrics
        self.early_max_bytes = early_max_bytes
        self.on_gap: Callable[[str], None] = lambda room: None
        self._next_id = 0

    def next_id(self) -> int:
        self._next_id += 1
        return self._next_id

    # --- connections --------------------------------------------------------------------------------------------

    def register(self, conn: Conn) -> None:
        self.conns[conn.id] = conn
        self.by_user.setdefault(conn.uid, {})[conn.id] = conn

    def unregister(self, conn: Conn) -> list[str]:
        """Forget a connection; returns the rooms where its user is no longer present."""
        gone = [room for room in list(conn.subs) if self.leave(conn, room)]
        self.conns.pop(conn.id, None)
        mine = self.by_user.get(conn.uid)
        if mine is not None:
            mine.pop(conn.id, None)
            if not mine:
                del self.by_user[conn.uid]
        return gone

    def user_connections(self, user: int) -> int:
        return len(self.by_user.get(user, ()))

    def connections_of(self, user: int) -> Iterable[Conn]:
        return list(self.by_user.get(user, {}).values())

    def rename(self, user: int, name: str) -> None:
        """The user with this id is now called ``name``: their sessions here say so from now on."""
        for conn in self.by_user.get(user, {}).values():
            conn.user = name

    # --- rooms --------------------------------------------------------------------------------------------------

    def join(self, conn: Conn, room: str, last: int, hold: bool) -> bool:
        """Subscribe ``conn`` to ``room``, passing on only seqs above ``last``. Returns True if the user was not
        present in the room on this node before (a presence change).

        Joining again on the same connection keeps the subscription (and what it has passed on) and, with
        ``hold``, starts holding live frames for a new replay."""
        sub = conn.subs.get(room)
        if sub is not None:
            if hold:
                sub.held, sub.held_bytes = [], 0
            return False
        feed = self.rooms.get(room)
        if feed is None:
            feed = self.rooms[room] = Feed()
        first = not any(c.uid == conn.uid for c in feed.members.values())
        feed.members[conn.id] = conn
        conn.subs[room] = Sub(last, hold)
        return first

    def anchor(self, room: str, last: int) -> None:
        """Start a new feed at ``last``, the store's last seq read after the feed was created.

        Anything committed later is published after that read and so reaches the feed; anything at or below
        ``last`` is in the store (the joiner's replay covers it)."""
        feed = self.rooms.get(room)
        if feed is None or feed.last is not None:
            return
        feed.last = last
        for seq in [s for s in feed.early if s <= last]:
            feed.early_bytes -= len(feed.early.pop(seq))
        self._drain_early(room, feed)

    def release(self, conn: Conn, room: str, replayed_through: int) -> None:
        """End the replay seam: pass on held frames newer than the replay, then go live."""
        sub = conn.subs.get(room)
        if sub is None or sub.held is None:
            return
        held, sub.held = sub.held, None
        sub.held_bytes = 0
        sub.last = max(sub.last, replayed_through)
        released = 0
        for seq, text in held:
            if seq > sub.last:
                sub.last = seq
                conn.send(text)
                released += 1
        self.metrics.deliveries += released
        self.metrics.messages_out += released

    def leave(self, conn: Conn, room: str) -> bool:
        """Unsubscribe; returns True if that was the user's last connection in the room on this node."""
        if conn.subs.pop(room, None) is None:
            return False
        feed = self.rooms.get(room)
        if feed is None:
            return False
        feed.members.pop(conn.id, None)
        if not feed.members:
            del self.rooms[room]
            return True
        return not any(c.uid == conn.uid for c in feed.members.values())

    def drop(self, room: str, user: int | None = None) -> list[Conn]:
        """Unsubscribe every connection of ``user`` from ``room`` (removed from a private room), or with no user
        every connection (the room was deleted); returns them."""
        feed = self.rooms.get(room)
        dropped = [c for c in feed.members.values() if user is None or c.uid == user] if feed else []
        for c in dropped:
            self.leave(c, room)
        return dropped

    def position(self, room: str) -> int | None:
        """The last seq this node passed on in ``room`` (None if no one here follows it, or not anchored yet)."""
        feed = self.rooms.get(room)
        return feed.last if feed else None

    def gaps(self) -> list[str]:
        return [room for room, feed in self.rooms.items() if feed.gap()]

    # --- fan-out ------------------------------------------------------------------------------------------------

    def deliver(self, d: Delivery) -> None:
        """Pass a frame to the room's local subscribers: stored messages strictly in seq order, each once."""
        feed = self.rooms.get(d.room)
        if feed is None:
            return
        seq = d.seq
        if not seq:
            self._fan_ephemeral(feed, d)
            return
        last = feed.last
        if last is not None and seq == last + 1:
            self._fan(d.room, feed, seq, d.payload)
            if feed.early:
                self._drain_early(d.room, feed)
        elif last is None or seq > last:
            self._hold_early(feed, seq, d.payload)
            if last is not None:
                self.on_gap(d.room)
        # else: at or below what this room has passed on: a repeat, dropped

    def _hold_early(self, feed: Feed, seq: int, text: str) -> None:
        if seq in feed.early:
            return
        if feed.early_bytes + len(text) > self.early_max_bytes:
            # Policy at the bound: forget what waits and let the store fill the whole gap; nothing is lost.
            feed.early.clear()
            feed.early_bytes = 0
            feed.overflowed = True
            return
        feed.early[seq] = text
        feed.early_bytes += len(text)

    def _drain_early(self, room: str, feed: Feed) -> None:
        early = feed.early
        while early and feed.last is not None:
            text = early.pop(feed.last + 1, None)
            if text is None:
                break
            feed.early_bytes -= len(text)
            self._fan(room, feed, feed.last + 1, text)
        if early and feed.last is not None:
            for seq in [s for s in early if s <= feed.last]:
                feed.early_bytes -= len(early.pop(seq))
            if early:
                self.on_gap(room)

    def filled(self, room: str, through: int) -> None:
        """The store has been read through ``through``; a gap no longer needs the overflow flag."""
        feed = self.rooms.get(room)
        if feed is not None and feed.last is not None and feed.last >= through:
            feed.overflowed = False

    def _fan(self, room: str, feed: Feed, seq: int, text: str) -> None:
        feed.last = seq
        pushed = 0
        # No copy of the member list: Conn.send may kick, but a kick only schedules the close.
        for conn in feed.members.values():
            sub = conn.subs[room]
            if sub.held is not None:
                sub.held.append((seq, text))
                sub.held_bytes += len(text)
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

    def _fan_ephemeral(self, feed: Feed, d: Delivery) -> None:
        skip = d.skip if d.origin == self.node_id else 0
        pushed = 0
        for conn in feed.members.values():
            if conn.id != skip:
                conn.send(d.payload, ephemeral=True)
                pushed += 1
        self.metrics.deliveries += pushed
