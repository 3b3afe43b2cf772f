"""Limits and hostile input, each against a live server with the limit turned down so it is reached quickly."""

from __future__ import annotations

import asyncio
import json
import socket
import time

import pytest
import websockets

from harness import ChatdProcess, Client


@pytest.fixture(scope="module")
def tight(tmp_path_factory: pytest.TempPathFactory):
    proc = ChatdProcess(
        tmp_path_factory.mktemp("tight"),
        {
            "limits": {
                "max_frame_bytes": 4096,
                "close_frame_bytes": 65536,
                "send_rate": 5,
                "send_burst": 5,
                "max_connections": 12,
                "max_connections_per_user": 3,
                "handshake_timeout": 1.0,
                "heartbeat_interval": 0.5,
                "heartbeat_timeout": 1.5,
            },
            "web": {"allowed_origins": ["https://chat.example.org", "http://localhost:*"]},
        },
    ).start()
    yield proc
    proc.stop()


async def test_frame_over_the_limit_is_an_error_and_far_over_is_close_1009(tight: ChatdProcess) -> None:
    c = await Client.connect(tight.ws, user="sizer")
    await c.join("size-room")
    await c.send({"type": "send", "room": "size-room", "body": "x" * 5000, "client_id": "over"})
    err = await c.expect("error")
    assert err["code"] == "too_large" and err["ref"] == "over"
    await c.send({"type": "send", "room": "size-room", "body": "x" * 100_000, "client_id": "way-over"})
    code, _ = await c.closed()
    assert code == 1009
    assert tight.get("/api/rooms/size-room/messages?user=sizer").json()["messages"] == []


async def test_send_rate_over_the_bucket_is_rate_limited_then_recovers(tight: ChatdProcess) -> None:
    c = await Client.connect(tight.ws, user="chatty")
    await c.join("rate-room")
    for n in range(8):
        await c.send({"type": "send", "room": "rate-room", "body": "x", "client_id": f"r{n}"})
    answers = []
    while len(answers) < 8:
        f = await c.recv()
        if f["type"] in ("ack", "error"):
            answers.append(f)
    limited = [a for a in answers if a["type"] == "error"]
    assert len([a for a in answers if a["type"] == "ack"]) == 5
    assert {a["code"] for a in limited} == {"rate_limited"} and len(limited) == 3
    await asyncio.sleep(0.5)  # 5 tokens per second: a couple are back
    assert (await c.say("rate-room", "later", "r-later"))["type"] == "ack"
    # a second connection of the same user shares the same bucket
    await c.close()


async def open_session(url: str) -> tuple[websockets.ClientConnection | None, int | None]:
    """Connect and read the first frame: (connection, None) on hello, (None, close code) on refusal."""
    ws = await websockets.connect(url)
    try:
        first = json.loads(await ws.recv())
        assert first["type"] == "hello"
        return ws, None
    except websockets.ConnectionClosed as e:
        return None, e.rcvd.code if e.rcvd else None


async def test_connection_caps_per_user_and_in_total_close_with_4029(make_server) -> None:
    server = make_server({"limits": {"max_connections": 6, "max_connections_per_user": 2}}).start()
    mine = [await open_session(server.ws + "?user=greedy") for _ in range(3)]
    assert [code for _, code in mine] == [None, None, 4029]  # per-user cap
    crowd = [await open_session(server.ws + f"?user=crowd{i}") for i in range(6)]
    assert [code for _, code in crowd] == [None] * 4 + [4029] * 2  # 2 greedy + 4 crowd = total cap
    for ws, _ in mine + crowd:
        if ws is not None:
            await ws.close()
    await asyncio.sleep(0.2)
    again, code = await open_session(server.ws + "?user=greedy")  # closed sessions free their slots
    assert code is None and again is not None
    await again.close()


def test_a_handshake_that_never_finishes_times_out(tight: ChatdProcess) -> None:
    s = socket.create_connection(("127.0.0.1", tight.port))
    s.sendall(b"GET /ws?user=slowloris HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\n")  # never finished
    s.settimeout(10)
    started = time.monotonic()
    data = s.recv(1024)
    while data:
        data = s.recv(1024)
    assert time.monotonic() - started < 9, "the server should hang up on a half-sent handshake"
    s.close()


async def test_heartbeat_pings_quiet_clients_and_closes_dead_ones(tight: ChatdProcess) -> None:
    alive = await Client.connect(tight.ws, user="answers_pings")
    dead = await Client.connect(tight.ws, user="never_answers")

    async def answer(c: Client) -> None:
        while True:
            f = await c.recv(10)
            if f["type"] == "ping":
                await c.send({"type": "pong"})

    responder = asyncio.create_task(answer(alive))
    assert (await dead.recv(5))["type"] == "ping"  # quiet for heartbeat_interval: pinged
    code, _ = await dead.closed(10)
    assert code == 4002  # silent past heartbeat_timeout: treated as a dead peer
    await asyncio.sleep(0.5)
    assert not responder.done(), "a client that answers pings must stay connected"
    responder.cancel()
    await alive.close()


@pytest.mark.parametrize(
    "origin, allowed",
    [
        ("https://evil.example", False),
        ("null", False),
        ("https://chat.example.org", True),
        ("http://localhost:5173", True),
        (None, True),
    ],
)
async def test_browser_origins_are_checked_against_the_allowlist(
    tight: ChatdProcess, origin: str | None, allowed: bool
) -> None:
    kw = {"origin": origin} if origin else {}
    if allowed:
        c = await Client.connect(tight.ws, user="origin_ok", **kw)
        await c.close()
    else:
        with pytest.raises(websockets.InvalidStatus) as info:
            await websockets.connect(tight.ws + "?user=origin_bad", **kw)
        assert info.value.response.status_code == 403


async def test_same_origin_pages_are_always_allowed(tight: ChatdProcess) -> None:
    c = await Client.connect(tight.ws, user="same_origin", origin=f"http://127.0.0.1:{tight.port}")
    await c.close()


async def test_missing_origin_can_be_refused(make_server) -> None:
    server = make_server({"web": {"allow_missing_origin": False}}).start()
    with pytest.raises(websockets.InvalidStatus):
        await websockets.connect(server.ws + "?user=no_origin")
    c = await Client.connect(server.ws, user="with_origin", origin="http://localhost:3000")
    await c.close()


async def test_websocket_and_rest_sends_share_one_bucket(tight: ChatdProcess) -> None:
    c = await Client.connect(tight.ws, user="both_ways")
    await c.join("shared-bucket")
    for n in range(5):  # the whole burst, over the WebSocket
        assert (await c.say("shared-bucket", "x", f"w{n}"))["type"] == "ack"
    r = tight.post("/api/rooms/shared-bucket/messages?user=both_ways", json={"body": "and via REST"})
    assert r.status_code == 429 and r.json()["code"] == "rate_limited"
    await c.close()


async def test_a_rest_send_that_cannot_be_stored_in_time_is_answered_503_and_its_resend_is_safe(make_server) -> None:
    import sqlite3

    server: ChatdProcess = make_server({"limits": {"rest_send_timeout": 1.0}}).start()
    assert server.post("/api/rooms?user=rester", json={"name": "blocked"}).status_code == 201
    url = "/api/rooms/blocked/messages?user=rester"
    assert server.post(url, json={"body": "first", "client_id": "r1"}).status_code == 201
    # Another process holds SQLite's write lock: the node's append waits (busy_timeout), fails, and retries.
    locker = sqlite3.connect(server.workdir / "chatd.db", timeout=10, isolation_level=None)
    locker.execute("BEGIN IMMEDIATE")
    try:
        started = time.monotonic()
        r = await asyncio.to_thread(server.post, url, json={"body": "second", "client_id": "r2"})
        waited = time.monotonic() - started
        assert r.status_code == 503 and r.json()["code"] == "unavailable", r.text
        assert "resend with the same client_id" in r.json()["message"] and r.json()["ref"] == "r2"
        assert waited < 9  # the bound, not the store's own retries, decided
    finally:
        locker.execute("ROLLBACK")
        locker.close()
    # The send stayed queued and is stored now; the resend is recognised, not stored twice.
    for _ in range(100):
        again = server.post(url, json={"body": "second", "client_id": "r2"})
        if again.status_code == 201:
            break
        await asyncio.sleep(0.1)
    assert again.status_code == 201 and again.json()["seq"] == 2 and again.json()["duplicate"] is True
    assert server.metrics()["chatd_rest_send_timeouts_total"] >= 1
