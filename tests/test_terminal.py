"""``chatd chat``, the terminal client, driven as a real process: on a pseudo-terminal like a person at a keyboard,
or with a file on its standard input."""

from __future__ import annotations

import asyncio
import os
import pty
import sys
import time
from pathlib import Path

from chatd.deploy.local import free_port
from harness import ChatdProcess, Client, clean_env

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
