"""One chatd node: wires store, broker, worker and hub together and implements the chat actions.

The gateway (WebSocket and REST) calls into a Node; a Node never touches a socket. Its lifecycle is
``start`` → serve → ``drain`` (stop taking sends, store and ack what was taken, close sockets with 1001) →
``close``.
"""

from __future__ import annotations

import asyncio
import logging
import os
import secrets
import socket
import time
from collections.abc import Callable

from chatd.accounts import Accounts, token_hash
from chatd.broker import make_broker
from chatd.broker.base import Completion, Delivery, IngestItem
from chatd.config import Config
from chatd.errors import ChatError, Close, Err
from chatd.hub import Conn, Hub, Outbox
from chatd.metrics import Metrics
from chatd.protocol.frames import PING, Ack, Joined, Left, Presence, TypingNotice, encode, encode_error
from chatd.protocol.limits import TokenBucket
from chatd.rooms import Rooms
from chatd.store import make_store
from chatd.store.base import NewMessage, UserRecord
from chatd.throttle import KeyedBuckets
from chatd.uploads import Sweeper
from chatd.worker import Worker

log = logging.getLogger("chatd")

Reply = Callable[[Completion], None]
REPLAY_PAGE = 200


class Node:
    def __init__(self, cfg: Config) -> None:
        self.cfg = cfg
        base = cfg.server.node_id or f"{socket.gethostname()}-{os.getpid()}"
        # A fresh suffix per run, so completions meant for an earlier run (a replayed spill) reach no one.
        self.id = f"{base}/{secrets.token_hex(3)}"
        self.metrics = Metrics()
        self.store = make_store(cfg)
        self.broker = make_broker(cfg, self.id)
        self.hub = Hub(self.id, self.metrics)
        self.worker = Worker(self.broker, self.store, self.metrics, cfg.store.batch_max)
        self.accounts = Accounts(self.store, cfg.auth.token_ttl)
        self.rooms = Rooms(self.store, cfg.rooms.auto_create, cfg.rooms.create_per_hour)
        self.upload_sweeper = Sweeper(cfg.uploads, self.store)
        # Presence changes cost a frame to every member: a user flapping join/leave is not announced past this.
        self._presence_budget = KeyedBuckets(cfg.limits.presence_rate, cfg.limits.presence_burst)
        self.draining = False
        self._buckets: dict[str, TokenBucket] = {}
        self._tickets: dict[int, Reply] = {}
        self._next_ticket = 0
        self._heartbeat: asyncio.Task[None] | None = None
        self._lag: asyncio.Task[None] | None = None
        self._register_gauges()

    # --- lifecycle ----------------------------------------------------------------------------------------------

    async def start(self) -> None:
        await self.store.open()
        await self.broker.start(self.hub.deliver, self._on_complete)
        self.worker.start()
        self._heartbeat = asyncio.create_task(self._heartbeats(), name="chatd-heartbeat")
        self._lag = asyncio.create_task(self.metrics.watch_loop_lag(), name="chatd-loop-lag")
        self.metrics.watch_gc()
        self.upload_sweeper.start()

    async def drain(self) -> None:
        """Stop taking sends, store and ack everything taken in, then close every socket with 1001."""
        self.draining = True
        timeout = self.cfg.server.drain_timeout
        try:
            await asyncio.wait_for(self.worker.drained(), timeout)
        except TimeoutError:
            log.error("drain: %d sends still queued after %.1fs", self.broker.depth(), timeout)
        for conn in list(self.hub.conns.values()):
            conn.kick(Close.GOING_AWAY)
        deadline = time.monotonic() + timeout
        while self.hub.conns and time.monotonic() < deadline:
            await asyncio.sleep(0.02)

    async def close(self) -> None:
        for task in (self._heartbeat, self._lag):
            if task is not None:
                task.cancel()
        self.upload_sweeper.stop()
        self.metrics.unwatch_gc()
        await self.worker.stop()
        await self.broker.close()
        await self.store.close()

    async def ready(self) -> dict[str, bool]:
        return {
            "store": await self.store.ping(),
            "broker": self.broker.ready(),
            "worker": self.worker.alive(),
            "accepting": not self.draining,
        }

    # --- sending ------------------------------------------------------------------------------------------------

    def bucket(self, user: str) -> TokenBucket:
        b = self._buckets.get(user)
        if b is None:
            lim = self.cfg.limits
            b = self._buckets[user] = TokenBucket(lim.send_rate, lim.send_burst, time.monotonic())
        return b

    async def submit(
        self, user: str, room: str, body: str, client_id: str, attachments: list[str], reply: Reply
    ) -> None:
        """Validate a send and queue it. ``reply`` gets its Completion once it is stored (or refused)."""
        if self.draining:
            raise ChatError(Err.UNAVAILABLE, "server is draining; resend after reconnecting", client_id)
        bucket = self.bucket(user)  # one bucket per user, shared by their sockets and REST calls
        if not bucket.take(time.monotonic()):
            self.metrics.rate_limited += 1
            raise ChatError(
                Err.RATE_LIMITED, f"send rate over the limit; retry in {bucket.retry_after():.2f}s", client_id
            )
        await self.rooms.require_member(room, user)
        if attachments:
            wanted = list(dict.fromkeys(attachments))
            bound = await self.store.attach_uploads(wanted, user, room)
            if len(bound) != len(wanted):
                missing = sorted(set(wanted) - set(bound))
                raise ChatError(Err.NOT_FOUND, f"unknown attachment(s): {', '.join(missing)}", client_id)
            attachments = wanted
        self._next_ticket += 1
        ticket = self._next_ticket
        self._tickets[ticket] = reply
        try:
            await self.broker.submit(IngestItem(NewMessage(room, user, client_id, body, attachments), self.id, ticket))
        except BaseException:
            self._tickets.pop(ticket, None)
            raise
        self.metrics.messages_in += 1

    async def submit_and_wait(
        self, user: str, room: str, body: str, client_id: str, attachments: list[str]
    ) -> Completion:
        fut: asyncio.Future[Completion] = asyncio.get_running_loop().create_future()

        def reply(c: Completion) -> None:
            if not fut.done():
                fut.set_result(c)

        await self.submit(user, room, body, client_id, attachments, reply)
        return await fut

    def _on_complete(self, c: Completion) -> None:
        reply = self._tickets.pop(c.ticket, None)
        if reply is not None:
            reply(c)

    # --- connection actions -------------------------------------------------------------------------------------

    def reply_to(self, conn: Conn) -> Reply:
        def reply(c: Completion) -> None:
            if c.error:
                self.metrics.errors_sent += 1
                conn.send(encode_error(c.error, c.message, c.client_id, c.room))
            else:
                conn.send(encode(Ack(c.client_id, c.room, c.seq, c.ts, c.duplicate)))

        return reply

    async def join(self, conn: Conn, room: str, since: int | None) -> None:
        """Join rules, then the replay seam: subscribe holding live frames, read, send, release.

        The replay is read in pages and written at the pace the client reads (``Outbox.space_for``), so a long
        replay neither loads a whole history into memory nor trips the slow-consumer bound.
        """
        await self.rooms.join(room, conn.user)
        first = self.hub.join(conn, room, since or 0, hold=True)
        try:
            last = await self.store.last_seq(room)
            # seqs are gapless, so the number of messages after ``since`` is known before reading them.
            backlog = max(0, last - since) if since is not None else 0
            count = min(backlog, self.cfg.rooms.replay_max)
            capped = backlog > count
            conn.send(encode(Joined(room, last, count, capped)))
            through = since if since is not None else last
            remaining = count
            while remaining:
                page = await self.store.history(room, after=through, limit=min(REPLAY_PAGE, remaining))
                if not page:
                    break
                for m in page:
                    text = encode(m)
                    await conn.outbox.space_for(len(text))
                    conn.send(text)
                through = page[-1].seq
                remaining -= len(page)
        except BaseException:
            self.hub.leave(conn, room)
            raise
        if capped:
            # Live delivery would leave a gap after the capped replay; the client continues with another
            # join since=<last replayed seq> and goes live once a replay is not capped.
            self.hub.leave(conn, room)
            return
        self.hub.release(conn, room, through)
        if first:
            await self._presence(room, conn.user, True)

    async def leave(self, conn: Conn, room: str) -> None:
        if self.hub.leave(conn, room):
            await self._presence(room, conn.user, False)
        conn.send(encode(Left(room)))

    async def typing(self, conn: Conn, room: str) -> None:
        if room not in conn.subs:
            await self.rooms.require_member(room, conn.user)
        await self.broker.publish([Delivery(room, 0, encode(TypingNotice(room, conn.user)), self.id, conn.id)])

    # --- actions that reach a user's sockets wherever they are ------------------------------------------------
    # The gateway calls these instead of touching the hub, so that scale-out can route them to every node.

    def tell_user(self, user: str, text: str) -> None:
        """Push an encoded frame to every open connection of ``user``."""
        for conn in self.hub.connections_of(user):
            conn.send(text)

    def kick_user(self, user: str, code: Close) -> None:
        """Close every open connection of ``user`` (disabled account)."""
        for conn in self.hub.connections_of(user):
            conn.kick(code)

    def kick_token(self, user: str, token_hash: str, code: Close) -> None:
        """Close every open connection that authenticated with this token (logout, revoked token)."""
        for conn in self.hub.connections_of(user):
            if conn.token_hash == token_hash:
                conn.kick(code)

    async def logout(self, user: str, token: str) -> bool:
        revoked = await self.accounts.logout(token)
        self.kick_token(user, token_hash(token), Close.UNAUTHORIZED)
        return revoked

    async def remove_member(self, room: str, actor: UserRecord, target: str) -> bool:
        """Remove ``target`` from ``room``; in a private room their sockets stop getting its frames at once."""
        removed, target = await self.rooms.remove(room, actor, target)
        record = await self.store.get_room(room)
        if record is not None and record.private:
            for conn in self.hub.drop_member(room, target):
                conn.send(encode(Left(room, "removed")))
        return removed

    async def presence(self, room: str) -> list[str]:
        """Users connected to ``room``."""
        return self.hub.present(room)

    async def disconnected(self, conn: Conn) -> None:
        for room in self.hub.unregister(conn):
            await self._presence(room, conn.user, False)

    async def _presence(self, room: str, user: str, online: bool) -> None:
        if self._presence_budget.take(user, time.monotonic()):
            return  # over limits.presence_rate: not announced (presence is ephemeral; GET .../presence is exact)
        await self.broker.publish([Delivery(room, 0, encode(Presence(room, user, online)), self.id)])

    async def _heartbeats(self) -> None:
        """Ping quiet connections; close those silent past the timeout (dead peers)."""
        lim = self.cfg.limits
        period = min(lim.heartbeat_interval, lim.heartbeat_timeout) / 2
        while True:
            await asyncio.sleep(period)
            now = time.monotonic()
            for conn in list(self.hub.conns.values()):
                silent = now - conn.last_heard
                if silent >= lim.heartbeat_timeout:
                    conn.kick(Close.HEARTBEAT_TIMEOUT)
                elif silent >= lim.heartbeat_interval:
                    conn.send(PING, ephemeral=True)

    # --- metrics ------------------------------------------------------------------------------------------------

    def _register_gauges(self) -> None:
        g = self.metrics.gauges
        g["chatd_connections"] = lambda: len(self.hub.conns)
        g["chatd_ingest_queue_depth"] = lambda: self.broker.depth()
        g["chatd_rooms_active"] = lambda: len(self.hub.rooms)
        g["chatd_outbox_bytes"] = lambda: sum(c.outbox.size for c in self.hub.conns.values())
        g["chatd_acks_pending"] = lambda: len(self._tickets)
        g["chatd_draining"] = lambda: int(self.draining)
        self.metrics.sources.append(self.broker.stats)
        self.metrics.sources.append(lambda: {"chatd_ephemeral_shed_total": Outbox.shed_total})
