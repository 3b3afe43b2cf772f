"""A lean protocol-v1 WebSocket connection for load generation.

It glues the ``websockets`` library's sans-I/O client protocol straight onto an asyncio ``Protocol``: bytes in,
frames out, handled in the same callback. The library's task-per-connection client would spend the load
generator's CPU on wake-ups and queues; here a packed server message costs one ``data_received`` call, which
matters when the generator shares two cores with the server it measures.

Text messages are split on ``\\n`` (servers pack several frames per message) and handed to ``on_frame`` as
decoded :class:`Frame` structs. No compression is negotiated.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from urllib.parse import quote

import msgspec
from websockets.client import ClientProtocol
from websockets.frames import Frame as WsFrame
from websockets.frames import Opcode
from websockets.http11 import Response
from websockets.protocol import State
from websockets.uri import parse_uri


class Frame(msgspec.Struct):
    """Any server frame, with the fields the bench reads (unknown fields are ignored)."""

    type: str
    room: str = ""
    seq: int = 0
    client_id: str = ""
    body: str = ""
    code: str = ""
    ref: str | None = None
    duplicate: bool = False
    user: str = ""
    max_frame_bytes: int = 0


_decode = msgspec.json.Decoder(Frame).decode
PONG = b'{"type":"pong"}'


class ConnectError(Exception):
    """The handshake failed: refused, closed right away (with a code), or timed out."""

    def __init__(self, reason: str, code: int | None = None) -> None:
        super().__init__(reason)
        self.reason = reason
        self.code = code


def with_user(url: str, user: str | None) -> str:
    if not user:
        return url
    return url + ("&" if "?" in url else "?") + "user=" + quote(user)


class WsConn(asyncio.Protocol):
    """One client connection. ``on_frame(frame, now_ns)`` runs for every server frame after the hello."""

    def __init__(
        self,
        url: str,
        token: str | None,
        on_frame: Callable[[Frame, int], None] | None = None,
        on_close: Callable[[WsConn], None] | None = None,
    ) -> None:
        self.proto = ClientProtocol(parse_uri(url), max_size=None)
        self.token = token
        self.on_frame = on_frame
        self.on_close = on_close
        self.transport: asyncio.Transport | None = None
        self.hello: Frame | None = None
        self.ready: asyncio.Future[Frame] = asyncio.get_running_loop().create_future()
        self.closed = False
        self.close_code: int | None = None
        self._partial: list[bytes] = []

    # -- connecting --------------------------------------------------------------------------------------------

    @classmethod
    async def open(
        cls,
        url: str,
        host: str,
        port: int,
        token: str | None = None,
        timeout: float = 30.0,
        on_frame: Callable[[Frame, int], None] | None = None,
        on_close: Callable[[WsConn], None] | None = None,
        local_host: str | None = None,
    ) -> WsConn:
        """Connect, handshake and wait for the server's hello. Raises ConnectError.

        ``local_host`` picks the source address: one source address has only ~28,000 ephemeral ports towards one
        server port, so past that many connections to a loopback server they are spread over 127.0.0.x."""
        loop = asyncio.get_running_loop()
        conn = cls(url, token, on_frame, on_close)
        try:
            async with asyncio.timeout(timeout):
                local = (local_host, 0) if local_host else None
                await loop.create_connection(lambda: conn, host, port, local_addr=local)
                await conn.ready
        except TimeoutError:
            conn.abort()
            raise ConnectError("timeout") from None
        except OSError as e:
            conn.abort()
            raise ConnectError(f"{type(e).__name__}: {e.strerror or e}") from None
        return conn

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]  # uvloop's transports are not asyncio subclasses
        request = self.proto.connect()
        if self.token:
            request.headers["Authorization"] = f"Bearer {self.token}"
        self.proto.send_request(request)
        self._flush()

    # -- receiving ---------------------------------------------------------------------------------------------

    def data_received(self, data: bytes) -> None:
        proto = self.proto
        proto.receive_data(data)
        now = time.monotonic_ns()
        for event in proto.events_received():
            if not isinstance(event, WsFrame):
                if isinstance(event, Response) and proto.handshake_exc is not None:
                    self._fail(ConnectError(f"handshake refused: {proto.handshake_exc}"))
                continue
            op = event.opcode
            if op is Opcode.TEXT or op is Opcode.CONT:
                if not event.fin:
                    self._partial.append(bytes(event.data))
                    continue
                if self._partial:
                    self._partial.append(bytes(event.data))
                    payload = b"".join(self._partial)
                    self._partial = []
                else:
                    payload = bytes(event.data)
                self._message(payload, now)
            elif op is Opcode.CLOSE:
                # ``proto.close_code`` stays None until the closing handshake is over; the received frame has it now.
                rcvd = proto.close_rcvd
                self.close_code = rcvd.code if rcvd is not None else None
        self._flush()
        if proto.state is State.CLOSED or proto.close_expected():
            self._closed()

    def _message(self, payload: bytes, now: int) -> None:
        for line in payload.split(b"\n"):
            if not line:
                continue
            try:
                frame = _decode(line)
            except (msgspec.DecodeError, msgspec.ValidationError):
                frame = Frame(type="<undecodable>")
            if frame.type == "ping":
                self.send(PONG)
                continue
            if self.hello is None:
                if frame.type == "hello":
                    self.hello = frame
                    if not self.ready.done():
                        self.ready.set_result(frame)
                    continue
            if self.on_frame is not None:
                self.on_frame(frame, now)

    def eof_received(self) -> bool | None:
        self.proto.receive_eof()
        self._flush()
        self._closed()
        return None

    def connection_lost(self, exc: Exception | None) -> None:
        self._closed()

    def _closed(self) -> None:
        if self.closed:
            return
        self.closed = True
        code = self.close_code
        if code is None and self.proto.close_rcvd is not None:
            code = self.proto.close_rcvd.code
        self.close_code = code
        if not self.ready.done():
            self.ready.set_exception(ConnectError(f"closed before hello (code {code})", code))
        if self.transport is not None and not self.transport.is_closing():
            self.transport.close()
        if self.on_close is not None:
            self.on_close(self)

    def _fail(self, err: ConnectError) -> None:
        if not self.ready.done():
            self.ready.set_exception(err)
        self.abort()

    # -- sending -----------------------------------------------------------------------------------------------

    def send(self, text: bytes) -> bool:
        """Send one text frame. Returns False if the connection is gone."""
        if self.closed or self.proto.state is not State.OPEN:
            return False
        self.proto.send_text(text)
        self._flush()
        return True

    def _flush(self) -> None:
        transport = self.transport
        if transport is None:
            return
        for chunk in self.proto.data_to_send():
            if chunk:
                transport.write(chunk)
            elif transport.can_write_eof():
                transport.write_eof()

    def close(self) -> None:
        if self.closed or self.proto.state is not State.OPEN:
            self.abort()
            return
        self.proto.send_close(1000)
        self._flush()

    def abort(self) -> None:
        self.closed = True
        if self.transport is not None:
            self.transport.abort()

    def write_buffer(self) -> int:
        return self.transport.get_write_buffer_size() if self.transport is not None else 0
