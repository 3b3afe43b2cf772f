"""``/ws``: the WebSocket endpoint.

Per connection there are two tasks: the handler itself reads frames and calls the Node; a writer task drains the
connection's outbox, packing whatever has queued up into one WebSocket message (frames separated by ``\\n``).
Neither ever waits on another connection.

Closing: :meth:`WsSession.kick` is the one way the server ends a session. For 1001 (drain) and 4401 (logout)
the writer first flushes the outbox; for every other code it goes straight to the close frame. The
close frame is sent by the handler task, after its pending ``receive`` is cancelled, because granian will not
send a close while a receive is pending; when the handler returns, granian drops the TCP connection.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections import OrderedDict
from collections.abc import Awaitable, Callable
from typing import Any, ClassVar

from litestar import WebSocket, websocket
from litestar.enums import ScopeType
from litestar.types import ASGIApp, Receive, Scope, WebSocketSendEvent
from litestar.types import Send as ASGISend

from chatd.accounts.throttle import refuse, shown
from chatd.core.hub import Conn
from chatd.core.node import Node
from chatd.errors import ChatError, Close, Err, internal_message, log_fault
from chatd.features.change_requests import change_of
from chatd.gateway.auth import authenticate, client_ip, loopback_host, origin_allowed
from chatd.gateway.slots import ConnectionSlots
from chatd.gateway.tickets import WS
from chatd.protocol.frames import (
    CHANGE_FRAMES,
    FEATURES,
    PONG,
    PROTOCOL_VERSION,
    ClientFrame,
    DeleteMessage,
    EditMessage,
    Hello,
    Join,
    Leave,
    MarkRead,
    Ping,
    React,
    Send,
    SetTopic,
    Typing,
    encode,
    encode_error,
)
from chatd.protocol.session import FrameLimits, FrameRejected, decode_frame
from chatd.rules.bots import Scope as BotScope
from chatd.rules.bots import require_frame
from chatd.store.base import UserRecord

log = logging.getLogger("chatd.ws")

PACK_MAX = 64 * 1024  # bytes per packed WebSocket message; a single larger frame still goes alone
CLOSE_GRACE = 1.0  # seconds a peer gets to answer our close frame
HELD_MAX = 1024  # refused sends a connection's order is kept for (see WsSession.held)


RAW_ASGI = "chatd.asgi"


def with_raw_websocket_io(app: ASGIApp) -> ASGIApp:
    """The entry point granian calls: the app, plus the server's own ``receive``/``send`` stored in a WebSocket's
    scope, so the per-frame read and write loops (``gateway/ws.py``) can skip litestar's per-call wrappers. The
    handshake, accept and close still go through litestar."""

    async def entry(scope: Scope, receive: Receive, send: ASGISend) -> None:
        if scope["type"] == ScopeType.WEBSOCKET:
            scope[RAW_ASGI] = (receive, send)  # type: ignore[literal-required]
        await app(scope, receive, send)

    return entry


@websocket("/ws")
async def ws_endpoint(socket: WebSocket[Any, Any, Any]) -> None:
    node: Node = socket.app.state.node
    slots: ConnectionSlots = socket.app.state.slots
    headers = socket.headers
    if not origin_allowed(
        headers.get("origin"), headers.get("host"), node.cfg.web.allowed_origins, node.cfg.web.allow_missing_origin
    ) or (node.cfg.auth.mode == "open" and not loopback_host(headers.get("host"))):
        node.metrics.connections_refused += 1
        await socket.close(code=Close.FORBIDDEN_ORIGIN)  # before accept: the client sees HTTP 403
        return
    # Slots are taken before each await that follows, so concurrent handshakes cannot all pass one check.
    if not slots.take_total():
        await _refuse(node, socket, Close.TOO_MANY_CONNECTIONS, "server connection limit reached")
        return
    user: int | None = None
    holder = f"{node.id}:{node.new_conn_id()}"  # this session, among the user's on every node
    accepted = False
    try:
        principal = await authenticate(node, headers, socket.query_params, socket.app.state.tickets, WS)
        refusal: tuple[Close, str] | None = None
        if node.draining:
            refusal = (Close.GOING_AWAY, "server is draining")
        elif principal is None:
            refusal = (Close.UNAUTHORIZED, "missing or invalid credentials")
        elif not await node.limiter.hold(
            f"sockets:{principal.user.id}", holder, node.cfg.limits.max_connections_per_user
        ):
            refusal = (Close.TOO_MANY_CONNECTIONS, "per-user connection limit reached")
        else:
            user = principal.user.id
        if refusal is not None or principal is None:
            code, reason = refusal or (Close.UNAUTHORIZED, "")
            await _refuse(node, socket, code, reason)
            return
        expires_in = await node.accounts.expires_in(principal.token_hash)
        await socket.accept()
        accepted = True
        await WsSession(node, socket, principal.user, principal.token_hash, expires_in, principal.scope).run()
    except Exception:  # noqa: BLE001 - a server fault outside any one frame: logged, and the client told so
        log_fault(log, "running a WebSocket session" if accepted else "opening a WebSocket session")
        if not accepted:
            await _refuse(node, socket, Close.INTERNAL_ERROR, "internal_error")
        else:
            with contextlib.suppress(Exception):
                await socket.close(code=Close.INTERNAL_ERROR, reason="internal_error")
    finally:
        slots.release_total()
        if user is not None:
            await node.limiter.release(f"sockets:{user}", holder)


async def _refuse(node: Node, socket: WebSocket[Any, Any, Any], code: Close, reason: str) -> None:
    """Accept only to close at once with ``code``: a browser sees close codes, never an HTTP refusal's status."""
    node.metrics.connections_refused += 1
    log.info("WebSocket refused from %s: %d %s", _peer(node, socket), int(code), reason)
    try:
        await socket.accept()
        await socket.close(code=code, reason=reason)
    except Exception:  # noqa: BLE001 - the peer left during the handshake; nothing to tell it
        pass


def _peer(node: Node, socket: WebSocket[Any, Any, Any]) -> str:
    return client_ip(socket.client.host if socket.client else None, socket.headers, node.cfg.server.trusted_proxies)


class WsSession:
    def __init__(
        self,
        node: Node,
        socket: WebSocket[Any, Any, Any],
        user: UserRecord,
        token_hash: str | None,
        expires_in: float | None = None,
        scope: BotScope | None = None,
    ) -> None:
        self.node = node
        self.scope = scope  # a bot token's scope: every frame is checked against it
        self.expires_in = expires_in  # seconds until the credential expires (auth.token_ttl); None: never
        self.socket = socket
        lim = node.cfg.limits
        self.conn = Conn(
            node.new_conn_id(), user.id, user.name, token_hash, lim.outbound_queue_bytes, self.kick, time.monotonic()
        )
        self.limits = FrameLimits(lim.max_frame_bytes, lim.close_frame_bytes)
        self.reply = node.reply_to(self.conn)
        self.closing: Close | None = None
        self.peer_code: int = 1006  # no close frame seen: the connection dropped
        self._task = asyncio.current_task()
        self._writer: asyncio.Task[None] | None = None
        self._closer: asyncio.Task[None] | None = None
        self._reader_done = asyncio.Event()
        self._sending = False
        # A sender's order (docs/protocol.md): once a send is refused as unavailable (the broker link was down, the
        # node is draining), every later send on this connection is refused too, until the refused ones come back
        # in the order they were refused: no resend can be stored behind a send the node took once the link was
        # back. Keys are (room, client_id), oldest first.
        self.held: OrderedDict[tuple[str, str], None] = OrderedDict()
        self._resent: tuple[str, str] | None = None  # the held send let through just now, if any
        # After the accept, frames go straight to the server's receive/send (see gateway.app.with_raw_websocket_io):
        # litestar's wrappers would cost two extra calls per frame in each direction.
        raw: tuple[Receive, ASGISend] | None = socket.scope.get(RAW_ASGI)  # type: ignore[assignment]
        self.raw_receive: Receive = raw[0] if raw else socket.receive
        self.raw_send: ASGISend = raw[1] if raw else socket.send

    async def run(self) -> None:
        node, conn = self.node, self.conn
        node.connected(conn)
        node.metrics.connections_opened += 1
        opened = time.monotonic()
        log.info("session %d opened: user %s from %s", conn.id, shown(conn.user), _peer(node, self.socket))
        conn.send(
            encode(
                Hello(
                    user=conn.user,
                    protocol=PROTOCOL_VERSION,
                    node=node.id,
                    max_frame_bytes=node.cfg.limits.max_frame_bytes,
                    heartbeat_interval=node.cfg.limits.heartbeat_interval,
                    features=list(FEATURES),
                    uid=conn.uid,
                )
            )
        )
        self._writer = asyncio.create_task(self._write_loop(), name=f"chatd-writer-{conn.id}")
        # The session ends with its credential: past auth.token_ttl REST answers 401, and so does this socket.
        expiry = (
            asyncio.get_running_loop().call_later(max(self.expires_in, 0.0), self._expired)
            if self.expires_in is not None
            else None
        )
        try:
            try:
                await self._read_loop()
            except asyncio.CancelledError:
                if self.closing is None or self._task is None:
                    raise
                self._task.uncancel()  # we interrupted our own receive to close the session
            finally:
                self._reader_done.set()
                self._writer.cancel()  # never write after the peer is gone: granian would buffer it forever
            if self.closing is not None:
                await self._send_close(self.closing)
        finally:
            if expiry is not None:
                expiry.cancel()
            await node.disconnected(conn)
            if self.closing is not None:
                code, reason = int(self.closing), f"closed by the server: {self.closing.name.lower()}"
            else:
                code, reason = self.peer_code, "closed by the client"
            log.info(
                "session %d closed: user %s, code %s (%s) after %.0fs",
                conn.id,
                shown(conn.user),
                code,
                reason,
                time.monotonic() - opened,
            )

    async def _read_loop(self) -> None:
        receive, conn, metrics = self.raw_receive, self.conn, self.node.metrics
        while True:
            msg = await receive()
            if msg["type"] != "websocket.receive":
                self.peer_code = msg.get("code", 1005)  # type: ignore[assignment]
                return
            data: str | bytes | None = msg.get("text")
            if data is None:
                data = msg.get("bytes") or b""
            conn.last_heard = time.monotonic()
            metrics.frames_in += 1
            if self.closing is not None:
                continue  # closing: read on only to see the peer's close
            close = await self._handle(data)
            if close is not None:
                self.closing = close
                return

    async def _handle(self, data: str | bytes) -> Close | None:
        """Decode one frame and act on it. Anything wrong with it, or refused, is answered with an error frame and
        the session goes on; the close code when the frame must end the session instead."""
        frame: ClientFrame | None = None
        try:
            frame = decode_frame(data, self.limits)
            if self.scope is not None:
                require_frame(self.scope, frame)
            action = self.ACTIONS.get(type(frame))
            if action is not None:  # a pong needs nothing: hearing it was the point
                await action(self, frame)
        except FrameRejected as e:
            if e.close is not None:
                return e.close
            self._error(e.err.code, e.message, e.ref)
        except ChatError as e:
            if e.err is Err.UNAVAILABLE and isinstance(frame, (Send, *CHANGE_FRAMES)):
                self._hold(frame.room, frame.client_id)
            self._error(e.err.code, e.message, e.ref or getattr(frame, "client_id", None), getattr(frame, "room", None))
        except Exception:  # noqa: BLE001 - a server fault: logged and answered; the session goes on
            incident = log_fault(log, f"handling a frame from {self.conn.user!r}")
            self._error(
                Err.INTERNAL.code,
                internal_message(incident),
                getattr(frame, "client_id", None),
                getattr(frame, "room", None),  # a join answered so is not in force: the client joins again
            )
        return None

    # --- what each client frame does (``ACTIONS``: by frame type) ----------------------------------------------

    async def _send(self, frame: Send) -> None:
        self._in_order(frame.room, frame.client_id)
        await self.node.submit(
            self.conn.uid, frame.room, frame.body, frame.client_id, frame.attachments, self.reply, frame.reply_to or 0
        )

    async def _change(self, frame: EditMessage | DeleteMessage | React | SetTopic) -> None:
        self._in_order(frame.room, frame.client_id)
        await self.node.submit_change(change_of(self.conn.uid, frame), self.reply)

    async def _mark_read(self, frame: MarkRead) -> None:
        await self.node.mark_read(self.conn.uid, frame.room, frame.seq, frame.client_id or "")

    async def _join(self, frame: Join) -> None:
        await self.node.join(self.conn, frame.room, frame.since, frame.epoch)

    async def _leave(self, frame: Leave) -> None:
        await self.node.leave(self.conn, frame.room)

    async def _typing(self, frame: Typing) -> None:
        lim = self.node.cfg.limits
        wait = await self.node.limiter.take(f"typing:{self.conn.uid}", lim.typing_rate, lim.typing_burst)
        if wait:
            raise refuse("typing notices (limits.typing_rate)", wait)
        await self.node.typing(self.conn, frame.room)

    async def _ping(self, frame: Ping) -> None:
        self.conn.send(PONG)

    # One table for every session (built once, not per connection): what each client frame type does.
    ACTIONS: ClassVar[dict[type[ClientFrame], Callable[[WsSession, Any], Awaitable[None]]]] = {
        Send: _send,
        **dict.fromkeys(CHANGE_FRAMES, _change),
        MarkRead: _mark_read,
        Join: _join,
        Leave: _leave,
        Typing: _typing,
        Ping: _ping,
    }

    def _in_order(self, room: str, client_id: str) -> None:
        """Refuse a send that would overtake a send refused earlier as unavailable. The resend of the oldest one
        held goes through (and leaves the queue; if it is refused again, ``_hold`` puts it back in front)."""
        self._resent = None
        if not self.held:
            return
        key = (room, client_id)
        first = next(iter(self.held))
        if key == first:
            del self.held[key]
            self._resent = key
            return
        raise ChatError(
            Err.UNAVAILABLE,
            f"an earlier send ({first[1]} in {first[0]}) was refused; resend the refused sends in order, then this",
            client_id,
        )

    def _hold(self, room: str, client_id: str) -> None:
        key = (room, client_id)
        if key in self.held:
            return  # already waiting for its turn
        if len(self.held) >= HELD_MAX:
            return  # past the bound it is not remembered: a client that never resends has broken its own order
        self.held[key] = None
        if key == self._resent:
            self.held.move_to_end(key, last=False)  # the oldest, resent and refused again: still the oldest

    def _error(self, code: str, message: str, ref: str | None, room: str | None = None) -> None:
        self.node.metrics.errors_sent += 1
        self.conn.send(encode_error(code, message, ref, room))

    async def _write_loop(self) -> None:
        outbox = self.conn.outbox
        send = self.raw_send
        metrics = self.node.metrics
        while True:
            if not outbox.frames:
                await outbox.ready()
            text = outbox.pack(PACK_MAX)
            self._sending = True
            event: WebSocketSendEvent = {"type": "websocket.send", "text": text, "bytes": None}
            await send(event)
            self._sending = False
            metrics.ws_sends += 1
            metrics.ws_bytes_out += len(text)

    def _expired(self) -> None:
        log.info("session %d of %s: its token expired (auth.token_ttl)", self.conn.id, shown(self.conn.user))
        self.kick(Close.UNAUTHORIZED)

    def kick(self, code: Close) -> None:
        """End this session with ``code``; safe to call more than once and from synchronous code."""
        if self.closing is not None:
            return
        self.closing = code
        if code == Close.SLOW_CONSUMER:
            self.node.metrics.slow_consumer_closes += 1
            log.warning(
                "session %d of %s cut as a slow consumer: over %d bytes waiting to be written",
                self.conn.id,
                shown(self.conn.user),
                self.node.cfg.limits.outbound_queue_bytes,
            )
        self._closer = asyncio.get_running_loop().create_task(self._close(code))

    async def _close(self, code: Close) -> None:
        """Flush if the code is a graceful one, then interrupt the reader, which sends the close frame.

        The close frame must come from the reader: granian does not send a close while a ``receive`` is pending.
        """
        outbox = self.conn.outbox
        if code in (Close.GOING_AWAY, Close.NORMAL, Close.UNAUTHORIZED):
            deadline = time.monotonic() + self.node.cfg.server.drain_timeout
            while (outbox.frames or self._sending) and time.monotonic() < deadline and not self._reader_done.is_set():
                await asyncio.sleep(0.01)
        if self._writer is not None:
            self._writer.cancel()
        if not self._reader_done.is_set() and self._task is not None:
            self._task.cancel()

    async def _send_close(self, code: Close) -> None:
        try:
            await asyncio.wait_for(
                self.socket.send({"type": "websocket.close", "code": int(code), "reason": code.name.lower()}),
                CLOSE_GRACE,
            )
        except (TimeoutError, Exception):  # noqa: BLE001 - the peer is gone or stalled; granian drops it
            pass
