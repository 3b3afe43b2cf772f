"""Room feeds: the one owner, on this node, of each followed room's stream between the store and the subscriptions.

For every room at least one of this node's connections follows, :class:`Feeds` keeps a :class:`RoomFeed`: the
room stream's epoch, the last seq passed on, and frames waiting behind a gap. The hub (``chatd.core.hub``) keeps the
connections, their subscriptions and outboxes; everything about a room's order on this node is here.

Contract
--------
Order
    Stored frames of a room (messages and room events) reach its subscribers strictly in seq order, each once,
    however they arrive: from this node's worker, from other nodes through the broker (at most once, in any order
    between publishers), or read from the store. A frame at or below the feed's ``last`` is a repeat and is dropped.

Gaps
    A frame that skips a seq waits in ``early`` (at most ``early_max_bytes`` per room; past it, what waits is
    dropped and the store fills the whole gap) while a fill, after ``broker.gap_wait``, reads the missing seqs from
    the store and passes them on in order. The sweep (every ``broker.sweep_interval``, networked brokers) compares
    every followed room with the store and fills those behind it (a publish lost with the node that stored it). After
    the broker link was down, ``resync`` re-checks private rooms' memberships against the store and catches every
    followed room up.

Epochs
    A new feed is anchored at the store's (epoch, last seq), read after its first subscription existed: anything
    committed later is published after that read and so reaches the feed; anything at or below it is the store's
    (the joiner's replay). A join, a fill, the sweep or a resync that finds the store in another epoch than the feed
    (the room was made again or the store restored, and this node missed the event) *resets* the feed: every other
    subscription is dropped and its client told with an ``unavailable`` error naming the room, so it joins again
    and is answered ``joined`` ``reset`` (a client's position from another epoch, or past the room's end, is always
    answered that way; see ``docs/protocol.md``).

Joins: the replay seam, subscribe → authorize → anchor and replay → release
    ``join`` subscribes first, holding live frames; then authorizes against the store; then reads the room's
    position, anchors the feed and replays history; then releases the held frames that come after the replay. A
    member removal or a room deletion drops the subscription wherever it lands: before the authorization, the store
    already says so and the authorization refuses; after it, the join sees its subscription gone and stops. Every
    join ends in exactly one answer: ``joined`` (then its replay, then live frames), or an error naming the room
    (``forbidden`` / ``not_found`` when removed or deleted meanwhile; ``unavailable`` when the store cannot be
    reached, ``internal`` for any other fault: join again, with backoff). A join is never left half done: after its
    error the connection is not subscribed to the room. If the subscription is dropped after ``joined`` went out,
    the drop's own frame told the client (``left``, or the reset's error) and the replay stops.

Dropped subscriptions
    :meth:`Feeds.drop` (a member removed from a private room, a room deleted, a feed reset) ends the subscriptions
    and tells each client whose join was answered: ``left`` with reason ``removed``, or for a reset an
    ``unavailable`` error naming the room. A join still in progress answers for itself.

Disconnect
    :meth:`Feeds.disconnected` ends a connection's subscriptions. A feed with no subscriber left is forgotten at
    once, and its pending fill stops; the room's next subscriber anchors a new feed.

Presence changes (a user's first live subscription to a room on this node, or their last one ending) are reported
through ``on_presence``.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable
from typing import Protocol

from chatd.broker.base import Delivery
from chatd.core.hub import Conn, Hub, Sub
from chatd.errors import ChatError, Err, internal_message, log_fault
from chatd.metrics import Metrics
from chatd.protocol.frames import Joined, Left, encode, encode_error
from chatd.store.base import StreamPosition
from chatd.store.roles import Lifecycle, MessageStore, RoomStore

log = logging.getLogger("chatd.core.feed")

REPLAY_PAGE = 200  # stream entries per store read, for replays and fills
EARLY_MAX_BYTES = 4 * 1024 * 1024  # frames waiting behind a gap, per room
# Why a subscription was dropped (``Sub.dropped``).
REMOVED, DELETED, RESET = "removed", "deleted", "reset"

Authorize = Callable[[], Awaitable[object]]
OnPresence = Callable[[str, int, str, bool], None]  # room, user id, their name, online


class RoomFeed:
    """This node's ordered view of one room: its epoch and last seq passed on (None until anchored), and frames
    that arrived ahead of a gap."""

    __slots__ = ("epoch", "last", "early", "early_bytes", "overflowed")

    def __init__(self) -> None:
        self.epoch: str | None = None
        self.last: int | None = None
        self.early: dict[int, str] = {}
        self.early_bytes = 0
        self.overflowed = False  # early frames were dropped: only the store can fill the gap now

    def anchor(self, pos: StreamPosition) -> None:
        self.epoch, self.last = pos.epoch, pos.seq
        for seq in [s for s in self.early if s <= pos.seq]:
            self.early_bytes -= len(self.early.pop(seq))

    def gap(self) -> bool:
        return self.last is not None and (bool(self.early) or self.overflowed)


class FeedStore(MessageStore, RoomStore, Lifecycle, Protocol):
    """What the feeds read: room streams (replays, gap fills, positions), rooms and memberships (the resync after a
    broker outage), and ``ping`` (whether a failed read means the store is down)."""


class Feeds:
    """Every room feed of this node (see the module docstring for the contract)."""

    def __init__(
        self,
        hub: Hub,
        store: FeedStore,
        metrics: Metrics,
        on_presence: OnPresence,
        *,
        replay_max: int,
        gap_wait: float,
        sweep_interval: float,
        early_max_bytes: int = EARLY_MAX_BYTES,
    ) -> None:
        self.hub = hub
        self.store = store
        self.metrics = metrics
        self.on_presence = on_presence
        self.replay_max = replay_max
        self.gap_wait = gap_wait
        self.sweep_interval = sweep_interval
        self.early_max_bytes = early_max_bytes
        self._feeds: dict[str, RoomFeed] = {}
        self._fills: dict[str, asyncio.Task[None]] = {}
        self._resync_wanted = asyncio.Event()
        hub.on_empty = self._forget

    # --- delivery -----------------------------------------------------------------------------------------------

    def deliver(self, d: Delivery) -> None:
        """Pass a frame on to the room's subscribers: stored ones strictly in seq order, each once."""
        if not d.seq:
            self.hub.fan_ephemeral(d)
            return
        feed = self._feeds.get(d.room)
        if feed is None:
            return
        seq, last = d.seq, feed.last
        if last is not None and seq == last + 1:
            self._pass(d.room, feed, seq, d.payload)
            if feed.early:
                self._drain_early(d.room, feed)
        elif last is None or seq > last:
            self._hold_early(feed, seq, d.payload)
            if last is not None:
                self._schedule_fill(d.room)
        # else: at or below what this room has passed on: a repeat, dropped

    def deliver_all(self, deliveries: list[Delivery]) -> None:
        for d in deliveries:
            self.deliver(d)

    def _pass(self, room: str, feed: RoomFeed, seq: int, text: str) -> None:
        feed.last = seq
        self.hub.fan(room, seq, text)

    def _hold_early(self, feed: RoomFeed, seq: int, text: str) -> None:
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

    def _drain_early(self, room: str, feed: RoomFeed) -> None:
        early = feed.early
        while early and feed.last is not None:
            text = early.pop(feed.last + 1, None)
            if text is None:
                break
            feed.early_bytes -= len(text)
            self._pass(room, feed, feed.last + 1, text)
        if early and feed.last is not None:
            for seq in [s for s in early if s <= feed.last]:
                feed.early_bytes -= len(early.pop(seq))
            if early:
                self._schedule_fill(room)

    # --- joining and leaving ------------------------------------------------------------------------------------

    async def join(self, conn: Conn, room: str, since: int | None, epoch: str | None, authorize: Authorize) -> None:
        """The replay seam: subscribe (holding live frames) → ``authorize`` → anchor and replay → release.

        Raises :class:`ChatError` (answered as an error naming the room) when the join cannot complete; the
        connection is then not subscribed. The replay is read in pages and written at the pace the client reads
        (``Outbox.space_for``), so a long replay neither loads a whole history into memory nor trips the
        slow-consumer bound.
        """
        sub = self.hub.subscribe(conn, room)
        was_live = sub.live
        self._feeds.setdefault(room, RoomFeed())
        answered = False
        try:
            await authorize()
            self._still(sub, room)
            pos = await self.store.position(room)
            self._still(sub, room)
            if pos is None:
                raise ChatError(Err.NOT_FOUND, f"no room {room!r}")
            self._anchor(room, pos, sub)
            # A position this history cannot have: from another epoch, or past its end. Live from the end.
            reset = since is not None and (since > pos.seq or (epoch is not None and epoch != pos.epoch))
            if reset:
                since = None
            # Only a replay can reach deleted history; a plain join costs no extra read.
            deleted = await self.store.purged_through(room) if since is not None and since < pos.seq else 0
            self._still(sub, room)
            if since is not None and since < deleted:
                since = deleted  # retention took those: the replay starts after them, and the client is told
            # seqs are gapless, so the number of entries after ``since`` is known before reading them.
            backlog = max(0, pos.seq - since) if since is not None else 0
            count = min(backlog, self.replay_max)
            capped = backlog > count
            conn.send(encode(Joined(room, pos.seq, pos.epoch, count, capped, deleted, reset)))
            sub.answered = answered = True
            through = await self._replay(conn, sub, room, since if since is not None else pos.seq, count)
            if through is None:
                return  # dropped during the replay: the drop told the client
        except (ChatError, asyncio.CancelledError):
            self._abandon(conn, room, sub)
            raise
        except Exception as e:
            self._abandon(conn, room, sub)
            raise await self._failed(room, e, answered) from e
        if capped:
            # Live delivery would leave a gap after the capped replay; the client continues with another
            # join since=<last replayed seq> and goes live once a replay is not capped.
            self._abandon(conn, room, sub)
            return
        present = self.hub.live_elsewhere(room, conn)
        self.hub.release(conn, sub, through)
        if not was_live and not present:
            self.on_presence(room, conn.uid, conn.user, True)

    async def _replay(self, conn: Conn, sub: Sub, room: str, after: int, count: int) -> int | None:
        """Send ``count`` entries of ``room`` after seq ``after``; the last seq sent, or None if the subscription
        was dropped meanwhile."""
        through, remaining = after, count
        while remaining:
            page = await self.store.stream(room, after=through, limit=min(REPLAY_PAGE, remaining))
            if sub.dropped:
                return None
            if not page:
                break
            for m in page:
                text = encode(m)
                await conn.outbox.space_for(len(text))
                if sub.dropped:
                    return None
                conn.send(text)
            through = page[-1].seq
            remaining -= len(page)
        return through

    @staticmethod
    def _still(sub: Sub, room: str) -> None:
        """Raise the join's answer if its subscription was dropped while it waited."""
        if sub.dropped == REMOVED:
            raise ChatError(Err.FORBIDDEN, f"you were removed from {room!r} while joining it")
        if sub.dropped == DELETED:
            raise ChatError(Err.NOT_FOUND, f"room {room!r} was deleted while joining it")
        if sub.dropped:
            raise ChatError(Err.UNAVAILABLE, f"the history of {room!r} was replaced while joining it; join it again")

    async def _failed(self, room: str, e: Exception, answered: bool) -> ChatError:
        """The answer to a join that failed: ``unavailable`` when the store cannot be reached now (a link fault),
        ``internal`` (logged with its traceback) for any other fault. Either names the room (the gateway adds it)
        and the client joins again."""
        when = "replaying" if answered else "joining"
        if self.store.transient(e) and not await self._store_answers():
            log.warning(
                "%s %s failed, the store cannot be reached; the client is told to join again: %s", when, room, e
            )
            return ChatError(Err.UNAVAILABLE, f"could not read room {room!r} from the store; join it again")
        incident = log_fault(log, f"{when} {room!r}", e)
        return ChatError(Err.INTERNAL, f"{internal_message(incident)}; join {room!r} again")

    async def _store_answers(self) -> bool:
        try:
            return await self.store.ping()
        except Exception:  # noqa: BLE001 - not answering is the answer
            return False

    def _abandon(self, conn: Conn, room: str, sub: Sub) -> None:
        """End a join's subscription if it is still the connection's (a drop may have ended it already)."""
        if self.hub.unsubscribe(conn, room, sub) is not None and sub.live and not self.hub.live_elsewhere(room, conn):
            self.on_presence(room, conn.uid, conn.user, False)

    def leave(self, conn: Conn, room: str) -> None:
        sub = conn.subs.get(room)
        if sub is not None:
            self._abandon(conn, room, sub)

    def disconnected(self, conn: Conn) -> None:
        for room in list(conn.subs):
            self.leave(conn, room)

    def drop(self, room: str, user: int | None = None, why: str = REMOVED) -> None:
        """End the subscriptions to ``room`` of the user with id ``user`` (everyone's when None), telling the clients
        whose join was answered: ``left`` (removed, deleted) or an ``unavailable`` error naming the room (reset)."""
        for conn in self.hub.followers(room, user):
            self._drop_one(conn, room, why)

    def _drop_one(self, conn: Conn, room: str, why: str) -> None:
        sub = self.hub.unsubscribe(conn, room)
        if sub is None:
            return
        sub.dropped = why
        if sub.answered:
            if why == RESET:
                self.metrics.errors_sent += 1
                text = f"the history of {room!r} was replaced on the server; join it again (and reload it)"
                conn.send(encode_error(Err.UNAVAILABLE.code, text, None, room))
            else:
                conn.send(encode(Left(room, "removed")))
        if sub.live and not self.hub.live_elsewhere(room, conn):
            self.on_presence(room, conn.uid, conn.user, False)

    # --- epochs -------------------------------------------------------------------------------------------------

    def _anchor(self, room: str, pos: StreamPosition, keep: Sub) -> None:
        """Anchor a new feed at the store's position, or reset one found in another epoch (``keep``: the joining
        subscription, which goes on in the new epoch)."""
        feed = self._feeds.get(room)
        if feed is None:  # a reset by another join replaced it, and then everyone left; we are still subscribed
            feed = self._feeds[room] = RoomFeed()
        if feed.epoch is None:
            feed.anchor(pos)
            self._drain_early(room, feed)
        elif feed.epoch != pos.epoch:
            self._reset(room, pos, keep)

    def _reset(self, room: str, pos: StreamPosition | None = None, keep: Sub | None = None) -> None:
        """The store holds another history of ``room`` than this feed followed: drop every subscription (but
        ``keep``'s) with a reset, and start a new feed at ``pos`` for ``keep``."""
        log.warning("room %s: the store holds another epoch of it than this node followed; resetting", room)
        self._feeds.pop(room, None)
        for conn in self.hub.followers(room):
            if keep is None or conn.subs.get(room) is not keep:
                self._drop_one(conn, room, RESET)
        if keep is not None and pos is not None:
            keep.last = 0  # seqs of the old epoch mean nothing in the new one
            feed = self._feeds[room] = RoomFeed()
            feed.anchor(pos)

    def _forget(self, room: str) -> None:
        """The room's last subscription on this node ended (a pending fill sees the feed gone and stops)."""
        self._feeds.pop(room, None)

    # --- gap fills, the sweep, resync ---------------------------------------------------------------------------

    def _schedule_fill(self, room: str, delay: float | None = None) -> None:
        if room not in self._fills:
            wait = self.gap_wait if delay is None else delay
            self._fills[room] = asyncio.create_task(self._fill(room, wait), name=f"chatd-fill-{room}")

    async def _fill(self, room: str, delay: float) -> None:
        """Close a gap in a room's feed from the store, after giving in-flight deliveries ``delay`` to arrive."""
        try:
            if delay:
                await asyncio.sleep(delay)
            while True:
                feed = self._feeds.get(room)
                if feed is None or feed.last is None:
                    return
                if feed.early and not feed.overflowed:
                    target = min(feed.early) - 1
                else:
                    pos = await self.store.position(room)
                    if self._feeds.get(room) is not feed:
                        continue  # reset or forgotten meanwhile: look again
                    if pos is None:
                        self.drop(room, None, DELETED)
                        return
                    if pos.epoch != feed.epoch:
                        self._reset(room)
                        return
                    target = pos.seq
                if feed.last >= target:
                    feed.overflowed = False  # the store has been read through target
                    if not feed.gap():
                        return
                    continue
                page = await self.store.stream(room, after=feed.last, limit=min(REPLAY_PAGE, target - feed.last))
                if self._feeds.get(room) is not feed:
                    continue
                if not page:
                    log.error("room %s: the store has no entries after seq %d (expected %d)", room, feed.last, target)
                    return
                self.metrics.gap_fills += len(page)
                log.debug("filling %s from the store: %d..%d", room, page[0].seq, page[-1].seq)
                for m in page:
                    self.deliver(Delivery(room, m.seq, encode(m)))
        except Exception as e:  # noqa: BLE001 - retried by the next gap, the sweep or the next resync
            log.warning("could not fill a gap in %s from the store: %s", room, e)
        finally:
            self._fills.pop(room, None)

    def request_resync(self) -> None:
        """The broker link is back: whatever other nodes announced meanwhile was missed (``run`` resyncs)."""
        self._resync_wanted.set()

    async def run(self) -> None:
        """For the life of the node (networked brokers): the sweep every ``sweep_interval``, and a resync
        whenever one is asked for."""
        while True:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._resync_wanted.wait(), self.sweep_interval)
            if self._resync_wanted.is_set():
                self._resync_wanted.clear()
                await self.resync()
            else:
                await self.sweep()

    async def sweep(self) -> None:
        """Compare each followed room with the store: one that was deleted or made again is dropped or reset, one
        behind is filled (a message whose publish was lost and that no later message exposed as a gap)."""
        followed = {room: feed for room, feed in self._feeds.items() if feed.last is not None}
        if not followed:
            return
        try:
            positions = await self.store.positions(list(followed))
        except Exception as e:
            if not self.store.transient(e):
                raise
            log.debug("sweep skipped: %s", e)  # the worker reports the store's state
            return
        for room, feed in followed.items():
            if self._feeds.get(room) is not feed or feed.last is None:
                continue
            pos = positions.get(room)
            if pos is None:
                self.drop(room, None, DELETED)
            elif pos.epoch != feed.epoch:
                self._reset(room)
            elif pos.seq > feed.last:
                log.debug("sweep: %s is at %d here, %d in the store", room, feed.last, pos.seq)
                self._schedule_fill(room, delay=0.0)

    async def resync(self) -> None:
        """After the broker link was down: private rooms' memberships, epochs and positions from the store."""
        for room in list(self._feeds):
            try:
                record = await self.store.get_room(room)
                feed = self._feeds.get(room)
                if feed is None:
                    continue
                if record is None:
                    self.drop(room, None, DELETED)
                    continue
                if feed.epoch is not None and record.epoch != feed.epoch:
                    self._reset(room)
                    continue
                if record.private:
                    for user in self.hub.users(room):
                        if not await self.store.is_member(room, user):
                            self.drop(room, user, REMOVED)
            except Exception as e:
                if not self.store.transient(e):
                    raise
                log.warning("resync of %s failed (the sweep retries): %s", room, e)
            self._schedule_fill(room, delay=0.0)

    # --- state --------------------------------------------------------------------------------------------------

    def position(self, room: str) -> int | None:
        """The last seq this node passed on in ``room`` (None if no one here follows it, or not anchored yet)."""
        feed = self._feeds.get(room)
        return feed.last if feed else None

    def gaps(self) -> list[str]:
        return [room for room, feed in self._feeds.items() if feed.gap()]

    def fills_pending(self) -> int:
        return len(self._fills)

    async def close(self) -> None:
        """Cancel pending fills and wait for each to end."""
        tasks = list(self._fills.values())
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self._fills.clear()  # a fill cancelled before it ever ran never reached its own cleanup
