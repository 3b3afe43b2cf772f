"""``chatd chat``, the terminal client, driven as a real process: on a pseudo-terminal like a person at a keyboard,
or with a file on its standard input."""

from __future__ import annotations

import asyncio
import os
import pty
import sys
import time
from pathlib import Path

from chatd.deploy.procs import free_port
from harness import ChatdProcess, Client, clean_env, run_cli

CTRL_D = b"\x04"


class Terminal:
    """``chatd chat ARGS`` with a pseudo-terminal as its standard input and output."""

    def __init__(self, *args: str) -> None:
        master, slave = pty.openpty()
        self.master = master
        self.out = b""
        self._proc: asyncio.subprocess.Process | None = None
        self._args = args
        self._slave = slave

    async def start(self) -> Terminal:
        self._proc = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "chatd",
            "chat",
            *self._args,
            stdin=self._slave,
            stdout=self._slave,
            stderr=self._slave,
            env=clean_env(),
        )
        os.close(self._slave)
        os.set_blocking(self.master, False)
        return self

    @property
    def proc(self) -> asyncio.subprocess.Process:
        assert self._proc is not None, "start() first"
        return self._proc

    def _pump(self) -> None:
        try:
            while chunk := os.read(self.master, 65536):
                self.out += chunk
        except (BlockingIOError, OSError):  # EIO once the child has closed its side
            pass

    async def expect(self, text: str, after: int = 0, timeout: float = 20.0) -> int:
        """Wait until ``text`` is printed at or after offset ``after``; returns the offset just past it."""
        needle = text.encode()
        deadline = time.monotonic() + timeout
        while (at := self.out.find(needle, after)) < 0:
            assert time.monotonic() < deadline, f"{text!r} not printed; the terminal shows:\n{self.text()}"
            await asyncio.sleep(0.05)
            self._pump()
        return at + len(needle)

    def type(self, data: bytes) -> None:
        os.write(self.master, data)

    async def exit_code(self, timeout: float = 20.0) -> int:
        code = await asyncio.wait_for(self.proc.wait(), timeout)
        self._pump()
        return code

    def text(self) -> str:
        self._pump()
        return self.out.decode(errors="replace")

    def close(self) -> None:
        if self._proc is not None and self._proc.returncode is None:
            self._proc.kill()
        os.close(self.master)


async def bodies_in(server: ChatdProcess, room: str, want: int) -> list[str]:
    """The bodies of the first ``want`` messages stored in ``room``, read by a fresh connection."""
    c = await Client.connect(server.ws, user="term_reader")
    await c.join(room, since=0)
    out = [m["body"] for m in await c.messages(want)]
    await c.close()
    return out


async def test_no_line_and_no_ctrl_d_is_lost_across_server_restarts(make_server) -> None:
    server: ChatdProcess = make_server().start()
    term = await Terminal("--url", server.ws, "--user", "restarter", "--room", "restart-room").start()
    try:
        at = await term.expect("joined #restart-room")
        term.type(b"before the restart\n")
        at = await term.expect("restarter: before the restart", at)

        server.stop()
        at = await term.expect("retrying", at)
        term.type(b"typed while the server was down\n")
        server.start()
        at = await term.expect("joined #restart-room", at)
        at = await term.expect("restarter: typed while the server was down", at)
        # The first line after a reconnect is the one a reader left over from the old connection used to take.
        term.type(b"first line after the restart\n")
        at = await term.expect("restarter: first line after the restart", at)
        assert await bodies_in(server, "restart-room", 3) == [
            "before the restart",
            "typed while the server was down",
            "first line after the restart",
        ]

        server.stop()
        at = await term.expect("retrying", at)
        server.start()
        await term.expect("joined #restart-room", at)
        term.type(CTRL_D)
        assert await term.exit_code(10) == 0, term.text()
    finally:
        term.close()


async def test_ctrl_d_during_an_outage_with_nothing_unsent_exits_at_once(make_server) -> None:
    server: ChatdProcess = make_server().start()
    term = await Terminal("--url", server.ws, "--user", "quitter", "--room", "outage-room").start()
    try:
        at = await term.expect("joined #outage-room")
        server.stop()
        await term.expect("retrying", at)
        term.type(CTRL_D)
        assert await term.exit_code(5) == 0, term.text()  # not after the backoff, and not after the server is back
    finally:
        term.close()


async def test_joining_shows_the_rooms_recent_history_then_live_messages(server: ChatdProcess) -> None:
    writer = await Client.connect(server.ws, user="historian")
    await writer.join("history-room")
    for i in range(1, 13):
        await writer.say("history-room", f"old message {i:02d}", f"h{i}")
    term = await Terminal(
        "--url", server.ws, "--user", "late_reader", "--room", "history-room", "--history", "5"
    ).start()
    try:
        at = await term.expect("joined #history-room")
        for i in range(8, 13):
            at = await term.expect(f"historian: old message {i:02d}", at)
        assert "old message 07" not in term.text()
        await writer.say("history-room", "a live one", "h-live")
        await term.expect("historian: a live one", at)
        term.type(CTRL_D)
        assert await term.exit_code() == 0
    finally:
        term.close()
        await writer.close()


async def test_a_refused_token_exits_non_zero_and_says_so(token_server: ChatdProcess) -> None:
    term = await Terminal("--url", token_server.ws, "--token", "chatd_not_a_real_token").start()
    try:
        assert await term.exit_code() == 1
        assert "token was refused" in term.text() and "4401" in term.text()
        assert "Traceback" not in term.text()
    finally:
        term.close()


async def test_an_unreachable_url_says_why_and_gives_up(server: ChatdProcess) -> None:
    nothing_there = f"ws://127.0.0.1:{free_port()}/ws"
    term = await Terminal("--url", nothing_there, "--user", "lost").start()
    try:
        await term.expect("cannot reach " + nothing_there)
        assert await term.exit_code(30) == 1
        assert "gave up after 5 attempts" in term.text() and "Traceback" not in term.text()
    finally:
        term.close()
    wrong_path = await Terminal("--url", server.http.replace("http", "ws") + "/chat", "--user", "lost").start()
    try:
        assert await wrong_path.exit_code() == 1
        assert "refused the WebSocket: HTTP 4" in wrong_path.text() and "endpoint is /ws" in wrong_path.text()
    finally:
        wrong_path.close()


async def test_a_piped_file_is_sent_whole_even_past_the_rate_limit(make_server, tmp_path: Path) -> None:
    server: ChatdProcess = make_server({"limits": {"send_rate": 20, "send_burst": 5}}).start()
    lines = [f"line {i:02d} of the file" for i in range(1, 31)]
    script = tmp_path / "script.txt"
    script.write_text("\n".join(lines) + "\n\n")  # a blank line is not a message
    with open(script, "rb") as stdin:
        proc = await asyncio.create_subprocess_exec(
            *(sys.executable, "-m", "chatd", "chat", "--url", server.ws, "--user", "piper", "--room", "piped"),
            stdin=stdin,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.STDOUT,
            env=clean_env(),
        )
        out, _ = await asyncio.wait_for(proc.communicate(), 30)
    assert proc.returncode == 0, out.decode()
    assert b"Traceback" not in out
    # The server refused some sends past the burst; the client sent them again until each was stored, in order.
    assert await bodies_in(server, "piped", 30) == lines


def screen(out: str, columns: int = 80) -> list[str]:
    """What a terminal shows after ``out``: the text, line breaks, carriage returns and the three controls the
    client draws its input line with (cursor up, clear to the end of the screen, clear to the end of the line)."""
    lines: list[str] = [""]
    row = col = 0
    i = 0
    while i < len(out):
        ch = out[i]
        if ch == "\x1b" and out[i + 1 : i + 2] == "[":
            j = i + 2
            while not ("@" <= out[j] <= "~"):
                j += 1
            arg, final = out[i + 2 : j], out[j]
            if final == "A":
                row = max(0, row - int(arg or "1"))
            elif final == "J":
                lines[row] = lines[row][:col]
                del lines[row + 1 :]
            elif final == "K":
                lines[row] = lines[row][:col]
            i = j + 1
            continue
        if ch == "\r":
            col = 0
        elif ch == "\n":
            row += 1
            col = 0
        elif ch >= " ":
            if col >= columns:
                row, col = row + 1, 0
            while len(lines) <= row:
                lines.append("")
            line = lines[row].ljust(col)
            lines[row] = line[:col] + ch + line[col + 1 :]
            col += 1
        while len(lines) <= row:
            lines.append("")
        i += 1
    return lines


async def test_a_message_arriving_mid_line_is_printed_above_it_and_a_sent_line_shows_once(server: ChatdProcess) -> None:
    """Issue 21.8: the half-typed line is drawn again under what arrived; what you send is shown once, stored."""
    room = "typing-room"
    writer = await Client.connect(server.ws, user="interrupter")
    await writer.join(room)
    term = await Terminal("--url", server.ws, "--user", "typist", "--room", room).start()
    try:
        at = await term.expect(f"joined #{room}")
        term.type(b"oops\x15half a sen")  # Ctrl-U took the first try away
        at = await term.expect("half a sen", at)
        await writer.say(room, "arrived meanwhile", "w1")
        at = await term.expect("interrupter: arrived meanwhile", at)
        at = await term.expect("half a sen", at)
        shown = [line.rstrip() for line in screen(term.text()) if line.strip()]
        arrived = [line for line in shown if "arrived meanwhile" in line]
        assert len(arrived) == 1 and arrived[0].endswith(f"#{room} interrupter: arrived meanwhile"), shown
        assert "half" not in arrived[0] and shown[-1] == f"#{room}> half a sen", shown
        term.type(b"tence\n")
        await term.expect("typist: half a sentence", at)
        await asyncio.sleep(0.3)  # a second copy would come right after the first
        shown = [line.rstrip() for line in screen(term.text()) if line.strip()]
        assert [line for line in shown if "half a sentence" in line] == [
            next(line for line in shown if line.endswith("typist: half a sentence"))
        ], shown
        assert shown[-1] == f"#{room}>", shown
        assert await bodies_in(server, room, 2) == ["arrived meanwhile", "half a sentence"]
        term.type(CTRL_D)
        assert await term.exit_code() == 0
    finally:
        term.close()
        await writer.close()


async def test_joining_says_who_is_in_the_room(server: ChatdProcess) -> None:
    room = "who-room"
    others = [await Client.connect(server.ws, user=name) for name in ("zoe", "abe")]
    for other in others:
        await other.join(room)
    term = await Terminal("--url", server.ws, "--user", "newcomer", "--room", room).start()
    try:
        await term.expect(f"* here in #{room}: abe, zoe and you")
    finally:
        term.close()
        for other in others:
            await other.close()
    empty = await Terminal("--url", server.ws, "--user", "loner", "--room", "empty-room").start()
    try:
        await empty.expect("* nobody else is in #empty-room right now")
    finally:
        empty.close()


async def test_after_a_restore_the_client_says_so_and_shows_the_room_again(make_server, tmp_path: Path) -> None:
    server: ChatdProcess = make_server().start()
    writer = await Client.connect(server.ws, user="keeper")
    await writer.join("restored-room")
    for i in range(1, 4):
        await writer.say("restored-room", f"kept {i}", f"k{i}")
    term = await Terminal("--url", server.ws, "--user", "watcher", "--room", "restored-room").start()
    try:
        at = await term.expect("keeper: kept 3")
        assert run_cli("backup", str(tmp_path / "at3.db"), "--config", str(server.config_path)).returncode == 0
        for i in (4, 5):
            await writer.say("restored-room", f"lost {i}", f"x{i}")
        at = await term.expect("keeper: lost 5", at)
        await writer.close()
        server.stop()
        at = await term.expect("retrying", at)
        assert run_cli("restore", str(tmp_path / "at3.db"), "--config", str(server.config_path)).returncode == 0
        server.start()
        at = await term.expect("the history of #restored-room was replaced", at)
        at = await term.expect("keeper: kept 3", at)  # the room's recent history, shown again
        writer = await Client.connect(server.ws, user="keeper")
        await writer.join("restored-room")
        await writer.say("restored-room", "new 4", "n4")
        await term.expect("keeper: new 4", at)
        assert "lost" not in term.text()[at:]
        term.type(CTRL_D)
        assert await term.exit_code() == 0
    finally:
        term.close()
        await writer.close()


async def test_a_room_the_server_stopped_feeding_is_joined_again(make_server) -> None:
    server: ChatdProcess = make_server().start()
    writer = await Client.connect(server.ws, user="talker")
    await writer.join("refed-room")
    await writer.say("refed-room", "before", "b1")
    await writer.send({"type": "leave", "room": "refed-room"})  # a member that does not follow the room
    await writer.expect("left", skip=("presence", "message"))
    term = await Terminal("--url", server.ws, "--user", "listener", "--room", "refed-room").start()
    try:
        at = await term.expect("talker: before")
        # The room's epoch changes behind the node's back; the next join there resets the node's feed, and its
        # followers are told with an error naming the room.
        assert run_cli("rooms", "new-epochs", "--config", str(server.config_path)).returncode == 0
        other = await Client.connect(server.ws, user="someone")
        await other.join("refed-room")
        at = await term.expect("! unavailable", at)
        at = await term.expect("the history of #refed-room was replaced", at)  # its new join, answered reset
        await writer.say("refed-room", "after", "a1")
        await term.expect("talker: after", at)
        await other.close()
        term.type(CTRL_D)
        assert await term.exit_code() == 0
    finally:
        term.close()
        await writer.close()
