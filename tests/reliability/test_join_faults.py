"""A join that cannot complete is answered with an error naming its room, and the client that joins again gets
everything, through a real server on PostgreSQL whose link to the database the test cuts mid-replay (a TCP proxy of
the test's own between the node and PostgreSQL; the shared PostgreSQL is never touched)."""

from __future__ import annotations

import asyncio
import contextlib
import threading
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from chatd.deploy.procs import free_port
from harness import ChatdProcess, Client

ROOM = "long-history"
PG_PORT = 5432


class Proxy:
    """Forwards TCP connections to PostgreSQL until ``cut``: then every link is dropped and new ones refused,
    until ``restore``. It runs its own event loop in a thread, so the test's blocking calls never stall it."""

    def __init__(self) -> None:
        self.port = free_port()
        self._server: asyncio.Server | None = None
        self._links: set[asyncio.StreamWriter] = set()
        self._loop = asyncio.new_event_loop()
        threading.Thread(target=self._loop.run_forever, name="pg-proxy", daemon=True).start()

    def _run(self, coro: Any) -> Any:
        return asyncio.run_coroutine_threadsafe(coro, self._loop).result(10)

    def start(self) -> Proxy:
        self._run(self._listen())
        return self

    async def _listen(self) -> None:
        self._server = await asyncio.start_server(self._link, "127.0.0.1", self.port)

    async def _link(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            up_reader, up_writer = await asyncio.open_connection("127.0.0.1", PG_PORT)
        except OSError:
            writer.close()
            return
        self._links |= {writer, up_writer}

        async def pump(src: asyncio.StreamReader, dst: asyncio.StreamWriter) -> None:
            with contextlib.suppress(OSError):
                while data := await src.read(65536):
                    dst.write(data)
                    await dst.drain()
            dst.close()

        await asyncio.gather(pump(reader, up_writer), pump(up_reader, writer))

    def cut(self) -> None:
        self._run(self._cut())

    async def _cut(self) -> None:
        assert self._server is not None
        self._server.close()
        for w in self._links:
            w.transport.abort()
        self._links.clear()

    def restore(self) -> None:
        self.start()

    def stop(self) -> None:
        self.cut()
        self._loop.call_soon_threadsafe(self._loop.stop)

    def dsn(self, dsn: str) -> str:
        parts = urlsplit(dsn)
        return urlunsplit(parts._replace(netloc=f"{parts.username}@127.0.0.1:{self.port}"))


async def test_a_store_link_cut_during_a_replay_is_answered_naming_the_room_and_a_new_join_gets_the_rest(
    make_server, pg_dsn: str
) -> None:
    proxy = Proxy().start()
    server: ChatdProcess = make_server(
        {
            "store": {"backend": "postgres", "dsn": proxy.dsn(pg_dsn), "pool_size": 2},
            "limits": {"outbound_queue_bytes": 64 * 1024},
            "rooms": {"replay_max": 100_000},
        }
    ).start()
    total = 3000
    writer = await Client.connect(server.ws, user="writer")
    await writer.join(ROOM)
    await writer.send({"type": "leave", "room": ROOM})  # a member that does not follow: its own sends stay quiet
    await writer.expect("left")
    for n in range(1, total + 1):
        await writer.send({"type": "send", "room": ROOM, "body": f"{n:05d} " + "x" * 4000, "client_id": f"w{n}"})
    for _ in range(total):
        await writer.expect("ack", timeout=60)

    reader = await Client.connect(server.ws, user="reader", rcvbuf=4096)
    await reader.send({"type": "join", "room": ROOM, "since": 0})
    joined = await reader.expect("joined")
    assert joined["replay"] == total
    reader.stop_reading()
    await asyncio.sleep(1.0)  # 12 MB of replay: the server waits for this reader (outbox and socket buffers full)
    proxy.cut()
    reader.resume_reading()
    seqs: list[int] = []
    while True:
        frame = await reader.recv(timeout=30)
        if frame["type"] == "message":
            seqs.append(frame["seq"])
            continue
        if frame["type"] in ("presence", "ping"):
            continue
        break
    assert frame["type"] == "error" and frame["room"] == ROOM and frame["ref"] is None, frame
    assert frame["code"] == "unavailable", frame
    assert 0 < len(seqs) < total and seqs == list(range(1, len(seqs) + 1))  # what came before it was in order

    proxy.restore()
    await reader.send({"type": "join", "room": ROOM, "since": seqs[-1], "epoch": joined["epoch"]})
    again = await reader.expect("joined", timeout=30)
    assert "reset" not in again and again["replay"] == total - len(seqs)
    rest = [m["seq"] for m in await reader.messages(total - len(seqs), timeout=60)]
    assert seqs + rest == list(range(1, total + 1))
    await writer.say(ROOM, "live after the fault", "live")
    (live,) = await reader.messages(1)
    assert live["seq"] == total + 1
    await reader.close()
    await writer.close()
    server.stop()
    proxy.stop()
