"""One chatd node: wires store, broker, worker, room feeds and hub together and implements the chat actions.

The gateway (WebSocket and REST) calls into a Node; a Node never touches a socket. Its lifecycle is
``start`` → serve → ``drain`` (stop taking sends, store and ack what was taken, close sockets with 1001) →
``close``.

Every background task of the node (the persist worker, heartbeats, loop lag, the cluster sender, presence, the
feeds' sweep and resync, the upload sweeper, retention, the webhook deliverer) runs under one
:class:`~chatd.supervisor.Supervisor`: a crash is logged with its traceback, counted in
``chatd_task_crashes_total{task=...}``, and restarted with backoff, and ``/readyz`` is not ready, naming the task,
while a required one is down.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import secrets
import socket
import time
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING

from chatd.accounts.throttle import KeyedBuckets
from chatd.accounts.users import Accounts, check_username, token_hash
from chatd.broker import make_broker
from chatd.broker.base import BrokerEvents, BrokerUnavailable, Completion, Delivery, IngestItem
from chatd.config import Config
from chatd.core.cluster import (
    KICK_TOKEN,
    KICK_USER,
    MEMBER_REMOVED,
    ROOM_ARCHIVED,
    ROOM_DELETED,
    TELL_ALL,
    TELL_USER,
    USER_GONE,
    USER_RENAMED,
    Cluster,
)
from chatd.core.feed import Feeds
from chatd.core.hub import Conn, Hub, Outbox
from chatd.core.presence import GossipPresence, LocalPresence, Presence
from chatd.core.worker import Worker
from chatd.errors import ChatError, Close, Err
from chatd.features.hooks import RoomHooks
from chatd.features.outhooks.deliverer import Deliverer
from chatd.features.outhooks.manage import RoomWebhooks
from chatd.features.personal import Personal
from chatd.features.retention import Retention
from chatd.features.rooms import Purged, Rooms, purge_room
from chatd.features.uploads import StoreDisk, Sweeper, UploadRules, delete_files
from chatd.metrics import Metrics
from chatd.protocol.frames import (
    PING,
    Ack,
    DirectRoom,
    Left,
    ReadState,
    RoomChange,
    TypingNotice,
    encode,
    encode_error,
)
from chatd.protocol.frames import Presence as PresenceFrame
from chatd.rules.dms import dm_room
from chatd.rules.search import Hit
from chatd.store import make_store
from chatd.store.base import NewMessage, RoomRecord, UserRecord, UserRef
from chatd.store.room_events import TOPIC
from chatd.supervisor import Supervisor

if TYPE_CHECKING:
    from chatd.accounts.sso import Flow, OidcClient

log = logging.getLogger("chatd")

Reply = Callable[[Completion], None]


class Node:
    def __init__(self, cfg: Config) -> None:
        self.cfg = cfg
        # The name is stable across restarts (it names this node's ingest queue, so a restart takes up what the
        # last run left); the id adds a fresh suffix per run, so completions meant for an earlier run reach no one.
        self.name = cfg.server.node_id or f"{socket.gethostname()}:{cfg.server.port}"
        self.id = f"{self.name}/{secrets.token_hex(3)}"
        self.metrics = Metrics()
        self.store = make_store(cfg)
        self.broker = make_broker(cfg, self.id, self.name)
        self.limiter = self.broker.limiter()  # cluster-wide where the broker can keep shared counters
        self.hub = Hub(self.id, self.metrics)
        self.feeds = Feeds(
            self.hub,
            self.store,
            self.metrics,
            self._presence_changed,
            replay_max=cfg.rooms.replay_max,
            gap_wait=cfg.broker.gap_wait,
            sweep_interval=cfg.broker.sweep_interval,
        )
        self.worker = Worker(
            self.broker,
            self.store,
            self.metrics,
            cfg.store.batch_max,
            self._on_complete,
            self.feeds.deliver_all,
            lambda message, users: self.personal.mentioned(message, users),
            lambda ids: delete_files(cfg.uploads.dir, ids),
        )
        self.accounts = Accounts(self.store, cfg.auth.token_ttl)
        self.rooms = Rooms(self.store, self.limiter, cfg.rooms.auto_create, cfg.rooms.create_per_hour)
        self.rooms.listener = self._room_changed
        self.upload_sweeper = Sweeper(cfg.uploads, self.store)
        self.retention = Retention(cfg.retention, cfg.uploads.dir, self.store)
        self.webhooks = Deliverer(cfg.webhooks, self.store, self.metrics, self.name)
        # The roles the gateway acts through, so that no route reaches into the store.
        self.uploads = UploadRules(cfg.uploads, self.store, self.limiter)
        self.store_disk = StoreDisk(self.store, cfg.store.min_free_bytes)
        self.room_hooks = RoomHooks(self.store)
        self.room_webhooks = RoomWebhooks(self.store, cfg.webhooks)
        # Presence changes cost a frame to every member: a user flapping join/leave is not announced past this.
        self._presence_budget = KeyedBuckets(cfg.limits.presence_rate, cfg.limits.presence_burst)
        self.presence: Presence
        if not self.broker.cluster_wide:
            self.presence = LocalPresence(self._announce_presence)
        else:
            self.presence = GossipPresence(
                self._announce_presence,
                self.broker.broadcast,
                self.id,
                interval=cfg.broker.presence_interval,
                timeout=cfg.broker.node_timeout,
            )
        self.cluster = Cluster(self.id, self.hub, self.feeds, self.rooms, self.broker, self.presence, self.metrics)
        self.personal = Personal(self.store, self.rooms, self.tell_user)
        self.draining = False
        self.link_up = True
        self._tickets: dict[int, Reply] = {}
        self._ticket_freed = asyncio.Event()  # set when a ticket is answered (senders waiting at the bound wake)
        self._next_ticket = 0
        self.supervisor = Supervisor()
        self._register_gauges()

    # --- lifecycle ----------------------------------------------------------------------------------------------

    async def start(self) -> None:
        await self.store.open()
        events = BrokerEvents(self.feeds.deliver, self._on_complete, self.cluster.apply, self._on_link)
        try:
            await self.broker.start(events)
            await self.limiter.start()
        except BaseException:
            # What already started (the store's threads, a broker's tasks) would keep the process from exiting with
            # the error.
            with contextlib.suppress(Exception):
                await self.broker.close()
            await self.store.close()
            raise
        sup = self.supervisor
        sup.start("chatd-worker", self.worker.run)
        sup.start("chatd-heartbeat", self._heartbeats)
        sup.start("chatd-loop-lag", self.metrics.watch_loop_lag, required=False)
        sup.start("chatd-cluster", self.cluster.run)
        sup.start("chatd-presence", self.presence.run)
        if self.broker.cluster_wide:
            sup.start("chatd-sweep", self.feeds.run)  # the sweep, and the resync after a broker outage
        if self.upload_sweeper.enabled:
            sup.start("chatd-upload-sweeper", self.upload_sweeper.run, required=False)
        if self.retention.enabled:
            sup.start("chatd-retention", self.retention.run, required=False)
        # Not required: a receiver or a webhook's trouble is no reason to send chat clients elsewhere.
        sup.start("chatd-webhooks", self.webhooks.run, required=False)
        self.metrics.watch_gc()

    async def drain(self) -> None:
        """Stop taking sends, store and ack this node's own pending sends, then close every socket with 1001."""
        self.draining = True
        timeout = self.cfg.server.drain_timeout
        try:
            async with asyncio.timeout(timeout):
                while self._tickets or self.broker.depth() or self.worker.busy:
                    await asyncio.sleep(0.01)
        except TimeoutError:
            log.error("drain: %d sends still unacked after %.1fs", len(self._tickets), timeout)
        for conn in list(self.hub.conns.values()):
            conn.kick(Close.GOING_AWAY)
        deadline = time.monotonic() + timeout
        while self.hub.conns and time.monotonic() < deadline:
            await asyncio.sleep(0.02)

    async def close(self) -> None:
        await self.supervisor.stop()  # every background task cancelled and awaited, the worker among them
        await self.feeds.close()
        self.metrics.unwatch_gc()
        await self.limiter.close()
        await self.broker.close()
        await self.store.close()

    async def ready(self) -> dict[str, bool]:
        """Readiness checks, each true when fine (``/readyz``; ``down_tasks`` names what ``tasks`` is about)."""
        return {
            "store": self.worker.store_ok and await self.store.ping(),
            "broker": self.broker.ready(),
            "worker": self.supervisor.running("chatd-worker"),
            "tasks": not self.supervisor.down(),
            "accepting": not self.draining,
        }

    def down_tasks(self) -> list[str]:
        """Required background tasks that crashed and wait to be restarted."""
        return self.supervisor.down()

    # --- the link to the other nodes ----------------------------------------------------------------------------

    def _on_link(self, up: bool) -> None:
        if up == self.link_up:
            return
        self.link_up = up
        if not up:
            log.error("broker link down: sends are refused until it is back; fan-out to other nodes paused")
            return
        self.metrics.broker_reconnects += 1
        log.info("broker link up again: catching every room up from the store")
        # Whatever other nodes announced meanwhile was missed: membership answers, deliveries, presence.
        self.rooms.forget_all()
        self.feeds.request_resync()
        if isinstance(self.presence, GossipPresence):
            self.presence.report_all_now()

    # --- sending ------------------------------------------------------------------------------------------------

    async def _admit(self, user: int, client_id: str) -> None:
        if self.draining:
            raise ChatError(Err.UNAVAILABLE, "server is draining; resend after reconnecting", client_id)
        # One bucket per user, shared by their sockets and REST calls on every node (``chatd.limiter``).
        lim = self.cfg.limits
        wait = await self.limiter.take(f"send:{user}", lim.send_rate, lim.send_burst)
        if wait:
            self.metrics.rate_limited += 1
            raise ChatError(Err.RATE_LIMITED, f"send rate over the limit; retry in {wait:.2f}s", client_id)

    async def submit(
        self,
        user: int,
        room: str,
        body: str,
        client_id: str,
        attachments: list[str],
        reply: Reply,
        reply_to: int = 0,
        via: str = "",
    ) -> None:
        """Validate a send from the user with id ``user`` and queue it. ``reply`` gets its Completion once it is
        stored (or refused). ``via``: the name an incoming webhook posts under (``chatd.features.hooks``). Refused
        ``unavailable`` while the store's disk is below ``store.min_free_bytes``, whichever way the send came in."""
        self.store_disk.require(client_id)
        await self._admit(user, client_id)
        await self.rooms.require_member(room, user)
        if attachments:
            wanted = list(dict.fromkeys(attachments))
            bound = await self.store.attach_uploads(wanted, user, room)
            if len(bound) != len(wanted):
                missing = sorted(set(wanted) - set(bound))
                raise ChatError(Err.NOT_FOUND, f"unknown attachment(s): {', '.join(missing)}", client_id)
            attachments = wanted
        await self._enqueue(NewMessage(room, user, client_id, body, attachments, reply_to=reply_to, via=via), reply)

    async def mark_read(self, user: int, room: str, seq: int, client_id: str = "") -> ReadState:
        """Move ``user``'s read position (``Personal.mark_read``). Each one writes the store and tells every node,
        so it draws on the user's send budget like a send."""
        await self._admit(user, client_id)
        return await self.personal.mark_read(user, room, seq, client_id)

    async def submit_change(self, change: NewMessage, reply: Reply) -> None:
        """Queue a room change (edit, delete, reaction, topic: ``chatd.store.room_events``) exactly like a send: the
        same disk check, rate, membership check, ingest queue and ack after storage; the store decides whether it
        is allowed."""
        self.store_disk.require(change.client_id)
        await self._admit(change.sender, change.client_id)
        await self.rooms.require_member(change.room, change.sender)
        if change.kind == TOPIC:
            await self.rooms.require_topic_setter(change.room, change.sender)
        await self._enqueue(change, reply)

    async def _enqueue(self, msg: NewMessage, reply: Reply) -> None:
        """Queue one send with a ticket for its answer. At most ``limits.pending_sends_max`` sends are unanswered
        on this node (policy at the bound: backpressure, the sender waits for one to be answered). A ticket is the
        only RAM a queued send costs beyond the broker's own queue: a number and a reference to the sender's reply
        (one function per WebSocket session; a REST send's own), so a long spill file has a bounded shadow here."""
        bound = self.cfg.limits.pending_sends_max
        if bound and len(self._tickets) >= bound:
            self.metrics.pending_sends_waits += 1
            while len(self._tickets) >= bound:
                self._ticket_freed.clear()
                await self._ticket_freed.wait()
        self._next_ticket += 1
        ticket = self._next_ticket
        self._tickets[ticket] = reply
        try:
            await self.broker.submit(IngestItem(msg, self.id, ticket))
        except BrokerUnavailable:
            self._tickets.pop(ticket, None)
            raise ChatError(
                Err.UNAVAILABLE, "the message queue is unreachable; resend with the same client_id", msg.client_id
            ) from None
        except BaseException:
            self._tickets.pop(ticket, None)
            raise
        self.metrics.messages_in += 1

    async def submit_and_wait(
        self,
        user: int,
        room: str,
        body: str,
        client_id: str,
        attachments: list[str],
        reply_to: int = 0,
        via: str = "",
    ) -> Completion:
        """``submit`` for REST: returns once the message is stored or refused (see ``_completed`` for the bound)."""
        return await self._completed(
            lambda reply: self.submit(user, room, body, client_id, attachments, reply, reply_to, via), client_id
        )

    async def change_and_wait(self, change: NewMessage) -> Completion:
        """``submit_change`` for REST: returns once the change is stored or refused."""
        return await self._completed(lambda reply: self.submit_change(change, reply), change.client_id)

    async def _completed(self, submit: Callable[[Reply], Awaitable[None]], client_id: str) -> Completion:
        """Submit with a reply that resolves a future, and wait for it: the REST form of a WebSocket ack. Waits at
        most ``limits.rest_send_timeout`` (0: no bound), then answers ``unavailable``; the send stays queued and
        may be stored later, so the client's resend with the same client_id is safe (stored once, ``duplicate``)."""
        fut: asyncio.Future[Completion] = asyncio.get_running_loop().create_future()

        def reply(c: Completion) -> None:
            if not fut.done():
                fut.set_result(c)

        bound = self.cfg.limits.rest_send_timeout
        try:
            async with asyncio.timeout(bound or None):
                await submit(reply)  # may wait too: for the broker's bound, or for limits.pending_sends_max
                return await fut
        except TimeoutError:
            self.metrics.rest_send_timeouts += 1
            raise ChatError(
                Err.UNAVAILABLE,
                f"not stored within {bound:g}s (limits.rest_send_timeout); it may still be stored: resend with the "
                "same client_id, which stores it at most once",
                client_id,
            ) from None

    def _on_complete(self, c: Completion) -> None:
        reply = self._tickets.pop(c.ticket, None)
        if reply is not None:
            self._ticket_freed.set()
            reply(c)

    # --- connection actions -------------------------------------------------------------------------------------

    def new_conn_id(self) -> int:
        """A number for a new connection, unique on this node (with ``id``: in the deployment)."""
        return self.hub.next_id()

    def connected(self, conn: Conn) -> None:
        """``conn`` is open: user-addressed frames and kicks reach it from now on (``disconnected`` ends that)."""
        self.hub.register(conn)

    def reply_to(self, conn: Conn) -> Reply:
        def reply(c: Completion) -> None:
            if c.error:
                self.metrics.errors_sent += 1
                conn.send(encode_error(c.error, c.message, c.client_id, c.room))
            else:
                conn.send(encode(Ack(c.client_id, c.room, c.seq, c.ts, c.duplicate)))

        return reply

    async def join(self, conn: Conn, room: str, since: int | None, epoch: str | None = None) -> None:
        """Subscribe ``conn`` to ``room`` through the room's feed (``Feeds.join``: subscribe holding live frames →
        the join rules against the store → anchor and replay → release). Raises ChatError, naming the room, when
        the join cannot complete."""
        await self.feeds.join(conn, room, since, epoch, lambda: self.rooms.join(room, conn.uid, conn.user))

    async def leave(self, conn: Conn, room: str) -> None:
        self.feeds.leave(conn, room)
        conn.send(encode(Left(room)))

    async def typing(self, conn: Conn, room: str) -> None:
        if room not in conn.subs:
            await self.rooms.require_member(room, conn.uid)
        d = Delivery(room, 0, encode(TypingNotice(room, conn.user, conn.uid)), self.id, conn.id)
        self.hub.fan_ephemeral(d)
        try:
            await self.broker.publish([d])
        except Exception:  # noqa: BLE001, S110 - typing is ephemeral: at most once, never worth an error
            pass

    # --- actions that reach a user's sockets wherever they are ------------------------------------------------
    # The gateway calls these instead of touching the hub, so that scale-out can route them to every node.

    def tell_user(self, user: int, text: str) -> None:
        """Push an encoded frame to every open connection of the user with id ``user``, on every node."""
        self.cluster.emit_soon(TELL_USER, [str(user)], text)

    def tell_everyone(self, text: str) -> None:
        """Push an encoded frame to every open connection, on every node."""
        self.cluster.emit_soon(TELL_ALL, [], text)

    async def kick_user(self, user: int, code: Close = Close.UNAUTHORIZED) -> None:
        """Close every open connection of the user with id ``user`` (new password), on every node, before returning
        (as far as the broker reaches). For a deleted or disabled user, ``user_gone``."""
        await self.cluster.emit(KICK_USER, [str(user), str(int(code))])

    async def kick_token(self, user: int, token_hash: str, code: Close = Close.UNAUTHORIZED) -> None:
        """Close every open connection that authenticated with this token (logout, revoked token), on every node."""
        await self.cluster.emit(KICK_TOKEN, [str(user), token_hash, str(int(code))])

    async def logout(self, user: int, token: str) -> bool:
        revoked = await self.accounts.logout(token)
        await self.kick_token(user, token_hash(token))
        return revoked

    async def user_gone(self, user: int) -> None:
        """The user with id ``user`` was deleted or disabled (the store already says so): every node forgets what it
        cached about them and closes their sockets (4401), before this returns (as far as the broker reaches)."""
        await self.cluster.emit(USER_GONE, [str(user)])

    async def rename_user(self, user: int, name: str) -> str:
        """Rename a live user (``Store.rename_user``: conflict when taken, not_found when there is no such user) and
        tell every node; returns the old name. The name's form is checked here."""
        check_username(name)
        was = await self.store.rename_user(user, name)
        await self.user_renamed(user, name, was)
        return was

    async def delete_user(self, uid: int) -> list[str] | None:
        """Delete the user (a tombstone stays: ``Store.delete_user``), close their sockets on every node and delete
        their uploads' files; the ids of those uploads, or None if there was no such user."""
        upload_ids = await self.store.delete_user(uid)
        if upload_ids is None:
            return None
        await self.user_gone(uid)
        await delete_files(self.cfg.uploads.dir, upload_ids)
        return upload_ids

    async def set_account(self, uid: int, *, disabled: bool | None, admin: bool | None) -> None:
        """Disable or enable, promote or demote (None: unchanged); a disabled user's sockets close on every node."""
        await self.accounts.set_flags(uid, disabled=disabled, admin=admin)
        if disabled:
            await self.user_gone(uid)

    async def reset_password(self, uid: int, password: str | None, keep_tokens: bool) -> int:
        """An admin sets the user's password (None: no password sign-in); unless ``keep_tokens`` their tokens are
        revoked and their sockets closed on every node. How many tokens were revoked."""
        await self.accounts.set_password(uid, password)
        if keep_tokens:
            return 0
        revoked = await self.accounts.revoke_all(uid)
        await self.kick_user(uid)
        return len(revoked)

    async def sso_user(self, client: OidcClient, flow: Flow | None, params: dict[str, str]) -> UserRecord:
        """The user a single sign-on's answer (``params``) names: checked against the browser's ``flow``, which is
        spent, and found by the identity's (issuer, sub) or made on its first sign-in."""
        from chatd.accounts.sso import account_for  # the oidc extra, present when sign-on is configured

        identity = await client.finish(self.store, flow, params)
        return await account_for(self.store, self.cfg.auth.oidc, identity, self.cfg.auth.first_user_admin)

    async def claim_once(self, key: str, ttl: float) -> bool:
        """Claim a one-use key (a ticket, a control request) for ``ttl`` seconds on every node: False for a
        repeat (``Store.claim_once``)."""
        return await self.store.claim_once(key, ttl)

    async def deployment_key(self) -> bytes | None:
        """The signing key the store keeps for the deployment (``Store.deployment_key``)."""
        return await self.store.deployment_key()

    async def set_display_name(self, user: UserRecord, display_name: str) -> None:
        """Store the user's display name ("" removes it) and tell every socket, on every node, with a ``user``
        frame, as a rename does (the name stays)."""
        if not await self.store.set_display_name(user.id, display_name):
            raise ChatError(Err.NOT_FOUND, f"no user with id {user.id}")
        await self.cluster.emit(USER_RENAMED, [str(user.id), user.name, user.name, display_name])

    async def user_renamed(self, user: int, name: str, was: str) -> None:
        """The user with id ``user`` is now called ``name`` (the store already says so; the admin CLI asks a node to
        announce it): every node's sessions and presence take the name, and every socket gets a ``user`` frame."""
        await self.cluster.emit(USER_RENAMED, [str(user), name, was])

    async def remove_member(self, room: str, actor: UserRecord, target: str) -> tuple[bool, UserRecord | None]:
        """Remove the user named ``target`` from ``room``; see ``member_removed``. Returns whether they were a member
        and who they are."""
        removed, found = await self.rooms.remove(room, actor, target)
        if found is not None:
            await self.member_removed(
                room, found.id, actor.name if removed else None, self_removed=found.id == actor.id
            )
        return removed, found

    async def member_removed(self, room: str, user: int, by: str | None, self_removed: bool = False) -> None:
        """The user with id ``user`` no longer belongs to ``room`` (the store already says so). In a private room
        their sockets, on every node, stop getting its frames before this returns (as far as the broker reaches;
        the store refuses their sends in any case); ``by`` (None when nothing changed) is named in their room
        lists' update, as leaving when ``self_removed``."""
        record = await self.store.get_room(room)
        private = "private" if record is not None and record.private else "public"
        await self.cluster.emit(MEMBER_REMOVED, [room, str(user), private])
        if by is not None and record is not None:
            self._room_changed("left" if self_removed else "removed", record, user, by)

    async def member_added(self, room: str, user: int, by: str) -> None:
        """The user with id ``user`` was added to ``room`` outside this node's ``Rooms`` (the admin CLI): their room
        lists hear of it."""
        record = await self.store.get_room(room)
        if record is not None:
            self._room_changed("invited", record, user, by)

    async def delete_room(self, name: str, by: str) -> Purged | None:
        """Delete a room with its history and attachments, then tell every node; None if there was no such room."""
        purged = await purge_room(self.store, self.cfg.uploads.dir, name)
        if purged is not None:
            await self.room_deleted(name, purged.record.private, [m.id for m in purged.members], by)
        return purged

    async def room_deleted(self, room: str, private: bool, members: list[int], by: str) -> None:
        """A deleted room, in one event for every node: sockets following it stop, cached memberships go, and room
        lists drop it (a private room's members', everyone's for a public room). ``by``: a name to show."""
        ids = [str(m) for m in members] if private else []
        await self.cluster.emit(ROOM_DELETED, [room, "private" if private else "public", by, *ids])

    async def set_archived(self, room: str, archived: bool) -> bool:
        """Archive or unarchive a room and tell every node; False when there is no such room."""
        if not await self.rooms.set_archived(room, archived):
            return False
        await self.room_archived(room)
        return True

    async def open_dm(self, opener: UserRecord, other: str) -> tuple[RoomRecord, UserRecord, bool]:
        """Open (or find) ``opener``'s direct conversation with the live user named ``other`` (any spelling,
        ``chatd.rules.dms``); both users' connections, on every node, are told with a ``dm`` frame. The room, the
        other user, and whether the room is new."""
        found = await self.store.get_user(other)
        if found is None:
            raise ChatError(Err.NOT_FOUND, f"no user {other!r}")
        if found.id == opener.id:
            raise ChatError(Err.BAD_FRAME, "a direct conversation needs someone else")
        if found.disabled:
            raise ChatError(Err.FORBIDDEN, f"{found.name!r} is disabled")  # they could not read it
        record, created = await self.store.open_dm(dm_room(opener.id, found.id), opener.id, found.id)
        self.tell_user(found.id, encode(DirectRoom(record.name, opener.name, opener.id)))
        self.tell_user(opener.id, encode(DirectRoom(record.name, found.name, found.id)))
        return record, found, created

    async def search(self, user: int, words: list[str], room: str | None, limit: int, offset: int) -> list[Hit]:
        """Messages with every word, best first, from rooms ``user`` may read (``Store.search``; bounded by
        ``search_limits``)."""
        return await self.store.search(user, words, room=room, limit=limit, offset=offset)

    async def room_archived(self, room: str) -> None:
        """A room was archived or unarchived (the store already says so): every node forgets its cached memberships,
        so what it answers next comes from the store."""
        await self.cluster.emit(ROOM_ARCHIVED, [room])

    def _room_changed(self, change: str, record: RoomRecord, user: int, by: str) -> None:
        """Push a room-list change to the sessions that should see it, on every node."""
        text = encode(RoomChange(record.name, change, record.private, by))
        if change == "created" and not record.private:
            self.tell_everyone(text)
        else:
            self.tell_user(user, text)

    async def presence_of(self, room: str) -> list[UserRef]:
        """Users connected to ``room`` on any node."""
        return self.presence.users(room)

    def _presence_changed(self, room: str, user: int, name: str, online: bool) -> None:
        """A user's first live subscription to ``room`` on this node began, or their last ended (``Feeds``)."""
        if online:
            self.presence.joined(room, user, name)
        else:
            self.presence.left(room, user)

    async def disconnected(self, conn: Conn) -> None:
        self.feeds.disconnected(conn)
        self.hub.unregister(conn)

    def _announce_presence(self, room: str, user: int, name: str, online: bool) -> None:
        if self._presence_budget.take(str(user), time.monotonic()):
            return  # over limits.presence_rate: not announced (presence is ephemeral; GET .../presence is exact)
        # Every node derives the same change from the same reports, so each tells only its own subscribers.
        self.hub.fan_ephemeral(Delivery(room, 0, encode(PresenceFrame(room, name, online, user)), self.id))

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
        g["chatd_broker_connected"] = lambda: int(self.broker.ready())
        g["chatd_store_ready"] = lambda: int(self.worker.store_ok)
        g["chatd_presence_users"] = lambda: self.presence.count()
        g["chatd_membership_cache"] = lambda: self.rooms.cached()
        g["chatd_gap_fills_pending"] = self.feeds.fills_pending
        g["chatd_outbox_bytes"] = lambda: sum(c.outbox.size for c in self.hub.conns.values())
        g["chatd_acks_pending"] = lambda: len(self._tickets)
        g["chatd_draining"] = lambda: int(self.draining)
        self.metrics.sources.append(self.broker.stats)
        self.metrics.sources.append(self.limiter.stats)
        self.metrics.sources.append(lambda: {"chatd_ephemeral_shed_total": Outbox.shed_total})
        self.metrics.labeled.append(self._task_crashes)
        g["chatd_tasks_down"] = lambda: len(self.supervisor.down())

    def _task_crashes(self) -> tuple[str, str, str, dict[str, float]]:
        crashes = {task: float(n) for task, n in self.supervisor.crashes().items()}
        return "chatd_task_crashes_total", "Background task crashes, by task.", "task", crashes
