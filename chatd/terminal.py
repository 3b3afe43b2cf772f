"""``chatd chat``: a minimal terminal client, so two shells can chat without a browser.

It speaks protocol v1 like any other client: it shows the room's recent history on joining, resumes with
``since`` (and the room's epoch) after a reconnect, resends unacked lines with the same client_id, and answers
heartbeat pings. When the server says the room was reset (made again, or its store restored), it says so and shows
the room's recent history again; when a join could not complete (an error naming the room), it joins again with
backoff. Input may be typed or piped: at the end of input it waits until every line it read is stored before it
exits.
"""

from __future__ import annotations

import asyncio
import codecs
import itertools
import json
import os
import shutil
import sys
import termios
import threading
import time
import unicodedata
import urllib.error
import urllib.request
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import quote, urlencode, urlsplit, urlunsplit

import websockets
from websockets.asyncio.client import ClientConnection

BACKOFF_MAX = 10.0
# Before the first connection succeeds a failure is more likely a wrong URL than a restart: give up after this many
# attempts (about 8 s of backoff) instead of retrying forever in silence.
FIRST_CONNECT_ATTEMPTS = 5
RATE_LIMITED_RETRY = 1.0
# Errors that end a join the server could not complete (they name the room): join again, with backoff.
JOIN_RETRIES = ("unavailable", "internal")


class ChatExit(Exception):
    """The session cannot go on; ``str(self)`` says why. The command exits non-zero."""


def render(frame: dict[str, Any], titles: dict[str, str] | None = None) -> str | None:
    """A frame as a line for people, or None for frames nobody needs to see. ``titles``: how to call a room, for
    direct conversations (``@bob``, from the server's room list, never from the room's name)."""
    kind = frame.get("type")

    def title(room: str) -> str:
        return (titles or {}).get(room) or f"#{room}"

    if kind == "message":
        stamp = time.strftime("%H:%M", time.localtime(frame["ts"] / 1000))
        extra = f" [{len(frame['attachments'])} attachment(s)]" if frame.get("attachments") else ""
        return f"[{stamp}] {title(frame['room'])} {frame['from']}: {frame['body']}{extra}"
    if kind == "presence":
        return f"* {frame['user']} {'joined' if frame['online'] else 'left'} {title(frame['room'])}"
    if kind == "error":
        return f"! {frame['code']}: {frame['message']}"
    if kind == "joined":
        return f"* joined {title(frame['room'])} (last seq {frame['seq']})"
    if kind == "left" and frame.get("reason") == "removed":
        return f"* you were removed from {title(frame['room'])}"
    if kind == "room" and frame.get("change") == "invited":
        return f"* {frame.get('by') or 'someone'} invited you to #{frame['room']} (chatd chat --room {frame['room']})"
    if kind == "dm":
        return f"* a direct conversation with {frame['with']} is open (chatd chat --room {frame['room']})"
    if kind == "user":
        return f"* {frame['was']} is now called {frame['name']}"
    return None


class StdinLines:
    """Lines of standard input, read by one thread for the whole session, into ``queue`` (None at the end).

    One reader outlives every connection, so a line is never taken by a reader that belonged to a dropped
    connection. A thread (rather than ``loop.add_reader``) works for a terminal, a pipe and a regular file alike,
    and reading the raw descriptor keeps the thread off the buffered ``sys.stdin`` lock, which a daemon thread
    blocked at interpreter exit would otherwise hold."""

    def __init__(self, loop: asyncio.AbstractEventLoop, fd: int, queue: asyncio.Queue[str | None]) -> None:
        self._loop = loop
        self._fd = fd
        self.queue = queue
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


def display_width(text: str) -> int:
    """Terminal columns ``text`` takes: wide (East Asian) characters two, combining marks none."""
    width = 0
    for ch in text:
        if unicodedata.combining(ch):
            continue
        width += 2 if unicodedata.east_asian_width(ch) in ("W", "F") else 1
    return width


def _drop_word(text: str) -> str:
    text = text.rstrip()
    return text[: text.rfind(" ") + 1]


# Editing keys of the input line: Backspace (DEL or BS), Ctrl-U (the whole line), Ctrl-W (a word), Tab.
_EDITS: dict[str, Callable[[str], str]] = {
    "\x7f": lambda text: text[:-1],
    "\x08": lambda text: text[:-1],
    "\x15": lambda text: "",
    "\x17": _drop_word,
    "\t": lambda text: text + " ",
}


class Console:
    """Where the client's input comes from and where its lines go.

    On a terminal (standard input and output both ttys) it edits the input line itself, with the terminal in
    non-canonical mode and its echo off: a line that arrives (a message, a status) is printed *above* the line
    being typed, which is then drawn again under it, so nothing lands inside a half-typed line. A line sent is
    cleared from the input; it shows once, when the server has stored it (its message frame). Keys: Enter sends,
    Backspace, Ctrl-U (the whole line), Ctrl-W (a word), Ctrl-D on an empty line ends the input; other control keys
    and escape sequences (arrows) are ignored. Anything else (a pipe, a file, output redirected) is read line by
    line and printed as it comes. ``queue`` yields the typed lines, then None at the end of input.
    """

    def __init__(self, loop: asyncio.AbstractEventLoop, prompt: str, fd: int | None = None) -> None:
        self.queue: asyncio.Queue[str | None] = asyncio.Queue()
        self.prompt = prompt
        self.buffer = ""
        self._fd = sys.stdin.fileno() if fd is None else fd
        self._loop = loop
        self._rows = 0  # terminal rows the prompt and the buffer take now (0: not drawn)
        self._escape = ""  # an escape sequence being skipped
        self._ended = False
        self._saved: list[Any] | None = None
        self.editing = os.isatty(self._fd) and sys.stdout.isatty()
        if not self.editing:
            StdinLines(loop, self._fd, self.queue)
            return
        self._saved = termios.tcgetattr(self._fd)
        mode = termios.tcgetattr(self._fd)
        mode[3] &= ~(termios.ICANON | termios.ECHO)  # keys one by one, drawn by us; Ctrl-C still interrupts
        mode[6][termios.VMIN], mode[6][termios.VTIME] = 1, 0
        termios.tcsetattr(self._fd, termios.TCSANOW, mode)
        self._decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")
        threading.Thread(target=self._read_keys, name="chatd-keys", daemon=True).start()
        self._draw()

    def say(self, text: str, err: bool = False) -> None:
        """Print a line; on a terminal above the line being typed."""
        if not self.editing:
            print(text, file=sys.stderr if err else sys.stdout, flush=True)
            return
        self._clear()
        sys.stdout.write(text + "\n")
        self._draw()

    def close(self) -> None:
        """Give the terminal back as it was (also after Ctrl-C)."""
        if self._saved is not None:
            self._clear()
            sys.stdout.flush()
            termios.tcsetattr(self._fd, termios.TCSADRAIN, self._saved)
            self._saved = None

    # --- the line being typed (terminal only, on the loop's thread) ---------------------------------------------

    def _read_keys(self) -> None:
        while True:
            try:
                chunk = os.read(self._fd, 1024)
            except OSError:
                chunk = b""
            self._loop.call_soon_threadsafe(self._keys, chunk)
            if not chunk:
                return

    def _keys(self, chunk: bytes) -> None:
        if not chunk:
            self._end()
            return
        for ch in self._decoder.decode(chunk):
            self._key(ch)
        self._clear()
        self._draw()

    def _key(self, ch: str) -> None:
        if self._ended:
            return
        if self._escape:
            self._escape += ch
            # ESC [ … final, ESC O x, or ESC x (Alt+key): skip the whole sequence.
            if len(self._escape) == 2 and ch not in "[O" or len(self._escape) > 2 and "@" <= ch <= "~":
                self._escape = ""
        elif ch == "\x1b":
            self._escape = ch
        elif ch in "\r\n":
            line, self.buffer = self.buffer, ""
            self.queue.put_nowait(line)
        elif ch == "\x04" and not self.buffer:
            self._end()
        elif ch in _EDITS:
            self.buffer = _EDITS[ch](self.buffer)
        elif ch >= " ":
            self.buffer += ch

    def _end(self) -> None:
        if not self._ended:
            self._ended = True
            self._clear()
            self.queue.put_nowait(None)

    def _clear(self) -> None:
        if self._rows:
            sys.stdout.write((f"\x1b[{self._rows - 1}A" if self._rows > 1 else "") + "\r\x1b[J")
            self._rows = 0

    def _draw(self) -> None:
        if self._ended or self._saved is None:
            sys.stdout.flush()
            return
        text = self.prompt + self.buffer
        columns = max(1, shutil.get_terminal_size().columns)
        self._rows = max(0, display_width(text) - 1) // columns + 1
        sys.stdout.write(text)
        sys.stdout.flush()


@dataclass
class Session:
    """What survives reconnects: the room, the last seq printed, and the lines not yet acked."""

    room: str
    history: int
    titles: dict[str, str] = field(default_factory=dict)  # room -> how to show it (a direct conversation: @name)
    uid: int = 0  # who we are (the hello frame): a rename of ours is told as ours, and we are not "here" twice
    partner: int = 0  # in a direct conversation, the other person's id
    last_seq: int | None = None
    epoch: str | None = None  # the epoch last_seq counts in, from the last joined frame
    pending: dict[str, str] = field(default_factory=dict)  # client_id → body, until acked or refused
    acked: asyncio.Event = field(default_factory=asyncio.Event)
    since_sent: int | None = None  # the since of the last join sent
    replay_end: int | None = None  # when a capped replay ends, at this seq, join again from there
    rejoins: int = 0  # joins the server could not complete in a row (for the backoff)
    # The room's recent history over REST (up to seq ``through``, at most ``n``), to show it again after a reset.
    reload: Callable[[int, int], list[dict[str, Any]]] = lambda through, n: []
    say: Callable[[str], None] = print  # where frames are printed (the Console)
    on_joined: Callable[[], None] | None = None  # live in the room: say who is there

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


def _get_json(url: str, path: str, user: str | None, token: str | None, **params: int) -> Any:
    """``GET path`` (with ``params``) on the server of WebSocket ``url``, as this client; None when it cannot be
    read."""
    query: dict[str, str | int] = {"user": user} if user else {}
    query.update(params)
    req = urllib.request.Request(f"{http_base(url)}{path}" + (f"?{urlencode(query)}" if query else ""))
    if token:
        req.add_header("Authorization", f"Bearer {token}")
    try:
        with urllib.request.urlopen(req, timeout=5) as resp:
            return json.load(resp)
    except (OSError, ValueError):
        return None


def room_info(url: str, room: str, user: str | None, token: str | None) -> dict[str, Any] | None:
    """The room as ``GET /api/rooms/{room}`` shows it, or None if it does not exist yet or cannot be read (the join
    then says why)."""
    found = _get_json(url, f"/api/rooms/{quote(room, safe='')}", user, token)
    return found if isinstance(found, dict) and isinstance(found.get("last_seq"), int) else None


def recent_history(
    url: str, room: str, user: str | None, token: str | None, through: int, n: int
) -> list[dict[str, Any]]:
    """Up to ``n`` messages of ``room`` up to seq ``through``, oldest first (none if they cannot be read)."""
    if n <= 0 or through <= 0:
        return []
    found = _get_json(url, f"/api/rooms/{quote(room, safe='')}/messages", user, token, before=through + 1, limit=n)
    return list(found.get("messages", [])) if isinstance(found, dict) else []


def who_is_here(url: str, room: str, me: str, user: str | None, token: str | None, uid: int = 0) -> str | None:
    """``* here in #room: ann, bob and you``, from the room's presence; None if it cannot be read. We are ``uid``
    (a name could be someone else's by now)."""
    found = _get_json(url, f"/api/rooms/{quote(room, safe='')}/presence", user, token)
    if not isinstance(found, dict) or not isinstance(found.get("users"), list):
        return None
    listed = found.get("uids")
    ids: list[Any] = listed if isinstance(listed, list) else [None] * len(found["users"])
    others = sorted(
        (
            u
            for u, i in zip(found["users"], ids, strict=False)
            if isinstance(u, str) and (i != uid if uid and i is not None else u.lower() != me.lower())
        ),
        key=str.lower,
    )
    if not others:
        return f"* nobody else is in #{room} right now"
    return f"* here in #{room}: {', '.join(others)} and you"


class TerminalChat:
    """One ``chatd chat`` run: connect, join, send what is typed, print what arrives, reconnect with backoff.

    :meth:`run` is the connection lifecycle; :meth:`_connected` is one connection (:meth:`_begin` its start, the
    module's ``_read`` and its ``_on_<type>`` handlers what arrives on it); :meth:`_outage` keeps reading input
    between connections; :meth:`_failure` says what a failed attempt means (or ends the run)."""

    def __init__(self, url: str, room: str, user: str | None, token: str | None, history: int) -> None:
        if user:
            url += ("&" if "?" in url else "?") + f"user={quote(user)}"
        self.url, self.user, self.token = url, user, token
        self.headers = {"Authorization": f"Bearer {token}"} if token else {}
        self.session = Session(room, history)
        self.session.acked.set()
        self.session.reload = lambda through, n: recent_history(self.url, room, user, token, through, n)
        self.ids = itertools.count(1)
        self.prefix = f"t{int(time.time())}-"
        self.me = user or ""
        self.console: Console | None = None
        # The one pending read of input: kept across connections, so a line typed during a reconnect is not lost.
        self.next_line: asyncio.Task[str | None] | None = None
        self.eof = False
        self.connected_once = False

    def say(self, text: str, err: bool = False) -> None:
        assert self.console is not None
        self.console.say(text, err)

    async def run(self) -> None:
        self.console = Console(asyncio.get_running_loop(), f"#{self.session.room}> ")
        self.session.say = self.say
        self.session.on_joined = self._say_who_is_here
        try:
            await self._run()
        finally:
            self.console.close()

    async def _run(self) -> None:
        attempts, backoff = 0, 0.5
        while True:
            attempts += 1
            try:
                async with websockets.connect(self.url, additional_headers=self.headers, max_size=None) as ws:
                    attempts, backoff = 0, 0.5
                    why = await self._connected(ws)
                    if why is None:
                        return  # input ended and every line is stored
            except Exception as e:  # noqa: BLE001 - _failure re-raises what it does not know
                why = self._failure(e, attempts)
            self.say(f"* {why}; retrying in {backoff:.1f}s", err=True)
            if await self._outage(backoff, why):
                return
            backoff = min(backoff * 2, BACKOFF_MAX)

    def _input(self) -> asyncio.Queue[str | None]:
        assert self.console is not None
        return self.console.queue

    def _take(self, line: str | None) -> str | None:
        """A line of input (None: its end) into pending; returns its client_id, if it is one to send."""
        if line is None:
            self.eof = True
        elif line.strip():
            return self.session.add(f"{self.prefix}{next(self.ids)}", line)
        return None

    async def _connected(self, ws: ClientConnection) -> str | None:
        """One connection: join, resend what is unacked, then send lines and print frames until the socket closes
        (returns why) or input has ended with every line stored (returns None)."""
        session = self.session
        await self._begin(ws)
        reader = asyncio.create_task(_read(ws, session))
        all_acked = asyncio.create_task(session.acked.wait())
        while True:
            if self.next_line is None and not self.eof:
                self.next_line = asyncio.create_task(self._input().get())
            waits: set[asyncio.Future[Any]] = {reader}
            if self.next_line is not None:
                waits.add(self.next_line)
            elif self.eof:
                if all_acked.done() and not session.acked.is_set():
                    all_acked = asyncio.create_task(session.acked.wait())
                waits.add(all_acked)
            done, _ = await asyncio.wait(waits, return_when=asyncio.FIRST_COMPLETED)
            if self.eof and session.acked.is_set():
                reader.cancel()
                return None
            if self.next_line is not None and self.next_line in done:
                typed, self.next_line = self._take(self.next_line.result()), None
                if typed is not None:
                    await ws.send(session.send_frame(typed))
            if reader in done:
                code = reader.result()
                return "the server closed the connection" + (f" ({code})" if code is not None else "")

    async def _begin(self, ws: ClientConnection) -> None:
        """A connection's start: read the hello (who we are), join the room (resuming after the last seq printed),
        and resend the lines not acked before the drop, with the same client_id."""
        session = self.session
        hello = json.loads(str(await ws.recv()).split("\n")[0])
        self.connected_once = True
        self.me = hello.get("user") or self.me
        session.uid = hello.get("uid", 0)
        self.say(f"* connected as {hello.get('user')}; type a line and press enter (Ctrl-D quits)")
        await ws.send(json.dumps(await _join_frame(session, self.url, self.user, self.token)))
        for cid in list(session.pending):
            await ws.send(session.send_frame(cid))

    def _failure(self, e: Exception, attempts: int) -> str:
        """Why an attempt failed, to retry after; raises ChatExit when retrying cannot help."""
        if isinstance(e, websockets.InvalidURI):
            raise ChatExit(f"not a WebSocket URL: {e.uri} (expected ws://HOST:PORT/ws)") from None
        if isinstance(e, websockets.InvalidStatus):
            status = e.response.status_code
            hint = "" if urlsplit(self.url).path.endswith("/ws") else " (chatd's WebSocket endpoint is /ws)"
            raise ChatExit(f"the server refused the WebSocket: HTTP {status}{hint}") from None
        if isinstance(e, websockets.ConnectionClosed):
            code = e.rcvd.code if e.rcvd else None
            if code is not None and 4400 <= code < 4500:
                what = "the token was refused" if code == 4401 else "the server refused this client"
                raise ChatExit(f"{what}: closed with {code} {e.rcvd.reason if e.rcvd else ''}".rstrip()) from None
            return f"connection closed ({code})" if code else "connection lost"
        if isinstance(e, TimeoutError | OSError | websockets.InvalidHandshake):
            why = f"cannot reach {self.url}: {e or type(e).__name__}"
            if not self.connected_once and attempts >= FIRST_CONNECT_ATTEMPTS:
                raise ChatExit(f"{why} (gave up after {attempts} attempts)") from None
            return why
        raise e

    async def _outage(self, backoff: float, why: str) -> bool:
        """Wait out ``backoff`` while still reading input: a line typed now waits in pending for the next
        connection, and Ctrl-D with nothing unsent ends the client at once. Returns True when the run should end."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + backoff
        while not self.eof and (left := deadline - loop.time()) > 0:
            if self.next_line is None:
                self.next_line = asyncio.create_task(self._input().get())
            done, _ = await asyncio.wait({self.next_line}, timeout=left)
            if not done:
                break
            if self._take(self.next_line.result()) is not None:
                waiting = len(self.session.pending)
                self.say(f"* not connected: {waiting} line{'s' if waiting != 1 else ''} will be sent when it is back")
            self.next_line = None
        if self.eof and not self.session.pending:
            if not self.connected_once:
                raise ChatExit(why)  # nothing to send, but the server was never reached: say so
            return True
        await asyncio.sleep(max(0.0, deadline - loop.time()))
        return False

    def _say_who_is_here(self) -> None:
        async def tell() -> None:
            s = self.session
            text = await asyncio.to_thread(who_is_here, self.url, s.room, self.me, self.user, self.token, s.uid)
            if text:
                self.say(text)

        task = asyncio.ensure_future(tell())
        task.add_done_callback(lambda t: t.cancelled() or t.exception())


async def chat(url: str, room: str, user: str | None, token: str | None, history: int = 20) -> None:
    """Chat in ``room`` until input ends and every line read is stored; reconnects with backoff and resumes
    without gaps. Raises :class:`ChatExit` when it cannot go on (refused credentials, an unreachable server)."""
    await TerminalChat(url, room, user, token, history).run()


async def _join_frame(session: Session, url: str, user: str | None, token: str | None) -> dict[str, Any]:
    join: dict[str, Any] = {"type": "join", "room": session.room}
    if session.last_seq is not None:
        join = _resume_frame(session, session.last_seq)  # resume exactly after what we already printed
    else:
        info = await asyncio.to_thread(room_info, url, session.room, user, token)
        if info is not None and info.get("dm") and info.get("with"):
            session.titles[session.room] = f"@{info['with']}"  # a direct conversation goes by the other person
            session.partner = info.get("with_uid") or 0
        if info is not None and session.history > 0:
            # First join: start a little back, so the replay shows recent history and the server's replay seam
            # joins it to live messages without a gap.
            join["since"] = max(0, info["last_seq"] - session.history)
    session.since_sent = join.get("since")
    return join


def _resume_frame(session: Session, since: int) -> dict[str, Any]:
    """A join that resumes after ``since``, in the epoch it was seen in (a reset answers it if that history is
    gone)."""
    frame: dict[str, Any] = {"type": "join", "room": session.room, "since": since}
    if session.epoch:
        frame["epoch"] = session.epoch
    return frame


async def _read(ws: ClientConnection, session: Session) -> int | None:
    """Print frames until the socket closes, keeping the session's last seq and pending lines current. Returns
    the close code the server sent, if any."""
    try:
        async for raw in ws:
            packed = raw if isinstance(raw, str) else raw.decode()  # chatd sends text frames
            for line in packed.split("\n"):
                frame = json.loads(line)
                handle = _ON_FRAME.get(frame.get("type"))
                if handle is not None and not await handle(ws, session, frame):
                    continue
                text = render(frame, session.titles)
                if text:
                    session.say(text)
    except websockets.ConnectionClosed as e:
        if e.rcvd and 4400 <= e.rcvd.code < 4500:
            raise
        return e.rcvd.code if e.rcvd else None
    return ws.close_code


# What a frame does to the session before its line is printed. Each returns whether the line is printed still
# (False: the frame was handled in its own words, or needs none).


async def _on_ping(ws: ClientConnection, session: Session, frame: dict[str, Any]) -> bool:
    await ws.send('{"type":"pong"}')
    return True


async def _on_ack(ws: ClientConnection, session: Session, frame: dict[str, Any]) -> bool:
    session.settle(frame["client_id"])
    return True


async def _on_message(ws: ClientConnection, session: Session, frame: dict[str, Any]) -> bool:
    session.last_seq = frame["seq"]
    if frame["seq"] == session.replay_end:
        session.replay_end, session.since_sent = None, frame["seq"]
        await ws.send(json.dumps(_resume_frame(session, frame["seq"])))
    return True


async def _on_joined(ws: ClientConnection, session: Session, frame: dict[str, Any]) -> bool:
    since = session.since_sent
    session.epoch = frame.get("epoch") or session.epoch
    session.rejoins = 0
    if frame.get("reset"):
        await _show_again(session, frame["seq"])
        return False
    if session.last_seq is None:
        # Without a since, live delivery starts after the room's last seq: resume from there.
        session.last_seq = since if since is not None else frame["seq"]
    if frame.get("capped"):
        # Live delivery starts only after a replay that is not capped: ask for the next part.
        session.replay_end = (since or 0) + frame.get("replay", 0)
    elif session.on_joined is not None:
        session.on_joined()
    return True


async def _show_again(session: Session, seq: int) -> None:
    """Another history than the one we printed from (the room was made again, or the server's store restored):
    say so, and show the room's recent history again. Live messages start after ``seq``; they wait in the socket
    while the history is read."""
    session.say(f"* the history of #{session.room} was replaced on the server; showing it again")
    session.last_seq, session.replay_end = seq, None
    for m in await asyncio.to_thread(session.reload, seq, session.history):
        session.say(render(m, session.titles) or "")
    if session.on_joined is not None:
        session.on_joined()


async def _on_user(ws: ClientConnection, session: Session, frame: dict[str, Any]) -> bool:
    if frame.get("uid") == session.uid:
        session.say(f"* you are now called {frame['name']}")
        return False
    if session.partner and frame.get("uid") == session.partner:
        session.titles[session.room] = f"@{frame['name']}"
    return True


async def _on_error(ws: ClientConnection, session: Session, frame: dict[str, Any]) -> bool:
    if not frame.get("ref") and frame.get("room") == session.room:
        if frame.get("code") not in JOIN_RETRIES:
            return True
        # A join the server could not complete, or a room it stopped feeding us: the room is not followed now.
        # Join it again after a backoff, from the last seq printed.
        session.rejoins += 1
        delay = min(BACKOFF_MAX, 0.5 * 2 ** (session.rejoins - 1))
        asyncio.get_running_loop().call_later(delay, _rejoin, ws, session)
        session.say(f"! {frame['code']}: {frame['message']} (joining again in {delay:.1f}s)")
        return False
    if frame.get("ref") in session.pending:
        if frame.get("code") in ("rate_limited", "unavailable"):
            # Not an error the user must act on: the line goes out again shortly, and lines refused together go
            # out again in the order they were typed (the server keeps that order).
            asyncio.get_running_loop().call_later(RATE_LIMITED_RETRY, _resend, ws, session, frame["ref"])
            return False
        session.settle(frame["ref"])  # refused for good; the error line printed says why
    return True


_ON_FRAME: dict[str, Callable[[ClientConnection, Session, dict[str, Any]], Awaitable[bool]]] = {
    "ping": _on_ping,
    "ack": _on_ack,
    "message": _on_message,
    "joined": _on_joined,
    "user": _on_user,
    "error": _on_error,
}


def _rejoin(ws: ClientConnection, session: Session) -> None:
    frame: dict[str, Any] = (
        {"type": "join", "room": session.room} if session.last_seq is None else _resume_frame(session, session.last_seq)
    )
    session.since_sent = frame.get("since")
    task = asyncio.ensure_future(ws.send(json.dumps(frame)))
    task.add_done_callback(lambda t: t.exception())  # a closed socket is fine: the reconnect joins anyway


def _resend(ws: ClientConnection, session: Session, client_id: str) -> None:
    if client_id in session.pending:
        task = asyncio.ensure_future(ws.send(session.send_frame(client_id)))
        task.add_done_callback(lambda t: t.exception())  # a closed socket is fine: the reconnect resends it
