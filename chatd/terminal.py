"""``chatd chat``: a minimal terminal client, so two shells can chat without a browser.

It speaks protocol v1 like any other client: it shows the room's recent history on joining, resumes with
``since`` after a reconnect, resends unacked lines with the same client_id, and answers heartbeat pings. Input
may be typed or piped: at the end of input it waits until every line it read is stored before it exits.
"""

from __future__ import annotations

import asyncio
import codecs
import itertools
import json
import os
import sys
import threading
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import quote, urlsplit, urlunsplit

import websockets

BACKOFF_MAX = 10.0
# Before the first connection succeeds a failure is more likely a wrong URL than a restart: give up after this many
# attempts (about 8 s of backoff) instead of retrying forever in silence.
FIRST_CONNECT_ATTEMPTS = 5
RATE_LIMITED_RETRY = 1.0


class ChatExit(Exception):
    """The session cannot go on; ``str(self)`` says why. The command exits non-zero."""


def render(frame: dict[str, Any]) -> str | None:
    kind = frame.get("type")
    if kind == "message":
        stamp = time.strftime("%H:%M", time.localtime(frame["ts"] / 1000))
        extra = f" [{len(frame['attachments'])} attachment(s)]" if frame.get("attachments") else ""
        return f"[{stamp}] #{frame['room']} {frame['from']}: {frame['body']}{extra}"
    if kind == "presence":
        return f"* {frame['user']} {'joined' if frame['online'] else 'left'} #{frame['room']}"
    if kind == "error":
        return f"! {frame['code']}: {frame['message']}"
    if kind == "joined":
        return f"* joined #{frame['room']} (last seq {frame['seq']})"
    if kind == "left" and frame.get("reason") == "removed":
        return f"* you were removed from #{frame['room']}"
    if kind == "room" and frame.get("change") == "invited":
        return f"* {frame.get('by') or 'someone'} invited you to #{frame['room']} (chatd chat --room {frame['room']})"
    return None


class StdinLines:
    """Lines of standard input, read by one thread for the whole session.

    One reader outlives every connection, so a line is never taken by a reader that belonged to a dropped
    connection. A thread (rather than ``loop.add_reader``) works for a terminal, a pipe and a regular file alike,
    and reading the raw descriptor keeps the thread off the buffered ``sys.stdin`` lock, which a daemon thread
    blocked at interpreter exit would otherwise hold."""

    def __init__(self, loop: asyncio.AbstractEventLoop, fd: int) -> None:
        self._loop = loop
        self._fd = fd
        self.queue: asyncio.Queue[str | None] = asyncio.Queue()
        threading.Thread(target=self._run, name="chatd-stdin", daemon=True).start()

    def _run(self) -> None:
        decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")
        partial = ""
        while True:
            try:
                chunk = os.read(self._fd, 65536)
            except OSError:
                chunk = b""
            partial += decoder.decode(chunk, final=not chunk)
            *complete, partial = partial.split("\n")
            for line in complete:
                self._loop.call_soon_threadsafe(self.queue.put_nowait, line)
            if not chunk:
                if partial:
                    self._loop.call_soon_threadsafe(self.queue.put_nowait, partial)
                self._loop.call_soon_threadsafe(self.queue.put_nowait, None)
                return


@dataclass
class Session:
    """What survives reconnects: the room, the last seq printed, and the lines not yet acked."""

    room: str
    history: int
    last_seq: int | None = None
    pending: dict[str, str] = field(default_factory=dict)  # client_id → body, until acked or refused
    acked: asyncio.Event = field(default_factory=asyncio.Event)
    since_sent: int | None = None  # the since of the last join sent
    replay_end: int | None = None  # when a capped replay ends, at this seq, join again from there

    def add(self, client_id: str, body: str) -> str:
        self.pending[client_id] = body
        self.acked.clear()
        return client_id

    def settle(self, client_id: str) -> None:
        self.pending.pop(client_id, None)
        if not self.pending:
            self.acked.set()

    def send_frame(self, client_id: str) -> str:
        body = self.pending[client_id]
        return json.dumps({"type": "send", "room": self.room, "body": body, "client_id": client_id})


def http_base(url: str) -> str:
    """The server's HTTP root for its WebSocket URL: ``ws://h:p/prefix/ws`` → ``http://h:p/prefix``."""
    parts = urlsplit(url)
    scheme = "https" if parts.scheme == "wss" else "http"
    path = parts.path[: -len("/ws")] if parts.path.endswith("/ws") else parts.path.rstrip("/")
    return urlunsplit((scheme, parts.netloc, path, "", ""))


def last_seq_of(url: str, room: str, user: str | None, token: str | None) -> int | None:
    """The room's last seq over REST, or None if the room does not exist yet or cannot be read (the join then
    says why)."""
    query = f"?user={quote(user)}" if user else ""
    req = urllib.request.Request(f"{http_base(url)}/api/rooms/{quote(room, safe='')}{query}")
    if token:
        req.add_header("Authorization", f"Bearer {token}")
    try:
        with urllib.request.urlopen(req, timeout=5) as resp:
            return int(json.load(resp)["last_seq"])
    except (OSError, ValueError, KeyError):
        return None


async def chat(url: str, room: str, user: str | None, token: str | None, history: int = 20) -> None:
    """Chat in ``room`` until input ends and every line read is stored; reconnects with backoff and resumes
    without gaps. Raises :class:`ChatExit` when it cannot go on (refused credentials, an unreachable server)."""
    if user:
        url += ("&" if "?" in url else "?") + f"user={quote(user)}"
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    session = Session(room, history)
    session.acked.set()
    ids = itertools.count(1)
    prefix = f"t{int(time.time())}-"
    stdin = StdinLines(asyncio.get_running_loop(), sys.stdin.fileno())
    # The one pending read of stdin: kept across connections, so a line typed during a reconnect is not lost.
    next_line: asyncio.Task[str | None] | None = None
    eof = False

    def take(line: str | None) -> str | None:
        """A line read from stdin (None: end of input) into pending; returns its client_id, if it is one to send."""
        nonlocal eof
        if line is None:
            eof = True
        elif line.strip():
            return session.add(f"{prefix}{next(ids)}", line)
        return None

    connected_once = False
    attempts = 0
    backoff = 0.5
    while True:
        attempts += 1
        why = "the server closed the connection"
        try:
            async with websockets.connect(url, additional_headers=headers, max_size=None) as ws:
                hello = json.loads(str(await ws.recv()).split("\n")[0])
                connected_once, attempts, backoff = True, 0, 0.5
                print(f"* connected as {hello.get('user')}; type a line and press enter (Ctrl-D quits)", flush=True)
                await ws.send(json.dumps(await _join_frame(session, url, user, token)))
                for cid in list(session.pending):  # not acked before the drop: resend, same client_id
                    await ws.send(session.send_frame(cid))
                reader = asyncio.create_task(_read(ws, session))
                all_acked = asyncio.create_task(session.acked.wait())
                while True:
                    if next_line is None and not eof:
                        next_line = asyncio.create_task(stdin.queue.get())
                    waits: set[asyncio.Future[Any]] = {reader}
                    if next_line is not None:
                        waits.add(next_line)
                    elif eof:
                        if all_acked.done() and not session.acked.is_set():
                            all_acked = asyncio.create_task(session.acked.wait())
                        waits.add(all_acked)
                    done, _ = await asyncio.wait(waits, return_when=asyncio.FIRST_COMPLETED)
                    if eof and session.acked.is_set():
                        reader.cancel()
                        return
                    if next_line is not None and next_line in done:
                        typed, next_line = take(next_line.result()), None
                        if typed is not None:
                            await ws.send(session.send_frame(typed))
                    if reader in done:
                        code = reader.result()
                        if code is not None:
                            why = f"the server closed the connection ({code})"
                        break
        except websockets.InvalidURI as e:
            raise ChatExit(f"not a WebSocket URL: {e.uri} (expected ws://HOST:PORT/ws)") from None
        except websockets.InvalidStatus as e:
            status = e.response.status_code
            hint = "" if urlsplit(url).path.endswith("/ws") else " (chatd's WebSocket endpoint is /ws)"
            raise ChatExit(f"the server refused the WebSocket: HTTP {status}{hint}") from None
        except websockets.ConnectionClosed as e:
            code = e.rcvd.code if e.rcvd else None
            if code is not None and 4400 <= code < 4500:
                what = "the token was refused" if code == 4401 else "the server refused this client"
                raise ChatExit(f"{what}: closed with {code} {e.rcvd.reason if e.rcvd else ''}".rstrip()) from None
            why = f"connection closed ({code})" if code else "connection lost"
        except (TimeoutError, OSError, websockets.InvalidHandshake) as e:
            why = f"cannot reach {url}: {e or type(e).__name__}"
            if not connected_once and attempts >= FIRST_CONNECT_ATTEMPTS:
                raise ChatExit(f"{why} (gave up after {attempts} attempts)") from None
        print(f"* {why}; retrying in {backoff:.1f}s", file=sys.stderr, flush=True)
        # Keep reading while disconnected: a line typed now waits in pending for the next connection, and Ctrl-D
        # with nothing unsent ends the client at once instead of after the server is back.
        loop = asyncio.get_running_loop()
        deadline = loop.time() + backoff
        while not eof and (left := deadline - loop.time()) > 0:
            if next_line is None:
                next_line = asyncio.create_task(stdin.queue.get())
            done, _ = await asyncio.wait({next_line}, timeout=left)
            if not done:
                break
            take(next_line.result())
            next_line = None
        if eof and not session.pending:
            if not connected_once:
                raise ChatExit(why)  # nothing to send, but the server was never reached: say so
            return
        await asyncio.sleep(max(0.0, deadline - loop.time()))
        backoff = min(backoff * 2, BACKOFF_MAX)


async def _join_frame(session: Session, url: str, user: str | None, token: str | None) -> dict[str, Any]:
    join: dict[str, Any] = {"type": "join", "room": session.room}
    if session.last_seq is not None:
        join["since"] = session.last_seq  # resume exactly after what we already printed
    elif session.history > 0:
        # First join: start a little back, so the replay shows recent history and the server's replay seam
        # joins it to live messages without a gap.
        last = await asyncio.to_thread(last_seq_of, url, session.room, user, token)
        if last is not None:
            join["since"] = max(0, last - session.history)
    session.since_sent = join.get("since")
    return join


async def _read(ws: Any, session: Session) -> int | None:
    """Print frames until the socket closes, keeping the session's last seq and pending lines current. Returns
    the close code the server sent, if any."""
    try:
        async for raw in ws:
            for line in raw.split("\n"):
                frame = json.loads(line)
                kind = frame.get("type")
                if kind == "ping":
                    await ws.send('{"type":"pong"}')
                elif kind == "ack":
                    session.settle(frame["client_id"])
                elif kind == "message":
                    session.last_seq = frame["seq"]
                    if frame["seq"] == session.replay_end:
                        session.replay_end, session.since_sent = None, frame["seq"]
                        await ws.send(json.dumps({"type": "join", "room": session.room, "since": frame["seq"]}))
                elif kind == "joined":
                    since = session.since_sent
                    if session.last_seq is None:
                        # Without a since, live delivery starts after the room's last seq: resume from there.
                        session.last_seq = since if since is not None else frame["seq"]
                    if frame.get("capped"):
                        # Live delivery starts only after a replay that is not capped: ask for the next part.
                        session.replay_end = (since or 0) + frame.get("replay", 0)
                elif kind == "error" and frame.get("ref") in session.pending:
                    if frame.get("code") == "rate_limited":
                        asyncio.get_running_loop().call_later(RATE_LIMITED_RETRY, _resend, ws, session, frame["ref"])
                        continue  # not an error the user must act on: the line goes out again shortly
                    session.settle(frame["ref"])  # refused for good; the error line below says why
                text = render(frame)
                if text:
                    print(text, flush=True)
    except websockets.ConnectionClosed as e:
        if e.rcvd and 4400 <= e.rcvd.code < 4500:
            raise
        return e.rcvd.code if e.rcvd else None
    return ws.close_code


def _resend(ws: Any, session: Session, client_id: str) -> None:
    if client_id in session.pending:
        task = asyncio.ensure_future(ws.send(session.send_frame(client_id)))
        task.add_done_callback(lambda t: t.exception())  # a closed socket is fine: the reconnect resends it
